#include "io/fingerprint.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/hash.h"
#include "io/test_support.h"

namespace evomerge {
namespace {

using testing::TempDir;
using testing::write_bytes;

void poke(const std::filesystem::path& p, uint64_t offset, char c) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(c);
}

TEST(Fingerprint, SmallFileIsHashedWhole) {
  TempDir dir;
  write_bytes(dir / "t.jsonl", "abc");
  // FNV-1a 64 over "size 3;" then "abc" (the definition; independent of this implementation).
  EXPECT_EQ(fingerprint_file(dir / "t.jsonl"), fmt::format("{:016x}", fnv1a64("size 3;abc")));
  write_bytes(dir / "t.jsonl", "abd");
  EXPECT_NE(fingerprint_file(dir / "t.jsonl"), fmt::format("{:016x}", fnv1a64("size 3;abc")));
}

TEST(Fingerprint, LargeFileSamplesHeadBlocksAndTail) {
  TempDir dir;
  const auto p = dir / "model.safetensors";
  write_bytes(p, std::string(20u << 20, 'w'));
  const std::string before = fingerprint_file(p);
  poke(p, 100, 'x');  // in the first MiB
  const std::string head = fingerprint_file(p);
  EXPECT_NE(head, before);
  poke(p, (20u << 20) - 1, 'x');  // the last byte
  EXPECT_NE(fingerprint_file(p), head);
}

TEST(Fingerprint, FolderNamesTheFileThatChanged) {
  TempDir dir;
  write_bytes(dir / "config.json", "{}");
  write_bytes(dir / "model.safetensors", "weights");
  write_bytes(dir / ".model.safetensors.tmp-1", "ignored");
  const auto a = fingerprint_folder(dir.path());
  ASSERT_EQ(a.parts.size(), 2u);
  write_bytes(dir / "model.safetensors", "weightz");
  const auto b = fingerprint_folder(dir.path());
  EXPECT_NE(a.whole, b.whole);
  EXPECT_EQ(a.parts.at("config.json"), b.parts.at("config.json"));
  EXPECT_NE(a.parts.at("model.safetensors"), b.parts.at("model.safetensors"));
  EXPECT_EQ(fingerprint_folder(dir.path()).whole, b.whole);  // stable
}

}  // namespace
}  // namespace evomerge
