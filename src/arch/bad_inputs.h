// The bad-input catalogue (test support, header-only): model folders that are valid except for one
// malformed safetensors file, index or config.json, each with the error it must produce. Used by
// src/arch/bad_input_test.cpp (library level) and cli/inspect_test.cpp (the real binary: exit status
// 1, the message on stderr, no crash).
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/test_support.h"
#include "io/test_support.h"

namespace evomerge::testing {

struct BadInput {
  std::string id;            // short name, also the folder name
  std::filesystem::path dir;  // the model folder to open
  std::string message;       // a substring the error must contain
  std::string file;          // the file the error must name ("" when the folder itself is named)
};

// Writes every case under `root` (which must exist) and returns them.
inline std::vector<BadInput> make_bad_input_catalogue(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  using json = nlohmann::json;
  std::vector<BadInput> cases;
  const json config = tiny_config("llama");

  // A valid single-file folder whose model.safetensors is then replaced by `bytes`.
  auto st_case = [&](std::string id, std::string bytes, std::string message) {
    fs::path dir = root / id;
    fs::create_directories(dir);
    write_bytes(dir / "config.json", config.dump());
    write_bytes(dir / "model.safetensors", bytes);
    cases.push_back({std::move(id), dir, std::move(message), "model.safetensors"});
  };
  // A file whose header is `header` (JSON text) and whose data buffer holds `data_bytes` zero bytes.
  auto st_header = [&](std::string id, std::string header, size_t data_bytes, std::string message) {
    st_case(std::move(id), raw_safetensors(header, std::string(data_bytes, '\0')), std::move(message));
  };
  auto one = [](std::string_view dtype, std::string_view shape, uint64_t b, uint64_t e) {
    return fmt::format("{{{}}}", entry("a", dtype, shape, b, e));
  };
  // A valid sharded folder whose index is edited by `edit`.
  auto index_case = [&](std::string id, const std::function<void(const fs::path&, json&)>& edit,
                        std::string message, std::string file = "model.safetensors.index.json") {
    fs::path dir = root / id;
    fs::create_directories(dir);
    write_model_folder(dir, config, DType::F32, /*shard_bytes=*/2600);  // two shards
    json index = json::parse(read_bytes(dir / "model.safetensors.index.json"));
    edit(dir, index);
    if (!index.is_null()) write_bytes(dir / "model.safetensors.index.json", index.dump(2));
    cases.push_back({std::move(id), dir, std::move(message), std::move(file)});
  };
  // A valid folder (F32 weights) whose config.json is then edited by `edit`, or replaced by `text`.
  auto config_case = [&](std::string id, const std::function<void(json&)>& edit, std::string message,
                         std::string file = "config.json") {
    fs::path dir = root / id;
    fs::create_directories(dir);
    write_model_folder(dir, config, DType::F32);
    json c = config;
    edit(c);
    if (c.is_null()) fs::remove(dir / "config.json");
    else if (c.is_string()) write_bytes(dir / "config.json", c.get<std::string>());
    else write_bytes(dir / "config.json", c.dump());
    cases.push_back({std::move(id), dir, std::move(message), std::move(file)});
  };

  // --- safetensors: the length prefix -------------------------------------------------------
  st_case("st-empty-file", "", "file is 0 bytes, too small for the 8-byte header length");
  st_case("st-truncated-prefix", std::string("\x08\x00\x00", 3), "file is 3 bytes, too small for the 8-byte header length");
  st_case("st-huge-header-length", u64_le(~uint64_t{0}) + "{}", "header length 18446744073709551615 exceeds the limit of 100000000 bytes");
  st_case("st-header-length-just-over-limit", u64_le(100'000'001) + "{}", "exceeds the limit of 100000000 bytes");
  st_case("st-header-length-past-eof", u64_le(99'999'999) + "{}", "header length 99999999 runs past the end of the 10-byte file");
  st_case("st-header-cut-short", raw_safetensors(one("U8", "[4]", 0, 4), "abcd").substr(0, 30),
          "runs past the end of the 30-byte file");
  // --- safetensors: the header text ----------------------------------------------------------
  st_header("st-non-utf8", "{\"a\xff\":{}}", 0, "header is not valid UTF-8 (byte 3 of the header)");
  st_header("st-overlong-utf8", "{\"\xc0\xaf\":{}}", 0, "header is not valid UTF-8 (byte 2 of the header)");
  st_header("st-not-json", "hello, world", 0, "header is not valid JSON (byte 1 of the header)");
  st_header("st-json-cut", "{\"a\":{\"dtype\":", 0, "header is not valid JSON");
  st_header("st-not-an-object", "[1, 2, 3]", 0, "header is not a JSON object");
  st_header("st-entry-not-object", "{\"a\":[0,4]}", 4, "tensor 'a': entry is not a JSON object");
  st_header("st-missing-dtype", R"({"a":{"shape":[4],"data_offsets":[0,4]}})", 4, "tensor 'a': field 'dtype' missing or not a string");
  st_header("st-unknown-dtype", one("F8_E9", "[4]", 0, 4), 4, "tensor 'a': unsupported dtype 'F8_E9'");
  st_header("st-missing-shape", R"({"a":{"dtype":"U8","data_offsets":[0,4]}})", 4, "tensor 'a': field 'shape' missing or not an array");
  st_header("st-negative-dim", one("U8", "[-4]", 0, 4), 4, "field 'shape' holds a value that is not a non-negative integer");
  st_header("st-float-dim", one("U8", "[4.0]", 0, 4), 4, "field 'shape' holds a value that is not a non-negative integer");
  st_header("st-string-dim", one("U8", "[\"4\"]", 0, 4), 4, "field 'shape' holds a value that is not a non-negative integer");
  st_header("st-overflowing-shape", one("U8", "[4294967296,4294967296,4294967296]", 0, 4), 4,
            "tensor 'a': shape [4294967296,4294967296,4294967296] overflows");
  st_header("st-overflowing-bytes", one("F32", "[4611686018427387905]", 0, 4), 4,
            "tensor 'a': byte size of shape [4611686018427387905] overflows");
  {
    std::string dims = "[1";
    for (int i = 1; i < 65; ++i) dims += ",1";
    st_header("st-too-many-dims", one("U8", dims + "]", 0, 1), 1, "tensor 'a': shape has 65 dimensions (max 64)");
  }
  st_header("st-offsets-one-value", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4]}})", 4,
            "tensor 'a': field 'data_offsets' must be [begin, end] of non-negative integers");
  st_header("st-negative-offset", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 4,
            "field 'data_offsets' must be [begin, end] of non-negative integers");
  st_header("st-end-before-begin", one("U8", "[0]", 8, 0), 8, "tensor 'a': data_offsets end 0 < begin 8");
  st_header("st-wrong-byte-count", one("F32", "[2]", 0, 4), 4,
            "tensor 'a': data_offsets span 4 bytes but dtype F32 x shape [2] needs 8");
  st_header("st-unknown-field", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"strides":[1]}})", 4,
            "tensor 'a': unknown field 'strides'");
  st_header("st-overlapping-spans",
            fmt::format("{{{},{}}}", entry("a", "U8", "[8]", 0, 8), entry("b", "U8", "[8]", 4, 12)), 12,
            "tensor 'b': data_offsets begin 4 but the previous tensor ends at 8 (overlap)");
  st_header("st-gap-between-spans",
            fmt::format("{{{},{}}}", entry("a", "U8", "[4]", 0, 4), entry("b", "U8", "[4]", 8, 12)), 12,
            "tensor 'b': data_offsets begin 8 but the previous tensor ends at 4 (gap)");
  st_header("st-first-span-not-at-zero", one("U8", "[4]", 4, 8), 8,
            "tensor 'a': data_offsets begin 4 but the previous tensor ends at 0 (gap)");
  st_header("st-offsets-past-end", one("U8", "[16]", 0, 16), 8,
            "tensors cover 16 bytes but the data buffer holds 8 (file truncated)");
  st_header("st-claims-4-exabytes", one("U8", "[4611686018427387904]", 0, 4611686018427387904ull), 8,
            "tensors cover 4611686018427387904 bytes but the data buffer holds 8 (file truncated)");
  st_header("st-trailing-bytes", one("U8", "[4]", 0, 4), 12, "tensors cover 4 bytes but the data buffer holds 12 (trailing bytes)");
  st_header("st-duplicate-name",
            fmt::format("{{{},{}}}", entry("a", "U8", "[4]", 0, 4), entry("a", "U8", "[4]", 4, 8)), 8,
            "duplicate tensor name 'a' in header");
  st_header("st-metadata-not-object", R"({"__metadata__":["pt"]})", 0, "__metadata__ is not an object");
  st_header("st-metadata-non-string", R"({"__metadata__":{"format":"pt","step":1000}})", 0,
            "__metadata__ value of 'step' is not a string");
  {
    fs::path dir = root / "st-is-a-directory";
    fs::create_directories(dir / "model.safetensors");
    write_bytes(dir / "config.json", config.dump());
    cases.push_back({"st-is-a-directory", dir, "not a regular file", "model.safetensors"});
  }

  // --- sharded checkpoints: the index --------------------------------------------------------
  auto first_tensor = [](const json& index) { return index["weight_map"].begin().key(); };
  index_case("ix-absolute-shard-path",
             [&](const fs::path&, json& ix) { ix["weight_map"][first_tensor(ix)] = "/etc/passwd"; },
             "shard name '/etc/passwd' is not a plain file name in the model folder");
  index_case("ix-shard-with-dotdot",
             [&](const fs::path&, json& ix) { ix["weight_map"][first_tensor(ix)] = "../model-00001-of-00002.safetensors"; },
             "shard name '../model-00001-of-00002.safetensors' is not a plain file name");
  index_case("ix-shard-with-slash",
             [&](const fs::path&, json& ix) { ix["weight_map"][first_tensor(ix)] = "sub/model.safetensors"; },
             "shard name 'sub/model.safetensors' is not a plain file name");
  index_case("ix-missing-shard", [&](const fs::path& dir, json&) { fs::remove(dir / "model-00002-of-00002.safetensors"); },
             "shard 'model-00002-of-00002.safetensors' listed in the index does not exist");
  index_case("ix-tensor-in-wrong-shard",
             [&](const fs::path&, json& ix) { ix["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"; },
             "tensor 'model.norm.weight' is in shard 'model-00002-of-00002.safetensors' but the index says "
             "'model-00001-of-00002.safetensors'");
  index_case("ix-tensor-not-in-shard",
             [&](const fs::path&, json& ix) { ix["weight_map"]["extra.weight"] = "model-00001-of-00002.safetensors"; },
             "tensor 'extra.weight' is listed for shard 'model-00001-of-00002.safetensors' but is not in it");
  index_case("ix-shard-tensor-not-in-index",
             [&](const fs::path&, json& ix) { ix["weight_map"].erase("model.norm.weight"); },
             "tensor 'model.norm.weight' is in shard 'model-00002-of-00002.safetensors' but the index says '(absent)'");
  index_case("ix-not-json", [&](const fs::path& dir, json& ix) {
               write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": ");
               ix = nullptr;
             },
             "model.safetensors.index.json: not valid JSON");
  index_case("ix-no-weight-map", [&](const fs::path&, json& ix) { ix.erase("weight_map"); },
             "field 'weight_map' missing or not an object");
  index_case("ix-shard-not-a-string", [&](const fs::path&, json& ix) { ix["weight_map"][first_tensor(ix)] = 1; },
             "is not a string");
  index_case("ix-empty-weight-map", [&](const fs::path&, json& ix) { ix["weight_map"] = json::object(); },
             "weight_map is empty");
  index_case("ix-corrupt-shard",
             [&](const fs::path& dir, json&) {
               std::string bytes = read_bytes(dir / "model-00002-of-00002.safetensors");
               write_bytes(dir / "model-00002-of-00002.safetensors", bytes.substr(0, bytes.size() - 1));
             },
             "(file truncated)", "model-00002-of-00002.safetensors");
  {
    fs::path dir = root / "no-weights";
    fs::create_directories(dir);
    write_bytes(dir / "config.json", config.dump());
    cases.push_back({"no-weights", dir, "no model.safetensors or model.safetensors.index.json", ""});
  }

  // --- config.json ---------------------------------------------------------------------------
  config_case("cfg-missing", [](json& c) { c = nullptr; }, "config.json is missing", "");
  config_case("cfg-not-json", [](json& c) { c = "{\"vocab_size\": 16,"; }, "config.json: not valid JSON");
  config_case("cfg-not-object", [](json& c) { c = "[16, 8]"; }, "config.json: not a JSON object");
  config_case("cfg-missing-field", [](json& c) { c.erase("hidden_size"); }, "field 'hidden_size' is missing");
  config_case("cfg-wrong-type", [](json& c) { c["num_hidden_layers"] = "2"; },
              "field 'num_hidden_layers' must be a positive integer, got \"2\"");
  config_case(
      "cfg-unsupported-architecture", [](json& c) { c["architectures"] = {"FalconForCausalLM"}; },
      "architecture 'FalconForCausalLM' is not supported (supported: LlamaForCausalLM, "
      "MistralForCausalLM, "
      "Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, GraniteForCausalLM, Gemma2ForCausalLM, "
      "Gemma3ForCausalLM, and for merging only MixtralForCausalLM, Qwen2MoeForCausalLM, "
      "GPT2LMHeadModel, GPTNeoXForCausalLM)");
  config_case("cfg-absurd-layer-count", [](json& c) { c["num_hidden_layers"] = 1'000'000'000; },
              "field 'num_hidden_layers' (1000000000) exceeds the supported maximum");
  config_case("cfg-unsupported-rope", [](json& c) { c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}}; },
              "rope type 'yarn' is not supported");
  config_case("model-missing-tensor", [](json& c) { c["num_hidden_layers"] = 3; },
              "tensor 'model.layers.2.input_layernorm.weight' is missing (expected by config.json)", "");
  config_case("model-wrong-shape", [](json& c) { c["vocab_size"] = 32; },
              "tensor 'model.embed_tokens.weight' has shape [16, 8] but config.json implies [32, 8]", "");
  return cases;
}

}  // namespace evomerge::testing
