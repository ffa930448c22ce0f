// The streaming GTA path (methods_stream.h). Every arithmetic step mirrors gta() in methods.cpp
// (same operations, same order, compiled with the same -ffp-contract=off), so the bits agree.
// Where AVX-512 is enabled, 512-bit vectors: DARE's mask draws are 64-bit multiplies (two per
// element and pass), which GCC's default 256-bit preference runs at half width (measured 13% less
// CPU for dare_ties). No effect on the bits (no reassociation) or on builds without AVX-512.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#pragma GCC target("prefer-vector-width=512")
#endif
#include "merge/methods_stream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
#include "merge/methods_detail.h"
#include "tensor/convert.h"

namespace evomerge {

namespace {

using detail::kChunk;

constexpr size_t kHighBins = size_t{1} << 15;  // top 16 bits of |x|'s pattern (sign bit is 0)
constexpr size_t kLowBins = size_t{1} << 16;

enum class Mode { Keep, Zero, Select, Dare };

struct Vec {
  size_t input = 0;
  float w = 0, ws = 0;  // weight; weight times DARE's rescale factor
  Mode mode = Mode::Keep;
  uint64_t key = 0, thr = 0;  // DARE
  bool l1 = false;            // DARE with rescale: pass 1 takes the L1 norms
  // DARE with rescale: pass 1's keep decisions, kChunk / 32 words a tile (dare_chunk's mask), so
  // the last pass reads a bit per element instead of drawing it again (two 64-bit multiplies).
  const uint32_t* mask = nullptr;
  size_t rank = 0;        // Select: keep the ranks [rank, n) of |x| ascending
  float value = 0;        // Select: the magnitude of that rank
  size_t quota = 0;       // Select: how many values equal to `value` are kept (the first ones)
  size_t equal = 0;       // Select: how many values equal `value`
  bool fix_ties = false;  // Select: some values equal to `value` go (quota < their count)
};

// One tensor's passes: tiles of kChunk elements, run on `par` (or serially).
struct Stream {
  const TileIo& io;
  const ParallelFor* par;
  size_t n, tiles, m;  // m: inputs
  // Each input's stored bf16 elements (TileIo::bf16), used when `direct`: every input read has
  // them.
  std::vector<const uint16_t*> raw;
  bool direct = false;

  size_t threads() const { return par ? std::max<size_t>(1, par->threads()) : 1; }
  size_t thread() const { return par ? par->thread_index() : 0; }
  // fn(i) for i < count, on the threads.
  template <typename F>
  void run(size_t count, F&& fn) const {
    if (par && count > 1)
      par->run(count, fn);
    else
      for (size_t i = 0; i < count; ++i) fn(i);
  }
  // fn(tile, begin, len, buffers of this thread) for every tile; `last_first` hands the tiles out
  // from the end, so a pass after a forward one starts on what is still in cache.
  template <typename F>
  void each(F&& fn, bool last_first = false) const {
    auto body = [&](size_t i) {
      // (m + 1) input tiles and the result: ~(m + 2) x 128 KB per thread, cache-resident.
      thread_local std::vector<float> buf;
      if (buf.size() < (m + 2) * kChunk) buf.resize((m + 2) * kChunk);
      const size_t c = last_first ? tiles - 1 - i : i, b = c * kChunk;
      fn(c, b, std::min(n, b + kChunk) - b, buf.data());
    };
    if (par && tiles > 1)
      par->run(tiles, body);
    else
      for (size_t c = 0; c < tiles; ++c) body(c);
  }
  // Input `input`'s tile into slot `slot` of buf.
  float* load(float* buf, size_t slot, size_t input, size_t b, size_t len) const {
    float* x = buf + slot * kChunk;
    io.read(input, b, len, x);
    return x;
  }
  // fn(tile) with tile(slot, input): input's elements [b, b + len), the stored bf16 ones where
  // `direct`, else an f32 copy in slot `slot` of buf (fn is instantiated for both element types).
  template <typename F>
  void with_tiles(float* buf, size_t b, size_t len, F&& fn) const {
    if (direct)
      fn([&](size_t, size_t input) { return raw[input] + b; });
    else
      fn([&](size_t slot, size_t input) -> const float* { return load(buf, slot, input, b, len); });
  }
};

inline uint32_t abs_bits(float x) {
  return f32_to_bits(std::fabs(x));
}

// The value of rank `need` among the counts in h[0..bins), how many lie below its bin, its bin.
size_t find_bin(const std::vector<size_t>& h, size_t& need, size_t& less) {
  size_t b = 0;
  for (; b < h.size(); ++b) {
    if (need < h[b]) break;
    need -= h[b];
    less += h[b];
  }
  EM_ASSERT(b < h.size());
  return b;
}

// a[c * stride + col] for c < rows becomes the sum of the entries above it.
void exclusive_prefix(std::vector<size_t>& a, size_t rows, size_t stride, size_t col) {
  size_t run = 0;
  for (size_t c = 0; c < rows; ++c) {
    const size_t e = a[c * stride + col];
    a[c * stride + col] = run;
    run += e;
  }
}

// Exact rank selection of |T_i - B| for every Select vector: two histogram passes (16-bit digits).
void select_magnitudes(const Stream& s, size_t base, std::vector<Vec>& vecs,
                       std::vector<size_t>& sel) {
  const size_t T = s.threads(), ns = sel.size();
  if (ns == 0) return;
  std::vector<uint32_t> hist(T * ns * kHighBins, 0);
  s.each([&](size_t, size_t b, size_t len, float* buf) {
    const float* B = s.load(buf, 0, base, b, len);
    for (size_t q = 0; q < ns; ++q) {
      const float* X = s.load(buf, 1, vecs[sel[q]].input, b, len);
      uint32_t* h = hist.data() + (s.thread() * ns + q) * kHighBins;
      for (size_t k = 0; k < len; ++k) ++h[abs_bits(X[k] - B[k]) >> 16];
    }
  });
  std::vector<uint32_t> bucket(ns);
  std::vector<size_t> need(ns), less(ns, 0);
  std::vector<size_t> h(kHighBins);
  for (size_t q = 0; q < ns; ++q) {
    std::fill(h.begin(), h.end(), 0);
    for (size_t t = 0; t < T; ++t)
      for (size_t i = 0; i < kHighBins; ++i) h[i] += hist[(t * ns + q) * kHighBins + i];
    need[q] = vecs[sel[q]].rank;
    bucket[q] = static_cast<uint32_t>(find_bin(h, need[q], less[q]));
  }
  std::vector<uint32_t> low(T * ns * kLowBins, 0);
  s.each([&](size_t, size_t b, size_t len, float* buf) {
    const float* B = s.load(buf, 0, base, b, len);
    for (size_t q = 0; q < ns; ++q) {
      const float* X = s.load(buf, 1, vecs[sel[q]].input, b, len);
      uint32_t* h2 = low.data() + (s.thread() * ns + q) * kLowBins;
      const uint32_t want = bucket[q];
      for (size_t k = 0; k < len; ++k) {
        const uint32_t key = abs_bits(X[k] - B[k]);
        if ((key >> 16) == want) ++h2[key & 0xffffu];
      }
    }
  });
  h.assign(kLowBins, 0);
  for (size_t q = 0; q < ns; ++q) {
    std::fill(h.begin(), h.end(), 0);
    for (size_t t = 0; t < T; ++t)
      for (size_t i = 0; i < kLowBins; ++i) h[i] += low[(t * ns + q) * kLowBins + i];
    const size_t lo = find_bin(h, need[q], less[q]);
    Vec& v = vecs[sel[q]];
    v.value = bits_to_f32((bucket[q] << 16) | static_cast<uint32_t>(lo));
    const size_t equal = h[lo];
    v.quota = less[q] + equal - v.rank;
    v.equal = equal;
    // A kept zero adds nothing to the vote or the mean: ties at 0 need no index order.
    v.fix_ties = v.quota < equal && v.value > 0.0f;
  }
}

// For the Select vectors `fix` whose threshold ties must be cut by index: how many values equal to
// the threshold come before each tile, into seen[tile * vecs.size() + vector].
void ties_before(const Stream& s, size_t base, const std::vector<Vec>& vecs,
                 const std::vector<size_t>& fix, std::vector<size_t>& seen) {
  const size_t V = vecs.size();
  if (fix.empty()) return;
  s.each([&](size_t c, size_t b, size_t len, float* buf) {
    const float* B = s.load(buf, 0, base, b, len);
    for (size_t q : fix) {
      const float* X = s.load(buf, 1, vecs[q].input, b, len);
      size_t e = 0;
      for (size_t k = 0; k < len; ++k) e += std::fabs(X[k] - B[k]) == vecs[q].value;
      seen[c * V + q] = e;
    }
  });
  for (size_t q : fix) exclusive_prefix(seen, s.tiles, V, q);
}

// Window selection, for tensors of kWindowMin elements or more: the magnitudes of a fixed sample
// (kSampleBlocks evenly spaced runs of kSampleRun elements) bound the wanted rank's value from
// both sides with a wide margin; one pass counts the values below the window and keeps the
// window's own (at most kChunk / 8 a tile); the exact value is then selected among those, and the
// ties at it are counted per tile from them. Exact whenever it settles; a vector it cannot settle
// (the rank outside the window, or a window too full: e.g. a run of equal values) is returned for
// the two-pass selection. One pass over the inputs instead of two (or three with ties).
constexpr size_t kWindowMin = 8 * kChunk, kSampleBlocks = 1024, kSampleRun = 64,
                 kWindowCap = kChunk / 8;

// The windows of select_in_window: for each vector sel[q], keys [lo[q], hi[q]] around its rank's
// value, from the sample's quantiles at the rank's fraction -+ a margin. On the threads: the
// sample's reads are the first touch of pages spread over the whole tensor (their page faults),
// and one thread selects per vector.
void window_bounds(const Stream& s, size_t base, const std::vector<Vec>& vecs,
                   const std::vector<size_t>& sel, std::vector<uint32_t>& lo,
                   std::vector<uint32_t>& hi) {
  constexpr size_t kGroups = 16, kPer = kSampleBlocks * kSampleRun;  // kSampleBlocks / kGroups each
  const size_t n = s.n, ns = sel.size();
  std::vector<uint32_t> keys(ns * kPer);
  s.run(kGroups, [&](size_t g) {
    float tb[kSampleRun], tx[kSampleRun];
    for (size_t j = g * kSampleBlocks / kGroups; j < (g + 1) * kSampleBlocks / kGroups; ++j) {
      const size_t at = j * (n - kSampleRun) / (kSampleBlocks - 1);
      s.io.read(base, at, kSampleRun, tb);
      for (size_t q = 0; q < ns; ++q) {
        s.io.read(vecs[sel[q]].input, at, kSampleRun, tx);
        for (size_t k = 0; k < kSampleRun; ++k)
          keys[q * kPer + j * kSampleRun + k] = abs_bits(tx[k] - tb[k]);
      }
    }
  });
  s.run(ns, [&](size_t q) {
    const auto first = keys.begin() + static_cast<std::ptrdiff_t>(q * kPer), last = first + kPer;
    const double p = static_cast<double>(vecs[sel[q]].rank) / static_cast<double>(n), m = kPer;
    // 4 standard errors of a sample quantile, plus a floor for the runs' correlation.
    const double margin = 0.003 + 4.0 * std::sqrt(p * (1 - p) / m);
    const double a = std::floor((p - margin) * m), b = std::ceil((p + margin) * m);
    auto at = [&](double i) {
      auto it = first + static_cast<std::ptrdiff_t>(i);
      std::nth_element(first, it, last);
      return *it;
    };
    lo[q] = a < 0 ? 0u : at(a);
    hi[q] = b >= m ? 0xffffffffu : at(b);
  });
}

// Per tile and vector in select_in_window: counts below the window and at its two bounds, and the
// keys strictly inside it (`in` of them; ~0: too many).
struct WindowCounts {
  size_t under = 0, at_lo = 0, at_hi = 0, in = 0;
};

// One tile of one vector (x = X - B over [0, len)) against the window [l, h]: its counts, and the
// keys inside into keys[0..in) (up to kChunk; f: len + 8 flags of scratch).
template <typename S>
WindowCounts window_tile(const S* X, const S* B, size_t len, uint32_t l, uint32_t h, uint8_t* f,
                         uint32_t* keys) {
  using detail::widen;
  const uint32_t open = h > l ? h - l - 1 : 0;  // keys l+1 .. h-1
  uint32_t under = 0, at_lo = 0, at_hi = 0;     // 32-bit lanes: a tile fits
  size_t in = 0;
  for (size_t k = 0; k < len; ++k) {  // vectorised: the counts, and which keys are inside
    const uint32_t key = abs_bits(widen(X[k]) - widen(B[k]));
    under += key < l;
    at_lo += key == l;
    at_hi += key == h;
    f[k] = key - l - 1 < open;
  }
  std::fill(f + len, f + (len + 7) / 8 * 8, uint8_t{0});
  for (size_t k = 0; k < len; k += 8) {  // the few inside keys, eight flags at a time
    uint64_t any;
    std::memcpy(&any, f + k, 8);
    if (!any) continue;
    for (size_t i = k; i < k + 8; ++i)
      if (f[i] && in < kChunk) keys[in++] = abs_bits(widen(X[i]) - widen(B[i]));
  }
  if (h == l) at_hi = 0;  // counted once, as at_lo
  return {under, at_lo, at_hi, in};
}

// The exact value of v's rank from select_in_window's pass (vector column `col` of vecs.size()
// `V`): tally[c * stride] and kept + c * stride * kWindowCap are tile c's counts and window keys.
// False where the window cannot settle it (the rank outside, or a tile's window too full); true
// with v's value, quota and ties, and where the cut goes by index, seen[c * V + col] the ties
// before each tile.
bool settle_in_window(const Stream& s, const WindowCounts* tally, size_t stride,
                      const uint32_t* kept, uint32_t lo, uint32_t hi, Vec& v, size_t col, size_t V,
                      std::vector<size_t>& seen) {
  WindowCounts sum;
  bool full = false;
  for (size_t c = 0; c < s.tiles; ++c) {
    const WindowCounts& t = tally[c * stride];
    full = full || t.in == ~size_t{0};
    sum.under += t.under, sum.at_lo += t.at_lo, sum.at_hi += t.at_hi;
    sum.in += full ? 0 : t.in;
  }
  // Ascending: [under) < lo, [at_lo) == lo, [in) inside, [at_hi) == hi, the rest above.
  const size_t r = v.rank, inside = sum.under + sum.at_lo, upper = inside + sum.in;
  if (full || r < sum.under || r >= upper + sum.at_hi) return false;
  uint32_t key;
  size_t less, equal;
  int where;  // 0: lo, 1: inside, 2: hi
  if (r < inside) {
    key = lo, less = sum.under, equal = sum.at_lo, where = 0;
  } else if (r >= upper) {
    key = hi, less = upper, equal = sum.at_hi, where = 2;
  } else {
    std::vector<uint32_t> all;
    all.reserve(sum.in);
    for (size_t c = 0; c < s.tiles; ++c) {
      const uint32_t* k = kept + c * stride * kWindowCap;
      all.insert(all.end(), k, k + tally[c * stride].in);
    }
    auto nth = all.begin() + static_cast<std::ptrdiff_t>(r - inside);
    std::nth_element(all.begin(), nth, all.end());
    key = *nth, less = inside, equal = 0, where = 1;
    for (uint32_t k : all) less += k < key, equal += k == key;
  }
  v.value = bits_to_f32(key);
  v.quota = less + equal - v.rank;
  v.equal = equal;
  v.fix_ties = v.quota < equal && v.value > 0.0f;  // see select_magnitudes
  if (!v.fix_ties) return true;
  for (size_t c = 0; c < s.tiles; ++c) {
    const WindowCounts& t = tally[c * stride];
    const uint32_t* k = kept + c * stride * kWindowCap;
    seen[c * V + col] = where == 0   ? t.at_lo
                        : where == 2 ? t.at_hi
                                     : static_cast<size_t>(std::count(k, k + t.in, key));
  }
  exclusive_prefix(seen, s.tiles, V, col);
  return true;
}

std::vector<size_t> select_in_window(const Stream& s, size_t base, std::vector<Vec>& vecs,
                                     const std::vector<size_t>& sel, std::vector<size_t>& seen) {
  const size_t ns = sel.size(), n = s.n;
  if (ns == 0 || n < kWindowMin) return sel;
  std::vector<uint32_t> lo(ns), hi(ns);
  window_bounds(s, base, vecs, sel, lo, hi);
  // The bounds are counted, not kept, so a value repeated a million times (a zero delta, one ulp
  // of a fine-tune) costs no memory.
  using Counts = WindowCounts;
  std::vector<Counts> tally(s.tiles * ns);
  std::unique_ptr<uint32_t[]> kept(new uint32_t[s.tiles * ns * kWindowCap]);
  s.each([&](size_t c, size_t b, size_t len, float* buf) {
    thread_local std::vector<uint32_t> tmp;
    thread_local std::vector<uint8_t> flag;
    if (tmp.size() < kChunk) tmp.resize(kChunk), flag.resize(kChunk + 8);
    s.with_tiles(buf, b, len, [&](auto tile) {
      const auto* B = tile(0, base);
      for (size_t q = 0; q < ns; ++q) {
        Counts t =
            window_tile(tile(1, vecs[sel[q]].input), B, len, lo[q], hi[q], flag.data(), tmp.data());
        if (t.in <= kWindowCap)
          std::copy_n(tmp.data(), t.in, kept.get() + (c * ns + q) * kWindowCap);
        else
          t.in = ~size_t{0};
        tally[c * ns + q] = t;
      }
    });
  });
  // One vector per thread: the selection inside a window sorts ~2% of the tensor's keys.
  std::vector<char> settled(ns);
  s.run(ns, [&](size_t q) {
    settled[q] = settle_in_window(s, tally.data() + q, ns, kept.get() + q * kWindowCap, lo[q],
                                  hi[q], vecs[sel[q]], sel[q], vecs.size(), seen);
  });
  std::vector<size_t> rest;
  for (size_t q = 0; q < ns; ++q)
    if (!settled[q]) rest.push_back(sel[q]);
  return rest;
}

// The task vector of `v` on one tile into X (x = T - B, sparsified; X may be T's f32 copy).
template <typename S>
void task_tile(const Vec& v, const S* T, const S* B, float* X, size_t b, size_t len,
               size_t ties_seen, size_t ties_next) {
  using detail::widen;
  switch (v.mode) {
    case Mode::Keep:
    case Mode::Zero:
      for (size_t k = 0; k < len; ++k) X[k] = widen(T[k]) - widen(B[k]);
      break;
    case Mode::Dare: {
      if (v.mask) {
        // Blocks of 1024: the block's bits spread to one flag per element, then the select (two
        // loops that vectorise; one loop over bits and elements does not).
        const uint32_t* words = v.mask + b / kChunk * (kChunk / 32);
        uint32_t keep[1024];
        for (size_t j = 0; j < len; j += 1024) {
          const size_t bl = std::min<size_t>(1024, len - j);
          for (size_t g = 0; g < (bl + 31) / 32; ++g) {
            const uint32_t w = words[j / 32 + g];
            for (size_t k = 0; k < 32; ++k) keep[g * 32 + k] = (w >> k) & 1u;
          }
          for (size_t k = 0; k < bl; ++k) {
            const float x = widen(T[j + k]) - widen(B[j + k]);
            X[j + k] = keep[k] ? x : 0.0f;
          }
        }
        break;
      }
      // rng_bits(key, b + k) < thr, unrolled: the counter steps by the golden ratio (an induction,
      // not a multiply per element), and mix64(c) >> 11 < thr is mix64(c) < thr << 11 (thr < 2^53).
      const uint64_t step = 0x9e3779b97f4a7c15ull, limit = v.thr << 11;
      const uint64_t c0 = v.key + (b + 1) * step;
      for (size_t k = 0; k < len; ++k) {
        const float x = widen(T[k]) - widen(B[k]);
        X[k] = detail::mix64(c0 + k * step) < limit ? x : 0.0f;
      }
      break;
    }
    case Mode::Select: {
      // Values equal to the threshold: the first `quota` (by index) stay. This tile holds those of
      // ranks [ties_seen, ties_next) among them: all stay, all go, or the cut falls inside it.
      const float t = v.value;
      const size_t left = v.quota > ties_seen ? v.quota - ties_seen : 0;
      if (v.fix_ties && left == 0) {
        for (size_t k = 0; k < len; ++k) {
          const float x = widen(T[k]) - widen(B[k]);
          X[k] = std::fabs(x) > t ? x : 0.0f;
        }
        break;
      }
      for (size_t k = 0; k < len; ++k) {
        const float x = widen(T[k]) - widen(B[k]);
        X[k] = std::fabs(x) >= t ? x : 0.0f;
      }
      if (!v.fix_ties || ties_seen + left >= ties_next) break;
      for (size_t k = 0, keep = left; k < len; ++k)
        if (std::fabs(X[k]) == t) {
          if (keep > 0)
            --keep;
          else
            X[k] = 0.0f;
        }
      break;
    }
  }
}

// How the task vectors of a tensor combine (gta() in methods.cpp): their weights (ws with DARE's
// rescale), the sign election or not, normalisation and lambda.
struct Combine {
  std::vector<float> ws, w;  // per active vector
  bool consensus = false, normalize = false;
  float lam = 1, inv = 1;
};

// out[0..len) = B + lam * the combined task vectors X[q][0..len) of one tile, as gta() computes it.
template <typename S>
void combine_tile(const Combine& k, const std::vector<float*>& X, const S* B, size_t len,
                  float* out) {
  detail::combine_task_vectors(X.data(), X.size(), k.ws.data(), k.w.data(), B, len, k.consensus,
                               k.normalize, k.lam, k.inv, out);
}

}  // namespace

size_t stream_tile_elements() {
  return kChunk;
}

bool gta_streams(std::string_view method, const KernelArgs& a, size_t n_inputs) {
  // The selection's histograms count in 32 bits: larger tensors take the plain path.
  if (shape_numel(a.shape) >= (int64_t{1} << 32)) return false;
  return detail::gta_setup(method, a, n_inputs).has_value();
}

void run_gta_stream(std::string_view method, const KernelArgs& a, size_t n_inputs,
                    const TileIo& io) {
  const auto setup = detail::gta_setup(method, a, n_inputs);
  EM_ASSERT(setup.has_value());
  const size_t n = static_cast<size_t>(shape_numel(a.shape)), base = setup->base;
  Stream s{io, a.parallel, n, (n + kChunk - 1) / kChunk, n_inputs, {}, false};
  std::vector<Vec> vecs;
  std::vector<size_t> sel, l1v;
  double wsum = 0;
  for (const detail::GtaVector& g : setup->vectors) {
    Vec v;
    v.input = g.input;
    v.w = v.ws = g.weight;
    wsum += g.weight;
    if (setup->sparsifier == detail::GtaSparsifier::Random && g.density < 1.0) {
      v.mode = Mode::Dare;
      v.key = g.key;
      v.thr = detail::bernoulli_threshold(g.density);
      v.l1 = setup->rescale;
    } else if (setup->sparsifier == detail::GtaSparsifier::Magnitude && g.density < 1.0) {
      // Top-k of |x|, k = int(density * n) (sparsify() in methods.cpp): none kept, all, or a cut.
      const size_t k = g.density <= 0 ? 0 : static_cast<size_t>(g.density * static_cast<double>(n));
      v.mode = k == 0 ? Mode::Zero : k >= n ? Mode::Keep : Mode::Select;
      v.rank = n - std::min(k, n);
    }
    if (v.mode == Mode::Select) sel.push_back(vecs.size());
    if (v.l1) l1v.push_back(vecs.size());
    vecs.push_back(v);
  }
  // Straight from the stored bytes where the base and every task vector are stored as bf16.
  if (io.bf16) {
    for (size_t i = 0; i < n_inputs; ++i) s.raw.push_back(io.bf16(i));
    s.direct = s.raw[base] != nullptr;
    for (const Vec& v : vecs) s.direct = s.direct && s.raw[v.input] != nullptr;
  }
  // Pass 1 (DARE with rescale): the L1 norms before and after the mask, per chunk, summed in order;
  // the mask kept for the last pass.
  std::vector<uint32_t> masks;
  if (!l1v.empty()) {
    const size_t L = l1v.size(), words = kChunk / 32;
    std::vector<double> before(s.tiles * L), after(s.tiles * L);
    masks.resize(L * s.tiles * words);
    s.each([&](size_t c, size_t b, size_t len, float* buf) {
      s.with_tiles(buf, b, len, [&](auto tile) {
        const auto* B = tile(0, base);
        for (size_t q = 0; q < L; ++q) {
          const Vec& v = vecs[l1v[q]];
          detail::dare_chunk<false>(tile(1, v.input), B, len, b, v.key, v.thr, nullptr,
                                    before[c * L + q], after[c * L + q],
                                    masks.data() + (q * s.tiles + c) * words);
        }
      });
    });
    for (size_t q = 0; q < L; ++q) {
      double sb = 0, sa = 0;
      for (size_t c = 0; c < s.tiles; ++c) sb += before[c * L + q], sa += after[c * L + q];
      Vec& v = vecs[l1v[q]];
      if (sb >= 1e-7 && sa >= 1e-7) v.ws = static_cast<float>(v.w * (sb / sa));
      v.mask = masks.data() + q * s.tiles * words;
    }
  }
  std::vector<size_t> seen(s.tiles * vecs.size(), 0);  // ties at the threshold before each tile
  std::vector<size_t> rest = select_in_window(s, base, vecs, sel, seen);
  select_magnitudes(s, base, vecs, rest);
  std::vector<size_t> fix;
  for (size_t q : rest)
    if (vecs[q].fix_ties) fix.push_back(q);
  ties_before(s, base, vecs, fix, seen);
  // Vectors that add something (a Zero vector adds +-0 to sums that start at +0: no change).
  std::vector<size_t> act;
  for (size_t i = 0; i < vecs.size(); ++i)
    if (vecs[i].mode != Mode::Zero) act.push_back(i);
  Combine mix;
  mix.lam = setup->lambda;
  mix.consensus = setup->consensus, mix.normalize = setup->normalize;
  mix.inv = mix.normalize ? static_cast<float>(1.0 / (std::fabs(wsum) < 1e-8 ? 1.0 : wsum)) : 1.0f;
  for (size_t i : act) mix.ws.push_back(vecs[i].ws), mix.w.push_back(vecs[i].w);
  s.each(
      [&](size_t c, size_t b, size_t len, float* buf) {
        std::vector<float*> X(act.size());
        float* out = buf + (s.m + 1) * kChunk;
        s.with_tiles(buf, b, len, [&](auto tile) {
          const auto* B = tile(0, base);
          for (size_t q = 0; q < act.size(); ++q) {
            const Vec& v = vecs[act[q]];
            X[q] = buf + (1 + q) * kChunk;  // T's f32 copy where there is one: in place
            const size_t V = vecs.size(),
                         next = c + 1 < s.tiles ? seen[(c + 1) * V + act[q]] : v.equal;
            task_tile(v, tile(1 + q, v.input), B, X[q], b, len, seen[c * V + act[q]], next);
          }
          combine_tile(mix, X, B, len, out);
        });
        io.emit(c, b, len, out);
      },
      /*last_first=*/true);
}

}  // namespace evomerge
