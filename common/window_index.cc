#include "common/window_index.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace vigo {
namespace {

constexpr uint64_t kMod = (uint64_t{1} << 61) - 1;
constexpr uint64_t kBase = 0x1f3d5b79a2c4e6f1ull % kMod;
constexpr uint64_t kMix = 0x9e3779b97f4a7c15ull;
constexpr size_t kBlock = 64;  // hashes computed (and slots prefetched) ahead of the probes

uint64_t MulMod(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  uint64_t s = (static_cast<uint64_t>(r) & kMod) + static_cast<uint64_t>(r >> 61);
  return s >= kMod ? s - kMod : s;
}
uint64_t AddMod(uint64_t a, uint64_t b) {
  const uint64_t s = a + b;
  return s >= kMod ? s - kMod : s;
}

// Rolling hash of the windows of one byte string.
class Roller {
 public:
  Roller(std::span<const uint8_t> d, size_t window) : d_(d), n_(window) {
    for (size_t k = 1; k < n_; ++k) top_ = MulMod(top_, kBase);
    for (size_t k = 0; k < n_; ++k) h_ = AddMod(MulMod(h_, kBase), d_[k]);
  }
  uint64_t hash() const { return h_; }
  // Moves from window i to window i + 1 (requires i + n < size).
  void Next(size_t i) {
    const uint64_t out = MulMod(d_[i], top_);
    h_ = AddMod(MulMod(AddMod(h_, kMod - out), kBase), d_[i + n_]);
  }

 private:
  std::span<const uint8_t> d_;
  size_t n_;
  uint64_t top_ = 1;  // kBase^(n-1)
  uint64_t h_ = 0;
};

// Hash of the gram (kGram bytes) at `p`: one 64-bit load, mixed (the
// finaliser of MurmurHash3) so that its high bits pick the slot and its low
// bits are the check.
uint64_t GramHash(const uint8_t* p) {
  uint64_t x;
  std::memcpy(&x, p, sizeof x);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

uint32_t Check(uint64_t h) {
  const auto c = static_cast<uint32_t>(h);
  return c == 0 ? 1 : c;
}

// An open-addressing table of 32-bit checks (plus a tag with `stride` 2),
// sized for `keys` at load at most 3/4 (a miss reads about 8 slots, within
// one or two cache lines), in locked memory.
absl::StatusOr<sandbox::SecretBuffer> NewTable(size_t keys, size_t stride, uint64_t* bits) {
  *bits = 10;
  while ((uint64_t{3} << *bits) < 4 * keys) ++*bits;
  auto table = sandbox::SecretBuffer::Create((size_t{1} << *bits) * stride * 4);
  if (!table.ok()) {
    return absl::ResourceExhaustedError("window index: locked arena cannot hold the table");
  }
  std::memset(table->RevealMutable().data(), 0, table->size());
  return table;
}

}  // namespace

WindowIndex::WindowIndex(size_t window, bool keep_tags)
    : window_(std::clamp(window, kMinRedactionWindow, kMaxRedactionWindow)),
      keep_tags_(keep_tags) {}

absl::Status WindowIndex::Add(sandbox::SecretBuffer form, uint32_t tag, const Flush& flush) {
  if (form.empty()) return absl::OkStatus();
  const size_t piece = batch_bytes();
  // Flushes before a piece would take the index past the batch, so the
  // tables never outgrow the size batch_bytes() promises.
  auto make_room = [&](size_t n) {
    return bytes_ > 0 && bytes_ + n > piece ? flush() : absl::OkStatus();
  };
  if (form.size() <= piece) {
    if (absl::Status st = make_room(form.size()); !st.ok()) return st;
    AddPiece(std::move(form), tag);
    return absl::OkStatus();
  }
  std::span<const uint8_t> f = form.Reveal();
  for (size_t at = 0; at + window_ - 1 < f.size(); at += piece - (window_ - 1)) {
    const size_t n = std::min(piece, f.size() - at);
    if (absl::Status st = make_room(n); !st.ok()) return st;
    auto part = sandbox::SecretBuffer::CopyFrom(f.subspan(at, n));
    if (!part.ok()) {
      return absl::ResourceExhaustedError("window index: locked arena cannot hold a form");
    }
    AddPiece(std::move(*part), tag);
  }
  return absl::OkStatus();
}

void WindowIndex::AddPiece(sandbox::SecretBuffer form, uint32_t tag) {
  bytes_ += form.size();
  built_ = false;
  if (form.size() < window_) {
    short_forms_.Add(std::move(form), tag);
    return;
  }
  windows_ += form.size() - window_ + 1;
  grams_ += form.size() - kGram + 1;
  long_forms_.push_back(std::move(form));
  long_tags_.push_back(tag);
}

void WindowIndex::Clear() {
  long_forms_.clear();
  long_tags_.clear();
  short_forms_.Clear();
  filter_.reset();
  table_.reset();
  windows_ = 0;
  grams_ = 0;
  bytes_ = 0;
  built_ = false;
}

absl::Status WindowIndex::BuildFilter() {
  filter_.reset();
  table_.reset();
  built_ = true;
  if (grams_ == 0) return absl::OkStatus();
  absl::StatusOr<sandbox::SecretBuffer> table = NewTable(grams_, 1, &filter_bits_);
  if (!table.ok()) {
    built_ = false;
    return table.status();
  }
  auto* slots = reinterpret_cast<uint32_t*>(table->RevealMutable().data());
  const uint64_t mask = (uint64_t{1} << filter_bits_) - 1;
  const int shift = static_cast<int>(64 - filter_bits_);
  uint64_t hashes[kBlock];
  for (const sandbox::SecretBuffer& form : long_forms_) {
    std::span<const uint8_t> d = form.Reveal();
    const size_t grams = d.size() - kGram + 1;
    for (size_t base = 0; base < grams; base += kBlock) {
      const size_t n = std::min(kBlock, grams - base);
      for (size_t k = 0; k < n; ++k) {
        hashes[k] = GramHash(d.data() + base + k);
        __builtin_prefetch(slots + (hashes[k] >> shift), 1);
      }
      for (size_t k = 0; k < n; ++k) {
        const uint32_t check = Check(hashes[k]);
        for (uint64_t s = hashes[k] >> shift;; s = (s + 1) & mask) {
          if (slots[s] == check) break;
          if (slots[s] == 0) {
            slots[s] = check;
            break;
          }
        }
      }
    }
  }
  filter_ = std::move(*table);
  return absl::OkStatus();
}

absl::Status WindowIndex::BuildTable() {
  const size_t stride = keep_tags_ ? 2 : 1;
  absl::StatusOr<sandbox::SecretBuffer> table = NewTable(windows_, stride, &slot_bits_);
  if (!table.ok()) return table.status();
  auto* slots = reinterpret_cast<uint32_t*>(table->RevealMutable().data());
  const uint64_t mask = (uint64_t{1} << slot_bits_) - 1;
  for (size_t f = 0; f < long_forms_.size(); ++f) {
    std::span<const uint8_t> d = long_forms_[f].Reveal();
    Roller roll(d, window_);
    for (size_t i = 0;; ++i) {
      const uint64_t h = roll.hash();
      const uint32_t check = Check(h);
      for (uint64_t s = (h * kMix) >> (64 - slot_bits_);; s = (s + 1) & mask) {
        uint32_t* slot = slots + s * stride;
        if (slot[0] == check) {  // this window is already in
          if (keep_tags_ && (slot[1] & ~kSharedTag) != long_tags_[f]) slot[1] |= kSharedTag;
          break;
        }
        if (slot[0] == 0) {
          slot[0] = check;
          if (keep_tags_) slot[1] = long_tags_[f];
          break;
        }
      }
      if (i + window_ >= d.size()) break;
      roll.Next(i);
    }
  }
  table_ = std::move(*table);
  return absl::OkStatus();
}

absl::Status WindowIndex::SearchWindows(std::span<const uint8_t> data, size_t lo, size_t hi,
                                        const OnHit& on_hit) {
  if (!table_) {
    if (absl::Status st = BuildTable(); !st.ok()) return st;
  }
  const size_t stride = keep_tags_ ? 2 : 1;
  const auto* slots = reinterpret_cast<const uint32_t*>(table_->Reveal().data());
  const uint64_t mask = (uint64_t{1} << slot_bits_) - 1;
  Roller roll(data.subspan(lo, hi - lo + window_), window_);
  for (size_t q = lo;; ++q) {
    const uint64_t h = roll.hash();
    const uint32_t check = Check(h);
    for (uint64_t s = (h * kMix) >> (64 - slot_bits_);; s = (s + 1) & mask) {
      const uint32_t* slot = slots + s * stride;
      if (slot[0] == 0) break;
      if (slot[0] == check) {
        on_hit(keep_tags_ ? slot[1] : kUntagged, q, q + window_);
        break;
      }
    }
    if (q == hi) break;
    roll.Next(q - lo);
  }
  return absl::OkStatus();
}

absl::Status WindowIndex::Search(std::span<const uint8_t> data, const OnHit& on_hit) {
  if (empty() || data.empty()) return absl::OkStatus();
  if (!built_) {
    if (absl::Status st = BuildFilter(); !st.ok()) return st;
  }
  if (absl::Status st = short_forms_.Search(data, on_hit); !st.ok()) return st;
  if (!filter_ || data.size() < window_) return absl::OkStatus();

  // Grams at every stride-th position. Any window [q, q + window) holds the
  // gram at the one sampled p in [q, q + stride), because p + kGram <=
  // q + window: a window of a form therefore always passes the filter at
  // some p, and the exact windows containing that gram, q in
  // [p - stride + 1, p], are then checked against the window table.
  const size_t stride = window_ - kGram + 1;
  const size_t last_window = data.size() - window_;
  const size_t probes = (data.size() - kGram) / stride + 1;
  const auto* slots = reinterpret_cast<const uint32_t*>(filter_->Reveal().data());
  const uint64_t mask = (uint64_t{1} << filter_bits_) - 1;
  const int shift = static_cast<int>(64 - filter_bits_);
  bool pending = false;
  size_t pend_lo = 0, pend_hi = 0;
  uint64_t hashes[kBlock];
  for (size_t base = 0; base < probes; base += kBlock) {
    const size_t n = std::min(kBlock, probes - base);
    for (size_t k = 0; k < n; ++k) {
      hashes[k] = GramHash(data.data() + (base + k) * stride);
      __builtin_prefetch(slots + (hashes[k] >> shift));
    }
    for (size_t k = 0; k < n; ++k) {
      const uint32_t check = Check(hashes[k]);
      bool hit = false;
      for (uint64_t s = hashes[k] >> shift;; s = (s + 1) & mask) {
        if (slots[s] == 0) break;
        if (slots[s] == check) {
          hit = true;
          break;
        }
      }
      if (!hit) continue;
      const size_t p = (base + k) * stride;
      const size_t lo = p >= stride - 1 ? p - (stride - 1) : 0;
      const size_t hi = std::min(p, last_window);
      if (lo > hi) continue;
      if (pending && lo <= pend_hi + 1) {
        pend_hi = hi;
        continue;
      }
      if (pending) {
        if (absl::Status st = SearchWindows(data, pend_lo, pend_hi, on_hit); !st.ok()) return st;
      }
      pending = true;
      pend_lo = lo;
      pend_hi = hi;
    }
  }
  if (pending) return SearchWindows(data, pend_lo, pend_hi, on_hit);
  return absl::OkStatus();
}

}  // namespace vigo
