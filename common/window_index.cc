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

uint32_t Check(uint64_t h) {
  const auto c = static_cast<uint32_t>(h);
  return c == 0 ? 1 : c;
}

}  // namespace

WindowIndex::WindowIndex(size_t window, bool keep_tags)
    : window_(std::clamp(window, kMinRedactionWindow, kMaxRedactionWindow)),
      keep_tags_(keep_tags) {}

absl::Status WindowIndex::Add(sandbox::SecretBuffer form, uint32_t tag, const Flush& flush) {
  if (form.empty()) return absl::OkStatus();
  const size_t piece = batch_bytes();
  if (form.size() <= piece) {
    AddPiece(std::move(form), tag);
    return bytes_ >= piece ? flush() : absl::OkStatus();
  }
  std::span<const uint8_t> f = form.Reveal();
  for (size_t at = 0; at + window_ - 1 < f.size(); at += piece - (window_ - 1)) {
    auto part = sandbox::SecretBuffer::CopyFrom(f.subspan(at, std::min(piece, f.size() - at)));
    if (!part.ok()) {
      return absl::ResourceExhaustedError("window index: locked arena cannot hold a form");
    }
    AddPiece(std::move(*part), tag);
    if (bytes_ >= piece) {
      if (absl::Status st = flush(); !st.ok()) return st;
    }
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
  long_forms_.push_back(std::move(form));
  long_tags_.push_back(tag);
}

void WindowIndex::Clear() {
  long_forms_.clear();
  long_tags_.clear();
  short_forms_.Clear();
  table_.reset();
  windows_ = 0;
  bytes_ = 0;
  built_ = false;
}

absl::Status WindowIndex::Build() {
  table_.reset();
  built_ = true;
  if (windows_ == 0) return absl::OkStatus();
  slot_bits_ = 10;
  while ((uint64_t{1} << slot_bits_) < 2 * windows_) ++slot_bits_;
  const size_t stride = keep_tags_ ? 2 : 1;
  auto table = sandbox::SecretBuffer::Create((size_t{1} << slot_bits_) * stride * 4);
  if (!table.ok()) {
    built_ = false;
    return absl::ResourceExhaustedError("window index: locked arena cannot hold the table");
  }
  auto* slots = reinterpret_cast<uint32_t*>(table->RevealMutable().data());
  std::memset(slots, 0, table->size());
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

absl::Status WindowIndex::Search(std::span<const uint8_t> data, const OnHit& on_hit) {
  if (empty() || data.empty()) return absl::OkStatus();
  if (!built_) {
    if (absl::Status st = Build(); !st.ok()) return st;
  }
  if (absl::Status st = short_forms_.Search(data, on_hit); !st.ok()) return st;
  if (!table_ || data.size() < window_) return absl::OkStatus();
  const size_t stride = keep_tags_ ? 2 : 1;
  const auto* slots = reinterpret_cast<const uint32_t*>(table_->Reveal().data());
  const uint64_t mask = (uint64_t{1} << slot_bits_) - 1;
  const size_t positions = data.size() - window_ + 1;
  Roller roll(data, window_);
  uint64_t hashes[kBlock];
  for (size_t base = 0; base < positions; base += kBlock) {
    const size_t n = std::min(kBlock, positions - base);
    for (size_t k = 0; k < n; ++k) {
      if (base + k > 0) roll.Next(base + k - 1);
      hashes[k] = roll.hash();
      __builtin_prefetch(slots + ((hashes[k] * kMix) >> (64 - slot_bits_)) * stride);
    }
    for (size_t k = 0; k < n; ++k) {
      const uint32_t check = Check(hashes[k]);
      for (uint64_t s = (hashes[k] * kMix) >> (64 - slot_bits_);; s = (s + 1) & mask) {
        const uint32_t* slot = slots + s * stride;
        if (slot[0] == 0) break;
        if (slot[0] == check) {
          on_hit(keep_tags_ ? slot[1] : kUntagged, base + k, base + k + window_);
          break;
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace vigo
