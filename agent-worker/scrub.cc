#include "agent-worker/scrub.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/decode_views.h"
#include "common/form_index.h"
#include "common/utf8_text.h"

namespace vigo::worker {
namespace {

using sandbox::SecretBuffer;
using Bytes = std::span<const uint8_t>;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr size_t kMinFragment = 4;
// Longest partial escape a cut can leave at a view's edge: a surrogate pair
// "\uD83D\uDE00" (12) minus one character.
constexpr size_t kMaxEscapeJunk = 12;
// The interior check (output entirely inside a longer form) needs this many
// bytes after trimming, so that chance matches in long forms are negligible.
constexpr size_t kMinInteriorNeedle = 16;
constexpr size_t kBatchBytes = size_t{1} << 20;
constexpr uint64_t kHashBase = 0x100000001b3ull;  // odd: invertible mod 2^64

absl::Status ArenaFull() {
  return absl::ResourceExhaustedError("scrub: locked arena cannot hold the scrubbing state");
}

// Characters a partial escape left at a view's edge can consist of.
bool EscapeJunk(uint8_t c) {
  return HexDigitValue(c) >= 0 || c == 'u' || c == 'U' || c == 'x' || c == 'X' || c == '\\' ||
         c == '%';
}

// ---------------------------------------------------------------------------
// Which bytes of the original output are redacted.

class Coverage {
 public:
  explicit Coverage(size_t n) : diff_(n + 1, 0) {}
  void Cover(size_t a, size_t b) {
    if (a >= b) return;
    ++diff_[a];
    --diff_[b];
  }
  void CoverAll() { all_ = true; }
  bool all() const { return all_; }

  // Each maximal covered run becomes one kRedacted.
  std::string Render(Bytes output, size_t* runs) const {
    *runs = 0;
    if (all_) {
      *runs = 1;
      return std::string(kRedacted);
    }
    std::string out;
    out.reserve(output.size());
    int64_t depth = 0;
    bool in_run = false;
    for (size_t i = 0; i < output.size(); ++i) {
      depth += diff_[i];
      if (depth > 0) {
        if (!in_run) {
          out.append(kRedacted);
          ++*runs;
        }
        in_run = true;
      } else {
        in_run = false;
        out.push_back(static_cast<char>(output[i]));
      }
    }
    return out;
  }

 private:
  std::vector<int32_t> diff_;
  bool all_ = false;
};

// A hit [a, b) in a view covers the original bytes it was decoded from.
void CoverView(const DecodeView& view, size_t a, size_t b, Coverage* c) {
  if (a >= b) return;
  c->Cover(view.OriginalBegin(a), view.OriginalEnd(b));
}

// ---------------------------------------------------------------------------
// Forms of one value.

using FormSink = std::function<void(SecretBuffer form)>;

absl::Status EmitCopy(Bytes v, const FormSink& sink) {
  auto buf = SecretBuffer::CopyFrom(v);
  if (!buf.ok()) return ArenaFull();
  sink(std::move(*buf));
  return absl::OkStatus();
}

absl::Status EmitHex(Bytes v, bool upper, const FormSink& sink) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  auto buf = SecretBuffer::Create(v.size() * 2);
  if (!buf.ok()) return ArenaFull();
  std::span<uint8_t> out = buf->RevealMutable();
  for (size_t i = 0; i < v.size(); ++i) {
    out[2 * i] = static_cast<uint8_t>(digits[v[i] >> 4]);
    out[2 * i + 1] = static_cast<uint8_t>(digits[v[i] & 15]);
  }
  sink(std::move(*buf));
  return absl::OkStatus();
}

// Base64 of `v` as it appears inside a longer stream where `shift` (0..2)
// unknown bytes precede it: only the characters that depend on v's bits alone.
absl::Status EmitBase64(Bytes v, size_t shift, bool url, const FormSink& sink) {
  const size_t total = shift + v.size();
  const size_t groups = (total + 2) / 3;
  size_t first_char = (shift * 8 + 5) / 6;   // first char with only v's bits
  const size_t last_char = (total * 8) / 6;  // chars [first, last) fully inside
  if (shift == 0) first_char = 0;
  if (last_char <= first_char) return absl::OkStatus();
  const size_t len = last_char - first_char;
  if (len < kMinFragment && !(shift == 0 && v.size() < 3)) return absl::OkStatus();
  auto in = SecretBuffer::Create(groups * 3);
  auto full = SecretBuffer::Create(groups * 4);
  auto form = SecretBuffer::Create(len);
  if (!in.ok() || !full.ok() || !form.ok()) return ArenaFull();
  std::span<uint8_t> src = in->RevealMutable();
  std::copy(v.begin(), v.end(), src.begin() + static_cast<ptrdiff_t>(shift));
  std::span<uint8_t> dst = full->RevealMutable();
  for (size_t g = 0; g < groups; ++g) {
    uint32_t n = (uint32_t{src[3 * g]} << 16) | (uint32_t{src[3 * g + 1]} << 8) | src[3 * g + 2];
    for (size_t k = 0; k < 4; ++k) {
      char c = kB64[(n >> (18 - 6 * k)) & 63];
      if (url && c == '+') c = '-';
      if (url && c == '/') c = '_';
      dst[4 * g + k] = static_cast<uint8_t>(c);
    }
  }
  std::copy(dst.begin() + static_cast<ptrdiff_t>(first_char),
            dst.begin() + static_cast<ptrdiff_t>(last_char), form->RevealMutable().begin());
  sink(std::move(*form));
  return absl::OkStatus();
}

// Raw, lower/upper hex, base64 (both alphabets, three alignments). The
// escaped forms (URL, JSON, C) are found through the decoding views.
absl::Status EmitForms(Bytes v, const FormSink& sink) {
  absl::Status st = EmitCopy(v, sink);
  if (st.ok()) st = EmitHex(v, false, sink);
  if (st.ok()) st = EmitHex(v, true, sink);
  for (size_t shift = 0; shift < 3 && st.ok(); ++shift) {
    st = EmitBase64(v, shift, false, sink);
    if (st.ok()) st = EmitBase64(v, shift, true, sink);
  }
  return st;
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
size_t PrefixOfFormAtEnd(Bytes f, Bytes v) {
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
size_t SuffixOfFormAtStart(Bytes f, Bytes v) {
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

// A form cut off by either end of the view, or covering the whole view.
void CheckEdges(Bytes f, const DecodeView& view, Coverage* cov) {
  Bytes d = view.Data();
  if (d.empty() || f.size() < kMinFragment) return;
  for (size_t skip : EndSkips(view, d)) {
    size_t len = PrefixOfFormAtEnd(f, d.first(d.size() - skip));
    if (len > 0) CoverView(view, d.size() - skip - len, d.size(), cov);
  }
  for (size_t skip : StartSkips(view, d)) {
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
// Whole-form matches: a batch of forms searched in one pass per view
// (common/form_index.h).

absl::Status ScanBatch(FormBatch* batch, const std::vector<DecodeView>& views, Coverage* cov) {
  for (const DecodeView& view : views) {
    absl::Status st = batch->Search(
        view.Data(), [&](uint32_t, size_t a, size_t b) { CoverView(view, a, b, cov); });
    if (!st.ok()) return ArenaFull();
  }
  batch->Clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Scrub(Bytes output, const std::vector<const SecretBuffer*>& values,
                                  size_t* runs) {
  *runs = 0;
  absl::StatusOr<std::vector<DecodeView>> built = BuildDecodeViews(output);
  if (!built.ok()) return built.status();
  const std::vector<DecodeView>& views = *built;

  Coverage cov(output.size());
  FormBatch batch;
  absl::Status scan_status;
  const FormSink sink = [&](SecretBuffer form) {
    for (const DecodeView& view : views) CheckEdges(form.Reveal(), view, &cov);
    // A form longer than the output can only be cut by its edges or cover
    // all of it (checked above); shorter ones are matched whole.
    if (form.size() <= output.size()) batch.Add(std::move(form), 0);
    if (batch.bytes() >= kBatchBytes && scan_status.ok()) {
      scan_status = ScanBatch(&batch, views, &cov);
    }
  };
  for (const SecretBuffer* v : values) {
    if (v == nullptr || v->empty()) continue;
    absl::Status st = EmitForms(v->Reveal(), sink);
    if (!st.ok()) return st;
    if (!scan_status.ok()) return scan_status;
    if (cov.all()) {
      *runs = 1;
      return std::string(kRedacted);
    }
  }
  absl::Status st = ScanBatch(&batch, views, &cov);
  if (!st.ok()) return st;
  return cov.Render(output, runs);
}

}  // namespace

std::string ScrubOutput(std::span<const uint8_t> output,
                        const std::vector<const SecretBuffer*>& values, size_t* redactions) {
  size_t runs = 0;
  if (redactions != nullptr) *redactions = 0;
  if (output.empty()) return std::string();
  absl::StatusOr<std::string> out = Scrub(output, values, &runs);
  // Fail closed: an output that could not be checked against every form of
  // every value is not returned at all.
  if (!out.ok()) return std::string(kWithheld);
  if (redactions != nullptr) *redactions = runs;
  return *std::move(out);
}

std::string ScrubOutputAsText(std::span<const uint8_t> output,
                              const std::vector<const sandbox::SecretBuffer*>& values,
                              size_t* redactions) {
  size_t first = 0, second = 0;
  std::string scrubbed = ScrubOutput(output, values, &first);
  if (redactions != nullptr) *redactions = first;
  std::string text = EscapeInvalidUtf8(scrubbed);
  if (text == scrubbed) return text;  // valid UTF-8, no backslash doubled: nothing new to see
  // The escaping spelled bytes as text ("caf\xe9"), which could spell a
  // value that holds such text; the raw pass could not see that form.
  text = ScrubOutput(TextBytes(text), values, &second);
  if (redactions != nullptr) *redactions = first + second;
  // A redaction edge inside a multi-byte character leaves a stray byte.
  return ValidUtf8Text(text);
}

}  // namespace vigo::worker
