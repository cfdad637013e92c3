// A leak hunter for the window rule of issue 15, written independently of
// common/secret_forms.cc, common/window_index.cc and common/decode_views.cc:
// finds, in any sink, a run of kWindow (12) consecutive characters of any
// form of any value (raw, reversed, without whitespace, lower/upper hex,
// base64 and base64url at 3 alignments, base32 at 5 alignments), looking at
// each sink through its own decoding views (whitespace removed, line breaks
// removed, JSON string escapes, C escapes such as the agent's \xHH, URL
// escapes, `od -c` dumps decoded back to bytes, and JSON then C escapes).
//
//   WindowSet set;
//   set.AddValue(value);                 // any size; 1 MiB is fine
//   set.Build();
//   std::vector<std::string> hits = FindWindowsIn(blob, "server.log", set);
//   std::vector<std::string> more = FindWindowsUnder(dir, set);
//
// How: a 64-bit hash of every window of every form, sorted, with a 2^20
// bucket directory; a sink is hashed at every position of every view, and a
// hash hit is confirmed by an exact search in the forms (so a hash collision
// cannot report a leak that is not there). A value of 1 MiB has ~22 M
// windows: ~180 MB of hashes, built in about a second.
//
// Test code only: values pass through std::string here, which is fine for
// test values and nothing else. A hit reports the sink, the view, the offset
// and the form, and the 12 characters in hex.
#ifndef VIGO_TESTS_SUPPORT_WINDOW_SCAN_H_
#define VIGO_TESTS_SUPPORT_WINDOW_SCAN_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "tests/support/encodings.h"
#include "tests/support/test_env.h"

namespace vigo::testing::windows {

inline constexpr size_t kWindow = 12;

// RFC 4648 §6, upper case, padded.
inline std::string Base32(std::string_view s) {
  static const char* kAbc = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint64_t acc = 0;
  int have = 0;
  for (unsigned char c : s) {
    acc = (acc << 8) | c;
    have += 8;
    while (have >= 5) {
      have -= 5;
      out.push_back(kAbc[(acc >> have) & 31]);
    }
    acc &= (uint64_t{1} << have) - 1;
  }
  if (have > 0) out.push_back(kAbc[(acc << (5 - have)) & 31]);
  while (out.size() % 8 != 0) out.push_back('=');
  return out;
}

// The characters of the encoding of `shift` zero bytes followed by `v` that
// carry bits of `v` only (the first ones after a partial character are
// dropped), up to and including the last, zero-padded character a stream
// ending with `v` would have: what any stream holding `v` after shift mod
// group bytes shows of it.
inline std::string RadixCore(std::string_view v, size_t shift, size_t bits, bool base32,
                             bool url = false) {
  std::string padded(shift, '\0');
  padded.append(v);
  std::string all = base32 ? Base32(padded) : enc::Base64(padded, url);
  while (!all.empty() && all.back() == '=') all.pop_back();
  const size_t first = (shift * 8 + bits - 1) / bits;
  return first < all.size() ? all.substr(first) : std::string();
}

inline bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Every form of `v` a window may be taken from, with its name.
inline std::vector<std::pair<std::string, std::string>> Forms(const std::string& v) {
  std::vector<std::pair<std::string, std::string>> f;
  f.emplace_back("raw", v);
  f.emplace_back("reversed", std::string(v.rbegin(), v.rend()));
  std::string nows;
  for (char c : v)
    if (!IsSpace(static_cast<unsigned char>(c))) nows.push_back(c);
  if (nows.size() != v.size()) f.emplace_back("no-whitespace", nows);
  f.emplace_back("hex", enc::Hex(v));
  f.emplace_back("HEX", enc::Hex(v, true));
  for (size_t s = 0; s < 3; ++s) {
    f.emplace_back("base64@" + std::to_string(s), RadixCore(v, s, 6, false));
    f.emplace_back("base64url@" + std::to_string(s), RadixCore(v, s, 6, false, true));
  }
  for (size_t s = 0; s < 5; ++s)
    f.emplace_back("base32@" + std::to_string(s), RadixCore(v, s, 5, true));
  return f;
}

inline uint64_t WindowHash(const char* p) {
  uint64_t a, b;
  std::memcpy(&a, p, 8);
  std::memcpy(&b, p + 4, 8);
  uint64_t h = a * 0x9e3779b97f4a7c15ull ^ ((b * 0xc2b2ae3d27d4eb4full) >> 7 | (b << 57));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

class WindowSet {
 public:
  void AddValue(const std::string& v) {
    for (auto& [name, form] : Forms(v)) {
      if (form.size() < kWindow) continue;
      for (size_t i = 0; i + kWindow <= form.size(); ++i) hashes_.push_back(WindowHash(&form[i]));
      forms_.emplace_back(std::move(name), std::move(form));
    }
    built_ = false;
  }

  void Build() {
    std::sort(hashes_.begin(), hashes_.end());
    hashes_.erase(std::unique(hashes_.begin(), hashes_.end()), hashes_.end());
    dir_.assign((size_t{1} << kDirBits) + 1, 0);
    size_t j = 0;
    for (size_t b = 0; b < (size_t{1} << kDirBits); ++b) {
      dir_[b] = static_cast<uint32_t>(j);
      while (j < hashes_.size() && (hashes_[j] >> (64 - kDirBits)) == b) ++j;
    }
    dir_.back() = static_cast<uint32_t>(hashes_.size());
    built_ = true;
  }

  size_t windows() const { return hashes_.size(); }

  // The name of a form holding the 12 bytes at `p`, or "" when none does.
  std::string Find(const char* p) const {
    const uint64_t h = WindowHash(p);
    const size_t b = h >> (64 - kDirBits);
    if (!built_ || !std::binary_search(hashes_.begin() + dir_[b], hashes_.begin() + dir_[b + 1], h))
      return "";
    for (const auto& [name, form] : forms_) {
      if (::memmem(form.data(), form.size(), p, kWindow) != nullptr) return name;
    }
    return "";  // a hash collision, not a window
  }

 private:
  static constexpr int kDirBits = 20;
  std::vector<std::pair<std::string, std::string>> forms_;
  std::vector<uint64_t> hashes_;
  std::vector<uint32_t> dir_;
  bool built_ = false;
};

// ---------------------------------------------------------------------------
// Views of a sink: each undoes one kind of escaping and keeps every other byte.

inline std::string NoWhitespace(std::string_view s) {
  std::string out;
  for (char c : s)
    if (!IsSpace(static_cast<unsigned char>(c))) out.push_back(c);
  return out;
}

inline std::string NoLineBreaks(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '\n' && c != '\r') out.push_back(c);
  return out;
}

inline int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 63)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 63)));
    out->push_back(static_cast<char>(0x80 | (cp & 63)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 63)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 63)));
    out->push_back(static_cast<char>(0x80 | (cp & 63)));
  }
}

// JSON string escapes; \u00XX as the byte XX when `latin1`, else as UTF-8.
inline std::string JsonUnescape(std::string_view s, bool latin1) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char e = s[i + 1];
    const char* simple = "\"\\/bfnrt";
    const char* to = "\"\\/\b\f\n\r\t";
    if (const char* k = std::strchr(simple, e); k != nullptr && e != '\0') {
      out.push_back(to[k - simple]);
      ++i;
      continue;
    }
    if (e == 'u' && i + 5 < s.size()) {
      uint32_t cp = 0;
      bool ok = true;
      for (size_t k = 0; k < 4; ++k) {
        const int d = HexVal(s[i + 2 + k]);
        ok &= d >= 0;
        cp = cp * 16 + static_cast<uint32_t>(std::max(d, 0));
      }
      if (ok) {
        if (latin1 && cp < 0x100) {
          out.push_back(static_cast<char>(cp));
        } else {
          AppendUtf8(cp, &out);
        }
        i += 5;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// C / Python escapes: \xHH, \NNN, \n \r \t \v \f \a \b \\ \' \".
inline std::string CUnescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char e = s[i + 1];
    if (e == 'x' && i + 3 < s.size() && HexVal(s[i + 2]) >= 0 && HexVal(s[i + 3]) >= 0) {
      out.push_back(static_cast<char>(HexVal(s[i + 2]) * 16 + HexVal(s[i + 3])));
      i += 3;
    } else if (e >= '0' && e <= '3' && i + 3 < s.size() && s[i + 2] >= '0' && s[i + 2] <= '7' &&
               s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((e - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else if (const char* k = std::strchr("nrtvfab\\'\"", e); k != nullptr && e != '\0') {
      out.push_back("\n\r\t\v\f\a\b\\'\""[k - "nrtvfab\\'\""]);
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

inline std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexVal(s[i + 1]) >= 0 && HexVal(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

// `od -c` lines (7 octal digits, then 4-column fields) decoded back to
// their bytes; consecutive dump lines join without their line breaks.
// Other text is kept as is.
inline std::string OdDecode(std::string_view s) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t nl = s.find('\n', pos);
    const bool has_nl = nl != std::string_view::npos;
    std::string_view line = s.substr(pos, has_nl ? nl - pos : std::string_view::npos);
    pos = has_nl ? nl + 1 : s.size();
    // An od line may sit after other text on its line ("output: 0000000 ...").
    size_t start = std::string_view::npos;
    for (size_t k = 0; k + 7 <= line.size(); ++k) {
      bool digits = true;
      for (size_t d = 0; d < 7 && digits; ++d) digits = line[k + d] >= '0' && line[k + d] <= '7';
      if (digits && (k == 0 || !(line[k - 1] >= '0' && line[k - 1] <= '9')) &&
          (line.size() - k - 7) % 4 == 0) {
        start = k;
        break;
      }
    }
    std::string decoded;
    bool ok = start != std::string_view::npos;
    for (size_t f = start + 7; ok && f + 4 <= line.size(); f += 4) {
      std::string_view fld = line.substr(f, 4);
      if (fld.substr(0, 3) == "   ") {
        decoded.push_back(fld[3]);
      } else if (fld.substr(0, 2) == "  " && fld[2] == '\\') {
        const char* k = std::strchr("0abfnrtv", fld[3]);
        ok = k != nullptr && fld[3] != '\0';
        if (ok) decoded.push_back("\0\a\b\f\n\r\t\v"[k - "0abfnrtv"]);
      } else if (fld[0] == ' ' && fld[1] >= '0' && fld[1] <= '3' && fld[2] >= '0' &&
                 fld[2] <= '7' && fld[3] >= '0' && fld[3] <= '7') {
        decoded.push_back(
            static_cast<char>((fld[1] - '0') * 64 + (fld[2] - '0') * 8 + (fld[3] - '0')));
      } else {
        ok = false;
      }
    }
    if (ok) {
      out.append(line.substr(0, start));
      out.append(decoded);
    } else {
      out.append(line);
      if (has_nl) out.push_back('\n');
    }
  }
  return out;
}

// Every view of a sink, named; identical views are dropped.
inline std::vector<std::pair<std::string, std::string>> Views(std::string_view blob) {
  std::vector<std::pair<std::string, std::string>> v;
  auto add = [&](std::string name, std::string text) {
    for (const auto& [n, t] : v)
      if (t == text) return;
    v.emplace_back(std::move(name), std::move(text));
  };
  const std::pair<std::string, std::string> bases[] = {{"", std::string(blob)},
                                                       {"json/", JsonUnescape(blob, true)},
                                                       {"json-utf8/", JsonUnescape(blob, false)}};
  for (const auto& [bname, base] : bases) {
    for (int c = 0; c < 2; ++c) {
      const std::string name = bname + (c ? "c-escape/" : "");
      const std::string text = c ? CUnescape(base) : base;
      add(name + "text", text);
      add(name + "no-whitespace", NoWhitespace(text));
      add(name + "no-line-breaks", NoLineBreaks(text));
      add(name + "url", UrlDecode(text));
      const std::string od = OdDecode(text);
      add(name + "od-c", od);
      add(name + "od-c/no-line-breaks", NoLineBreaks(od));
    }
  }
  return v;
}

// "where: view V at offset N: 12 characters of form F (hex ...)" for the
// first hit of each view (and the count of hits in it).
inline std::vector<std::string> FindWindowsIn(std::string_view blob, std::string_view where,
                                              const WindowSet& set) {
  std::vector<std::string> hits;
  if (blob.size() < kWindow) return hits;
  for (const auto& [vname, text] : Views(blob)) {
    size_t count = 0;
    std::string first;
    for (size_t i = 0; i + kWindow <= text.size(); ++i) {
      std::string form = set.Find(&text[i]);
      if (form.empty()) continue;
      if (count++ == 0) {
        first = std::string(where) + ": view " + vname + " at " + std::to_string(i) +
                ": 12 characters of form " + form + " (hex " +
                enc::Hex(std::string_view(text).substr(i, kWindow)) + ")";
      }
      if (count > 1000) break;  // enough to say it leaks
    }
    if (count > 0) hits.push_back(first + ", " + std::to_string(count) + " window(s)");
  }
  return hits;
}

// FindWindowsIn for every regular file under `dir` (recursively), except
// beneath the `skip` paths (where a value is meant to be).
inline std::vector<std::string> FindWindowsUnder(
    const std::filesystem::path& dir, const WindowSet& set,
    const std::vector<std::filesystem::path>& skip = {}) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (std::find(skip.begin(), skip.end(), it->path()) != skip.end()) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    auto found = FindWindowsIn(ReadFileOrEmpty(it->path()), it->path().string(), set);
    hits.insert(hits.end(), found.begin(), found.end());
  }
  return hits;
}

}  // namespace vigo::testing::windows

#endif  // VIGO_TESTS_SUPPORT_WINDOW_SCAN_H_
