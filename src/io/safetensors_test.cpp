// safetensors reader and writer: round trips, the exact bytes the writer produces, sharding, cleanup.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <thread>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "io/test_support.h"
#include "common/test_util.h"

namespace evomerge {
namespace {

using testing::raw_safetensors;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

std::vector<std::byte> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xff);
  return out;
}

using testing_util::error_of;

// The writer's exact output for a small model, written out by hand from the format spec: metadata
// first, tensors ordered by element size (largest first, stable), header padded with spaces to a
// multiple of 8, data buffer packed without gaps.
TEST(SafetensorsWriter, ExactBytesOfSmallFile) {
  TempDir dir;
  const uint8_t a[] = {0x00, 0x00, 0x80, 0x3f};              // F32 [1] = 1.0
  const uint8_t b[] = {0x01, 0x02, 0x03, 0x04};              // F16 [2]
  const uint8_t c[] = {0x07};                                // U8 scalar
  std::vector<TensorSpec> specs = {{"b", DType::F16, {2}}, {"c", DType::U8, {}}, {"a", DType::F32, {1}}};
  ShardedWriter w(dir.path(), specs);
  w.write("c", std::as_bytes(std::span(c)));
  w.write("a", std::as_bytes(std::span(a)));
  w.write("b", std::as_bytes(std::span(b)));
  w.finish();
  std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]},"
      "\"c\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[8,9]}}";
  ASSERT_EQ(header.size(), 189u);
  header += "   ";  // 189 -> 192, a multiple of 8: data starts at byte 200
  std::string expected = raw_safetensors(header, std::string("\x00\x00\x80\x3f\x01\x02\x03\x04\x07", 9));
  EXPECT_EQ(read_bytes(dir / "model.safetensors"), expected);
  // Nothing else in the folder: no index for one shard, no temporaries.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

// write_part: pieces of tensors written out of order and from two threads give the same file as
// whole-tensor writes; a tensor missing a piece is caught by finish().
TEST(SafetensorsWriter, PartsFromThreadsGiveTheSameBytesAsWholeWrites) {
  std::vector<uint8_t> a(1000), b(37);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(200 - i);
  std::vector<TensorSpec> specs = {{"a", DType::U8, {10, 100}}, {"b", DType::U8, {37}}};
  TempDir whole, parts;
  {
    ShardedWriter w(whole.path(), specs);
    w.write("a", std::as_bytes(std::span(a)));
    w.write("b", std::as_bytes(std::span(b)));
    w.finish();
  }
  {
    ShardedWriter w(parts.path(), specs);
    auto piece = [&](const char* name, const std::vector<uint8_t>& v, size_t off, size_t len) {
      w.write_part(name, off, std::as_bytes(std::span(v).subspan(off, len)));
    };
    std::thread t1([&] {
      for (size_t off = 900; off + 100 > 100; off -= 100)
        piece("a", a, off, 100);  // 900, 800, ..., 100
    });
    std::thread t2([&] {
      piece("b", b, 30, 7);
      piece("b", b, 0, 30);
      piece("a", a, 0, 100);
    });
    t1.join();
    t2.join();
    w.finish();
  }
  EXPECT_EQ(read_bytes(parts / "model.safetensors"), read_bytes(whole / "model.safetensors"));
}

TEST(SafetensorsWriterDeathTest, FinishWithAMissingPartAborts) {
  TempDir dir;
  std::vector<uint8_t> a(10, 1);
  EXPECT_DEATH(
      {
        ShardedWriter w(dir.path(), {{"a", DType::U8, {10}}});
        w.write_part("a", 0, std::as_bytes(std::span(a).subspan(0, 6)));
        w.finish();
      },
      "a declared tensor was never written");
  EXPECT_DEATH(
      {
        ShardedWriter w(dir.path(), {{"a", DType::U8, {10}}});
        w.write_part("a", 6, std::as_bytes(std::span(a).subspan(0, 6)));
      },
      "part beyond the tensor");
}

TEST(SafetensorsReader, ReadsHandBuiltFile) {
  TempDir dir;
  std::string header = fmt::format(R"({{{},{},"__metadata__":{{"k":"v"}}}})", testing::entry("x", "BF16", "[2,1]", 0, 4),
                                   testing::entry("y", "I64", "[0,3]", 4, 4));
  write_bytes(dir / "f.safetensors", raw_safetensors(header, std::string("\x80\x3f\x00\x40", 4)));
  auto f = SafetensorsFile::open(dir / "f.safetensors");
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* x = f.find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->dtype, DType::BF16);
  EXPECT_EQ(x->shape, (Shape{2, 1}));
  auto values = to_f32(f.view(*x));
  EXPECT_EQ(values, (std::vector<float>{1.0f, 2.0f}));
  const TensorInfo* y = f.find("y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->nbytes(), 0u);
  EXPECT_EQ(f.view(*y).nbytes, 0u);
  EXPECT_EQ(f.metadata().at("k"), "v");
  EXPECT_EQ(f.find("z"), nullptr);
}

TEST(SafetensorsReader, AcceptsLeadingAndTrailingHeaderWhitespace) {
  TempDir dir;
  std::string header = fmt::format("  {{{}}}     ", testing::entry("x", "U8", "[1]", 0, 1));
  write_bytes(dir / "f.safetensors", raw_safetensors(header, "z"));
  auto f = SafetensorsFile::open(dir / "f.safetensors");
  EXPECT_EQ(f.tensors().size(), 1u);
}

TEST(SafetensorsReader, EmptyModelIsValid) {
  TempDir dir;
  write_bytes(dir / "f.safetensors", raw_safetensors("{}", ""));
  EXPECT_TRUE(SafetensorsFile::open(dir / "f.safetensors").tensors().empty());
}

// Every dtype, scalars, zero-size tensors, odd sizes: write, read back, compare bit for bit.
TEST(SafetensorsRoundTrip, AllDTypesBitExact) {
  const DType all[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32, DType::I16,
                       DType::I8,  DType::U8,  DType::BOOL, DType::U16, DType::U32, DType::U64};
  std::vector<Tensor> tensors;
  std::vector<std::pair<std::string, TensorView>> named;
  uint32_t seed = 1;
  for (DType d : all) {
    for (Shape shape : {Shape{}, Shape{0}, Shape{3, 0, 2}, Shape{7}, Shape{3, 5}, Shape{2, 3, 4}}) {
      Tensor t(d, shape);
      auto bytes = random_bytes(t.nbytes(), seed++);
      if (d == DType::BOOL)
        for (auto& b : bytes) b = static_cast<std::byte>(static_cast<uint8_t>(b) & 1);
      std::copy(bytes.begin(), bytes.end(), t.storage.begin());
      tensors.push_back(std::move(t));
    }
  }
  size_t i = 0;
  for (const auto& t : tensors)
    named.emplace_back(fmt::format("t{}.{}.{}", i++, dtype_name(t.dtype), shape_string(t.shape)), t.view());
  TempDir dir;
  write_safetensors(dir.path(), named);
  auto f = SafetensorsFile::open(dir / "model.safetensors");
  ASSERT_EQ(f.tensors().size(), named.size());
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  for (const auto& [name, view] : named) {
    const TensorInfo* info = f.find(name);
    ASSERT_NE(info, nullptr) << name;
    TensorView got = f.view(*info);
    EXPECT_EQ(got.dtype, view.dtype) << name;
    EXPECT_EQ(got.shape, view.shape) << name;
    ASSERT_EQ(got.nbytes, view.nbytes) << name;
    EXPECT_EQ(std::memcmp(got.data, view.data, view.nbytes), 0) << name;
    // Each tensor starts aligned to its element size within the file.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data) % dtype_size(got.dtype), 0u) << name;
  }
  // The data buffer starts at a multiple of 8.
  std::string raw = read_bytes(dir / "model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  // Rewriting what was read gives the same bytes again.
  std::vector<std::pair<std::string, TensorView>> again;
  for (const auto& [name, view] : named) again.emplace_back(name, f.view(*f.find(name)));
  TempDir dir2;
  write_safetensors(dir2.path(), again);
  EXPECT_EQ(read_bytes(dir2 / "model.safetensors"), raw);
}

TEST(SafetensorsWriter, CustomAndEmptyMetadata) {
  TempDir dir;
  {
    ShardedWriter w(dir.path(), {}, ShardedWriter::kDefaultShardBytes, {{"format", "pt"}, {"merged_by", "evomerge"}});
    w.finish();
  }
  auto f = SafetensorsFile::open(dir / "model.safetensors");
  EXPECT_EQ(f.metadata().at("merged_by"), "evomerge");
  TempDir dir2;
  {
    ShardedWriter w(dir2.path(), {{"x", DType::U8, {1}}}, ShardedWriter::kDefaultShardBytes, {});
    std::byte b{9};
    w.write("x", {&b, 1});
    w.finish();
  }
  std::string raw = read_bytes(dir2 / "model.safetensors");
  EXPECT_EQ(raw.find("__metadata__"), std::string::npos);
  EXPECT_TRUE(SafetensorsFile::open(dir2 / "model.safetensors").metadata().empty());
}

// Greedy fill by tensor bytes: a new shard starts when the next tensor would exceed the budget; a
// tensor larger than the budget sits alone.
TEST(SafetensorsWriter, ShardsByByteBudget) {
  // sizes in bytes (U8): 40, 30, 50, 150 (alone: larger than the budget), 10, 90, 10
  std::vector<std::pair<std::string, uint64_t>> sizes = {{"a", 40}, {"b", 30}, {"c", 50}, {"d", 150},
                                                         {"e", 10}, {"f", 90}, {"g", 10}};
  std::vector<TensorSpec> specs;
  std::vector<std::vector<std::byte>> data;
  for (size_t i = 0; i < sizes.size(); ++i) {
    specs.push_back({sizes[i].first, DType::U8, {static_cast<int64_t>(sizes[i].second)}});
    data.push_back(random_bytes(sizes[i].second, 100 + i));
  }
  TempDir dir;
  ShardedWriter w(dir.path(), specs, /*max_shard_bytes=*/100);
  // Expected groups: [a b] (70; +50 > 100), [c] (50; +150 > 100), [d] (150), [e f] (100), [g]
  ASSERT_EQ(w.shard_count(), 5u);
  EXPECT_EQ(w.total_tensor_bytes(), 380u);
  EXPECT_EQ(w.file_names(), (std::vector<std::string>{
                                "model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors",
                                "model-00003-of-00005.safetensors", "model-00004-of-00005.safetensors",
                                "model-00005-of-00005.safetensors", "model.safetensors.index.json"}));
  for (size_t i = sizes.size(); i-- > 0;) w.write(specs[i].name, data[i]);  // any order
  // Before finish(): only hidden temporaries exist.
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_TRUE(e.path().filename().string().starts_with(".")) << e.path();
  w.finish();

  auto index = nlohmann::json::parse(read_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 380);
  std::map<std::string, std::string> expected_map = {
      {"a", "model-00001-of-00005.safetensors"}, {"b", "model-00001-of-00005.safetensors"},
      {"c", "model-00002-of-00005.safetensors"}, {"d", "model-00003-of-00005.safetensors"},
      {"e", "model-00004-of-00005.safetensors"}, {"f", "model-00004-of-00005.safetensors"},
      {"g", "model-00005-of-00005.safetensors"}};
  EXPECT_EQ(index["weight_map"].get<decltype(expected_map)>(), expected_map);
  for (size_t i = 0; i < specs.size(); ++i) {
    auto f = SafetensorsFile::open(dir / expected_map[specs[i].name]);
    const TensorInfo* info = f.find(specs[i].name);
    ASSERT_NE(info, nullptr);
    auto v = f.view(*info);
    ASSERT_EQ(v.nbytes, data[i].size());
    EXPECT_EQ(std::memcmp(v.data, data[i].data(), v.nbytes), 0);
  }
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
    ++files;
  }
  EXPECT_EQ(files, 6);
}

TEST(SafetensorsWriter, FirstTensorLargerThanBudget) {
  TempDir dir;
  ShardedWriter w(dir.path(), {{"big", DType::F32, {10}}, {"small", DType::F32, {1}}}, 8);
  EXPECT_EQ(w.shard_count(), 2u);
  std::vector<std::byte> big(40), small(4);
  w.write("big", big);
  w.write("small", small);
  w.finish();
  EXPECT_TRUE(std::filesystem::exists(dir / "model-00001-of-00002.safetensors"));
  EXPECT_EQ(SafetensorsFile::open(dir / "model-00001-of-00002.safetensors").tensors().at(0).name, "big");
}

TEST(SafetensorsWriter, UnfinishedWriterLeavesNothing) {
  TempDir dir;
  {
    ShardedWriter w(dir.path(), {{"a", DType::U8, {60}}, {"b", DType::U8, {60}}}, 100);
    std::vector<std::byte> a(60);
    w.write("a", a);
    // destroyed without finish(), e.g. an exception unwound past it
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, DuplicateNameFailsAndLeavesNothing) {
  TempDir dir;
  std::string err = error_of([&] {
    ShardedWriter w(dir.path(), {{"a", DType::U8, {1}}, {"b", DType::U8, {1}}, {"a", DType::U8, {1}}});
  });
  EXPECT_NE(err.find("tensor 'a' is written twice"), std::string::npos) << err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, MetadataIsNotATensorName) {
  TempDir dir;
  std::string err = error_of([&] { ShardedWriter w(dir.path(), {{"__metadata__", DType::U8, {1}}}); });
  EXPECT_NE(err.find("cannot be named '__metadata__'"), std::string::npos) << err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, MissingFolderIsAnError) {
  TempDir dir;
  std::string err = error_of([&] { ShardedWriter w(dir / "no/such", {{"a", DType::U8, {1}}}); });
  EXPECT_NE(err.find("cannot create"), std::string::npos) << err;
}

TEST(SafetensorsParse, BufferBoundsChecks) {
  auto bytes = [](const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); };
  std::string ok = raw_safetensors("{}", "");
  uint64_t start = 0;
  EXPECT_TRUE(parse_safetensors_buffer(bytes(ok), "m", &start).tensors.empty());
  EXPECT_EQ(start, 10u);
  std::string too_big = testing::u64_le(kMaxSafetensorsHeaderBytes + 1) + "{}";
  EXPECT_NE(error_of([&] { parse_safetensors_buffer(bytes(too_big), "m"); }).find("exceeds the limit"),
            std::string::npos);
  std::string at_limit = testing::u64_le(kMaxSafetensorsHeaderBytes) + "{}";
  EXPECT_NE(error_of([&] { parse_safetensors_buffer(bytes(at_limit), "m"); }).find("runs past the end"),
            std::string::npos);
  std::string wrap = testing::u64_le(~uint64_t{0}) + "{}";
  EXPECT_NE(error_of([&] { parse_safetensors_buffer(bytes(wrap), "m"); }).find("exceeds the limit"),
            std::string::npos);
}

}  // namespace
}  // namespace evomerge

namespace evomerge {
namespace {

std::string header_error(const std::string& header, uint64_t data_bytes = 0) {
  try {
    parse_safetensors_header(header, data_bytes, "h");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SafetensorsParse, Utf8NamesAcceptedInvalidSequencesRejected) {
  // Valid: 2-, 3- and 4-byte sequences in tensor names.
  auto h = parse_safetensors_header(fmt::format("{{{}}}", testing::entry("caf\xc3\xa9.\xe6\x97\xa5.\xf0\x9f\x98\x80", "U8", "[1]", 0, 1)), 1, "h");
  EXPECT_EQ(h.tensors.at(0).name, "caf\xc3\xa9.\xe6\x97\xa5.\xf0\x9f\x98\x80");
  // Invalid: lone continuation, overlong '/', UTF-16 surrogate, above U+10FFFF, cut-off sequence.
  for (const char* bad : {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x97", "\xff"}) {
    std::string header = std::string("{\"") + bad + "\":{}}";
    EXPECT_NE(header_error(header).find("header is not valid UTF-8 (byte 2 of the header)"), std::string::npos)
        << header_error(header);
  }
}

TEST(SafetensorsParse, ErrorTextStaysPrintable) {
  std::string err = header_error(std::string("{\"a\":\x01}"));
  EXPECT_NE(err.find("header is not valid JSON"), std::string::npos) << err;
  for (unsigned char c : err) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << err;
}

TEST(SafetensorsParse, DuplicateMetadataAndNestedKeysAreNotTensorDuplicates) {
  auto h = parse_safetensors_header(
      fmt::format(R"({{"__metadata__":{{"format":"pt"}},{},{}}})", testing::entry("a", "U8", "[1]", 0, 1),
                  testing::entry("b", "U8", "[1]", 1, 2)),
      2, "h");
  EXPECT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_NE(header_error(R"({"__metadata__":{},"__metadata__":{}})").find("duplicate tensor name '__metadata__'"),
            std::string::npos);
}

}  // namespace
}  // namespace evomerge
