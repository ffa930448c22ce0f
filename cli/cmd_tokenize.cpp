// evomerge tokenize MODEL --text-file F [--json]: token ids and pieces, as llama.cpp's tokenize tool
// prints them, so that users and tests can check the tokenizer on its own.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "common/error.h"
#include "io/files.h"
#include "io/model_folder.h"
#include "tokenize/tokenizer.h"

namespace evomerge::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text_file;
  std::string text;
  bool json = false;
  bool ids_only = false;
  bool no_special = false;
  bool pretokens = false;
};

int run_tokenize(const TokenizeOptions& opt) {
  if (opt.text_file.empty() && opt.text.empty()) fail("tokenize", "give --text-file FILE or --text TEXT");
  if (!opt.text_file.empty() && !opt.text.empty()) fail("tokenize", "give either --text-file or --text, not both");
  const auto dir = resolve_model_path(opt.model);
  Tokenizer tok = Tokenizer::load(dir);
  const std::string text = opt.text_file.empty() ? opt.text : read_text_file(opt.text_file, 64u << 20);
  if (opt.pretokens) {
    // The pre-tokens BPE sees (after normalizer and pre-tokenizer; byte-level pieces mapped).
    for (const auto& p : tok.pre_tokens(text)) fmt::print("'{}'\n", p);
    return 0;
  }
  const std::vector<int32_t> ids = tok.encode(text, !opt.no_special);
  if (opt.ids_only) {
    fmt::print("[{}]\n", fmt::join(ids, ", "));
    return 0;
  }
  if (opt.json) {
    nlohmann::ordered_json out;
    out["model"] = dir.string();
    out["add_special_tokens"] = !opt.no_special;
    out["special_tokens_policy"] = tok.special_tokens_policy().source;
    out["count"] = ids.size();
    out["ids"] = ids;
    auto& list = out["tokens"] = nlohmann::ordered_json::array();
    for (int32_t id : ids) {
      const int32_t one[1] = {id};
      list.push_back({{"id", id}, {"piece", tok.piece(id)}, {"text", tok.decode(one)}, {"special", tok.is_special(id)}});
    }
    // Pieces of byte-level vocabularies can be partial UTF-8 after decoding: replace, never throw.
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return 0;
  }
  for (int32_t id : ids) fmt::print("{:>7} -> '{}'\n", id, tok.piece(id));
  fmt::print("# {} tokens; special tokens: {}{}\n", ids.size(), tok.special_tokens_policy().source,
             opt.no_special ? " (not added: --no-special)" : "");
  return 0;
}

const bool registered = register_command({"tokenize", "Show the token ids and pieces of a text (as llama.cpp's tokenize)",
                                          [](CLI::App& app) -> Runner {
                                            auto opt = std::make_shared<TokenizeOptions>();
                                            app.add_option("model", opt->model, "Model folder or HF-cache org/name")->required();
                                            app.add_option("--text-file", opt->text_file, "File holding the text (bytes as is)");
                                            app.add_option("--text", opt->text, "The text itself");
                                            app.add_flag("--json", opt->json, "Machine-readable output: ids, pieces, decoded text");
                                            app.add_flag("--ids", opt->ids_only, "Print only the ids, as a list");
                                            app.add_flag("--pretokens", opt->pretokens, "Print the pre-tokens instead (normalizer + pre-tokenizer output)");
                                            app.add_flag("--no-special", opt->no_special, "Do not add BOS/EOS (add_special_tokens=false)");
                                            return [opt] { return run_tokenize(*opt); };
                                          }});

}  // namespace
}  // namespace evomerge::cli
