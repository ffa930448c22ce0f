#include "eval/external.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace evomerge::eval {
namespace {

namespace fs = std::filesystem;

class External : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("evomerge_external_test_{}_{}", ::getpid(),
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "model");
  }
  void TearDown() override { fs::remove_all(dir_); }
  ExternalResult run(const std::string& script, double timeout_s = 20) {
    std::ofstream(dir_ / "eval.sh") << script;
    ExternalEvaluator ev;
    ev.command = {"sh", "eval.sh"};  // relative: resolved in the working directory
    ev.timeout_s = timeout_s;
    return run_external(ev, dir_ / "model", dir_);
  }
  fs::path dir_;
};

TEST_F(External, RoundTripReadsTheScoreAndPassesTheFolder) {
  ExternalResult r = run("echo \"loading $1\" >&2\necho 'some log line'\nprintf '{\"score\": 0.42, \"dir\": \"%s\"}\\n' \"$1\"\n");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_DOUBLE_EQ(r.score, 0.42);
  EXPECT_EQ(r.output["dir"], fs::absolute(dir_ / "model").string());
  EXPECT_NE(r.stderr_tail.find("loading"), std::string::npos);
  EXPECT_EQ(r.exit_status, 0);
}

TEST_F(External, NonJsonOutputIsAFailureNotAScore) {
  ExternalResult r = run("echo 'accuracy is 0.9'\n");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("printed no JSON object"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("sh eval.sh"), std::string::npos) << r.error;
}

TEST_F(External, FailingCommandKeepsItsStderr) {
  ExternalResult r = run("echo 'Traceback: boom' >&2\necho '{\"score\": 1}'\nexit 3\n");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.exit_status, 3);
  EXPECT_NE(r.error.find("status 3"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("Traceback: boom"), std::string::npos) << r.error;
}

TEST_F(External, TimeoutKillsTheWholeProcessGroup) {
  // The evaluator starts a grandchild that would outlive it; both must be gone after the timeout.
  ExternalResult r = run("sleep 60 &\necho $! > child.pid\nwait\n", 1.0);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.timed_out);
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
  std::ifstream in(dir_ / "child.pid");
  pid_t child = 0;
  ASSERT_TRUE(in >> child);
  // Killed: either gone, or a zombie waiting for its (new) parent to reap it.
  bool alive = false;
  for (int i = 0; i < 50; ++i) {
    std::ifstream stat(fmt::format("/proc/{}/stat", child));
    std::string pid, comm, state;
    alive = static_cast<bool>(stat >> pid >> comm >> state) && state != "Z";
    if (!alive) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(alive);
}

TEST_F(External, MissingProgram) {
  ExternalEvaluator ev;
  ev.command = {"evomerge-no-such-program"};
  ExternalResult r = run_external(ev, dir_ / "model", dir_);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("could not start"), std::string::npos) << r.error;
}

TEST(ExternalOutput, FindsTheScore) {
  double s = 0;
  nlohmann::json o;
  std::string err;
  EXPECT_TRUE(parse_external_output("{\"score\": 0.5}", "score", &s, &o, &err));
  EXPECT_EQ(s, 0.5);
  EXPECT_TRUE(parse_external_output("log\n{\"acc\": 0.25, \"name\": \"x\"}\n\n", "score", &s, &o, &err));
  EXPECT_EQ(s, 0.25);  // the only number
  EXPECT_TRUE(parse_external_output("{\"acc\": 0.1, \"exact_match\": 0.75}", "exact_match", &s, &o, &err));
  EXPECT_EQ(s, 0.75);
  EXPECT_FALSE(parse_external_output("{\"acc\": 0.1, \"f1\": 0.2}", "score", &s, &o, &err));
  EXPECT_NE(err.find("'score'"), std::string::npos);
  EXPECT_FALSE(parse_external_output("{\"score\": \"high\"}", "score", &s, &o, &err));
  EXPECT_FALSE(parse_external_output("[0.5]", "score", &s, &o, &err));
  EXPECT_FALSE(parse_external_output("", "score", &s, &o, &err));
}

}  // namespace
}  // namespace evomerge::eval
