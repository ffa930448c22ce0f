#include "evolve/input_check.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include "common/error.h"
#include "eval/task.h"
#include "io/files.h"
#include "io/fingerprint.h"
#include "io/model_folder.h"

namespace evomerge {

std::vector<InputFingerprint> fingerprint_inputs(const EvolveConfig& cfg) {
  std::set<std::string> models;
  if (cfg.ps) {
    if (!cfg.ps->base_model.empty()) models.insert(cfg.ps->base_model);
    models.insert(cfg.ps->models.begin(), cfg.ps->models.end());
  }
  if (cfg.dfs)
    for (const auto& m : cfg.dfs->models)
      if (m != "ps") models.insert(m);
  std::vector<InputFingerprint> out;
  for (const auto& m : models) {
    const ContentFingerprint f = fingerprint_folder(resolve_model_path(m));
    out.push_back({m, "model", f.whole, nlohmann::json(f.parts)});
  }
  for (const auto& t : cfg.tasks) {
    const eval::TaskSpec spec = eval::parse_task_spec(read_text_file(t.file, 4u << 20), t.file);
    std::vector<std::filesystem::path> files = {t.file};
    for (const auto& [split, path] : spec.data_files) files.push_back(path);
    const ContentFingerprint f = fingerprint_files(files);
    out.push_back({t.file.string(), "task", f.whole, nlohmann::json(f.parts)});
  }
  return out;
}

void check_inputs(RunStore& store, const std::vector<InputFingerprint>& now, bool allow_changed,
                  const std::function<void(const std::string&)>& log) {
  const auto recorded = store.input_fingerprints();
  if (!store.resumed() || recorded.empty()) {
    store.set_input_fingerprints(now);
    return;
  }
  const auto changes = changed_inputs(recorded, now);
  if (changes.empty()) return;
  if (!allow_changed)
    fail("evolve",
         "{}: the inputs changed since this run started: {}; resuming would mix results of "
         "different inputs. Restore them, use a new --run folder, or pass --allow-changed-inputs "
         "(recorded in the run store)",
         store.path().string(), fmt::join(changes, "; "));
  log(fmt::format("resuming with changed inputs (--allow-changed-inputs, recorded): {}",
                  fmt::join(changes, "; ")));
  store.add_event("changed-inputs-allowed", {{"changes", changes}});
  store.set_input_fingerprints(now);
}

}  // namespace evomerge
