// evomerge merge CONFIG.yml OUT_DIR: run a mergekit YAML config (mergekit-yaml's options).
#include <fmt/format.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/progress.h"
#include "merge/merge.h"

namespace evomerge::cli {
namespace {

struct MergeCliOptions {
  std::string config;
  std::string out_dir;
  std::string shard_size = "5B";
  uint64_t seed = 0;
  int threads = 0;
  bool allow_crimes = false;
  bool copy_tokenizer = true;
  bool write_model_card = true;
  bool dry_run = false;
  bool force = false;
  bool strict = false;
  bool json = false;
};

// mergekit's size syntax: a number with an optional K/M/B suffix (10^3, 10^6, 10^9) bytes.
uint64_t parse_size(const std::string& s) {
  if (s.empty()) fail("merge", "--out-shard-size: empty value");
  double mult = 1;
  std::string num = s;
  char last = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
  if (last == 'K' || last == 'M' || last == 'B' || last == 'G') {
    mult = last == 'K' ? 1e3 : last == 'M' ? 1e6 : 1e9;
    num = s.substr(0, s.size() - 1);
  }
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(num, &used);
    if (used != num.size()) throw std::invalid_argument("trailing");
  } catch (...) {
    fail("merge", "--out-shard-size: '{}' is not a size (e.g. 5B, 500M, 1000000)", s);
  }
  if (!(v * mult >= 1)) fail("merge", "--out-shard-size: '{}' must be at least 1 byte", s);
  return static_cast<uint64_t>(v * mult);
}

int run_merge(const MergeCliOptions& o) {
  const uint64_t shard = parse_size(o.shard_size);
  MergeConfig config = load_merge_config(o.config);
  MergeOptions mo;
  mo.allow_crimes = o.allow_crimes;
  mo.random_seed = o.seed;
  mo.threads = o.threads;
  mo.strict = o.strict;
  ModelCache cache;
  MergePlan plan = build_plan(config, cache, mo);
  for (const auto& w : plan.warnings) fmt::print(stderr, "warning: {}\n", w);
  if (o.dry_run && o.json) {
    fmt::print("{}\n", nlohmann::json{{"dry_run", true},
                                      {"output", o.out_dir},
                                      {"method", plan.method},
                                      {"models", plan.models.size()},
                                      {"tensors", plan.tensors.size()},
                                      {"bytes", plan.output_bytes()},
                                      {"warnings", plan.warnings}}
                           .dump(2));
    return 0;
  }
  if (o.dry_run) {
    fmt::print("{}", plan.describe());
    fmt::print("would write {} tensors ({} bytes) to {}\n", plan.tensors.size(),
               plan.output_bytes(), o.out_dir);
    return 0;
  }
  FolderOptions fo;
  fo.max_shard_bytes = shard;
  fo.copy_tokenizer = o.copy_tokenizer;
  fo.write_model_card = o.write_model_card;
  fo.replace_existing = o.force;
  Merger merger(mo);
  install_immediate_interrupt(fmt::format(
      "\nevomerge merge: interrupted; nothing was written to {0} (a merge appears only when "
      "complete; its hidden staging folder beside {0} is removed by the next merge to it); run the "
      "same command to merge again\n",
      o.out_dir));
  MergeStats st = merger.write_folder(plan, o.out_dir, fo);
  if (o.json) {
    fmt::print("{}\n", nlohmann::json{{"output", o.out_dir},
                                      {"method", plan.method},
                                      {"tensors", st.tensors},
                                      {"bytes_read", st.bytes_read},
                                      {"bytes_written", st.bytes_written},
                                      {"seconds", st.seconds},
                                      {"warnings", plan.warnings}}
                           .dump(2));
    return 0;
  }
  fmt::print(stderr, "merged {} tensors: read {}, wrote {} in {} ({}/s) -> {}\n", st.tensors,
             format_bytes(static_cast<double>(st.bytes_read)),
             format_bytes(static_cast<double>(st.bytes_written)), format_duration(st.seconds),
             format_bytes((st.bytes_read + st.bytes_written) / std::max(st.seconds, 1e-9)),
             o.out_dir);
  return 0;
}

const bool registered = register_command(
    {"merge", "Merge models from a mergekit YAML config into a Hugging Face folder",
     [](CLI::App& app) -> Runner {
       auto o = std::make_shared<MergeCliOptions>();
       app.add_option("config", o->config, "mergekit YAML config")->required();
       app.add_option("out_dir", o->out_dir, "Output folder (must not exist unless --force)")
           ->required();
       app.add_option("--out-shard-size", o->shard_size,
                      "Maximum shard size in bytes, K/M/B suffixes (default 5B)");
       app.add_option("--random-seed", o->seed, "Seed of DARE/DELLA sampling (default 0)");
       app.add_option("-j,--threads", o->threads, "Threads (default: all cores)");
       app.add_flag("--allow-crimes", o->allow_crimes,
                    "Allow merging models of different architectures");
       app.add_flag("--copy-tokenizer,!--no-copy-tokenizer", o->copy_tokenizer,
                    "Copy the donor's tokenizer (default on)");
       app.add_flag("--write-model-card,!--no-write-model-card", o->write_model_card,
                    "Write README.md (default on)");
       app.add_flag("--dry-run", o->dry_run, "Validate and print the plan; write nothing");
       app.add_flag("--force", o->force, "Replace OUT_DIR if it exists");
       app.add_flag("--json", o->json,
                    "Print the result (or with --dry-run the plan's size) as JSON on stdout");
       app.add_flag("--strict", o->strict,
                    "Keys and parameters that have no effect (mergekit ignores them) are errors, "
                    "not warnings");
       return [o] { return run_merge(*o); };
     }});

}  // namespace
}  // namespace evomerge::cli
