// Fuzz target: a task file and its JSONL data through Task::load. The input is the task YAML, a
// line "%%", then the data file's bytes (written to d.jsonl next to the YAML, in a folder of this
// process); the seeds name d.jsonl in dataset_kwargs.data_files. Anything but an evomerge::Error
// (a crash, a stack overflow, another exception) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "eval/task.h"

namespace {
std::filesystem::path scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("evomerge-fuzz-task-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}
void put(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t sep = in.find("\n%%\n");
  const std::string_view yaml = in.substr(0, sep),
                         jsonl = sep == std::string_view::npos ? "" : in.substr(sep + 4);
  put(scratch() / "t.yaml", yaml);
  put(scratch() / "d.jsonl", jsonl);
  try {
    evomerge::eval::Task t = evomerge::eval::Task::load(scratch() / "t.yaml");
    // Load renders and checks every item; each goes once more through the public accessors, and
    // the names and texts through JSON as the run store and --json output write them (a string
    // that is not UTF-8 throws there).
    nlohmann::json j = {{"task", t.spec().name}, {"splits", t.split_names()}};
    for (const auto& s : t.split_names())
      for (size_t i = 0; i < t.split_size(s); ++i)
        j["items"].push_back({t.item(s, i).context, t.item(s, i).target});
    (void)j.dump();
  } catch (const evomerge::Error&) {
  }
  return 0;
}
