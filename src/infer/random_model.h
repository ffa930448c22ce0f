// Randomly initialised model folders (config.json + model.safetensors) for tests and benches: the
// engine's tests build every architecture variant they need without committed weights, and the
// bench builds a ~100M-parameter Llama-shaped model. Deterministic for a given spec.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace evomerge {

struct RandomModelSpec {
  // config.json as written (architectures, sizes, rope, ...). Any field parse_model_config reads.
  nlohmann::json config;
  DType dtype = DType::BF16;
  uint64_t seed = 1;
  float stddev = 0.08f;  // of linear weights (uniform with this standard deviation)
};

// A small config.json of the given family ("llama", "mistral", "qwen2", "qwen3") to start from.
nlohmann::json small_model_config(const std::string& family, int64_t vocab, int64_t hidden,
                                  int64_t intermediate, int64_t layers, int64_t heads,
                                  int64_t kv_heads);

// Writes dir/config.json and dir/model.safetensors (staged, then renamed into place; an existing
// dir is replaced). Norm weights are 1 + noise, biases and linear weights uniform noise.
void write_random_model(const std::filesystem::path& dir, const RandomModelSpec& spec);

}  // namespace evomerge
