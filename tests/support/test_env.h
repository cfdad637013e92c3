// Shared helpers for Vigo tests: temp dirs, locating built binaries, running
// them, and scanning files for canary values.
#ifndef VIGO_TESTS_SUPPORT_TEST_ENV_H_
#define VIGO_TESTS_SUPPORT_TEST_ENV_H_

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vigo::testing {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// <build>/bin/<name> (from $VIGO_BIN_DIR, set by ctest).
std::filesystem::path BinPath(std::string_view name);
// <build>/tests/<name> (test helper binaries; $VIGO_TEST_BIN_DIR).
std::filesystem::path TestBinPath(std::string_view name);
// <source>/<rel> ($VIGO_SOURCE_DIR).
std::filesystem::path SourcePath(std::string_view rel);

struct RunResult {
  int exit_code = -1;   // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};
// Runs argv (no shell) with `stdin_data` on stdin; captures stdout/stderr.
RunResult Run(const std::vector<std::string>& argv, std::string_view stdin_data = {},
              const std::vector<std::string>& extra_env = {});

std::string ReadFileOrEmpty(const std::filesystem::path& p);

// The "key value" lines a hostile helper (tests/helpers/exec_attacker_main.cc)
// writes to its report file, as a map (a later key wins).
std::map<std::string, std::string> ReadReport(const std::filesystem::path& p);

// A YAML flow list of JSON-quoted strings, for a `command:` in test stacks.
std::string Argv(const std::vector<std::string>& argv);
void WriteFileOrDie(const std::filesystem::path& p, std::string_view data, int mode = 0600);

// The forms a leaked canary may take: raw, hex (lower/upper), base64,
// URL-escaped, JSON-escaped.
std::vector<std::string> CanaryForms(std::string_view canary);
// Files under `dir` (recursively) that contain any form of any canary, or
// any 8-byte substring of a canary. Returns "file: form" descriptions.
std::vector<std::string> FindCanaries(const std::filesystem::path& dir,
                                      const std::vector<std::string>& canaries);
// Same for a single blob.
std::vector<std::string> FindCanariesIn(std::string_view blob, std::string_view where,
                                        const std::vector<std::string>& canaries);

}  // namespace vigo::testing

#endif  // VIGO_TESTS_SUPPORT_TEST_ENV_H_
