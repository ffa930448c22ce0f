// Atomic file writes and StagedDir: outputs appear whole or not at all.
#include "io/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/error.h"
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
