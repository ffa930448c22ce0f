// The bad-input catalogue at library level: every malformed folder fails with its own message, naming
// the file, and nothing allocates what a header claims before the claim is checked.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "arch/arch.h"
#include "arch/bad_inputs.h"
#include "common/error.h"

// Allocation watch: while armed, remember the largest single allocation. The files in the catalogue
// are at most a few kB, so any allocation near what a header claims (up to exabytes) stands out.
namespace {
std::atomic<bool> g_armed{false};
std::atomic<size_t> g_largest{0};
void note(size_t n) {
  if (!g_armed.load(std::memory_order_relaxed)) return;
  size_t prev = g_largest.load(std::memory_order_relaxed);
  while (n > prev && !g_largest.compare_exchange_weak(prev, n)) {
  }
}
void* checked_malloc(size_t n) {
  note(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(size_t n) { return checked_malloc(n); }
void* operator new[](size_t n) { return checked_malloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace evomerge {
namespace {

class BadInputCatalogue : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new testing::TempDir("bad");
    cases_ = new std::vector<testing::BadInput>(testing::make_bad_input_catalogue(root_->path()));
  }
  static void TearDownTestSuite() {
    delete cases_;
    delete root_;
  }
  static testing::TempDir* root_;
  static std::vector<testing::BadInput>* cases_;
};
testing::TempDir* BadInputCatalogue::root_ = nullptr;
std::vector<testing::BadInput>* BadInputCatalogue::cases_ = nullptr;

TEST_F(BadInputCatalogue, HasAtLeast25Cases) {
  EXPECT_GE(cases_->size(), 25u);
  std::set<std::string> ids;
  for (const auto& c : *cases_) EXPECT_TRUE(ids.insert(c.id).second) << "duplicate id " << c.id;
}

TEST_F(BadInputCatalogue, EachFailsWithItsOwnMessageNamingTheFile) {
  for (const auto& c : *cases_) {
    std::string err = "(no error)";
    g_largest = 0;
    g_armed = true;
    try {
      Model::open(c.dir.string());
    } catch (const Error& e) {
      err = e.what();
    }
    g_armed = false;
    EXPECT_NE(err.find(c.message), std::string::npos) << c.id << "\n  expected: " << c.message << "\n  got:      " << err;
    std::string named = c.file.empty() ? c.dir.string() : (c.dir / c.file).string();
    EXPECT_NE(err.find(named), std::string::npos) << c.id << ": the error does not name " << named << ": " << err;
    EXPECT_TRUE(err.starts_with("[safetensors] ") || err.starts_with("[model] ") || err.starts_with("[config] ") ||
                err.starts_with("[io] "))
        << c.id << ": " << err;
    for (unsigned char ch : err) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << c.id << ": unprintable byte in " << err;
    EXPECT_LT(g_largest.load(), size_t{1} << 20) << c.id << ": allocated " << g_largest.load() << " bytes";
  }
}

// The checks themselves: a header claiming 4 EB of tensors or a 99,999,999-byte header in a tiny file
// is rejected with no large allocation (a reader that trusted the claim would allocate first).
TEST_F(BadInputCatalogue, HostileClaimsAllocateNothingLarge) {
  int checked = 0;
  for (const auto& c : *cases_) {
    if (c.id != "st-claims-4-exabytes" && c.id != "st-header-length-past-eof" && c.id != "st-overflowing-shape") continue;
    g_largest = 0;
    g_armed = true;
    EXPECT_THROW(SafetensorsFile::open(c.dir / "model.safetensors"), Error) << c.id;
    g_armed = false;
    EXPECT_LT(g_largest.load(), size_t{64} << 10) << c.id;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
  // The watch itself works: a large allocation while armed is seen.
  g_largest = 0;
  g_armed = true;
  auto* big = new std::vector<char>(size_t{8} << 20);
  g_armed = false;
  delete big;
  EXPECT_GE(g_largest.load(), size_t{8} << 20);
}

}  // namespace
}  // namespace evomerge
