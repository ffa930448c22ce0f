// The CPU inference engine for Llama-family decoders (Llama, Mistral, Qwen2, Qwen3), matching
// Hugging Face transformers' forward pass: RMSNorm in f32, rotate-half RoPE (pairs (x[i],
// x[i+d/2]), rope_theta, llama3 scaling), grouped-query attention with f32 softmax, SwiGLU, tied
// embeddings, Qwen2 q/k/v biases, Qwen3 q_norm/k_norm. Weights stay in their stored dtype
// (BF16/F16/F32; mapped or caller-owned); compute is f32.
//
// CONTRACT (written by the lead before the implementation; the implementer may add, not remove).
// The scorer (eval/) and the evolution engine (evolve/) program against this header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "arch/arch.h"
#include "arch/config.h"
#include "infer/precision.h"
#include "tensor/tensor.h"

namespace evomerge {

class Tokenizer;

// Where the engine reads weights from. A model folder and an in-memory merged candidate both
// implement it, so a candidate is scored with no file written.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const ModelConfig& config() const = 0;
  // The tensor named `name` (HF naming, see arch/arch.h); throws Error if absent. The view must
  // stay valid, and its bytes unchanged, until the source is destroyed or the caller says otherwise
  // (Engine::weights_changed()).
  virtual TensorView tensor(std::string_view name) const = 0;
  virtual bool has(std::string_view name) const = 0;
  // True when every view is a read-only file mapping (open_folder_weights): the cpu engine then
  // drops from its resident set the pages of the matrices it keeps packed copies of (they refault
  // from the page cache if read again), so packing does not double its resident weights.
  virtual bool file_mapped() const { return false; }
};

// Checks an EngineOptions::device value ("cpu", "cuda", "cuda:N") and returns its canonical
// name ("cpu", "cuda:N"); throws Error naming the value otherwise. Says nothing about whether
// this build or machine has that device (the Engine does).
std::string canonical_device(std::string_view device);

// A memory-mapped model folder.
std::shared_ptr<WeightSource> open_folder_weights(std::string_view reference);
// Weights held elsewhere (e.g. a merge written into caller-owned f32 buffers). `tensors` maps HF
// names to views; the views must outlive the source.
std::shared_ptr<WeightSource> make_memory_weights(ModelConfig config,
                                                  std::map<std::string, TensorView> tensors);

// One hop of a data-flow-space path: run layer `layer` of model `model`, with its input hidden
// state multiplied by `input_scale` first. Embeddings, final norm and head come from model 0.
//
// Exact convention: the whole residual stream is scaled before the hop's layer,
//   x <- input_scale * x;   x <- x + o_proj(Attn(RMSNorm1(x)));   x <- x +
//   down(SwiGLU(RMSNorm2(x))),
// so the scale carries on through the residual stream into later hops. Since RMSNorm(c*x) ==
// RMSNorm(x) for c > 0 (up to eps), a path with scales s_1..s_K gives the same logits as the
// unscaled model built from the same layers with hop k's o_proj and down_proj weights (and their
// biases) multiplied by 1/P_k, P_k = s_1 * ... * s_k: the routed stream after hop k is P_k times
// the plain one, and the final norm removes P_K. (Tested in layer_path_test.cpp; this is the DFS
// export math.)
struct LayerHop {
  int model = 0;
  int layer = 0;
  float input_scale = 1.0f;
};

struct EngineOptions {
  int threads = 0;              // 0: all cores
  int max_context = 0;          // 0: the model's max_position_embeddings
  int max_batch_tokens = 4096;  // prefill micro-batch (tokens across sequences)
  // Added by the implementation:
  // Keep f32 copies of BF16/F16 weight matrices (tiny models, repeated scoring): every matmul is
  // then one sgemm with no conversion, at twice (bf16) the weight memory. weights_changed()
  // refreshes them.
  bool cache_f32_weights = false;
  // > 0: ids >= score_vocab (the padded rows of a vocabulary larger than the tokenizer's) are
  // masked out of loglikelihood()'s softmax and of greedy argmax. 0: the whole vocab_size.
  int score_vocab = 0;
  // Where the engine runs: "cpu" (the default and the reference), "cuda" (device 0) or "cuda:N".
  // A CUDA device needs a build with the CUDA backend (CMake found the toolkit); otherwise the
  // Engine throws Error saying so.
  std::string device = "cpu";
  // The arithmetic of the weight products (infer/precision.h): exact (default; f32-exact
  // products) or bf16 (activations rounded to bf16 once per product, as PyTorch's bf16 autocast
  // and llama.cpp do; up to 3x the prefill rate on CPUs with AMX / AVX512-BF16). A search's
  // scores depend on it, so it is part of an evolve run's identity.
  Precision precision = Precision::Exact;
  // Where the amx kernel runs (Sapphire Rapids and later), bf16 matrices are copied once into
  // the AMX tile layout (gemm.h: PackedBf16). A model mapped from a folder loses nothing by it
  // (its mapped pages are dropped once packed), but weights held in memory (a merged candidate)
  // are then held twice, so their packed copies together take at most this many bytes; the
  // layers beyond the budget, in the order they are first run, stay on oneDNN over the plain
  // bytes (slower at few rows; products equal to f32 rounding, not bit for bit). -1: a quarter of
  // the machine's physical memory (a 7B bf16 candidate on 24 GiB is then packed for its first
  // ~40% of layers instead of needing 28 GB); 0: never pack weights held in memory.
  int64_t max_packed_bytes = -1;
};

// Threads (cpu device): the engine parallelises with its own pool (options.threads); its GEMM and
// attention kernels are its own (gemm.h, attention_kernels.h) or oneDNN's (amx), run
// single-threaded from each worker.
// One call at a time per Engine (calls reuse its buffers and KV caches); separate Engines may run
// concurrently. The fast path is tested against reference_forward() (infer/reference_forward.h).
class Engine {
 public:
  // One model, its own layers in order.
  explicit Engine(std::shared_ptr<const WeightSource> weights, EngineOptions options = {});
  // A layer path over several models that share a vocabulary and hidden size (DFS merges).
  Engine(std::vector<std::shared_ptr<const WeightSource>> models, std::vector<LayerHop> path,
         EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelConfig& config() const;  // model 0's config (layer count = path length)
  // Call after the bytes behind the sources' views changed (a new candidate merged into the same
  // buffers) so any cached conversions are refreshed. Cheap when nothing is cached.
  void weights_changed();
  // Replace the layer path (same models), e.g. for the next DFS candidate.
  void set_path(std::vector<LayerHop> path);

  // Logits for every position of each sequence: result[b] is [len_b x vocab] row-major f32
  // (padded vocab entries beyond the tokenizer are left as computed; scorers mask them).
  std::vector<std::vector<float>> forward_logits(
      const std::vector<std::vector<int32_t>>& sequences);

  // Log-likelihood of `continuation` after `context` (lm-eval-harness loglikelihood). Requests with
  // the same context share its prefill. `greedy` is true when every continuation token is the
  // argmax.
  struct LoglikRequest {
    std::vector<int32_t> context;
    std::vector<int32_t> continuation;
  };
  struct LoglikResult {
    double logprob = 0.0;
    bool greedy = false;
    std::vector<float> token_logprobs;  // one per continuation token
  };
  std::vector<LoglikResult> loglikelihood(const std::vector<LoglikRequest>& requests);

  // Batched greedy decoding. Stops per sequence at an EOS id (from the tokenizer, when given, else
  // the config), at any stop string appearing in the decoded continuation (the text is cut before
  // it), or after max_new_tokens. `on_token(request_index, token)` streams tokens as they are
  // produced.
  struct GenerateRequest {
    std::vector<int32_t> prompt;
    int max_new_tokens = 64;
    std::vector<std::string> stop_strings;
  };
  enum class StopReason { Eos, StopString, MaxTokens, ContextFull };
  struct GenerateResult {
    std::vector<int32_t> tokens;  // generated ids (stop string tokens included, EOS excluded)
    std::string text;             // decoded continuation, cut before the stop string
    StopReason stop = StopReason::MaxTokens;
  };
  std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& requests,
                                       const Tokenizer* tokenizer,
                                       const std::function<void(size_t, int32_t)>& on_token = {});
  // The same without a Tokenizer object (added): `decode` turns generated ids into text (used for
  // stop strings and GenerateResult::text; may be empty when no request has stop strings, text is
  // then left empty), `eos_ids` end a sequence (empty: the config's eos ids). generate() with a
  // tokenizer calls this with tokenizer->decode, tokenizer->eos_ids() and, when score_vocab is 0,
  // masks argmax to the tokenizer's vocabulary.
  using DecodeFn = std::function<std::string(std::span<const int32_t>)>;
  std::vector<GenerateResult> generate_with(
      const std::vector<GenerateRequest>& requests, const DecodeFn& decode,
      std::vector<int32_t> eos_ids, const std::function<void(size_t, int32_t)>& on_token = {},
      int argmax_vocab = 0);

  // Counters since construction (added), for benches and the CLI.
  struct Stats {
    uint64_t prefill_tokens =
        0;  // positions run by forward_logits, loglikelihood and prompt prefill
    uint64_t decode_tokens = 0;  // positions run by generation steps (one per sequence per step)
    uint64_t forward_calls = 0;  // micro-batches run
    // Bytes of tile-packed copies of weights held in memory (EngineOptions::max_packed_bytes).
    uint64_t packed_memory_weight_bytes = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace evomerge
