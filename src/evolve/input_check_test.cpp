#include "evolve/input_check.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/test_util.h"
#include "io/test_support.h"

namespace evomerge {
namespace {

using testing::TempDir;
using testing::write_bytes;
using testing_util::error_of;

RunInfo info() {
  RunInfo i;
  i.config = {{"seed", 1}};
  i.config_text = "seed: 1\n";
  i.seed = 1;
  i.evomerge_version = "test";
  return i;
}

class InputCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    write_bytes(t_ / "m" / "config.json", "{}");
    write_bytes(t_ / "m" / "model.safetensors", "weights");
    write_bytes(t_ / "d.jsonl", "{\"q\": \"x\", \"a\": \"1\"}\n");
    write_bytes(t_ / "t.yaml",
                "task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\n"
                "output_type: generate_until\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{a}}\"\n");
    cfg_.ps.emplace();
    cfg_.ps->models = {(t_ / "m").string()};
    cfg_.tasks.push_back({t_ / "t.yaml", 1.0});
  }
  std::vector<InputFingerprint> now() { return fingerprint_inputs(cfg_); }
  TempDir t_{"input-check"};
  EvolveConfig cfg_;
  std::vector<std::string> log_;
  std::function<void(const std::string&)> log = [this](const std::string& l) { log_.push_back(l); };
};

TEST_F(InputCheck, ChangedWeightsOrTaskDataAreRefusedNamingThem) {
  {
    auto store = RunStore::open(t_ / "run", info());
    check_inputs(store, now(), false, log);
    ASSERT_EQ(store.input_fingerprints().size(), 2u);
  }
  {
    auto store = RunStore::open(t_ / "run", info());
    EXPECT_NO_THROW(check_inputs(store, now(), false, log));  // unchanged
  }
  write_bytes(t_ / "m" / "model.safetensors", "weightz");
  write_bytes(t_ / "d.jsonl", "{\"q\": \"y\", \"a\": \"1\"}\n");
  auto store = RunStore::open(t_ / "run", info());
  const std::string err = error_of([&] { check_inputs(store, now(), false, log); });
  EXPECT_NE(err.find("[evolve] " + (t_ / "run" / "run.db").string() +
                     ": the inputs changed since this run started: model '" + (t_ / "m").string() +
                     "' changed (model.safetensors); task '" + (t_ / "t.yaml").string() +
                     "' changed (" + (t_ / "d.jsonl").string() + ")"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("--allow-changed-inputs"), std::string::npos);
  // Allowed: recorded as an event, and the new fingerprints become the reference.
  check_inputs(store, now(), true, log);
  ASSERT_EQ(store.events().size(), 1u);
  EXPECT_EQ(store.events()[0].first, "changed-inputs-allowed");
  EXPECT_EQ(store.events()[0].second["changes"].size(), 2u);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_NO_THROW(check_inputs(store, now(), false, log));
}

}  // namespace
}  // namespace evomerge
