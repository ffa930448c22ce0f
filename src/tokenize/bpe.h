// Internal: the BPE model of a tokenizer.json ("model": {"type": "BPE", ...}).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace evomerge::tok {

class Bpe {
 public:
  // Parses model (vocab, merges as "a b" strings or [a, b] pairs, unk_token, byte_fallback,
  // fuse_unk, ignore_merges, continuing_subword_prefix / end_of_word_suffix; "" means none, dropout
  // must be null). Errors name `where` and the field.
  static Bpe from_json(const nlohmann::json& model, std::string_view where);

  Bpe() = default;
  Bpe(Bpe&& other) noexcept;
  Bpe& operator=(Bpe&& other) noexcept;

  // Appends the ids of one pre-token (cached per word). Throws Error when a character is not in the
  // vocabulary and neither byte_fallback nor unk_token can represent it.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  // The same through a min-heap over (rank, position), uncached: the fast path.
  std::vector<int32_t> tokenize_uncached(std::string_view word) const;
  // The plain reference: repeatedly merge the lowest-rank adjacent pair, leftmost on ties (O(n^2)).
  std::vector<int32_t> tokenize_reference(std::string_view word) const;

  std::optional<int32_t> find(std::string_view token) const;
  const std::string* token(int32_t id) const;  // nullptr when the id is not in the model vocab
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  const Merge* merge(int32_t a, int32_t b) const;
  // The initial symbols of a word: one per character (with prefix/suffix), byte-fallback tokens or
  // (fused) unk for characters outside the vocabulary.
  std::vector<int32_t> initial_symbols(std::string_view word) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  std::string unk_token_;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // ids of "<0xHH>", -1 when absent

  static constexpr size_t kCacheMaxEntries = 100'000;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace evomerge::tok
