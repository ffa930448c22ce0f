// chat_template in a merge config, resolved the way mergekit resolves it:
//   "auto"                 the most common template among the input models (each stripped of
//   leading
//                          and trailing whitespace; ties go to the first in config order, base
//                          first); no model has one: nothing is set;
//   a built-in name        mergekit's named templates (alpaca, chatml, exaone, llama3, mistral);
//   anything else          a literal Jinja template, which must be >= 20 characters and contain '{'
//                          (mergekit's "Invalid chat template" check).
// The result is written into the merged folder's tokenizer_config.json (write.cpp).
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evomerge {

// The text of mergekit's built-in template `name`, or nullopt.
std::optional<std::string_view> builtin_chat_template(std::string_view name);
std::vector<std::string> builtin_chat_template_names();

// A model folder's own template, as transformers loads it: chat_template.jinja, else
// chat_template.json {"chat_template": ...}, else tokenizer_config.json's "chat_template" (a
// string, or a list of {name, template} whose "default" entry counts). nullopt when it has none.
// Throws Error for a file that is not valid JSON or has the wrong shape (naming file and field).
std::optional<std::string> model_chat_template(const std::filesystem::path& dir);

// The template `setting` asks for, given the input model folders in config order ("" when `auto`
// finds none). A model whose files cannot be read is skipped with a warning appended to `warnings`
// (mergekit logs "Unable to load tokenizer" and goes on). `where` names the config in errors.
std::string resolve_chat_template(std::string_view setting,
                                  std::span<const std::filesystem::path> model_dirs,
                                  std::string_view where, std::vector<std::string>& warnings);

}  // namespace evomerge
