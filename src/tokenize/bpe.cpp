#include "tokenize/bpe.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <queue>

#include "common/error.h"
#include "tokenize/unicode.h"

namespace evomerge::tok {

namespace {
using json = nlohmann::json;

std::string optional_string(const json& m, const char* field, std::string_view where) {
  auto it = m.find(field);
  if (it == m.end() || it->is_null()) return {};
  if (!it->is_string()) fail("tokenizer", "{}: field 'model.{}' must be a string or null", where, field);
  return it->get<std::string>();
}

bool optional_bool(const json& m, const char* field, std::string_view where) {
  auto it = m.find(field);
  if (it == m.end() || it->is_null()) return false;
  if (!it->is_boolean()) fail("tokenizer", "{}: field 'model.{}' must be a boolean", where, field);
  return it->get<bool>();
}

// A symbol of a word being merged: a doubly linked list over the initial symbols.
struct Symbol {
  int32_t id;
  int32_t prev, next;
  bool alive;
};
}  // namespace

Bpe::Bpe(Bpe&& o) noexcept { *this = std::move(o); }

Bpe& Bpe::operator=(Bpe&& o) noexcept {
  vocab_ = std::move(o.vocab_);
  id_to_token_ = std::move(o.id_to_token_);
  has_id_ = std::move(o.has_id_);
  merges_ = std::move(o.merges_);
  unk_id_ = o.unk_id_;
  unk_token_ = std::move(o.unk_token_);
  prefix_ = std::move(o.prefix_);
  suffix_ = std::move(o.suffix_);
  fuse_unk_ = o.fuse_unk_;
  byte_fallback_ = o.byte_fallback_;
  ignore_merges_ = o.ignore_merges_;
  byte_ids_ = o.byte_ids_;
  cache_.clear();
  return *this;
}

Bpe Bpe::from_json(const json& m, std::string_view where) {
  Bpe b;
  if (auto d = m.find("dropout"); d != m.end() && !d->is_null())
    fail("tokenizer", "{}: field 'model.dropout' must be null (BPE dropout is a training-time feature)", where);
  auto v = m.find("vocab");
  if (v == m.end() || !v->is_object()) fail("tokenizer", "{}: field 'model.vocab' is missing or not an object", where);
  // Ids are bounded so that a hostile file cannot make us allocate a huge id table.
  constexpr int64_t kMaxId = 1 << 24;
  int64_t max_id = -1;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_number_integer())
      fail("tokenizer", "{}: field 'model.vocab' entry '{}' is not an integer id", where, it.key());
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= kMaxId)
      fail("tokenizer", "{}: field 'model.vocab' entry '{}' has id {} outside [0, {})", where, it.key(), id, kMaxId);
    max_id = std::max(max_id, id);
  }
  // Ids are dense in every real vocabulary; a very sparse one is rejected rather than allocating a
  // table for ids nobody uses.
  if (max_id >= static_cast<int64_t>(v->size()) * 2 + 1024)
    fail("tokenizer", "{}: field 'model.vocab': highest id {} is far beyond the {} entries (ids must be dense)", where,
         max_id, v->size());
  b.id_to_token_.assign(static_cast<size_t>(max_id + 1), {});
  b.has_id_.assign(static_cast<size_t>(max_id + 1), false);
  b.vocab_.reserve(v->size());
  for (auto it = v->begin(); it != v->end(); ++it) {
    auto id = static_cast<int32_t>(it.value().get<int64_t>());
    if (b.has_id_[static_cast<size_t>(id)])
      fail("tokenizer", "{}: field 'model.vocab': id {} is used by both '{}' and '{}'", where, id,
           b.id_to_token_[static_cast<size_t>(id)], it.key());
    b.vocab_.emplace(it.key(), id);
    b.id_to_token_[static_cast<size_t>(id)] = it.key();
    b.has_id_[static_cast<size_t>(id)] = true;
  }
  b.unk_token_ = optional_string(m, "unk_token", where);
  if (!b.unk_token_.empty()) {
    auto u = b.vocab_.find(b.unk_token_);
    if (u != b.vocab_.end()) b.unk_id_ = u->second;  // HF: an unk_token outside the vocab is ignored until needed
  }
  b.prefix_ = optional_string(m, "continuing_subword_prefix", where);
  b.suffix_ = optional_string(m, "end_of_word_suffix", where);
  b.fuse_unk_ = optional_bool(m, "fuse_unk", where);
  b.byte_fallback_ = optional_bool(m, "byte_fallback", where);
  b.ignore_merges_ = optional_bool(m, "ignore_merges", where);
  for (int i = 0; i < 256; ++i) {
    auto f = b.vocab_.find(fmt::format("<0x{:02X}>", i));
    b.byte_ids_[static_cast<size_t>(i)] = f == b.vocab_.end() ? -1 : f->second;
  }

  auto ms = m.find("merges");
  if (ms == m.end() || ms->is_null()) return b;  // a vocab-only BPE is valid
  if (!ms->is_array()) fail("tokenizer", "{}: field 'model.merges' must be an array", where);
  b.merges_.reserve(ms->size());
  int32_t rank = 0;
  for (const auto& e : *ms) {
    std::string a, c;
    if (e.is_string()) {
      // Legacy form "a b": exactly one separating space (tokens never contain a plain space).
      const auto& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail("tokenizer", "{}: field 'model.merges[{}]' '{}' is not two tokens separated by one space", where, rank, s);
      a = s.substr(0, sp);
      c = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      c = e[1].get<std::string>();
    } else {
      fail("tokenizer", "{}: field 'model.merges[{}]' must be a string \"a b\" or a pair [\"a\", \"b\"]", where, rank);
    }
    auto ia = b.vocab_.find(a), ic = b.vocab_.find(c);
    if (ia == b.vocab_.end() || ic == b.vocab_.end())
      fail("tokenizer", "{}: field 'model.merges[{}]': token '{}' is not in the vocab", where, rank,
           ia == b.vocab_.end() ? a : c);
    // The merged token drops the continuing-subword prefix of its right part (HF models/bpe).
    std::string right = c;
    if (!b.prefix_.empty() && right.starts_with(b.prefix_)) right = right.substr(b.prefix_.size());
    auto im = b.vocab_.find(a + right);
    if (im == b.vocab_.end())
      fail("tokenizer", "{}: field 'model.merges[{}]': merged token '{}' is not in the vocab", where, rank, a + right);
    // A repeated pair keeps its last rank, as HF's HashMap insert does.
    b.merges_[key(ia->second, ic->second)] = Merge{rank, im->second};
    ++rank;
  }
  return b;
}

std::optional<int32_t> Bpe::find(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= has_id_.size() || !has_id_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

const Bpe::Merge* Bpe::merge(int32_t a, int32_t b) const {
  auto it = merges_.find(key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<int32_t> Bpe::initial_symbols(std::string_view word) const {
  std::vector<int32_t> syms;
  bool pending_unk = false;  // a (fused) unk waiting to be pushed
  auto flush_unk = [&] {
    if (pending_unk) syms.push_back(*unk_id_);
    pending_unk = false;
  };
  std::string s;
  for (size_t i = 0; i < word.size();) {
    size_t n = utf8_len(word, i);
    const bool first = i == 0, last = i + n == word.size();
    s.clear();
    if (!first) s += prefix_;
    s.append(word.substr(i, n));
    if (last) s += suffix_;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      flush_unk();
      syms.push_back(it->second);
      i += n;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (size_t k = i; k < i + n; ++k) all = all && byte_ids_[static_cast<unsigned char>(word[k])] >= 0;
      if (all) {
        flush_unk();
        for (size_t k = i; k < i + n; ++k) syms.push_back(byte_ids_[static_cast<unsigned char>(word[k])]);
        i += n;
        continue;
      }
    }
    if (!unk_id_)
      fail("tokenizer", "character '{}' is not in the vocabulary and the tokenizer has no usable unk_token{}",
           utf8_lossy(word.substr(i, n)), unk_token_.empty() ? "" : fmt::format(" ('{}' is not in the vocab)", unk_token_));
    if (pending_unk && !fuse_unk_) flush_unk();
    pending_unk = true;
    i += n;
  }
  flush_unk();
  return syms;
}

std::vector<int32_t> Bpe::tokenize_reference(std::string_view word) const {
  if (word.empty()) return {};
  if (ignore_merges_)
    if (auto id = find(word)) return {*id};
  std::vector<int32_t> syms = initial_symbols(word);
  for (;;) {
    const Merge* best = nullptr;
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      const Merge* m = merge(syms[i], syms[i + 1]);
      if (m && (!best || m->rank < best->rank)) {
        best = m;
        best_pos = i;
      }
    }
    if (!best) break;
    syms[best_pos] = best->id;
    syms.erase(syms.begin() + static_cast<ptrdiff_t>(best_pos) + 1);
  }
  return syms;
}

std::vector<int32_t> Bpe::tokenize_uncached(std::string_view word) const {
  if (word.empty()) return {};
  if (ignore_merges_)
    if (auto id = find(word)) return {*id};
  std::vector<int32_t> ids = initial_symbols(word);
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2) return ids;
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) sym[static_cast<size_t>(i)] = {ids[static_cast<size_t>(i)], i - 1, i + 1 < n ? i + 1 : -1, true};
  // Queue entries (rank, position, merged id); the smallest rank first, then the leftmost position.
  struct Entry {
    int32_t rank, pos, id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  for (int32_t i = 0; i + 1 < n; ++i)
    if (const Merge* m = merge(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(i + 1)])) queue.push({m->rank, i, m->id});
  while (!queue.empty()) {
    Entry top = queue.top();
    queue.pop();
    Symbol& left = sym[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[static_cast<size_t>(left.next)];
    // Stale when either side changed since the entry was pushed.
    const Merge* m = merge(left.id, right.id);
    if (!m || m->id != top.id || m->rank != top.rank) continue;
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0)
      if (const Merge* p = merge(sym[static_cast<size_t>(left.prev)].id, left.id)) queue.push({p->rank, left.prev, p->id});
    if (left.next >= 0)
      if (const Merge* q = merge(left.id, sym[static_cast<size_t>(left.next)].id)) queue.push({q->rank, top.pos, q->id});
  }
  std::vector<int32_t> out;
  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) out.push_back(sym[static_cast<size_t>(i)].id);
  return out;
}

void Bpe::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kCacheMaxWordBytes) {
    auto ids = tokenize_uncached(word);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  std::string key_str(word);
  {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key_str);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  auto ids = tokenize_uncached(word);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= kCacheMaxEntries) cache_.clear();
  cache_.emplace(std::move(key_str), std::move(ids));
}

}  // namespace evomerge::tok
