// Test helper (include from *_test.cpp only): a tiny evolve run folder's inputs. Three random
// Llama models of one architecture (base, ft1, ft2: 99-token character vocabulary, 3 layers, bf16)
// with the character tokenizer, and a 4-choice task `mc.yaml` with 8-item "opt" and "test" splits.
#pragma once

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "infer/random_model.h"
#include "tokenize/test_support.h"

namespace evomerge::testing_util {

inline void write_evolve_fixture(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (auto [name, seed] : {std::pair{"base", 1}, {"ft1", 2}, {"ft2", 3}}) {
    RandomModelSpec spec;
    spec.config = small_model_config("llama", kCharTokenizerVocab, 32, 64, 3, 4, 2);
    spec.config["max_position_embeddings"] = 64;
    spec.config["bos_token_id"] = 97;
    spec.config["eos_token_id"] = 98;
    spec.seed = seed;
    spec.stddev = 0.3f;
    write_random_model(dir / name, spec);
    write_char_tokenizer(dir / name);
  }
  for (const char* split : {"opt", "test"}) {
    std::string data;
    const char* qs[] = {"sky is", "fire is", "ice is", "grass is",
                        "sun is", "snow is", "sea is", "coal is"};
    for (int i = 0; i < 8; ++i)
      data += fmt::format(
          "{{\"q\": \"{} {}\", \"choices\": [\"blue\", \"hot\", \"cold\", \"green\"], \"label\": "
          "{}}}\n",
          split, qs[i], (i * 3 + split[0]) % 4);
    std::ofstream(dir / fmt::format("mc.{}.jsonl", split)) << data;
  }
  std::ofstream(dir / "mc.yaml")
      << "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {opt: mc.opt.jsonl, test: "
         "mc.test.jsonl}}\n"
         "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\n"
         "doc_to_target: \"{{label}}\"\ndoc_to_choice: \"{{choices}}\"\nmetric_list: [{metric: "
         "acc}]\n";
}

// PS (dare_ties over ft1, ft2 with base) then DFS over the PS winner and ft2, on that fixture.
inline std::string evolve_fixture_config(int ps_generations = 2, int dfs_generations = 2) {
  return fmt::format(R"(seed: 3
tasks: [{{file: mc.yaml, weight: 1}}]
items_per_generation: 6
threads: 1
ps:
  base_model: base
  models: [ft1, ft2]
  layer_groups: 1
  population: 4
  generations: {}
dfs:
  models: [ps, ft2]
  repeats: 2
  population: 4
  generations: {}
final: {{top: 1, uniform_grid: [0.5]}}
)",
                     ps_generations, dfs_generations);
}

}  // namespace evomerge::testing_util
