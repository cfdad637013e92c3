#include "agent-worker/scrub.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/decode_views.h"
#include "common/secret_forms.h"
#include "common/utf8_text.h"
#include "common/window_index.h"
#include "vocab/hex.h"

namespace vigo::worker {
namespace {

using sandbox::SecretBuffer;
using Bytes = std::span<const uint8_t>;

constexpr size_t kMinFragment = 4;
// Longest partial escape a cut can leave at a view's edge: a surrogate pair
// "\uD83D\uDE00" (12) minus one character.
constexpr size_t kMaxEscapeJunk = 12;
// The interior check (output entirely inside a longer form) needs this many
// bytes after trimming, so that chance matches in long forms are negligible.
constexpr size_t kMinInteriorNeedle = 16;
constexpr uint64_t kHashBase = 0x100000001b3ull;  // odd: invertible mod 2^64

absl::Status ArenaFull() {
  return absl::ResourceExhaustedError("scrub: locked arena cannot hold the scrubbing state");
}

// Characters a partial escape left at a view's edge can consist of.
bool EscapeJunk(uint8_t c) {
  return vocab::HexDigitValue(c) >= 0 || c == 'u' || c == 'U' || c == 'x' || c == 'X' ||
         c == '\\' || c == '%';
}

// ---------------------------------------------------------------------------
// Which bytes of the original output are redacted.

class Coverage {
 public:
  explicit Coverage(size_t n) : n_(n) {}
  void Cover(size_t a, size_t b) {
    b = std::min(b, n_);
    if (a >= b) return;
    // Hits of one view arrive in order: most extend the last range.
    if (!runs_.empty() && a >= runs_.back().first && a <= runs_.back().second) {
      runs_.back().second = std::max(runs_.back().second, b);
      return;
    }
    runs_.emplace_back(a, b);
  }
  void CoverAll() { all_ = true; }
  bool all() const { return all_; }

  // Each maximal covered run (overlapping or touching hits merged) becomes
  // one kRedacted. Hits are few next to the output, so they are kept as
  // ranges, not as a per-byte map.
  std::string Render(Bytes output, size_t* runs) {
    *runs = 0;
    if (all_) {
      *runs = 1;
      return std::string(kRedacted);
    }
    std::sort(runs_.begin(), runs_.end());
    std::string out;
    out.reserve(output.size());
    size_t at = 0;  // first byte not yet copied or covered
    for (size_t k = 0; k < runs_.size();) {
      const size_t a = runs_[k].first;
      size_t b = runs_[k].second;
      for (++k; k < runs_.size() && runs_[k].first <= b; ++k) b = std::max(b, runs_[k].second);
      // Merged runs are disjoint and sorted: a > at from the second on.
      out.append(reinterpret_cast<const char*>(output.data()) + at, a - at);
      out.append(kRedacted);
      ++*runs;
      at = b;
    }
    out.append(reinterpret_cast<const char*>(output.data()) + at, output.size() - at);
    return out;
  }

 private:
  size_t n_;
  std::vector<std::pair<size_t, size_t>> runs_;
  bool all_ = false;
};

// A hit [a, b) in a view covers the original bytes it was decoded from.
void CoverView(const DecodeView& view, size_t a, size_t b, Coverage* c) {
  if (a >= b) return;
  c->Cover(view.OriginalBegin(a), view.OriginalEnd(b));
}

// ---------------------------------------------------------------------------
// Edges and interior.

// Offsets a cut escape may have left at the start / end of a decoded view.
std::vector<size_t> StartSkips(const DecodeView& view, Bytes d) {
  std::vector<size_t> skips = {0};
  if (!view.decoded()) return skips;
  for (size_t k = 1; k <= std::min(kMaxEscapeJunk, d.size()) && EscapeJunk(d[k - 1]); ++k) {
    skips.push_back(k);
  }
  return skips;
}
std::vector<size_t> EndSkips(const DecodeView& view, Bytes d) {
  std::vector<size_t> skips = {0};
  if (!view.decoded()) return skips;
  for (size_t k = 1; k <= std::min(kMaxEscapeJunk, d.size()); ++k) {
    uint8_t c = d[d.size() - k];
    if (!EscapeJunk(c)) break;
    if (c == '\\' || c == '%') skips.push_back(k);
  }
  return skips;
}

// Longest len >= kMinFragment such that the last len bytes of `v` are the
// first len bytes of `f`; 0 if none. Rolling hashes, verified by memcmp.
size_t PrefixOfFormAtEndHashed(Bytes f, Bytes v) {
  const size_t limit = std::min(f.size(), v.size());
  uint64_t hf = 0, hv = 0, pw = 1;
  size_t best = 0;
  for (size_t len = 1; len <= limit; ++len) {
    hf = hf * kHashBase + f[len - 1];
    hv = hv + v[v.size() - len] * pw;
    pw *= kHashBase;
    if (len >= kMinFragment && hf == hv &&
        std::memcmp(f.data(), v.data() + v.size() - len, len) == 0) {
      best = len;
    }
  }
  return best;
}

// Longest len >= kMinFragment such that the first len bytes of `v` are the
// last len bytes of `f`; 0 if none.
size_t SuffixOfFormAtStartHashed(Bytes f, Bytes v) {
  const size_t limit = std::min(f.size(), v.size());
  uint64_t hf = 0, hv = 0, pw = 1;
  size_t best = 0;
  for (size_t len = 1; len <= limit; ++len) {
    hf = hf + f[f.size() - len] * pw;
    hv = hv * kHashBase + v[len - 1];
    pw *= kHashBase;
    if (len >= kMinFragment && hf == hv &&
        std::memcmp(f.data() + f.size() - len, v.data(), len) == 0) {
      best = len;
    }
  }
  return best;
}

// The same answers, faster where matches are rare (the usual case): the
// lengths whose last bytes agree are found with memchr, and one is compared
// only when its first bytes agree too. Past a few such
// candidates (low-entropy text and forms) the hashed scan takes over, so the
// cost stays linear.
constexpr size_t kMaxEdgeCandidates = 8;

size_t PrefixOfFormAtEnd(Bytes f, Bytes v) {
  const size_t limit = std::min(f.size(), v.size());
  if (limit < kMinFragment) return 0;
  const uint8_t* end = v.data() + v.size();
  const uint8_t first = f[0], last = end[-1];
  size_t best = 0, candidates = 0;
  // Lengths whose last form byte is the view's last byte, found by memchr.
  const uint8_t* p = f.data() + kMinFragment - 1;
  const uint8_t* stop = f.data() + limit;
  while (p < stop && (p = static_cast<const uint8_t*>(std::memchr(p, last, stop - p))) != nullptr) {
    const size_t len = static_cast<size_t>(p - f.data()) + 1;
    ++p;
    if (*(end - len) != first) continue;
    if (++candidates > kMaxEdgeCandidates) return PrefixOfFormAtEndHashed(f, v);
    if (std::memcmp(f.data(), end - len, len) == 0) best = len;
  }
  return best;
}

size_t SuffixOfFormAtStart(Bytes f, Bytes v) {
  const size_t limit = std::min(f.size(), v.size());
  if (limit < kMinFragment) return 0;
  const uint8_t* fend = f.data() + f.size();
  const uint8_t first = v[0], last = fend[-1];
  size_t best = 0, candidates = 0;
  // Lengths whose last view byte is the form's last byte, found by memchr.
  const uint8_t* p = v.data() + kMinFragment - 1;
  const uint8_t* stop = v.data() + limit;
  while (p < stop && (p = static_cast<const uint8_t*>(std::memchr(p, last, stop - p))) != nullptr) {
    const size_t len = static_cast<size_t>(p - v.data()) + 1;
    ++p;
    if (*(fend - len) != first) continue;
    if (++candidates > kMaxEdgeCandidates) return SuffixOfFormAtStartHashed(f, v);
    if (std::memcmp(fend - len, v.data(), len) == 0) best = len;
  }
  return best;
}

// A view with the offsets a cut escape may have left at its edges, computed
// once per scrub rather than once per form.
struct ViewEdges {
  explicit ViewEdges(const DecodeView& v)
      : view(&v), start_skips(StartSkips(v, v.Data())), end_skips(EndSkips(v, v.Data())) {}
  const DecodeView* view;
  std::vector<size_t> start_skips, end_skips;
};

// A form cut off by either end of the view, or covering the whole view.
void CheckEdges(Bytes f, const ViewEdges& edges, Coverage* cov) {
  const DecodeView& view = *edges.view;
  Bytes d = view.Data();
  if (d.empty() || f.size() < kMinFragment) return;
  for (size_t skip : edges.end_skips) {
    size_t len = PrefixOfFormAtEnd(f, d.first(d.size() - skip));
    if (len > 0) CoverView(view, d.size() - skip - len, d.size(), cov);
  }
  for (size_t skip : edges.start_skips) {
    size_t len = SuffixOfFormAtStart(f, d.subspan(skip));
    if (len > 0) CoverView(view, 0, skip + len, cov);
  }
  // The view is an interior slice of a longer form: nothing anchors it to an
  // edge of the form, so the whole output goes.
  const size_t trim = view.decoded() ? kMaxEscapeJunk : 0;
  if (d.size() >= 2 * trim + kMinInteriorNeedle) {
    Bytes needle = d.subspan(trim, d.size() - 2 * trim);
    if (f.size() > needle.size() &&
        ::memmem(f.data(), f.size(), needle.data(), needle.size()) != nullptr) {
      cov->CoverAll();
    }
  }
}

// ---------------------------------------------------------------------------
// Whole forms and windows of forms: a batch of forms searched in one pass per
// view (common/window_index.h).

absl::Status ScanBatch(WindowIndex* index, const std::vector<DecodeView>& views, Coverage* cov) {
  for (const DecodeView& view : views) {
    absl::Status st = index->Search(
        view.Data(), [&](uint32_t, size_t a, size_t b) { CoverView(view, a, b, cov); });
    if (!st.ok()) return ArenaFull();
  }
  index->Clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Scrub(Bytes output, const std::vector<const SecretBuffer*>& values,
                                  size_t window, size_t* runs) {
  *runs = 0;
  absl::StatusOr<std::vector<DecodeView>> built = BuildDecodeViews(output);
  if (!built.ok()) return built.status();
  const std::vector<DecodeView>& views = *built;

  Coverage cov(output.size());
  std::vector<ViewEdges> edges(views.begin(), views.end());
  WindowIndex index(window);
  const FormSink sink = [&](FormKind, SecretBuffer form) -> absl::Status {
    for (const ViewEdges& e : edges) CheckEdges(form.Reveal(), e, &cov);
    // Every form goes in: a form longer than the output still has windows
    // the output may hold (a slice of a long value).
    return index.Add(std::move(form), 0, [&] { return ScanBatch(&index, views, &cov); });
  };
  for (const SecretBuffer* v : values) {
    if (v == nullptr || v->empty()) continue;
    if (absl::Status st = ForEachForm(v->Reveal(), sink); !st.ok()) return ArenaFull();
    if (cov.all()) {
      *runs = 1;
      return std::string(kRedacted);
    }
  }
  if (absl::Status st = ScanBatch(&index, views, &cov); !st.ok()) return st;
  return cov.Render(output, runs);
}

}  // namespace

std::string ScrubOutput(std::span<const uint8_t> output,
                        const std::vector<const SecretBuffer*>& values, size_t* redactions,
                        size_t window) {
  size_t runs = 0;
  if (redactions != nullptr) *redactions = 0;
  if (output.empty()) return std::string();
  absl::StatusOr<std::string> out = Scrub(output, values, window, &runs);
  // Fail closed: an output that could not be checked against every form of
  // every value is not returned at all.
  if (!out.ok()) return std::string(kWithheld);
  if (redactions != nullptr) *redactions = runs;
  return *std::move(out);
}

std::string ScrubOutputAsText(std::span<const uint8_t> output,
                              const std::vector<const sandbox::SecretBuffer*>& values,
                              size_t* redactions, size_t window) {
  size_t first = 0, second = 0;
  std::string scrubbed = ScrubOutput(output, values, &first, window);
  if (redactions != nullptr) *redactions = first;
  std::string text = EscapeInvalidUtf8(scrubbed);
  if (text == scrubbed) return text;  // valid UTF-8, no backslash doubled: nothing new to see
  // The escaping spelled bytes as text ("caf\xe9"), which could spell a
  // value that holds such text; the raw pass could not see that form.
  text = ScrubOutput(TextBytes(text), values, &second, window);
  if (redactions != nullptr) *redactions = first + second;
  // A redaction edge inside a multi-byte character leaves a stray byte.
  return ValidUtf8Text(text);
}

}  // namespace vigo::worker
