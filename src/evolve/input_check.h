// The inputs of a search (model folders, task files and their data) as content fingerprints
// (io/fingerprint.h), recorded in the run store when a run starts and compared when it resumes: a
// resume over changed weights or task data is refused, naming what changed, unless the user allows
// it (`--allow-changed-inputs`, recorded in the store as a `changed-inputs-allowed` event).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "evolve/evolve_config.h"
#include "store/run_store.h"

namespace evomerge {

// Every model folder the config names (PS base and models, DFS models other than "ps") and every
// task file with its data files. Models are fingerprinted by their resolved folder.
std::vector<InputFingerprint> fingerprint_inputs(const EvolveConfig& cfg);

// New run: records `now`. Resumed run: compares with what was recorded; on a difference throws
// Error "[evolve] DIR/run.db: the inputs changed since this run started: model 'm' changed
// (model.safetensors); ..." unless `allow_changed`, which records the new fingerprints and the
// event and logs the changes. A store from before fingerprints (none recorded) records `now`.
void check_inputs(RunStore& store, const std::vector<InputFingerprint>& now, bool allow_changed,
                  const std::function<void(const std::string&)>& log);

}  // namespace evomerge
