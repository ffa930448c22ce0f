// evomerge generate MODEL --prompt TEXT [--max-new-tokens N] [--chat]: greedy generation with the
// CPU engine, streaming the text as it is produced.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "command.h"
#include "common/error.h"
#include "eval/candidate_engine.h"
#include "infer/engine.h"
#include "io/model_folder.h"
#include "tokenize/tokenizer.h"

namespace evomerge::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  int max_new_tokens = 64;
  bool chat = false;
  std::vector<std::string> stop;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "exact";  // EngineOptions::precision
  bool stats = false;
};

// Bytes of `text` that can be printed now: all but an incomplete UTF-8 sequence at the end (a
// multi-byte character split across tokens decodes to U+FFFD until its last byte arrives).
size_t printable_prefix(const std::string& text) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  if (text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0)
    return text.size() - 3;
  return text.size();
}

int run_generate(const GenerateOptions& opt) {
  if (opt.max_new_tokens < 0) fail("generate", "--max-new-tokens must be >= 0");
  const auto dir = resolve_model_path(opt.model);
  Tokenizer tok = Tokenizer::load(dir);
  EngineOptions eo;
  eo.threads = opt.threads;
  eo.device = opt.device;
  eo.precision = parse_precision_or_fail(opt.precision, "--precision");
  const auto engine_ptr = make_candidate_engine(open_folder_weights(dir.string()), tok, eo);
  Engine& engine = *engine_ptr;

  std::vector<int32_t> prompt;
  if (opt.chat) {
    std::string note;
    ChatMessage msg{"user", opt.prompt};
    std::string rendered =
        tok.apply_chat_template(std::span(&msg, 1), /*add_generation_prompt=*/true, &note);
    if (!note.empty()) fmt::print(stderr, "note: {}\n", note);
    prompt = tok.encode(rendered, /*add_special_tokens=*/false);  // the template carries BOS itself
  } else {
    prompt = tok.encode(opt.prompt);
  }

  std::vector<int32_t> generated;
  size_t printed = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto on_token = [&](size_t, int32_t id) {
    generated.push_back(id);
    std::string text = tok.decode(generated);
    size_t end = printable_prefix(text);
    if (end > printed) {
      std::fwrite(text.data() + printed, 1, end - printed, stdout);
      std::fflush(stdout);
      printed = end;
    }
  };
  auto res = engine.generate({{prompt, opt.max_new_tokens, opt.stop}}, &tok, on_token);
  // With a stop string the final text is cut before it; print nothing past what the result holds.
  const std::string& final_text = res[0].text;
  if (final_text.size() > printed)
    std::fwrite(final_text.data() + printed, 1, final_text.size() - printed, stdout);
  std::fputc('\n', stdout);
  if (opt.stats) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    static const char* reasons[] = {"eos", "stop string", "max tokens", "context full"};
    fmt::print(stderr, "{} prompt tokens, {} generated in {:.2f} s ({:.1f} tokens/s), stop: {}\n",
               prompt.size(), res[0].tokens.size(), s, res[0].tokens.size() / std::max(s, 1e-9),
               reasons[static_cast<int>(res[0].stop)]);
  }
  return 0;
}

const bool registered = register_command(
    {"generate", "Generate text greedily with the engine (streams tokens)",
     [](CLI::App& app) -> Runner {
       auto opt = std::make_shared<GenerateOptions>();
       app.add_option("model", opt->model, "Model folder or HF-cache org/name")->required();
       app.add_option("--prompt", opt->prompt, "The prompt text")->required();
       app.add_option("--max-new-tokens", opt->max_new_tokens, "Most tokens to generate")
           ->default_val(64);
       app.add_flag("--chat", opt->chat,
                    "Wrap the prompt as a user turn with the model's chat template");
       app.add_option("--stop", opt->stop, "Stop string (repeatable); the output is cut before it");
       app.add_option("--threads", opt->threads, "Engine threads (0: all cores)")->default_val(0);
       app.add_option("--device", opt->device, "Where the engine runs: cpu, cuda or cuda:N")
           ->default_val("cpu");
       app.add_option("--precision", opt->precision,
                      "Weight products: exact (default; f32-exact) or bf16 (activations rounded to "
                      "bf16 once, as "
                      "PyTorch bf16 autocast and llama.cpp; faster on AMX/AVX512-BF16 CPUs)")
           ->default_val("exact");
       app.add_flag("--stats", opt->stats, "Print token counts and speed to stderr");
       return [opt] { return run_generate(*opt); };
     }});

}  // namespace
}  // namespace evomerge::cli
