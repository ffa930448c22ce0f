// The fast matmul (threaded sgemm blocks, fused 16-bit GEMV) against the plain scalar one, and the
// thread pool's coverage.
#include "infer/kernels.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "tensor/convert.h"

namespace evomerge::infer_detail {
namespace {

struct Owned {
  std::vector<std::byte> bytes;
  Matrix m;
};

Owned make_matrix(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> v(rows * cols);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(static_cast<int32_t>(s >> 8) % 2001 - 1000) / 1000.0f;
  }
  Owned o;
  o.bytes.resize(v.size() * dtype_size(dtype));
  convert_from_f32(dtype, v.data(), o.bytes.data(), v.size());
  o.m.data = o.bytes.data();
  o.m.dtype = dtype;
  o.m.rows = rows;
  o.m.cols = cols;
  return o;
}

TEST(Kernels, LinearMatchesReference) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    MatmulScratch scratch;
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 53}, {300, 129}, {16, 16}}) {
        Owned w = make_matrix(dt, rows, cols, 7);
        for (bool cache : {false, true}) {
          w.m.refresh(cache);
          for (int64_t n : {1, 3, 8, 9, 40}) {
            Owned x = make_matrix(DType::F32, n, cols, 3);
            const float* xf = reinterpret_cast<const float*>(x.bytes.data());
            std::vector<float> fast(n * rows, NAN), ref(n * rows);
            linear(pool, w.m, xf, n, fast.data(), scratch);
            linear_reference(w.m, xf, n, ref.data());
            float diff = 0;
            for (size_t i = 0; i < ref.size(); ++i)
              diff = std::max(diff, std::fabs(fast[i] - ref[i]));
            EXPECT_LE(diff, 2e-5f * std::sqrt(static_cast<float>(cols)))
                << dtype_name(dt) << " " << rows << "x" << cols << " n=" << n
                << " threads=" << threads;
          }
        }
      }
    }
  }
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// The fused regions (q/k/v of one X; the MLP's gate and up with the activation as an epilogue)
// against the reference, on matrices of different heights and awkward widths.
TEST(Kernels, FusedProductsMatchReference) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    MatmulScratch scratch;
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (int64_t cols : {53, 129}) {
        Owned a = make_matrix(dt, 301, cols, 7), b = make_matrix(dt, 37, cols, 8),
              c = make_matrix(dt, 9, cols, 9), up = make_matrix(dt, 301, cols, 10);
        for (int64_t n : {1, 3, 9, 40}) {
          Owned x = make_matrix(DType::F32, n, cols, 3);
          const float* xf = reinterpret_cast<const float*>(x.bytes.data());
          const float tol = 2e-5f * std::sqrt(static_cast<float>(cols));
          std::vector<float> ya(n * 301, NAN), yb(n * 37, NAN), yc(n * 9, NAN);
          const LinearOut outs[] = {{&a.m, ya.data()}, {&b.m, yb.data()}, {&c.m, yc.data()}};
          linear_many(pool, outs, xf, n, scratch);
          for (auto [owned, y] : {std::pair{&a, &ya}, {&b, &yb}, {&c, &yc}}) {
            std::vector<float> ref(y->size());
            linear_reference(owned->m, xf, n, ref.data());
            EXPECT_LE(max_diff(*y, ref), tol) << dtype_name(dt) << " rows=" << owned->m.rows
                                              << " n=" << n << " threads=" << threads;
          }
          // Epilogue: G <- 2 G - U on each column range, every column exactly once.
          std::vector<float> g(n * 301, NAN), u(n * 301, NAN), rg(n * 301), ru(n * 301);
          std::vector<std::atomic<int>> seen(301);
          linear_gated(pool, a.m, up.m, xf, n, g.data(), u.data(), scratch, Precision::Exact,
                       [&](int64_t c0, int64_t c1) {
                         for (int64_t j = c0; j < c1; ++j) {
                           seen[j]++;
                           for (int64_t r = 0; r < n; ++r)
                             g[r * 301 + j] = 2 * g[r * 301 + j] - u[r * 301 + j];
                         }
                       });
          linear_reference(a.m, xf, n, rg.data());
          linear_reference(up.m, xf, n, ru.data());
          for (size_t i = 0; i < rg.size(); ++i) rg[i] = 2 * rg[i] - ru[i];
          EXPECT_LE(max_diff(u, ru), tol) << dtype_name(dt) << " n=" << n;
          EXPECT_LE(max_diff(g, rg), 3 * tol) << dtype_name(dt) << " n=" << n;
          for (int64_t j = 0; j < 301; ++j) EXPECT_EQ(seen[j].load(), 1) << j;
        }
      }
    }
  }
}

// Waits of every length: regions back to back (the workers spin), and gaps longer than the spin
// (they sleep and must be woken), every index still covered once.
TEST(Kernels, ThreadPoolWakesSleepingWorkers) {
  ThreadPool pool(3);
  for (int round = 0; round < 40; ++round) {
    if (round % 8 == 7)
      std::this_thread::sleep_for(ThreadPool::spin() * 4 + std::chrono::microseconds(100));
    std::vector<std::atomic<int>> hits(64);
    pool.parallel_for(64, [&](int64_t i, int) { hits[i]++; });
    for (int64_t i = 0; i < 64; ++i) ASSERT_EQ(hits[i].load(), 1) << round << " " << i;
  }
}

TEST(Kernels, ThreadPoolCoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 5, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    std::atomic<int> bad_thread{0};
    pool.parallel_for(n, [&](int64_t i, int t) {
      hits[i]++;
      if (t < 0 || t >= pool.size()) bad_thread++;
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << i;
    EXPECT_EQ(bad_thread.load(), 0);
  }
}

TEST(Kernels, DotHandlesTails) {
  std::vector<float> a(37), b(37);
  double expect = 0;
  for (int i = 0; i < 37; ++i)
    a[i] = 0.5f * i, b[i] = 1.0f - 0.25f * i, expect += a[i] * static_cast<double>(b[i]);
  EXPECT_NEAR(dot(a.data(), b.data(), 37), expect, 1e-3);
  EXPECT_EQ(dot(a.data(), b.data(), 0), 0.0f);
}

// Head-dim lengths (attention) and every tail against a double-precision sum.
TEST(Kernels, DotMatchesDoubleSum) {
  uint32_t seed = 11;
  for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 80, 128, 129, 200}) {
    std::vector<float> a(n), b(n);
    double expect = 0, scale = 0;
    for (int64_t i = 0; i < n; ++i) {
      a[i] = static_cast<float>((seed = seed * 1664525u + 1013904223u) >> 20) / 4096.0f - 0.5f;
      b[i] = static_cast<float>((seed = seed * 1664525u + 1013904223u) >> 20) / 4096.0f - 0.5f;
      expect += static_cast<double>(a[i]) * b[i];
      scale += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    EXPECT_NEAR(dot(a.data(), b.data(), n), expect, 1e-6 * scale + 1e-7) << n;
  }
}

// The vectorised argmax against the plain loop: random values with ties (a coarse grid), maxima
// in the tails, NaNs (never chosen), -inf everywhere.
TEST(Kernels, ArgmaxIsThePlainLoopsAnswer) {
  auto plain = [](const std::vector<float>& x) {
    int64_t best = 0;
    for (int64_t i = 1; i < static_cast<int64_t>(x.size()); ++i)
      if (x[i] > x[best]) best = i;
    return best;
  };
  uint32_t seed = 5;
  for (int64_t n : {1, 2, 15, 16, 17, 31, 100, 1000, 32001}) {
    for (int variant = 0; variant < 5; ++variant) {
      std::vector<float> x(n);
      for (float& v : x) v = static_cast<float>(((seed = seed * 1664525u + 1013904223u) >> 24) % 7);
      if (variant == 1) x[n - 1] = 9;                    // the maximum in the tail
      if (variant == 2 && n > 3) x[1] = x[n - 2] = NAN;  // NaNs among the values
      if (variant == 3) x[0] = NAN;                      // the plain loop then keeps 0
      if (variant == 4) std::fill(x.begin(), x.end(), -INFINITY);
      EXPECT_EQ(argmax(x.data(), n), plain(x)) << n << " variant " << variant;
    }
  }
}

}  // namespace
}  // namespace evomerge::infer_detail
