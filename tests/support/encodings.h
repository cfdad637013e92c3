// Reference encoders for scrubbing tests, written independently of
// agent-worker/scrub.cc: the encodings a command may print a value in.
// Header-only; test code only (values pass through std::string here, which
// is fine for test canaries and nothing else).
#ifndef VIGO_TESTS_SUPPORT_ENCODINGS_H_
#define VIGO_TESTS_SUPPORT_ENCODINGS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigo::testing::enc {

inline std::string Hex(std::string_view s, bool upper = false) {
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// RFC 4648 with padding; `url` uses the URL-safe alphabet.
inline std::string Base64(std::string_view s, bool url = false) {
  const char* t = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                      : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    uint32_t n =
        (uint32_t(uint8_t(s[i])) << 16) | (uint32_t(uint8_t(s[i + 1])) << 8) | uint8_t(s[i + 2]);
    for (int k = 0; k < 4; ++k) out.push_back(t[(n >> (18 - 6 * k)) & 63]);
  }
  if (i < s.size()) {
    uint32_t n = uint32_t(uint8_t(s[i])) << 16;
    if (i + 1 < s.size()) n |= uint32_t(uint8_t(s[i + 1])) << 8;
    out.push_back(t[(n >> 18) & 63]);
    out.push_back(t[(n >> 12) & 63]);
    out.push_back(i + 1 < s.size() ? t[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// The base64 characters of `value` that depend on its bits alone when it is
// encoded after `prefix_len` other bytes (what survives any surrounding).
inline std::string Base64Core(std::string_view value, size_t prefix_len, bool url = false) {
  std::string padded(prefix_len, '\0');
  padded.append(value);
  std::string all = Base64(padded, url);
  size_t first = prefix_len == 0 ? 0 : (prefix_len * 8 + 5) / 6;
  size_t last = (padded.size() * 8) / 6;
  return last > first ? all.substr(first, last - first) : std::string();
}

// Inserts `eol` every `width` characters (MIME: 76 + "\r\n", PEM: 64 + "\n").
inline std::string Wrap(std::string_view s, size_t width, std::string_view eol) {
  std::string out;
  for (size_t i = 0; i < s.size(); i += width) {
    if (i > 0) out.append(eol);
    out.append(s.substr(i, width));
  }
  return out;
}

// application/x-www-form-urlencoded: unreserved kept, space as '+', %XX.
inline std::string UrlForm(std::string_view s, bool upper = true) {
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(d[c >> 4]);
      out.push_back(d[c & 15]);
    }
  }
  return out;
}

// A JSON string body of a byte string, every byte a code point (Latin-1):
// controls, '"', '\\' and bytes >= 0x80 as \u00XX, '/' as "\/"; with
// `all`, every byte as \u00XX.
inline std::string JsonBytes(std::string_view s, bool upper = false, bool all = false) {
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (!all && c == '/') {
      out += "\\/";
    } else if (all || c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
      out += "\\u00";
      out.push_back(d[c >> 4]);
      out.push_back(d[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// Python's repr of a bytes object, without the b'...' around it.
inline std::string PyRepr(std::string_view s) {
  const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\'') {
      out += "\\'";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out.push_back(d[c >> 4]);
      out.push_back(d[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// Every byte as a three-digit octal escape (printf '%b' / C string style).
inline std::string Octal(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    out.push_back('\\');
    out.push_back(static_cast<char>('0' + (c >> 6)));
    out.push_back(static_cast<char>('0' + ((c >> 3) & 7)));
    out.push_back(static_cast<char>('0' + (c & 7)));
  }
  return out;
}

// One printed encoding of a value: the text a command or an agent might
// print, and the part of it that must not survive scrubbing (`wrapped`:
// compare with line breaks removed).
struct Printed {
  std::string name;
  std::string text;
  std::string secret_part;
  bool wrapped = false;
};

// Every encoding the scrubber and the server's leak scan must catch, with the
// value inside a longer base64 stream after `pre` and before `post` bytes.
inline std::vector<Printed> AllEncodings(const std::string& v, const std::string& pre,
                                         const std::string& post, bool upper) {
  std::vector<Printed> p;
  p.push_back({"raw", v, v});
  p.push_back({"hex", Hex(v, upper), Hex(v, upper)});
  for (bool url : {false, true}) {
    p.push_back({url ? "base64url" : "base64", Base64(pre + v + post, url),
                 Base64Core(v, pre.size(), url)});
  }
  const std::string b64 = Base64(pre + v + post);
  const std::string core = Base64Core(v, pre.size());
  p.push_back({"mime", Wrap(b64, 76, "\r\n"), core, true});
  p.push_back({"mime-lf", Wrap(b64, 76, "\n"), core, true});
  p.push_back({"pem", Wrap(b64, 64, "\n"), core, true});
  p.push_back({"url-form", UrlForm(v, upper), UrlForm(v, upper)});
  p.push_back({"json", JsonBytes(v, upper), JsonBytes(v, upper)});
  p.push_back({"json-all", JsonBytes(v, upper, true), JsonBytes(v, upper, true)});
  p.push_back({"python", PyRepr(v), PyRepr(v)});
  p.push_back({"octal", Octal(v), Octal(v)});
  return p;
}

inline std::string StripLineBreaks(std::string s) {
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n'; }),
          s.end());
  return s;
}

}  // namespace vigo::testing::enc

#endif  // VIGO_TESTS_SUPPORT_ENCODINGS_H_
