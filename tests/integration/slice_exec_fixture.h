// Hostile exec resources for issue 15's end-to-end tests: each prints one
// slice of a secret value (a random range, the head, the tail, a line) in one
// encoding through ordinary tools (`xxd`, `od -c`, `od -tx1`, `hexdump -C`,
// `base64`, `base32`, `sed`, `tac`), between unrelated text and next to positive controls (a 7-byte
// raw fragment and a 5-byte hex fragment of the value, shorter than the 12-byte window, framed by
// markers). The value reaches the command only the normal way: `stdin: "secret:..."` (read
// sequentially with `head -c`) or a `secret_file` (read with `tail -c +N | head -c N` or `sed -n
// Np`). Nothing of a value is in the stacks: only offsets and lengths.
//
//   SlicePrint p{.name = "p0", .path = "app/key", .enc = SliceEnc::kHex, .off = 40, .len = 40};
//   std::string yaml = SliceExecYaml(p);                 // one `- name: ...` resource
//   ...
//   std::map<std::string, StoredResult> got = StoredResults(fleet, run_id);
//   EXPECT_NE(got["p0"].message.find(p.Begin()), npos);  // the unrelated text stayed
#ifndef VIGO_TESTS_INTEGRATION_SLICE_EXEC_FIXTURE_H_
#define VIGO_TESTS_INTEGRATION_SLICE_EXEC_FIXTURE_H_

#include <rapidjson/document.h>

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/e2e_fixture.h"
#include "tests/support/encodings.h"

namespace vigo::testing {

enum class SliceEnc {
  kRaw,
  kLine,  // a whole line of a multi-line value (`sed -n Np` from a secret_file)
  kHex,
  kHexUpper,
  kBase64,
  kBase64Wrapped,
  kBase32,
  kReversed,
  kSpaced,
  kOdC,
  kXxd,
  kHexdumpC,  // `hexdump -C`: hex bytes separated by spaces, then the ASCII column
  kOdHex,     // `od -An -tx1`: hex bytes separated by spaces
};
inline constexpr SliceEnc kAllSliceEncs[] = {
    SliceEnc::kRaw,    SliceEnc::kLine,          SliceEnc::kHex,    SliceEnc::kHexUpper,
    SliceEnc::kBase64, SliceEnc::kBase64Wrapped, SliceEnc::kBase32, SliceEnc::kReversed,
    SliceEnc::kSpaced, SliceEnc::kOdC,           SliceEnc::kXxd,    SliceEnc::kHexdumpC,
    SliceEnc::kOdHex};

inline const char* SliceEncName(SliceEnc e) {
  switch (e) {
    case SliceEnc::kRaw:
      return "raw";
    case SliceEnc::kLine:
      return "line";
    case SliceEnc::kHex:
      return "xxd -p";
    case SliceEnc::kHexUpper:
      return "xxd -p -u";
    case SliceEnc::kBase64:
      return "base64 -w0";
    case SliceEnc::kBase64Wrapped:
      return "base64 -w 20";
    case SliceEnc::kBase32:
      return "base32 -w0";
    case SliceEnc::kReversed:
      return "reversed";
    case SliceEnc::kSpaced:
      return "spaced";
    case SliceEnc::kOdC:
      return "od -c";
    case SliceEnc::kXxd:
      return "xxd";
    case SliceEnc::kHexdumpC:
      return "hexdump -C";
    case SliceEnc::kOdHex:
      return "od -An -tx1";
  }
  return "?";
}

// The pipeline that prints its stdin in `e`.
inline std::string SliceEncoder(SliceEnc e) {
  switch (e) {
    case SliceEnc::kRaw:
    case SliceEnc::kLine:
      return "cat";
    case SliceEnc::kHex:
      return "xxd -p";
    case SliceEnc::kHexUpper:
      return "xxd -p -u";
    case SliceEnc::kBase64:
      return "base64 -w0";
    case SliceEnc::kBase64Wrapped:
      return "base64 -w 20";
    case SliceEnc::kBase32:
      return "base32 -w0";
    case SliceEnc::kReversed:
      return "xxd -p -c1 | tac | xxd -r -p";  // every byte, reversed
    case SliceEnc::kSpaced:
      return "sed 's/./& /g'";  // "a b c "
    case SliceEnc::kOdC:
      return "od -c";
    case SliceEnc::kXxd:
      return "xxd";
    case SliceEnc::kHexdumpC:
      return "hexdump -C";
    case SliceEnc::kOdHex:
      return "od -An -tx1";
  }
  return "cat";
}

struct SlicePrint {
  std::string name;  // resource name
  std::string path;  // secret path
  SliceEnc enc = SliceEnc::kRaw;
  size_t off = 0, len = 0;  // the printed slice of the value
  int line_no = 0;          // kLine: 1-based line number (off/len: the line without its newline)
  bool secret_file = false;
  std::optional<size_t> ctl;  // offset of a 7-byte fragment printed raw
  std::optional<size_t> hex;  // offset of a 5-byte fragment printed as hex

  static constexpr size_t kCtlLen = 7, kHexLen = 5;
  std::string Begin() const { return "begin " + name + " the quick brown fox"; }
  std::string End() const { return "end " + name + " jumps over the lazy dog"; }
  std::string Ctl(const std::string& v) const {
    return "<<ctl:" + v.substr(*ctl, kCtlLen) + ":ctl>>";
  }
  std::string Hex(const std::string& v) const {
    return "<<hex:" + enc::Hex(v.substr(*hex, kHexLen)) + ":hex>>";
  }
};

inline std::string JsonQuoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out + "\"";
}

// The /bin/sh script of `p`.
inline std::string SliceScript(const SlicePrint& p) {
  struct Seg {
    size_t off, len;
    std::string pre, enc, post;
  };
  std::vector<Seg> segs = {{p.off, p.len, "", SliceEncoder(p.enc), "printf '\\n'"}};
  if (p.ctl)
    segs.push_back({*p.ctl, SlicePrint::kCtlLen, "printf '<<ctl:'", "cat", "printf ':ctl>>\\n'"});
  if (p.hex)
    segs.push_back({*p.hex, SlicePrint::kHexLen, "printf '<<hex:'", "xxd -p | tr -d '\\n'",
                    "printf ':hex>>\\n'"});
  std::ostringstream s;
  s << "printf '%s\\n' '" << p.Begin() << "'; ";
  if (p.secret_file) {
    for (const Seg& g : segs) {
      if (!g.pre.empty()) s << g.pre << "; ";
      if (&g == &segs[0] && p.enc == SliceEnc::kLine) {
        s << "sed -n '" << p.line_no << "p' \"$1\"; ";
      } else {
        s << "tail -c +" << g.off + 1 << " \"$1\" | head -c " << g.len << " | " << g.enc << "; ";
      }
      s << g.post << "; ";
    }
  } else {
    // One pass over stdin: `head -c` reads exactly what it prints.
    std::sort(segs.begin(), segs.end(), [](const Seg& a, const Seg& b) { return a.off < b.off; });
    size_t pos = 0;
    for (const Seg& g : segs) {
      if (g.off > pos) s << "head -c " << g.off - pos << " >/dev/null; ";
      if (!g.pre.empty()) s << g.pre << "; ";
      s << "head -c " << g.len << " | " << g.enc << "; " << g.post << "; ";
      pos = g.off + g.len;
    }
  }
  s << "printf '%s\\n' '" << p.End() << "'";
  return s.str();
}

// One exec resource (YAML, indented for a `resources:` list).
inline std::string SliceExecYaml(const SlicePrint& p) {
  std::string y = "  - name: " + p.name + "\n    type: exec\n";
  if (p.secret_file) {
    y += "    secret_file: \"secret:" + p.path + "\"\n";
    y += "    command: [\"/bin/sh\", \"-c\", " + JsonQuoted(SliceScript(p)) +
         ", \"sh\", \"{{ .SecretFile }}\"]\n";
  } else {
    y += "    stdin: \"secret:" + p.path + "\"\n";
    y += "    command: [\"/bin/sh\", \"-c\", " + JsonQuoted(SliceScript(p)) + "]\n";
  }
  return y;
}

// What the server stored for one resource (`vigocli runs show ID --json`).
struct StoredResult {
  std::string status, message;
  int64_t redactions = -1;
};

// The ids of `envoy`'s stored runs, newest first.
inline std::vector<std::string> StoredRunIds(E2eFleet& fleet, const std::string& envoy,
                                             std::string* raw = nullptr) {
  RunResult r = fleet.Cli({"runs", "list", "--json", "--envoy", envoy});
  if (raw != nullptr) *raw += r.out + r.err;
  std::vector<std::string> ids;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (!d.HasParseError() && d.IsObject() && d.HasMember("id") && d["id"].IsString())
      ids.push_back(d["id"].GetString());
  }
  return ids;
}

inline std::map<std::string, StoredResult> StoredResults(E2eFleet& fleet, const std::string& id,
                                                         std::string* raw = nullptr) {
  RunResult r = fleet.Cli({"runs", "show", id, "--json"});
  if (raw != nullptr) *raw += r.out + r.err;
  std::map<std::string, StoredResult> out;
  rapidjson::Document d;
  d.Parse(r.out.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("results") || !d["results"].IsArray())
    return out;
  for (const auto& res : d["results"].GetArray()) {
    StoredResult s;
    s.status = res["status"].GetString();
    s.message = std::string(res["message"].GetString(), res["message"].GetStringLength());
    s.redactions = res["redactions"].GetInt64();
    out[res["name"].GetString()] = s;
  }
  return out;
}

// name -> redactions of each result in an agent's last_run.json (protobuf
// JSON: a zero count is omitted, so it reads 0).
inline std::map<std::string, int64_t> LastRunRedactions(const std::filesystem::path& state_dir) {
  std::map<std::string, int64_t> out;
  const std::string text = ReadFileOrEmpty(state_dir / "last_run.json");
  rapidjson::Document d;
  d.Parse(text.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("results") || !d["results"].IsArray())
    return out;
  for (const auto& res : d["results"].GetArray()) {
    if (!res.HasMember("name") || !res["name"].IsString()) continue;
    out[res["name"].GetString()] = res.HasMember("redactions") && res["redactions"].IsInt64()
                                       ? res["redactions"].GetInt64()
                                       : 0;
  }
  return out;
}

}  // namespace vigo::testing

#endif  // VIGO_TESTS_INTEGRATION_SLICE_EXEC_FIXTURE_H_
