// evomerge score MODEL --text-file F [--json]: the log-probability of every token of a text under
// the model (each token given the ones before it) and the perplexity.
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common/error.h"
#include "eval/candidate_engine.h"
#include "infer/engine.h"
#include "io/files.h"
#include "io/model_folder.h"
#include "tokenize/tokenizer.h"

namespace evomerge::cli {
namespace {

struct ScoreOptions {
  std::string model;
  std::string text_file;
  bool json = false;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "exact";  // EngineOptions::precision
};

int run_score(const ScoreOptions& opt) {
  const auto dir = resolve_model_path(opt.model);
  Tokenizer tok = Tokenizer::load(dir);
  const std::string text = read_text_file(opt.text_file, 64u << 20);
  std::vector<int32_t> ids = tok.encode(text);
  if (ids.size() < 2)
    fail("score",
         "{}: the text gives {} token(s); at least 2 are needed (the first is only context)",
         opt.text_file, ids.size());
  EngineOptions eo;
  eo.threads = opt.threads;
  eo.device = opt.device;
  eo.precision = parse_precision_or_fail(opt.precision, "--precision");
  // Padded embedding rows beyond the tokenizer are not part of the distribution (score_vocab).
  const auto engine_ptr = make_candidate_engine(open_folder_weights(dir.string()), tok, eo);
  Engine& engine = *engine_ptr;
  // Token 0 (usually BOS) is context; tokens 1.. are scored.
  Engine::LoglikRequest req{{ids[0]}, std::vector<int32_t>(ids.begin() + 1, ids.end())};
  const auto res = engine.loglikelihood({req})[0];
  const size_t n = res.token_logprobs.size();
  const double mean = res.logprob / static_cast<double>(n);
  const double ppl = std::exp(-mean);
  if (opt.json) {
    nlohmann::ordered_json out;
    out["model"] = dir.string();
    out["text_file"] = opt.text_file;
    out["first_token"] = {{"id", ids[0]}, {"piece", tok.piece(ids[0])}};
    auto& list = out["tokens"] = nlohmann::ordered_json::array();
    for (size_t i = 0; i < n; ++i)
      list.push_back({{"id", ids[i + 1]},
                      {"piece", tok.piece(ids[i + 1])},
                      {"logprob", res.token_logprobs[i]}});
    out["scored_tokens"] = n;
    out["sum_logprob"] = res.logprob;
    out["mean_logprob"] = mean;
    out["perplexity"] = ppl;
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return 0;
  }
  fmt::print("{:>6} {:>8}  {:>10}  {}\n", "pos", "id", "logprob", "piece");
  fmt::print("{:>6} {:>8}  {:>10}  '{}'\n", 0, ids[0], "(context)", tok.piece(ids[0]));
  for (size_t i = 0; i < n; ++i)
    fmt::print("{:>6} {:>8}  {:>10.4f}  '{}'\n", i + 1, ids[i + 1], res.token_logprobs[i],
               tok.piece(ids[i + 1]));
  fmt::print("# {} tokens scored: sum logprob {:.4f}, mean {:.4f}, perplexity {:.4f}\n", n,
             res.logprob, mean, ppl);
  return 0;
}

const bool registered = register_command(
    {"score", "Per-token log-probabilities and perplexity of a text", [](CLI::App& app) -> Runner {
       auto opt = std::make_shared<ScoreOptions>();
       app.add_option("model", opt->model, "Model folder or HF-cache org/name")->required();
       app.add_option("--text-file", opt->text_file, "File holding the text")->required();
       app.add_flag("--json", opt->json, "Machine-readable output");
       app.add_option("--threads", opt->threads, "Engine threads (0: all cores)")->default_val(0);
       app.add_option("--device", opt->device, "Where the engine runs: cpu, cuda or cuda:N")
           ->default_val("cpu");
       app.add_option("--precision", opt->precision,
                      "Weight products: exact (default; f32-exact) or bf16 (activations rounded to "
                      "bf16 once, as "
                      "PyTorch bf16 autocast and llama.cpp; faster on AMX/AVX512-BF16 CPUs)")
           ->default_val("exact");
       return [opt] { return run_score(*opt); };
     }});

}  // namespace
}  // namespace evomerge::cli
