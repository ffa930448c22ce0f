// Atomic file writes and StagedDir: outputs appear whole or not at all.
#include "io/files.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "common/error.h"
#include "common/test_util.h"
#include "io/test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Files, WriteFileAtomicReplacesAndLeavesNoTemporary) {
  TempDir dir;
  write_file_atomic(dir / "a.json", "first");
  write_file_atomic(dir / "a.json", "second");
  EXPECT_EQ(read_bytes(dir / "a.json"), "second");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"a.json"}));
}

TEST(Files, WriteFileAtomicIntoMissingFolderFails) {
  TempDir dir;
  try {
    write_file_atomic(dir / "missing/a.json", "x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos) << e.what();
  }
}

TEST(Files, ReadTextFileBoundsAndErrors) {
  TempDir dir;
  write_bytes(dir / "t.txt", "hello");
  EXPECT_EQ(read_text_file(dir / "t.txt"), "hello");
  try {
    read_text_file(dir / "t.txt", 4);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than the 4 allowed"), std::string::npos) << e.what();
  }
  try {
    read_text_file(dir / "nope.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt: cannot read"), std::string::npos) << e.what();
  }
  try {
    read_text_file(dir.path());  // a folder is not a text file
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[io]"), std::string::npos) << e.what();
  }
}

TEST(Files, CopyFileAtomic) {
  TempDir dir;
  write_bytes(dir / "src", "payload");
  copy_file_atomic(dir / "src", dir / "dst");
  EXPECT_EQ(read_bytes(dir / "dst"), "payload");
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"dst", "src"}));
  EXPECT_THROW(copy_file_atomic(dir / "absent", dir / "dst2"), Error);
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"dst", "src"}));
}

TEST(StagedDir, AppearsOnlyOnCommit) {
  TempDir root;
  fs::path out = root / "nested/out";
  {
    StagedDir staged(out, false);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_EQ(staged.path().parent_path(), out.parent_path());
    EXPECT_TRUE(staged.path().filename().string().starts_with(".out.tmp-"));
    write_bytes(staged.path() / "model.safetensors", "x");
    EXPECT_FALSE(fs::exists(out));
    staged.commit();
  }
  EXPECT_EQ(read_bytes(out / "model.safetensors"), "x");
  EXPECT_EQ(listing(root / "nested"), (std::vector<std::string>{"out"}));
}

TEST(StagedDir, NothingAppearsOnFailure) {
  TempDir root;
  fs::path out = root / "out";
  try {
    StagedDir staged(out, false);
    write_bytes(staged.path() / "half-written", "x");
    fail("test", "simulated failure");
  } catch (const Error&) {
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::is_empty(root.path()));
}

TEST(StagedDir, ExistingFolderNeedsForce) {
  TempDir root;
  fs::path out = root / "out";
  write_bytes(out / "old.txt", "old");
  try {
    StagedDir staged(out, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists (use --force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(out / "old.txt"), "old");
  {
    StagedDir staged(out, true);  // --force
    write_bytes(staged.path() / "new.txt", "new");
    EXPECT_TRUE(fs::exists(out / "old.txt"));  // still the old one until commit
    staged.commit();
  }
  EXPECT_EQ(listing(out), (std::vector<std::string>{"new.txt"}));
  EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"out"}));  // the old copy is removed
}

TEST(StagedDir, ForceWithoutCommitKeepsOldFolder) {
  TempDir root;
  fs::path out = root / "out";
  write_bytes(out / "old.txt", "old");
  {
    StagedDir staged(out, true);
    write_bytes(staged.path() / "new.txt", "new");
  }
  EXPECT_EQ(listing(out), (std::vector<std::string>{"old.txt"}));
  EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"out"}));
}

TEST(StagedDir, FolderCreatedMeanwhileIsNotClobbered) {
  TempDir root;
  fs::path out = root / "out";
  StagedDir staged(out, false);
  write_bytes(out / "theirs.txt", "theirs");  // someone else made it after we started
  EXPECT_THROW(staged.commit(), Error);
  EXPECT_EQ(read_bytes(out / "theirs.txt"), "theirs");
}

TEST(StagedDir, TwoStagingsOfOneNameDoNotShareATemporary) {
  TempDir root;
  StagedDir a(root / "out", true);
  write_bytes(a.path() / "a.txt", "a");
  StagedDir b(root / "out", true);
  EXPECT_NE(a.path(), b.path());
  EXPECT_TRUE(fs::exists(a.path() / "a.txt"));  // b's set-up did not wipe a's work
  write_bytes(b.path() / "b.txt", "b");
  a.commit();
  b.commit();  // --force: replaces a's result
  EXPECT_EQ(listing(root / "out"), (std::vector<std::string>{"b.txt"}));
  EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"out"}));
}

TEST(StagedDir, TrailingSlashIsTheSameFolder) {
  TempDir root;
  {
    StagedDir staged(root.path().string() + "/out/", false);
    EXPECT_EQ(staged.final_path(), root / "out");
    staged.commit();
  }
  EXPECT_TRUE(fs::is_directory(root / "out"));
}

}  // namespace
}  // namespace evomerge

namespace evomerge {
namespace {

using testing::TempDir;
using testing::write_bytes;
using testing_util::error_of;
namespace fs = std::filesystem;

// A FIFO would block the read forever and /dev/zero never ends; both are named for what they are.
TEST(Files, ReadTextFileRefusesFifosAndDevices) {
  TempDir dir;
  const auto fifo = dir / "config.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { read_text_file(fifo); }),
            "[io] " + fifo.string() + ": is a FIFO, not a regular file");
  const auto link = dir / "zero.json";
  fs::create_symlink("/dev/zero", link);
  EXPECT_EQ(error_of([&] { read_text_file(link); }),
            "[io] " + link.string() + ": is a character device, not a regular file");
  EXPECT_EQ(error_of([&] { read_text_file(dir.path()); }),
            "[io] " + dir.path().string() + ": is a folder, not a regular file");
}

// What a killed merge leaves (".<name>.tmp-<pid>-<n>", up to the model's size) is removed by the
// next write of the same output once that pid is gone; a living process's staging folder is kept.
TEST(StagedDir, LeftoversOfDeadProcessesAreRemoved) {
  TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);  // reaped: the pid no longer exists
  ASSERT_TRUE(process_is_gone(child));
  const auto dead = dir / fmt::format(".out.tmp-{}-0", child);
  const auto dead_file = dir / fmt::format(".out.tmp-{}", child);
  const auto alive = dir / fmt::format(".out.tmp-{}-0", ::getppid());
  const auto other = dir / fmt::format(".other.tmp-{}-0", child);
  for (const auto& p : {dead, alive, other}) write_bytes(p / "model.safetensors", "x");
  write_bytes(dead_file, "partial");
  {
    StagedDir staged(dir / "out", false);
    write_bytes(staged.path() / "a", "1");
    staged.commit();
  }
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(dead_file));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_TRUE(fs::exists(other));  // another output's: left to that output's next write
  EXPECT_TRUE(fs::exists(dir / "out" / "a"));
}

// Past `ulimit -f` a write fails with EFBIG once SIGXFSZ is ignored (as the CLI does): a clear
// "file too large" error naming the file, and no temporary left.
TEST(Files, FileSizeLimitIsAClearError) {
  TempDir dir;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string err =
      error_of([&] { write_file_atomic(dir / "big.bin", std::string(10000, 'x')); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(err.find("big.bin.tmp-"), std::string::npos) << err;
  EXPECT_NE(err.find(": write failed: file too large (over the file-size limit of this process, "
                     "see `ulimit -f`"),
            std::string::npos)
      << err;
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace evomerge
