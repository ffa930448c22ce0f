// The scheduling layer of the inference engine: requests -> rows -> micro-batches, contexts shared
// by several continuations, the decode loop. It knows no hardware: weights, activations, KV caches
// and compute belong to a backend (backend.h; cpu/ is the default and the reference).
//  - Work is a list of rows, one per (sequence, position, token). A micro-batch of up to
//    max_batch_tokens rows, across sequences, goes through every hop together.
//  - Each sequence owns a KV cache slot. A sequence may have a parent (a shared context):
//    positions below `base` are read from the parent's slot, so a context shared by several
//    continuations is computed once.
#include "infer/engine.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "infer/backend.h"
#include "infer/model_views.h"
#include "infer/rope.h"

namespace evomerge {

using infer_detail::Backend;
using infer_detail::Row;
using infer_detail::Target;
using infer_detail::TokenLogProb;

struct Engine::Impl {
  std::vector<std::shared_ptr<const WeightSource>> models;
  std::vector<std::string> names;  // for error messages
  EngineOptions options;
  int max_context = 0;
  std::unique_ptr<Backend> backend;
  std::map<std::pair<int, int>, int> layers;  // (model, layer) -> backend handle, shared by hops

  // What the scheduler knows of a KV cache slot (the storage is the backend's).
  struct Seq {
    int parent = -1;
    int base = 0;
    int cap = 0;  // absolute capacity
  };
  std::vector<Seq> seqs;

  Stats stats;

  Impl(std::vector<std::shared_ptr<const WeightSource>> m, EngineOptions opt)
      : models(std::move(m)), options(opt) {
    const infer_detail::Device device = infer_detail::parse_device(options.device);
    if (models.empty()) fail("infer", "a layer path needs at least one model");
    for (size_t i = 0; i < models.size(); ++i) {
      if (!models[i]) fail("infer", "model {} of the layer path is null", i);
      names.push_back(fmt::format("model {} ({})", i, models[i]->config().architecture));
    }
    const ModelConfig& c0 = models[0]->config();
    for (size_t i = 0; i < models.size(); ++i) {
      const ModelConfig& c = models[i]->config();
      if (c.hidden_size != c0.hidden_size || c.vocab_size != c0.vocab_size)
        fail("infer",
             "{}: hidden_size {} / vocab_size {} differ from model 0's {} / {}; a layer path needs "
             "both equal",
             names[i], c.hidden_size, c.vocab_size, c0.hidden_size, c0.vocab_size);
      infer_detail::check_inference_supported(c, names[i]);
      if (c.hidden_act != "silu" && c.hidden_act != "gelu_pytorch_tanh")
        fail("infer", "{}: hidden_act '{}' is not supported (silu, gelu_pytorch_tanh)", names[i],
             c.hidden_act);
      if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
        fail("infer", "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}",
             names[i], c.num_attention_heads, c.num_key_value_heads);
      rope_inv_freq(c);  // rejects unsupported rope types up front
    }
    // config.json's max_position_embeddings bounds lengths only: nothing is sized from it (a
    // hostile 1e12 must neither overflow an int nor allocate; buffers follow the actual lengths).
    constexpr int64_t kMaxContext = int64_t{1} << 24;
    max_context = options.max_context > 0
                      ? options.max_context
                      : static_cast<int>(std::min(c0.max_position_embeddings, kMaxContext));
    for (size_t i = 0; i < models.size(); ++i) {  // longrope: the short factors' context only
      const RopeScaling& rs = models[i]->config().rope_scaling;
      if (rs.type != "longrope" || max_context <= rs.original_max_position_embeddings) continue;
      if (options.max_context > 0)
        fail("infer",
             "{}: max_context {} exceeds original_max_position_embeddings {}; longrope's long "
             "factors are not supported",
             names[i], max_context, rs.original_max_position_embeddings);
      max_context = static_cast<int>(rs.original_max_position_embeddings);
    }
    if (options.max_batch_tokens <= 0) fail("infer", "max_batch_tokens must be positive");
    infer_detail::BackendOptions bo;
    bo.device = device;
    bo.threads = options.threads;
    bo.max_context = max_context;
    bo.max_batch_tokens = options.max_batch_tokens;
    bo.cache_f32_weights = options.cache_f32_weights;
    bo.precision = options.precision;
    bo.max_packed_bytes = options.max_packed_bytes;
    const infer_detail::HeadViews head = infer_detail::resolve_head(*models[0], names[0]);
    backend = infer_detail::make_backend(bo);
    backend->set_head(head);
  }

  int layer(int model, int index) {
    auto key = std::make_pair(model, index);
    if (auto it = layers.find(key); it != layers.end()) return it->second;
    const int handle =
        backend->add_layer(infer_detail::resolve_layer(*models[model], index, names[model]));
    return layers.emplace(key, handle).first->second;
  }

  void set_path(const std::vector<LayerHop>& path) {
    if (path.empty()) fail("infer", "the layer path is empty");
    std::vector<infer_detail::HopSpec> hops;
    for (size_t i = 0; i < path.size(); ++i) {
      const LayerHop& p = path[i];
      if (p.model < 0 || p.model >= static_cast<int>(models.size()))
        fail("infer", "layer path hop {}: model {} is out of range (0..{})", i, p.model,
             models.size() - 1);
      const ModelConfig& c = models[p.model]->config();
      if (p.layer < 0 || p.layer >= c.num_hidden_layers)
        fail("infer", "layer path hop {}: layer {} is out of range for {} ({} layers)", i, p.layer,
             names[p.model], c.num_hidden_layers);
      if (!std::isfinite(p.input_scale))
        fail("infer", "layer path hop {}: input_scale is not finite", i);
      hops.push_back({layer(p.model, p.layer), p.input_scale});
    }
    backend->set_path(hops);
    num_hops = hops.size();
  }
  size_t num_hops = 0;

  void refresh() { backend->refresh_weights(); }

  // Slot `slot` reset: absolute capacity `cap`, positions [0, base) in slot `parent` (-1: none).
  void reset_seq(int slot, int parent, int base, int cap) {
    if (seqs.size() <= static_cast<size_t>(slot)) seqs.resize(slot + 1);
    EM_ASSERT(parent < 0 || seqs[parent].parent < 0);
    seqs[slot] = {parent, base, cap};
    backend->reset_seq(slot, parent, base, cap);
  }

  void check_tokens(std::span<const int32_t> ids, const char* what) const {
    const int64_t V = models[0]->config().vocab_size;
    for (int32_t t : ids)
      if (t < 0 || t >= V)
        fail("infer", "{}: token id {} is outside the vocabulary [0, {})", what, t, V);
  }
  void check_length(size_t n, const char* what) const {
    if (n > static_cast<size_t>(max_context))
      fail("infer", "{} of {} tokens is longer than the context ({} tokens)", what, n, max_context);
  }

  // What a forward wants from the head for the rows with `logits` set: their logits (a consumer),
  // their argmax, or the log-probabilities of targets (global row indices, increasing).
  struct HeadTask {
    Backend::LogitsFn on_logits;                                  // (row index, logits[vocab])
    std::function<void(size_t, int32_t)> on_argmax;               // (row index, argmax)
    std::span<const std::pair<size_t, int32_t>> targets;          // (row index, token)
    std::function<void(size_t, const TokenLogProb&)> on_logprob;  // (target index, result)
    int64_t vocab = 0;  // argmax / log-softmax over ids [0, vocab)
  };

  // Runs `rows` (in order; a sequence's rows in increasing position) through the model in
  // micro-batches.
  void forward(std::span<const Row> rows, const HeadTask& task) {
    const size_t mb = static_cast<size_t>(options.max_batch_tokens);
    size_t t0 = 0;  // first target of the micro-batch
    for (size_t start = 0; start < rows.size(); start += mb) {
      const size_t n = std::min(mb, rows.size() - start);
      t0 = forward_batch(rows.subspan(start, n), start, task, t0);
    }
  }

  // One micro-batch, rows [start, start + n) of the forward; returns the next target index.
  size_t forward_batch(std::span<const Row> rows, size_t start, const HeadTask& task, size_t t0) {
    ++stats.forward_calls;
    for (const Row& r : rows) EM_ASSERT(r.pos < seqs[r.seq].cap);
    backend->embed(rows);
    for (size_t h = 0; h < num_hops; ++h) backend->forward_layer(h, rows);
    selected_.clear();
    for (size_t r = 0; r < rows.size(); ++r)
      if (rows[r].logits) selected_.push_back(static_cast<int64_t>(r));
    if (selected_.empty()) return t0;
    if (task.on_logits) {
      backend->logits(selected_, [&](size_t i, const float* l) {
        task.on_logits(start + static_cast<size_t>(selected_[i]), l);
      });
    } else if (task.on_argmax) {
      argmax_.resize(selected_.size());
      backend->argmax(selected_, task.vocab, argmax_.data());
      for (size_t i = 0; i < selected_.size(); ++i)
        task.on_argmax(start + static_cast<size_t>(selected_[i]), argmax_[i]);
    } else {
      // The targets of this micro-batch's rows, as indices into selected_.
      size_t t1 = t0;
      targets_.clear();
      for (size_t i = 0; i < selected_.size(); ++i) {
        const size_t row = start + static_cast<size_t>(selected_[i]);
        for (; t1 < task.targets.size() && task.targets[t1].first == row; ++t1)
          targets_.push_back({static_cast<int64_t>(i), task.targets[t1].second});
      }
      logprobs_.resize(targets_.size());
      backend->log_probs(selected_, task.vocab, targets_, logprobs_.data());
      for (size_t t = 0; t < targets_.size(); ++t) task.on_logprob(t0 + t, logprobs_[t]);
      t0 = t1;
    }
    return t0;
  }

  int64_t score_vocab() const {
    const int64_t V = models[0]->config().vocab_size;
    return options.score_vocab > 0 ? std::min<int64_t>(options.score_vocab, V) : V;
  }

  std::vector<Row> rows_;  // reused row list
  std::vector<int64_t> selected_;
  std::vector<int32_t> argmax_;
  std::vector<Target> targets_;
  std::vector<TokenLogProb> logprobs_;
};

Engine::Engine(std::shared_ptr<const WeightSource> weights, EngineOptions options)
    : impl_(std::make_unique<Impl>(
          std::vector<std::shared_ptr<const WeightSource>>{std::move(weights)}, options)) {
  std::vector<LayerHop> path;
  for (int i = 0; i < impl_->models[0]->config().num_hidden_layers; ++i)
    path.push_back({0, i, 1.0f});
  impl_->set_path(path);
  impl_->refresh();
}

Engine::Engine(std::vector<std::shared_ptr<const WeightSource>> models, std::vector<LayerHop> path,
               EngineOptions options)
    : impl_(std::make_unique<Impl>(std::move(models), options)) {
  impl_->set_path(path);
  impl_->refresh();
}

Engine::~Engine() = default;

const ModelConfig& Engine::config() const {
  return impl_->models[0]->config();
}

void Engine::weights_changed() {
  impl_->refresh();
}

void Engine::set_path(std::vector<LayerHop> path) {
  impl_->set_path(path);
}

Engine::Stats Engine::stats() const {
  Stats s = impl_->stats;
  s.packed_memory_weight_bytes = impl_->backend->packed_memory_weight_bytes();
  return s;
}

std::vector<std::vector<float>> Engine::forward_logits(
    const std::vector<std::vector<int32_t>>& sequences) {
  Impl& m = *impl_;
  const int64_t V = config().vocab_size;
  std::vector<std::vector<float>> out(sequences.size());
  auto& rows = m.rows_;
  rows.clear();
  std::vector<std::pair<size_t, int>> where;  // row -> (sequence, position)
  for (size_t b = 0; b < sequences.size(); ++b) {
    m.check_tokens(sequences[b], "forward_logits");
    m.check_length(sequences[b].size(), "a sequence");
    const int slot = static_cast<int>(b);
    m.reset_seq(slot, -1, 0, static_cast<int>(sequences[b].size()));
    out[b].resize(sequences[b].size() * V);
    for (size_t t = 0; t < sequences[b].size(); ++t) {
      rows.push_back({slot, static_cast<int>(t), sequences[b][t], true});
      where.emplace_back(b, static_cast<int>(t));
    }
  }
  m.stats.prefill_tokens += rows.size();
  Impl::HeadTask task;
  task.on_logits = [&](size_t r, const float* logits) {
    auto [b, t] = where[r];
    std::copy(logits, logits + V, out[b].begin() + static_cast<int64_t>(t) * V);
  };
  m.forward(rows, task);
  return out;
}

std::vector<Engine::LoglikResult> Engine::loglikelihood(
    const std::vector<LoglikRequest>& requests) {
  Impl& m = *impl_;
  const int64_t SV = m.score_vocab();
  std::vector<LoglikResult> results(requests.size());
  // Unique contexts, in first-seen order; each request points at its context.
  std::map<std::vector<int32_t>, size_t> ctx_index;
  std::vector<const std::vector<int32_t>*> contexts;
  std::vector<std::vector<size_t>> ctx_requests;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    if (r.context.empty())
      fail("infer", "loglikelihood request {}: the context is empty (start it with BOS)", i);
    if (r.continuation.empty())
      fail("infer", "loglikelihood request {}: the continuation is empty", i);
    m.check_tokens(r.context, "loglikelihood context");
    m.check_tokens(r.continuation, "loglikelihood continuation");
    m.check_length(r.context.size() + r.continuation.size() - 1, "a loglikelihood request");
    auto [it, added] = ctx_index.try_emplace(r.context, contexts.size());
    if (added) {
      contexts.push_back(&it->first);
      ctx_requests.emplace_back();
    }
    ctx_requests[it->second].push_back(i);
    results[i].token_logprobs.assign(r.continuation.size(), 0.0f);
    results[i].greedy = true;
  }
  // Groups of contexts whose caches are alive together: bounded so memory stays near what a few
  // micro-batches need.
  const size_t budget = static_cast<size_t>(m.options.max_batch_tokens) * 4;
  // Row targets: (row, continuation token) pairs in row order, and the (request, token index)
  // each scores.
  std::vector<std::pair<size_t, int32_t>> targets;
  std::vector<std::pair<size_t, size_t>> target_req;
  Impl::HeadTask task;
  task.vocab = SV;
  task.on_logprob = [&](size_t t, const TokenLogProb& lp) {
    auto [req, tok] = target_req[t];
    results[req].token_logprobs[tok] = static_cast<float>(lp.logprob);
    results[req].logprob += lp.logprob;
    results[req].greedy = results[req].greedy && lp.greedy;
  };
  auto run = [&](const std::vector<Row>& rows) {
    m.stats.prefill_tokens += rows.size();
    task.targets = targets;
    m.forward(rows, task);
    targets.clear();
    target_req.clear();
  };
  auto& rows = m.rows_;
  for (size_t c0 = 0; c0 < contexts.size();) {
    size_t c1 = c0, tokens = 0;
    while (c1 < contexts.size() && (c1 == c0 || tokens + contexts[c1]->size() <= budget))
      tokens += contexts[c1++]->size();
    // 1. Prefill the contexts; the logits of the last position predict every continuation's first
    // token.
    rows.clear();
    for (size_t c = c0; c < c1; ++c) {
      const int slot = static_cast<int>(c - c0);
      m.reset_seq(slot, -1, 0, static_cast<int>(contexts[c]->size()));
      for (size_t t = 0; t < contexts[c]->size(); ++t)
        rows.push_back(
            {slot, static_cast<int>(t), (*contexts[c])[t], t + 1 == contexts[c]->size()});
      for (size_t req : ctx_requests[c]) {
        targets.emplace_back(rows.size() - 1, requests[req].continuation[0]);
        target_req.emplace_back(req, 0);
      }
    }
    run(rows);
    // 2. Continuations, each a child sequence of its context's cache: feed all but the last token.
    // Children are run in batches of about `budget` rows, reusing their cache slots, so memory
    // stays bounded however many continuations share a context.
    rows.clear();
    size_t child = c1 - c0;
    auto flush = [&] {
      run(rows);
      rows.clear();
      child = c1 - c0;
    };
    for (size_t c = c0; c < c1; ++c) {
      for (size_t req : ctx_requests[c]) {
        const auto& cont = requests[req].continuation;
        if (cont.size() < 2) continue;
        if (!rows.empty() && rows.size() + cont.size() - 1 > budget) flush();
        const int base = static_cast<int>(contexts[c]->size());
        const int slot = static_cast<int>(child++);
        m.reset_seq(slot, static_cast<int>(c - c0), base, base + static_cast<int>(cont.size()) - 1);
        for (size_t t = 0; t + 1 < cont.size(); ++t) {
          rows.push_back({slot, base + static_cast<int>(t), cont[t], true});
          targets.emplace_back(rows.size() - 1, cont[t + 1]);
          target_req.emplace_back(req, t + 1);
        }
      }
    }
    if (!rows.empty()) flush();
    c0 = c1;
  }
  return results;
}

std::vector<Engine::GenerateResult> Engine::generate_with(
    const std::vector<GenerateRequest>& requests, const DecodeFn& decode,
    std::vector<int32_t> eos_ids, const std::function<void(size_t, int32_t)>& on_token,
    int argmax_vocab) {
  Impl& m = *impl_;
  const int64_t V = config().vocab_size;
  int64_t AV = argmax_vocab > 0 ? std::min<int64_t>(argmax_vocab, V) : m.score_vocab();
  if (eos_ids.empty())
    for (int64_t e : config().eos_token_ids) eos_ids.push_back(static_cast<int32_t>(e));
  const size_t n = requests.size();
  std::vector<GenerateResult> results(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& r = requests[i];
    if (r.prompt.empty()) fail("infer", "generate request {}: the prompt is empty", i);
    m.check_tokens(r.prompt, "generate prompt");
    if (r.prompt.size() >= static_cast<size_t>(m.max_context))
      fail("infer",
           "generate request {}: the prompt of {} tokens does not fit the context ({} tokens) with "
           "room to generate",
           i, r.prompt.size(), m.max_context);
    if (!r.stop_strings.empty() && !decode)
      fail("infer", "generate request {}: stop strings need a tokenizer to decode the text", i);
    if (r.max_new_tokens < 0) fail("infer", "generate request {}: max_new_tokens is negative", i);
  }
  std::vector<int32_t> next(n, 0);
  std::vector<char> active(n, 0);
  auto& rows = m.rows_;
  rows.clear();
  std::vector<size_t> row_seq;  // row -> request
  for (size_t i = 0; i < n; ++i) {
    const int slot = static_cast<int>(i);
    const int cap = static_cast<int>(
        std::min<size_t>(requests[i].prompt.size() + requests[i].max_new_tokens, m.max_context));
    m.reset_seq(slot, -1, 0, std::max(cap, static_cast<int>(requests[i].prompt.size())));
    active[i] = requests[i].max_new_tokens > 0;
    results[i].tokens.reserve(requests[i].max_new_tokens);  // no allocation in the decode loop
    if (!active[i]) continue;
    for (size_t t = 0; t < requests[i].prompt.size(); ++t) {
      rows.push_back(
          {slot, static_cast<int>(t), requests[i].prompt[t], t + 1 == requests[i].prompt.size()});
      row_seq.push_back(i);
    }
  }
  Impl::HeadTask take_argmax;
  take_argmax.vocab = AV;
  take_argmax.on_argmax = [&](size_t r, int32_t token) { next[row_seq[r]] = token; };
  m.stats.prefill_tokens += rows.size();
  m.forward(rows, take_argmax);
  for (;;) {
    rows.clear();
    row_seq.clear();
    for (size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      GenerateResult& res = results[i];
      const int32_t tok = next[i];
      if (std::find(eos_ids.begin(), eos_ids.end(), tok) != eos_ids.end()) {
        res.stop = StopReason::Eos;
        active[i] = 0;
        continue;
      }
      res.tokens.push_back(tok);
      if (on_token) on_token(i, tok);
      if (!requests[i].stop_strings.empty()) {
        res.text = decode(res.tokens);
        size_t cut = std::string::npos;
        for (const auto& stop : requests[i].stop_strings)
          if (!stop.empty()) cut = std::min(cut, res.text.find(stop));
        if (cut != std::string::npos) {
          res.text.resize(cut);
          res.stop = StopReason::StopString;
          active[i] = 0;
          continue;
        }
      }
      if (static_cast<int>(res.tokens.size()) >= requests[i].max_new_tokens) {
        res.stop = StopReason::MaxTokens;
        active[i] = 0;
        continue;
      }
      const int pos = static_cast<int>(requests[i].prompt.size() + res.tokens.size()) - 1;
      // Prompt plus generated tokens never exceed the context (as HF's max_length).
      if (pos + 1 >= m.max_context) {
        res.stop = StopReason::ContextFull;
        active[i] = 0;
        continue;
      }
      rows.push_back({static_cast<int>(i), pos, tok, true});
      row_seq.push_back(i);
    }
    if (rows.empty()) break;
    m.stats.decode_tokens += rows.size();
    m.forward(rows, take_argmax);
  }
  if (decode)
    for (size_t i = 0; i < n; ++i)
      if (results[i].stop != StopReason::StopString) results[i].text = decode(results[i].tokens);
  return results;
}

}  // namespace evomerge
