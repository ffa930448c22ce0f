// A decoding step of the CPU backend allocates nothing (backend.h, cpu_backend.cpp: buffers grow
// to the largest micro-batch seen and are reused): counted by replacing the global operator new
// of this test binary. Steps are the engine's: embed, every hop, the argmax head, for B sequences
// of one row each, after the first steps have grown the buffers.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "infer/backend.h"
#include "infer/gemm.h"
#include "infer/model_views.h"
#include "infer/testing.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void* counted_malloc(size_t n) {
  if (g_counting.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(size_t n) {
  return counted_malloc(n);
}
void* operator new[](size_t n) {
  return counted_malloc(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}

namespace evomerge::infer_detail {
namespace {

constexpr int kVocab = 256, kContext = 64, kPrompt = 4;

// Allocations made by `steps` greedy decode steps of `batch` sequences, after a prompt of
// kPrompt tokens each and two warm-up steps.
int64_t allocations_per_decode(int batch, int steps) {
  testing::TempDir dir("decode_alloc");
  auto w = testing::random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 3);
  BackendOptions o;
  o.threads = 2;
  o.max_context = kContext;
  o.max_batch_tokens = batch * kPrompt;
  auto backend = make_backend(o);
  backend->set_head(resolve_head(*w, "m"));
  std::vector<HopSpec> path;
  for (int i = 0; i < w->config().num_hidden_layers; ++i)
    path.push_back({backend->add_layer(resolve_layer(*w, i, "m")), 1.0f});
  backend->refresh_weights();  // the f32 norms and copies, as the engine does after loading
  backend->set_path(path);
  auto run = [&](const std::vector<Row>& rows, std::vector<int64_t>& sel,
                 std::vector<int32_t>& out) {
    backend->embed(rows);
    for (size_t h = 0; h < path.size(); ++h) backend->forward_layer(h, rows);
    backend->argmax(sel, kVocab, out.data());
  };
  std::vector<Row> rows;
  std::vector<int64_t> sel;
  std::vector<int32_t> next(batch);
  for (int b = 0; b < batch; ++b) {
    backend->reset_seq(b, -1, 0, kContext);
    for (int p = 0; p < kPrompt; ++p)
      rows.push_back({b, p, (b * 7 + p) % kVocab, p == kPrompt - 1});
    sel.push_back(static_cast<int64_t>(rows.size()) - 1);
  }
  run(rows, sel, next);
  std::vector<Row> step(batch);
  std::vector<int64_t> all(batch);
  for (int b = 0; b < batch; ++b) all[b] = b;
  int64_t counted = 0;
  for (int s = 0; s < steps + 2; ++s) {
    for (int b = 0; b < batch; ++b) step[b] = {b, kPrompt + s, next[b], true};
    const int64_t before = g_allocations.load();
    g_counting = s >= 2;
    run(step, all, next);
    g_counting = false;
    counted += g_allocations.load() - before;
  }
  return counted;
}

// The kernel linear() runs for `rows` bf16 rows here (the engine packs bf16 weights for amx). amx
// on packed weights is our tile kernel, held to zero like the others; oneDNN (amx on weights read
// in place, which the engine no longer does) allocated ~20 small objects a call.
GemmKernel kernel_for(int64_t rows) {
  const GemmKernel k = selected_gemm_kernel();
  return gemm_kernel_forced() ? k : gemm_kernel_for_rows(k, DType::BF16, rows, true);
}

void expect_no_allocation(int batch) {
  EXPECT_EQ(allocations_per_decode(batch, 8), 0) << gemm_kernel_name(kernel_for(batch));
}

TEST(DecodeAllocations, OneSequenceStepAllocatesNothing) {
  expect_no_allocation(1);
}

TEST(DecodeAllocations, EightSequenceStepAllocatesNothing) {
  expect_no_allocation(static_cast<int>(kBandwidthBoundRows));
}

// 32 rows: amx's tile kernel where this CPU has it.
TEST(DecodeAllocations, BatchedStepAllocatesNothingOnOurKernels) {
  expect_no_allocation(32);
}

}  // namespace
}  // namespace evomerge::infer_detail
