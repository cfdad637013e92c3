// Property: for random paths and values, `vigocli secrets set` / `reveal`
// round-trip exactly, and no 8-byte window of any value (or its hex, base64,
// URL or JSON forms) appears in any file under the data root — vault files,
// master key, database and its WAL, unlock token — including the audit log.
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
// After gtest.h: rapidcheck/gtest.h uses it.
#include <rapidcheck/gtest.h>
#include "server/vault/local_backend.h"
#include "tests/support/test_env.h"

namespace vigo {
namespace {

namespace fs = std::filesystem;
using vigo::testing::BinPath;
using vigo::testing::RunResult;
using vigo::testing::TempDir;

// One vault shared by all cases (init + unlock run scrypt; doing it per case
// would dominate the run time). Values from every case accumulate, so later
// cases also check that nothing written earlier leaked.
struct SharedVault {
  TempDir tmp;
  fs::path root = tmp.path() / "root";
  std::vector<std::string> all_values;
  bool ok = false;
  RunResult Cli(std::vector<std::string> args, std::string_view in = {}) {
    std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", root.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return vigo::testing::Run(argv, in);
  }
  SharedVault() {
    fs::create_directories(root);
    ok = vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root.string()})
                 .exit_code == 0 &&
         Cli({"secrets", "init"}, "prop-passphrase\n").exit_code == 0 &&
         Cli({"secrets", "unlock"}, "prop-passphrase\n").exit_code == 0;
  }
};

// Each case spawns vigocli several times; 30 cases (~90 random values) keep
// the run within a minute on a loaded 2-core machine. RC_PARAMS set by the
// caller wins (e.g. RC_PARAMS="max_success=500" for a long soak).
const bool kDefaultParams = [] {
  ::setenv("RC_PARAMS", "max_success=30", /*overwrite=*/0);
  return true;
}();

SharedVault& Vault() {
  static SharedVault* v = new SharedVault();
  return *v;
}

rc::Gen<std::string> GenSegment() {
  return rc::gen::suchThat(
      rc::gen::container<std::string>(
          rc::gen::elementOf(std::string(
              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"))),
      [](const std::string& s) {
        return !s.empty() && s.size() <= 20 && s != "." && s != ".." &&
               s.rfind(".vigo", 0) != 0 && s.rfind(".master.key", 0) != 0;
      });
}

rc::Gen<std::string> GenPath() {
  return rc::gen::map(rc::gen::container<std::vector<std::string>>(
                          *rc::gen::inRange<size_t>(1, 4), GenSegment()),
                      [](const std::vector<std::string>& segs) {
                        std::string p;
                        for (const auto& s : segs) p += (p.empty() ? "" : "/") + s;
                        return p;
                      });
}

// High-entropy bytes (any value 0..255, NUL and newlines included) from a
// generated seed: a shrunk all-zero value would match zero padding in the
// database file and say nothing about leaks.
std::string ValueFrom(uint64_t seed, size_t len) {
  std::mt19937_64 rng(seed);
  std::string v(len, '\0');
  for (char& c : v) c = static_cast<char>(rng() & 0xff);
  return v;
}

RC_GTEST_PROP(VaultProperty, SetRevealRoundTripsAndValuesNeverLeakToDisk, ()) {
  SharedVault& vault = Vault();
  RC_ASSERT(vault.ok);
  const auto paths = *rc::gen::container<std::vector<std::string>>(
      *rc::gen::inRange<size_t>(1, 4), GenPath());
  for (const std::string& path : paths) {
    RC_PRE(server::vault::ValidateLocalPath(path).ok());
  }
  std::vector<std::pair<std::string, std::string>> written;
  for (const std::string& path : paths) {
    const std::string value =
        ValueFrom(*rc::gen::arbitrary<uint64_t>(), *rc::gen::inRange<size_t>(8, 2000));
    // Stdin drops one trailing newline, so send one.
    // "--" ends flags: a path may start with '-'.
    RunResult r = vault.Cli({"secrets", "set", "--", path}, value + "\n");
    if (r.exit_code != 0) {
      RC_LOG() << "set " << path << ": exit " << r.exit_code << ": " << r.err;
      // A path may clash with an earlier one used as a directory (a/b vs a).
      RC_ASSERT(r.err.find("not a regular file") != std::string::npos ||
                r.err.find("is a secret, not a directory") != std::string::npos);
      continue;
    }
    written.emplace_back(path, value);
    vault.all_values.push_back(value);
  }
  // Later writes to the same path win.
  for (size_t i = 0; i < written.size(); ++i) {
    bool overwritten = false;
    for (size_t j = i + 1; j < written.size(); ++j) overwritten |= written[j].first == written[i].first;
    if (overwritten) continue;
    RunResult r = vault.Cli({"secrets", "reveal", "--", written[i].first});
    RC_ASSERT(r.exit_code == 0);
    RC_ASSERT(r.out == written[i].second);
  }
  auto leaks = vigo::testing::FindCanaries(vault.root, vault.all_values);
  RC_ASSERT(leaks.empty());
  RunResult audit = vault.Cli({"audit", "list", "--json"});
  RC_ASSERT(audit.exit_code == 0);
  RC_ASSERT(vigo::testing::FindCanariesIn(audit.out, "audit list", vault.all_values).empty());
}

}  // namespace
}  // namespace vigo
