// No plaintext, not even in part (issue 15), end to end: random values
// (random bytes and multi-line text, 1 byte to 1 MiB) go through the real
// pipeline (vigosrv → gRPC over mTLS → vigo broker → vigo-worker → exec →
// report → SQLite), and hostile exec resources print random slices of them
// (>= 12 bytes: random ranges, the first 40 and last 30 bytes, a 40-byte
// middle slice, whole lines of a multi-line value) raw or encoded (xxd -p,
// upper-case hex, base64 flat and wrapped, base32, reversed, characters
// separated by spaces, `od -c`, `xxd`, `hexdump -C`, `od -An -tx1`), taking the value
// only from `stdin: secret:...` or a `secret_file`. Then no run of 12
// characters of any form of any value (tests/support/window_scan.h: raw,
// reversed, without whitespace, hex, HEX, base64/base64url/base32 at every
// alignment, seen through whitespace removal, line unwrapping, JSON, C and
// URL escapes and `od -c` decoding) may be in any sink: the agent's log at
// trace level and its stdout, its state dir (last_run.json, bundle.json, …),
// the server's data root while it runs (the SQLite file and its -wal) and
// after, the server log at trace, `vigocli runs` / `audit list` / `bundle
// show` output, `vigo status`, and files in /tmp and /dev/shm.
//
// Positive controls in the same runs, so the redaction cannot be "redact
// everything": the unrelated text each command prints around the slice, a
// 7-byte raw fragment of a text value and a 5-byte fragment in hex (10
// characters) must be stored verbatim; each command that printed a slice
// must have `redactions` >= 1; and the scanner must find the windows in
// files an exec wrote on purpose (raw, `od -c`, spaced, `xxd`, base32,
// base64, reversed), so an empty scan means absence, not blindness.
//
// A second envoy holds tiny values (1–11 bytes) printed whole: none of their
// forms of 12 characters or more (hex of 6 bytes, …) may survive either. It
// has no fragment controls: the worker redacts every whole occurrence of a
// value's short forms (for a 1-byte value, single characters), by design.
//
// Cost: a case is a few seconds (one server, two agent runs); the default
// run is 3 cases of the mixed property plus 1 case with a 1 MiB secret_file.
// Soak: RC_PARAMS="max_success=200" (SECURITY.md §4a).
#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/integration/slice_exec_fixture.h"
#include "tests/support/encodings.h"
#include "tests/support/rc_limited.h"
#include "tests/support/window_scan.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using windows::WindowSet;

// Text values: no ':', '<', '>' (the control markers), no '%', '\\', '"',
// '\'' (escape characters, so a fragment is stored exactly as printed).
constexpr std::string_view kTextChars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.,;!?@#$^&*()[]{} ";

struct Value {
  std::string path;
  std::string bytes;
  bool text = false;
};

std::string MakeValue(bool text, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string v;
  v.reserve(n);
  if (!text) {
    while (v.size() < n) v.push_back(static_cast<char>(rng() & 0xff));
    return v;
  }
  // Lines of 1..90 characters.
  while (v.size() < n) {
    size_t line = 1 + rng() % 90;
    for (size_t i = 0; i < line && v.size() < n; ++i)
      v.push_back(kTextChars[rng() % kTextChars.size()]);
    if (v.size() < n) v.push_back('\n');
  }
  return v;
}

rc::Gen<Value> GenValue(std::string path, size_t min_size, size_t max_size,
                        std::optional<bool> text = std::nullopt) {
  return rc::gen::exec([=] {
    Value v;
    v.path = path;
    v.text = text ? *text : *rc::gen::arbitrary<bool>();
    // Sizes spread over orders of magnitude.
    const size_t hi = *rc::gen::elementOf(std::vector<size_t>{64, 1024, 16384, max_size});
    const size_t n =
        *rc::gen::inRange<size_t>(min_size, std::max(min_size, std::min(hi, max_size)) + 1);
    v.bytes = MakeValue(v.text, n, *rc::gen::arbitrary<uint64_t>());
    return v;
  });
}

// Free ranges of [0, n) outside `used`, at least `len` long.
std::vector<std::pair<size_t, size_t>> Free(size_t n, std::vector<std::pair<size_t, size_t>> used,
                                            size_t len) {
  std::sort(used.begin(), used.end());
  std::vector<std::pair<size_t, size_t>> out;
  size_t pos = 0;
  for (auto [a, b] : used) {
    if (a >= pos + len) out.emplace_back(pos, a);
    pos = std::max(pos, b);
  }
  if (n >= pos + len) out.emplace_back(pos, n);
  return out;
}

std::optional<size_t> PickIn(const std::vector<std::pair<size_t, size_t>>& ranges, size_t len) {
  if (ranges.empty()) return std::nullopt;
  auto [a, b] = *rc::gen::elementOf(ranges);
  return *rc::gen::inRange<size_t>(a, b - len + 1);
}

// Lines of at least 12 bytes: (offset, length, 1-based number).
std::vector<std::tuple<size_t, size_t, int>> LongLines(const std::string& v) {
  std::vector<std::tuple<size_t, size_t, int>> out;
  size_t pos = 0;
  int no = 1;
  while (pos <= v.size()) {
    size_t nl = v.find('\n', pos);
    size_t end = nl == std::string::npos ? v.size() : nl;
    if (end - pos >= windows::kWindow) out.emplace_back(pos, end - pos, no);
    if (nl == std::string::npos) break;
    pos = nl + 1;
    ++no;
  }
  return out;
}

size_t NonSpace(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !windows::IsSpace(c); }));
}

enum class Shape { kRandom, kHead40, kTail30, kMiddle40 };

// One hostile print of `v` (of `shape` when given, else of any shape or a line).
SlicePrint GenPrint(const std::string& name, const Value& v, bool force_file,
                    std::optional<Shape> forced = std::nullopt) {
  SlicePrint p;
  p.name = name;
  p.path = v.path;
  p.enc = *rc::gen::elementOf(
      std::vector<SliceEnc>(std::begin(kAllSliceEncs), std::end(kAllSliceEncs)));
  p.secret_file = force_file || *rc::gen::arbitrary<bool>();
  const size_t n = v.bytes.size();
  auto lines = LongLines(v.bytes);
  if (p.enc == SliceEnc::kLine && (!v.text || lines.empty() || forced)) p.enc = SliceEnc::kRaw;
  if (p.enc == SliceEnc::kLine) {
    auto [off, len, no] = *rc::gen::elementOf(lines);
    // A line longer than the 1 KiB kept of the output cannot be checked whole.
    p.off = off;
    p.len = std::min<size_t>(len, 200);
    p.line_no = no;
    if (p.len != len) p.enc = SliceEnc::kRaw;
  } else {
    const Shape shape = forced ? *forced
                               : *rc::gen::element(Shape::kRandom, Shape::kHead40, Shape::kTail30,
                                                   Shape::kMiddle40);
    const size_t max_len = std::min<size_t>(64, n);
    switch (shape) {
      case Shape::kRandom:
        p.len = *rc::gen::inRange<size_t>(windows::kWindow, max_len + 1);
        p.off = *rc::gen::inRange<size_t>(0, n - p.len + 1);
        break;
      case Shape::kHead40:
        p.len = std::min<size_t>(40, n);
        p.off = 0;
        break;
      case Shape::kTail30:
        p.len = std::min<size_t>(30, n);
        p.off = n - p.len;
        break;
      case Shape::kMiddle40:
        p.len = std::min<size_t>(40, n);
        p.off = (n - p.len) / 2;
        break;
    }
  }
  // Spaced characters of a slice with fewer than 12 non-space bytes leave no
  // window to find (nothing of 12 characters of a form is printed).
  if (p.enc == SliceEnc::kSpaced && NonSpace(std::string_view(v.bytes).substr(p.off, p.len)) < 12)
    p.enc = SliceEnc::kRaw;
  std::vector<std::pair<size_t, size_t>> used = {{p.off, p.off + p.len}};
  if (v.text) {
    p.ctl = PickIn(Free(n, used, SlicePrint::kCtlLen), SlicePrint::kCtlLen);
    if (p.ctl) used.emplace_back(*p.ctl, *p.ctl + SlicePrint::kCtlLen);
  }
  p.hex = PickIn(Free(n, used, SlicePrint::kHexLen), SlicePrint::kHexLen);
  return p;
}

struct Case {
  std::vector<Value> values;  // envoy "slicer": all >= 12 bytes; values[0] >= 64 bytes
  std::vector<SlicePrint> prints;
  std::vector<Value> tiny;  // envoy "tiny": 1..11 bytes, each printed whole
  std::vector<SlicePrint> tiny_prints;
};

// The scanner's own control: an exec writes the first 64 bytes of value 0 in
// several encodings into files under <apply-root>/etc/ctl.
std::string ScannerControlYaml(const Value& v) {
  const std::string head = "head -c 64 \"$1\"";
  std::string script = head + " > raw.txt; " + head + " | od -c > od.txt; " + head +
                       " | sed 's/./& /g' > spaced.txt; " + head + " | xxd > xxd.txt; " + head +
                       " | base32 > b32.txt; " + head + " | base64 > b64.txt; " + head +
                       " | xxd -p -c1 | tac | xxd -r -p > rev.txt";
  return "  - name: ctl-dir\n    type: directory\n    target_path: /etc/ctl\n"
         "  - name: scanner-control\n    type: exec\n    cwd: /etc/ctl\n"
         "    depends_on: [ctl-dir]\n    secret_file: \"secret:" +
         v.path + "\"\n    command: [\"/bin/sh\", \"-c\", " + JsonQuoted(script) +
         ", \"sh\", \"{{ .SecretFile }}\"]\n";
}

std::map<std::string, std::string> BuildStacks(const Case& c) {
  std::string envoys = "envoys:\n  - match: slicer\n    configcrates: [crate-slicer]\n";
  std::string crate = "configcrate: crate-slicer\nresources:\n" + ScannerControlYaml(c.values[0]);
  for (const SlicePrint& p : c.prints) crate += SliceExecYaml(p);
  std::map<std::string, std::string> files = {{"configcrates/crate-slicer.vgo", crate}};
  if (!c.tiny.empty()) {
    envoys += "  - match: tiny\n    configcrates: [crate-tiny]\n";
    std::string t = "configcrate: crate-tiny\nresources:\n";
    for (const SlicePrint& p : c.tiny_prints) t += SliceExecYaml(p);
    files["configcrates/crate-tiny.vgo"] = t;
  }
  files["envoys.vgo"] = envoys;
  return files;
}

const Value& ValueOf(const std::vector<Value>& vs, const std::string& path) {
  for (const Value& v : vs)
    if (v.path == path) return v;
  std::abort();
}

void RunCase(const Case& c) {
  const fs::file_time_type started = fs::file_time_type::clock::now();
  E2eFleet fleet;
  RC_ASSERT(fleet.Init());
  WindowSet set;
  for (const auto* vs : {&c.values, &c.tiny}) {
    for (const Value& v : *vs) {
      if (!fleet.SetSecret(v.path, v.bytes)) RC_FAIL(fleet.last_error());
      set.AddValue(v.bytes);
    }
  }
  set.Build();
  fleet.WriteStacks(BuildStacks(c));
  if (!fleet.StartServer()) RC_FAIL("vigosrv did not start: " + fleet.last_error());

  std::string outputs;  // every CLI / agent stdout and stderr
  std::vector<std::string> envoys = {"slicer"};
  if (!c.tiny.empty()) envoys.push_back("tiny");
  for (const std::string& e : envoys) {
    RC_ASSERT(fleet.IssueEnvoy(e));
    fs::create_directories(fleet.ApplyRoot(e) / "tmp");  // secret_file goes here
    RunResult r = fleet.RunAgent(e);
    outputs += r.out + r.err;
    if (r.exit_code != 0)
      RC_FAIL("agent " + e + " exited " + std::to_string(r.exit_code) + ": " + r.err);
  }

  // What the server stored: every print ran; controls verbatim; redactions
  // counted; the unrelated text kept.
  auto check_stored = [&](const std::string& envoy, const std::vector<SlicePrint>& prints,
                          const std::vector<Value>& vs, bool controls) {
    std::vector<std::string> ids = StoredRunIds(fleet, envoy, &outputs);
    RC_ASSERT(ids.size() == 1u);
    std::map<std::string, StoredResult> got = StoredResults(fleet, ids[0], &outputs);
    // last_run.json is protobuf JSON ('<' is \u003c): read it decoded.
    const std::string last_run = windows::JsonUnescape(
        ReadFileOrEmpty(fleet.StateDir(envoy) / "last_run.json"), /*latin1=*/false);
    for (const SlicePrint& p : prints) {
      const Value& v = ValueOf(vs, p.path);
      RC_LOG() << p.name << ": " << SliceEncName(p.enc) << " of [" << p.off << ", +" << p.len
               << ") of a " << v.bytes.size() << "-byte " << (v.text ? "text" : "binary")
               << " value via " << (p.secret_file ? "secret_file" : "stdin") << "\n";
      RC_ASSERT(got.count(p.name) == 1u);
      const StoredResult& s = got[p.name];
      RC_LOG() << "  stored: " << s.message << "\n";
      RC_ASSERT(s.message.find("ran (exit 0)") != std::string::npos);
      RC_ASSERT(s.redactions >= 1);
      if (!controls) continue;
      for (const std::string& keep : {p.Begin(), p.End()}) {
        RC_ASSERT(s.message.find(keep) != std::string::npos);
        RC_ASSERT(last_run.find(keep) != std::string::npos);
      }
      if (p.ctl) {
        RC_ASSERT(s.message.find(p.Ctl(v.bytes)) != std::string::npos);
        RC_ASSERT(last_run.find(p.Ctl(v.bytes)) != std::string::npos);
      }
      if (p.hex) RC_ASSERT(s.message.find(p.Hex(v.bytes)) != std::string::npos);
    }
  };
  check_stored("slicer", c.prints, c.values, true);
  if (!c.tiny.empty()) check_stored("tiny", c.tiny_prints, c.tiny, false);
  RC_ASSERT(fs::exists(fleet.ApplyRoot("slicer") / "etc/ctl/od.txt"));  // the scanner control ran

  for (const std::string& e : envoys) {
    outputs += fleet.Cli({"bundle", "show", "--envoy", e, "--json"}).out;
    RunResult st = vigo::testing::Run(
        {BinPath("vigo").string(), "status", "--state-dir", fleet.StateDir(e).string()});
    outputs += st.out + st.err;
  }
  RunResult audit = fleet.Cli({"audit", "list", "--json"});
  outputs += audit.out + audit.err;

  std::vector<std::string> hits;
  auto add = [&](std::vector<std::string> more) {
    hits.insert(hits.end(), more.begin(), more.end());
  };
  // The data root while the server runs: the database and its write-ahead
  // log (checkpointed away at shutdown) as they are.
  bool saw_wal = false;
  for (const auto& f : fs::recursive_directory_iterator(fleet.root())) {
    const std::string n = f.path().filename();
    saw_wal |= n.size() > 4 && n.substr(n.size() - 4) == "-wal" && fs::file_size(f.path()) > 0;
  }
  RC_ASSERT(saw_wal);
  // The vault's files hold the values encrypted (AES-256-GCM): where they
  // belong, and no plaintext window can be there but by chance.
  const fs::path vault = fleet.root() / "secrets";
  add(windows::FindWindowsUnder(fleet.root(), set, {vault}));
  fleet.StopServer();

  const fs::path ctl_dir = fleet.ApplyRoot("slicer") / "etc/ctl";
  // Logs, state dirs, the data root, the apply roots.
  add(windows::FindWindowsUnder(fleet.dir(), set, {ctl_dir, vault}));
  add(windows::FindWindowsIn(outputs, "cli and agent output", set));
  // Files our processes may have left in the shared temp dirs: those
  // modified since the case started (other tests' files are not ours).
  for (const char* tmp : {"/tmp", "/var/tmp", "/dev/shm"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(tmp, ec)) {
      if (entry.is_regular_file(ec) && entry.last_write_time(ec) >= started)
        add(windows::FindWindowsIn(ReadFileOrEmpty(entry.path()), entry.path().string(), set));
    }
  }
  for (const std::string& h : hits) RC_LOG() << "LEAK " << h << "\n";
  RC_ASSERT(hits.empty());

  // The scanner is not blind: where an exec wrote value 0 on purpose, in
  // each encoding, it finds windows.
  const std::string head64 = c.values[0].bytes.substr(0, 64);
  for (const char* f : {"raw.txt", "od.txt", "xxd.txt", "b32.txt", "b64.txt", "rev.txt"}) {
    RC_ASSERT(!windows::FindWindowsIn(ReadFileOrEmpty(ctl_dir / f), f, set).empty());
  }
  if (NonSpace(head64) >= 12)
    RC_ASSERT(
        !windows::FindWindowsIn(ReadFileOrEmpty(ctl_dir / "spaced.txt"), "spaced", set).empty());
}

Case GenCase(size_t max_size, bool big) {
  Case c;
  if (big) {
    // A value of about 1 MiB, as a secret_file: the first 40, the last 30
    // and a middle 40 bytes, and random slices.
    Value v;
    v.path = "slice/big";
    v.text = *rc::gen::arbitrary<bool>();
    v.bytes = MakeValue(v.text, (size_t{1} << 20) - *rc::gen::inRange<size_t>(0, 4096),
                        *rc::gen::arbitrary<uint64_t>());
    c.values.push_back(*GenValue("slice/text", 64, 4096, true));
    c.values.push_back(std::move(v));
    const Value& b = c.values[1];
    c.prints = {GenPrint("big-head", b, true, Shape::kHead40),
                GenPrint("big-tail", b, true, Shape::kTail30),
                GenPrint("big-mid", b, true, Shape::kMiddle40),
                GenPrint("text-any", c.values[0], false)};
    return c;
  }
  const int k = *rc::gen::inRange(1, 4);
  c.values.push_back(*GenValue("slice/s0", 64, max_size));
  for (int i = 1; i < k; ++i)
    c.values.push_back(*GenValue("slice/s" + std::to_string(i), 12, max_size));
  int n = 0;
  for (const Value& v : c.values) {
    const int prints = *rc::gen::inRange(1, 4);
    for (int j = 0; j < prints; ++j)
      c.prints.push_back(GenPrint("p" + std::to_string(n++), v, false));
  }
  const int t = *rc::gen::inRange(1, 4);
  for (int i = 0; i < t; ++i) {
    Value v;
    v.path = "tiny/t" + std::to_string(i);
    v.text = *rc::gen::arbitrary<bool>();
    v.bytes = MakeValue(v.text, *rc::gen::inRange<size_t>(1, 12), *rc::gen::arbitrary<uint64_t>());
    SlicePrint p;
    p.name = "t" + std::to_string(i);
    p.path = v.path;
    p.enc = *rc::gen::element(SliceEnc::kRaw, SliceEnc::kHex, SliceEnc::kHexUpper,
                              SliceEnc::kBase64, SliceEnc::kBase32, SliceEnc::kOdC, SliceEnc::kXxd);
    p.off = 0;
    p.len = v.bytes.size();
    p.secret_file = *rc::gen::arbitrary<bool>();
    c.tiny.push_back(std::move(v));
    c.tiny_prints.push_back(p);
  }
  return c;
}

TEST(NoPlaintextSlicesProperty, NoWindowOfAnyValueSurvivesInAnySinkAndShortFragmentsStay) {
  CheckLimited(3, [] { RunCase(GenCase(64 * 1024, false)); });
}

TEST(NoPlaintextSlicesProperty, SlicesOfAMebibyteSecretFileLeaveNoWindowInAnySink) {
  CheckLimited(1, [] { RunCase(GenCase(0, true)); });
}

}  // namespace
}  // namespace vigo::testing
