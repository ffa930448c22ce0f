// PEFT adapter_config.json: the fields a LoRA merge needs (r, lora_alpha, use_rslora,
// alpha_pattern), every one type-checked with an Error naming the file and the field.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace evomerge {

struct AdapterConfig {
  double r = 0;      // rank, a positive integer
  double alpha = 0;  // lora_alpha (default: r)
  bool rslora = false;
  std::map<std::string, double> alpha_pattern;  // module pattern -> alpha
};

// Parses adapter_config.json text (`where` names the file in messages).
AdapterConfig parse_adapter_config(std::string_view json_text, std::string_view where);

}  // namespace evomerge
