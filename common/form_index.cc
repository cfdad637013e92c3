#include "common/form_index.h"

#include <cstring>
#include <utility>

namespace vigo {
namespace {

constexpr size_t kBucketBits = 12;
constexpr size_t kBuckets = size_t{1} << kBucketBits;
constexpr uint32_t kNil = 0xffffffffu;

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
uint32_t Get32(std::span<const uint8_t> buf, size_t index) {
  return Load32(buf.data() + index * 4);
}
void Put32(std::span<uint8_t> buf, size_t index, uint32_t v) {
  std::memcpy(buf.data() + index * 4, &v, sizeof(v));
}
size_t Bucket(uint32_t key) { return (key * 2654435761u) >> (32 - kBucketBits); }

}  // namespace

void FormBatch::Add(sandbox::SecretBuffer form, uint32_t tag) {
  if (form.empty()) return;
  bytes_ += form.size();
  forms_.push_back(std::move(form));
  tags_.push_back(tag);
  indexed_ = false;
}

void FormBatch::Clear() {
  forms_.clear();
  tags_.clear();
  short_forms_.clear();
  heads_.reset();
  next_.reset();
  bytes_ = 0;
  indexed_ = false;
}

absl::Status FormBatch::BuildIndex() {
  auto heads = sandbox::SecretBuffer::Create(kBuckets * 4);
  auto next = sandbox::SecretBuffer::Create(forms_.size() * 4);
  if (!heads.ok() || !next.ok()) {
    return absl::ResourceExhaustedError("form index: locked arena cannot hold the index");
  }
  std::span<uint8_t> h = heads->RevealMutable();
  std::memset(h.data(), 0xff, h.size());
  short_forms_.clear();
  for (size_t f = 0; f < forms_.size(); ++f) {
    std::span<const uint8_t> fb = forms_[f].Reveal();
    if (fb.size() < 4) {
      short_forms_.push_back(static_cast<uint32_t>(f));
      continue;
    }
    const size_t b = Bucket(Load32(fb.data()));
    Put32(next->RevealMutable(), f, Get32(h, b));
    Put32(h, b, static_cast<uint32_t>(f));
  }
  heads_ = std::move(*heads);
  next_ = std::move(*next);
  indexed_ = true;
  return absl::OkStatus();
}

absl::Status FormBatch::Search(std::span<const uint8_t> data, const OnHit& on_hit) {
  if (forms_.empty() || data.empty()) return absl::OkStatus();
  if (!indexed_) {
    absl::Status st = BuildIndex();
    if (!st.ok()) return st;
  }
  std::span<const uint8_t> h = heads_->Reveal();
  std::span<const uint8_t> nx = next_->Reveal();
  for (size_t i = 0; i + 4 <= data.size(); ++i) {
    for (uint32_t f = Get32(h, Bucket(Load32(data.data() + i))); f != kNil; f = Get32(nx, f)) {
      std::span<const uint8_t> fb = forms_[f].Reveal();
      if (fb.size() <= data.size() - i && std::memcmp(data.data() + i, fb.data(), fb.size()) == 0) {
        on_hit(tags_[f], i, i + fb.size());
      }
    }
  }
  for (uint32_t f : short_forms_) {
    std::span<const uint8_t> fb = forms_[f].Reveal();
    for (size_t i = 0; i + fb.size() <= data.size(); ++i) {
      if (std::memcmp(data.data() + i, fb.data(), fb.size()) == 0)
        on_hit(tags_[f], i, i + fb.size());
    }
  }
  return absl::OkStatus();
}

}  // namespace vigo
