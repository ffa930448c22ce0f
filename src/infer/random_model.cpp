#include "infer/random_model.h"

#include <cmath>

#include "arch/arch.h"
#include "arch/config.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "tensor/convert.h"

namespace evomerge {

nlohmann::json small_model_config(const std::string& family, int64_t vocab, int64_t hidden,
                                  int64_t intermediate, int64_t layers, int64_t heads,
                                  int64_t kv_heads) {
  static const std::map<std::string, std::string> arch = {{"llama", "LlamaForCausalLM"},
                                                          {"mistral", "MistralForCausalLM"},
                                                          {"qwen2", "Qwen2ForCausalLM"},
                                                          {"qwen3", "Qwen3ForCausalLM"}};
  return {{"architectures", {arch.at(family)}},
          {"model_type", family},
          {"vocab_size", vocab},
          {"hidden_size", hidden},
          {"intermediate_size", intermediate},
          {"num_hidden_layers", layers},
          {"num_attention_heads", heads},
          {"num_key_value_heads", kv_heads},
          {"hidden_act", "silu"},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 256},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"torch_dtype", "bfloat16"}};
}

void write_random_model(const std::filesystem::path& dir, const RandomModelSpec& spec) {
  const ModelConfig config = parse_model_config(spec.config, "random model config");
  std::vector<TensorSpec> specs = expected_tensors(config, spec.dtype);
  StagedDir staged(dir, /*replace_existing=*/true);
  write_file_atomic(staged.path() / "config.json", spec.config.dump(2));
  {
    ShardedWriter writer(staged.path(), specs);
    // splitmix64: fast and identical everywhere (std::*_distribution are implementation-defined).
    uint64_t state = spec.seed * 0x9E3779B97F4A7C15ull + 1;
    auto uniform = [&state] {  // in [-1, 1)
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      return static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    };
    const float amp = spec.stddev * std::sqrt(3.0f);  // uniform[-a, a] has stddev a / sqrt(3)
    std::vector<float> values;
    std::vector<std::byte> bytes;
    for (const TensorSpec& t : specs) {
      values.resize(static_cast<size_t>(shape_numel(t.shape)));
      const bool norm = t.name.ends_with("norm.weight");
      for (float& v : values) v = norm ? 1.0f + 0.2f * uniform() : amp * uniform();
      bytes.resize(t.nbytes());
      convert_from_f32(spec.dtype, values.data(), bytes.data(), values.size());
      writer.write(t.name, bytes);
    }
    writer.finish();
  }
  staged.commit();
}

}  // namespace evomerge
