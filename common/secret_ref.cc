#include "common/secret_ref.h"

#include <cstring>
#include <utility>

#include "common/strings.h"
#include "vocab/hex.h"

namespace vigo {
namespace {

// Longest path echoed back in an error message; longer ones are cut.
constexpr size_t kMaxEchoedPath = 80;

bool IsSegmentChar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool IsPathChar(unsigned char c) { return IsSegmentChar(c) || c == '/'; }

// The path quoted for an error message: printable ASCII as is, everything
// else as \xNN, cut at kMaxEchoedPath bytes. A path is a name, not a secret.
std::string Quote(std::string_view path) {
  std::string out = "'";
  const size_t n = std::min(path.size(), kMaxEchoedPath);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      StrAppend(&out, "\\x", vocab::kLowerHexDigits[c >> 4], vocab::kLowerHexDigits[c & 0xf]);
    }
  }
  if (n < path.size()) out.append("...");
  out.push_back('\'');
  return out;
}

absl::Status PathError(std::string_view path, const std::string& problem) {
  return absl::InvalidArgumentError(StrCat(problem, " (path ", Quote(path), ")"));
}

absl::Status MarkerError(size_t offset, const std::string& problem) {
  return absl::InvalidArgumentError(
      StrCat("malformed secret marker at byte ", offset, ": ", problem));
}

// Length of the run of path characters starting at `pos`.
size_t PathRun(std::string_view s, size_t pos) {
  size_t end = pos;
  while (end < s.size() && IsPathChar(static_cast<unsigned char>(s[end]))) ++end;
  return end - pos;
}

}  // namespace

absl::Status ValidateSecretPath(std::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("secret path is empty");
  if (path.size() > kMaxSecretPathLen) {
    return PathError(
        path, StrCat("secret path is ", path.size(), " bytes; the limit is ", kMaxSecretPathLen));
  }
  for (size_t i = 0; i < path.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == 0) return PathError(path, StrCat("secret path has a NUL byte at byte ", i));
    if (c >= 0x80) return PathError(path, StrCat("secret path has a non-ASCII byte at byte ", i));
    if (!IsPathChar(c)) {
      return PathError(path, StrCat("secret path has a character that is not allowed at byte ", i,
                                    " (allowed: A-Z a-z 0-9 _ . - and / between segments)"));
    }
  }
  if (path.front() == '/') return PathError(path, "secret path starts with '/'");
  if (path.back() == '/') return PathError(path, "secret path ends with '/'");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment.empty()) {
      return PathError(path, StrCat("secret path has an empty segment ('//') at byte ", start));
    }
    if (segment == "." || segment == "..") {
      return PathError(path, StrCat("secret path segment '", segment, "' is not allowed"));
    }
    start = end + 1;
  }
  // Markers are delimited by "__" on both sides ("__VIGO_SECRET__", "__END__");
  // a path without "__" makes every marker decode to exactly one path.
  if (size_t dd = path.find("__"); dd != std::string_view::npos) {
    return PathError(path, StrCat("secret path has '__' (two underscores) at byte ", dd,
                                  "; it is reserved for secret markers"));
  }
  return absl::OkStatus();
}

std::string MarkerFor(std::string_view path) { return StrCat(kMarkerPrefix, path, kMarkerSuffix); }

absl::StatusOr<std::vector<RefMatch>> FindReferences(std::string_view value, RefScan mode) {
  std::vector<RefMatch> out;
  if (mode == RefScan::kWholeValue) {
    if (value.substr(0, kRefPrefix.size()) != kRefPrefix) return out;
    std::string_view path = value.substr(kRefPrefix.size());
    // "secret:" followed by something that cannot start a path (or nothing)
    // is ordinary text, as in embedded mode.
    if (path.empty() || !IsPathChar(static_cast<unsigned char>(path.front()))) return out;
    absl::Status st = ValidateSecretPath(path);
    if (!st.ok()) return st;
    out.push_back({0, value.size(), std::string(path)});
    return out;
  }
  size_t pos = 0;
  while ((pos = value.find(kRefPrefix, pos)) != std::string_view::npos) {
    // Word boundary: "client_secret:" or "mysecret:" is not a reference.
    if (pos > 0 && IsPathChar(static_cast<unsigned char>(value[pos - 1]))) {
      pos += 1;
      continue;
    }
    const size_t path_start = pos + kRefPrefix.size();
    const size_t len = PathRun(value, path_start);
    if (len == 0) {  // "secret: x" is text
      pos = path_start;
      continue;
    }
    std::string_view path = value.substr(path_start, len);
    absl::Status st = ValidateSecretPath(path);
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          StrCat("invalid secret reference at byte ", pos, ": ", st.message()));
    }
    out.push_back({pos, kRefPrefix.size() + len, std::string(path)});
    pos = path_start + len;
  }
  return out;
}

absl::StatusOr<std::string> ReplaceReferencesWithMarkers(std::string_view value, RefScan mode) {
  absl::StatusOr<std::vector<RefMatch>> refs = FindReferences(value, mode);
  if (!refs.ok()) return refs.status();
  std::string out;
  size_t pos = 0;
  for (const RefMatch& r : *refs) {
    out.append(value.substr(pos, r.offset - pos));
    out.append(MarkerFor(r.path));
    pos = r.offset + r.length;
  }
  out.append(value.substr(pos));
  return out;
}

absl::StatusOr<std::vector<MarkerMatch>> FindMarkers(std::string_view text) {
  std::vector<MarkerMatch> out;
  size_t covered_until = 0;  // end of the last marker accepted
  size_t pos = 0;
  // Every occurrence of the prefix, overlapping ones included: an occurrence
  // that starts inside an accepted marker means two readings of the same
  // bytes, which is refused rather than guessed.
  while ((pos = text.find(kMarkerPrefix, pos)) != std::string_view::npos) {
    if (pos < covered_until) {
      return MarkerError(pos, "marker prefix overlaps the previous marker");
    }
    const size_t path_start = pos + kMarkerPrefix.size();
    size_t end = path_start;
    // The path runs to the first "__" (paths never contain one).
    while (end < text.size() && IsPathChar(static_cast<unsigned char>(text[end])) &&
           text.substr(end, 2) != "__") {
      ++end;
    }
    // A path may end in '_' (e.g. "a_"): then the first "__" is that '_' plus
    // the suffix's first '_', and the suffix starts one byte later.
    if (text.substr(end, kMarkerSuffix.size()) != kMarkerSuffix && text.substr(end, 1) == "_" &&
        text.substr(end + 1, kMarkerSuffix.size()) == kMarkerSuffix) {
      ++end;
    }
    if (text.substr(end, kMarkerSuffix.size()) != kMarkerSuffix) {
      return MarkerError(pos, "no '__END__' after the marker path");
    }
    std::string_view path = text.substr(path_start, end - path_start);
    absl::Status st = ValidateSecretPath(path);
    if (!st.ok()) return MarkerError(pos, std::string(st.message()));
    const size_t length = end + kMarkerSuffix.size() - pos;
    out.push_back({pos, length, std::string(path)});
    covered_until = pos + length;
    pos += 1;
  }
  return out;
}

bool ContainsMarkerText(std::string_view text) {
  return text.find(kMarkerPrefix) != std::string_view::npos;
}

absl::StatusOr<sandbox::SecretBuffer> SubstituteMarkers(std::string_view text,
                                                        const SecretLookup& lookup) {
  absl::StatusOr<std::vector<MarkerMatch>> markers = FindMarkers(text);
  if (!markers.ok()) return markers.status();
  // Pass 1: look every value up once and size the output.
  std::vector<const sandbox::SecretBuffer*> values;
  values.reserve(markers->size());
  size_t total = text.size();
  for (const MarkerMatch& m : *markers) {
    absl::StatusOr<const sandbox::SecretBuffer*> v = lookup(m.path);
    if (!v.ok()) return v.status();
    if (*v == nullptr) {
      return absl::InternalError(StrCat("secret lookup returned no value for ", m.path));
    }
    values.push_back(*v);
    total = total - m.length + (*v)->size();
  }
  // Pass 2: fill the locked buffer directly.
  absl::StatusOr<sandbox::SecretBuffer> out = sandbox::SecretBuffer::Create(total);
  if (!out.ok()) return out.status();
  std::span<uint8_t> dst = out->RevealMutable();
  size_t w = 0;
  size_t pos = 0;
  auto put = [&](const void* src, size_t n) {
    if (n > 0) std::memcpy(dst.data() + w, src, n);
    w += n;
  };
  for (size_t i = 0; i < markers->size(); ++i) {
    const MarkerMatch& m = (*markers)[i];
    put(text.data() + pos, m.offset - pos);
    std::span<const uint8_t> value = values[i]->Reveal();
    put(value.data(), value.size());
    pos = m.offset + m.length;
  }
  put(text.data() + pos, text.size() - pos);
  return out;
}

}  // namespace vigo
