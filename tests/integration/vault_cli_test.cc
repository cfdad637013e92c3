// `vigocli secrets` and `vigocli audit` end to end: the real binary against a
// data root in a temp dir.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/strings.h"
#include "tests/support/test_env.h"

namespace vigo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using vigo::testing::BinPath;
using vigo::testing::FindCanaries;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::RunResult;
using vigo::testing::TempDir;
using vigo::testing::WriteFileOrDie;

constexpr char kPass[] = "Zq7#Kw9!mP2$vL5@xT";

class VaultCliTest : public ::testing::Test {
 protected:
  RunResult Cli(std::vector<std::string> args, std::string_view in = {},
                std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", root().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return vigo::testing::Run(argv, in, env);
  }
  virtual fs::path root() { return tmp_.path(); }
  // Only `vigosrv init` creates the database that vigocli's writes audit to.
  void InitServerRoot() {
    RunResult r =
        vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root().string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void InitAndUnlock() {
    InitServerRoot();
    WriteFileOrDie(in_.path() / "pass.txt", std::string(kPass) + "\n");
    RunResult r = Cli({"secrets", "init", "--passphrase-file", (in_.path() / "pass.txt").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Cli({"secrets", "unlock"}, std::string(kPass) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string Reveal(const std::string& path) {
    RunResult r = Cli({"secrets", "reveal", path});
    EXPECT_EQ(r.exit_code, 0) << path << ": " << r.err;
    return r.out;
  }
  std::string AuditJson() {
    RunResult r = Cli({"audit", "list", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  // `secrets set PATH` with --json; returns the version it reports.
  uint64_t SetJson(const std::string& path, const std::string& value) {
    RunResult r = Cli({"--json", "secrets", "set", path}, value);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    size_t at = r.out.find("\"version\":");
    if (at == std::string::npos) return 0;
    return std::strtoull(r.out.c_str() + at + 10, nullptr, 10);
  }
  TempDir tmp_;
  TempDir in_;  // input files (passphrase, values): outside the data root
};

// Every file under `dir` (relative name → bytes), for "nothing changed" checks.
std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = ReadFileOrEmpty(e.path());
  }
  return out;
}

// Fills the file system holding `dir` until write(2) fails with ENOSPC.
void FillFileSystem(const fs::path& dir) {
  int fd = ::open((dir / "filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string chunk(4096, 'f');
  while (::write(fd, chunk.data(), chunk.size()) > 0) {
  }
  int err = errno;
  // Top up the last partial page, byte by byte.
  while (::write(fd, "f", 1) > 0) {
  }
  ::close(fd);
  ASSERT_EQ(err, ENOSPC);
}

TEST_F(VaultCliTest, RolledBackVaultFileIsRefusedNamingBothVersionsAndRestoreIsAudited) {
  InitAndUnlock();
  const fs::path file = root() / "secrets/app/pw";
  const uint64_t v1 = SetJson("app/pw", "the-old-value");
  const std::string old_bytes = ReadFileOrEmpty(file);
  const uint64_t v2 = SetJson("app/pw", "the-new-value");
  ASSERT_GT(v2, v1);
  const std::string new_bytes = ReadFileOrEmpty(file);
  // A valid, older file for the same path put back (a backup, a copy).
  WriteFileOrDie(file, old_bytes);
  RunResult r = Cli({"secrets", "reveal", "app/pw"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("app/pw"));
  EXPECT_THAT(r.err, HasSubstr("version " + std::to_string(v1)));
  EXPECT_THAT(r.err, HasSubstr("version " + std::to_string(v2)));
  EXPECT_THAT(r.err, HasSubstr("vigocli secrets restore app/pw"));
  EXPECT_THAT(r.out, Not(HasSubstr("the-old-value")));

  // The audited way back: the file now in place...
  r = Cli({"--json", "secrets", "restore", "app/pw"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"from_version\":" + std::to_string(v1)));
  EXPECT_EQ(Reveal("app/pw"), "the-old-value");
  // ...or a backup copy given with --from-file.
  WriteFileOrDie(in_.path() / "backup", new_bytes);
  r = Cli({"secrets", "restore", "app/pw", "--from-file", (in_.path() / "backup").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("app/pw"), "the-new-value");
  // A file of another path does not authenticate for this one.
  ASSERT_EQ(Cli({"secrets", "set", "app/other"}, "other-value").exit_code, 0);
  WriteFileOrDie(in_.path() / "foreign", ReadFileOrEmpty(root() / "secrets/app/other"));
  r = Cli({"secrets", "restore", "app/pw", "--from-file", (in_.path() / "foreign").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("authentication failed"));
  EXPECT_EQ(Reveal("app/pw"), "the-new-value");
  // Deleting does not lower the floor: the old file put back stays refused.
  ASSERT_EQ(Cli({"secrets", "delete", "app/pw"}).exit_code, 0);
  WriteFileOrDie(file, old_bytes);
  EXPECT_EQ(Cli({"secrets", "reveal", "app/pw"}).exit_code, 1);

  std::string audit = AuditJson();
  EXPECT_THAT(audit, HasSubstr("\"event\":\"secret.restore\""));
  EXPECT_THAT(audit, HasSubstr("value of version " + std::to_string(v1)));
  EXPECT_THAT(audit, Not(HasSubstr("the-old-value")));
  EXPECT_EQ(Cli({"audit", "verify"}).exit_code, 0);
  r = Cli({"secrets", "restore", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: vigocli secrets restore PATH [--from-file F]"));
}

TEST_F(VaultCliTest, StaleTempFilesAreRemovedByTheNextWriteWithoutFollowingLinks) {
  InitAndUnlock();
  ASSERT_EQ(Cli({"secrets", "set", "app/pw"}, "v1").exit_code, 0);
  const fs::path sec = root() / "secrets";
  // What `kill -9` of `secrets set` leaves: a temp file nobody removes.
  const fs::path dead = sec / "app/.vigo-tmp.0123456789abcdef";
  const fs::path fresh = sec / ".vigo-tmp.fedcba9876543210";  // a writer still at work
  const fs::path foreign = sec / "app/.vigo-tmp.foreign";     // not ours
  const fs::path link = sec / "app/.vigo-tmp.link";           // a planted symlink
  const fs::path outside = in_.path() / "outside";
  WriteFileOrDie(dead, "ciphertext");
  WriteFileOrDie(fresh, "ciphertext");
  WriteFileOrDie(foreign, "ciphertext");
  WriteFileOrDie(outside, "keep me");
  ASSERT_EQ(::chown(foreign.c_str(), 65534, 65534), 0);
  fs::create_symlink(outside, link);
  struct timespec old_times[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  for (const fs::path& p : {dead, foreign, link}) {
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), old_times, AT_SYMLINK_NOFOLLOW), 0) << p;
  }
  ASSERT_EQ(Cli({"secrets", "set", "other/x"}, "v2").exit_code, 0);
  EXPECT_FALSE(fs::exists(fs::symlink_status(dead)));
  EXPECT_TRUE(fs::exists(fs::symlink_status(fresh)));
  EXPECT_TRUE(fs::exists(fs::symlink_status(foreign)));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(ReadFileOrEmpty(outside), "keep me");
  EXPECT_EQ(Reveal("app/pw"), "v1");
}

TEST_F(VaultCliTest, FullLifecycle) {
  RunResult r = Cli({"secrets", "status"});
  EXPECT_EQ(r.exit_code, 4) << "not initialized is not success";
  EXPECT_THAT(r.out, HasSubstr("not initialized"));
  InitAndUnlock();
  struct stat st;
  ASSERT_EQ(::stat((root() / "secrets/.master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  r = Cli({"secrets", "status"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("unlocked (expires "));

  // Stdin: one trailing newline dropped.
  r = Cli({"secrets", "set", "webapp/db_pw"}, "hunter2-value\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no running server"));
  EXPECT_EQ(Reveal("webapp/db_pw"), "hunter2-value");
  r = Cli({"secrets", "set", "webapp/two_nl"}, "x\n\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("webapp/two_nl"), "x\n");

  // --from-file: exact bytes, binary safe.
  std::string binary("bin\0ary\nvalue\n", 14);
  WriteFileOrDie(in_.path() / "value.bin", binary);
  r = Cli({"secrets", "set", "webapp/tls_key", "--from-file", (in_.path() / "value.bin").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("webapp/tls_key"), binary);

  // Empty stdin stores nothing (a forgotten pipe); --from-file /dev/null can.
  r = Cli({"secrets", "set", "webapp/db_pw"}, "");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("empty input"));
  EXPECT_EQ(Reveal("webapp/db_pw"), "hunter2-value");
  r = Cli({"secrets", "set", "webapp/empty", "--from-file", "/dev/null"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("webapp/empty"), "");
  ASSERT_EQ(Cli({"secrets", "delete", "webapp/empty"}).exit_code, 0);
  r = Cli({"secrets", "set", "webapp/x", "--from-file", (in_.path() / "missing").string()});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, HasSubstr("missing"));

  r = Cli({"secrets", "generate", "other/token", "--length", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("other/token"));
  std::string gen = Reveal("other/token");
  EXPECT_EQ(gen.size(), 40u);
  EXPECT_EQ(gen.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_THAT(r.out, Not(HasSubstr(gen)));
  r = Cli({"secrets", "generate", "other/default"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("other/default").size(), 32u);

  r = Cli({"secrets", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "other/default\nother/token\nwebapp/db_pw\nwebapp/tls_key\nwebapp/two_nl\n");
  r = Cli({"secrets", "list", "webapp/"});
  EXPECT_EQ(r.out, "webapp/db_pw\nwebapp/tls_key\nwebapp/two_nl\n");
  r = Cli({"--json", "secrets", "list", "other/"});
  EXPECT_EQ(r.out, "{\"path\":\"other/default\"}\n{\"path\":\"other/token\"}\n");

  r = Cli({"secrets", "delete", "webapp/two_nl"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"secrets", "reveal", "webapp/two_nl"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, HasSubstr("webapp/two_nl"));
  EXPECT_EQ(Cli({"secrets", "delete", "webapp/two_nl"}).exit_code, 4);

  std::string old_key = ReadFileOrEmpty(root() / "secrets/.master.key");
  r = Cli({"secrets", "rotate"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("4 secrets"));
  EXPECT_NE(ReadFileOrEmpty(root() / "secrets/.master.key"), old_key);
  EXPECT_EQ(Reveal("webapp/db_pw"), "hunter2-value");
  EXPECT_EQ(Reveal("webapp/tls_key"), binary);

  r = Cli({"secrets", "lock"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"secrets", "status"});
  EXPECT_EQ(r.exit_code, 3) << "locked is exit 3";
  EXPECT_THAT(r.out, HasSubstr("locked"));
  EXPECT_THAT(r.out, Not(HasSubstr("unlocked")));

  // The audit log has every verb, paths and never values.
  std::string audit = AuditJson();
  for (const char* ev : {"\"secret.set\"", "\"secret.reveal\"", "\"secret.delete\"",
                         "\"secret.generate\"", "\"secrets.rotate\"", "\"secrets.unlock\"",
                         "\"secrets.lock\""}) {
    EXPECT_THAT(audit, HasSubstr(ev));
  }
  EXPECT_THAT(audit, HasSubstr("\"paths\":[\"webapp/db_pw\"]"));
  EXPECT_THAT(FindCanaries(root(), {"hunter2-value", gen, binary, kPass}), ::testing::IsEmpty());
  EXPECT_TRUE(vigo::testing::FindCanariesIn(audit, "audit", {"hunter2-value", gen, kPass}).empty());
  r = Cli({"audit", "verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("OK"));
}

TEST_F(VaultCliTest, LockedVaultRefusesGatedVerbsWithExit3) {
  InitServerRoot();
  WriteFileOrDie(in_.path() / "pass.txt", kPass);
  ASSERT_EQ(Cli({"secrets", "init", "--passphrase-file", (in_.path() / "pass.txt").string()})
                .exit_code,
            0);
  // init does not unlock.
  const std::vector<std::vector<std::string>> gated = {
      {"secrets", "set", "a/b"},      {"secrets", "reveal", "a/b"}, {"secrets", "list"},
      {"secrets", "delete", "a/b"},   {"secrets", "rotate"},        {"secrets", "generate", "a/c"},
      {"secrets", "lock"}};
  for (const auto& args : gated) {
    RunResult r = Cli(args, "value");
    EXPECT_EQ(r.exit_code, 3) << args[1] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("locked"));
  }
  // A hand-made sentinel does not unlock.
  WriteFileOrDie(root() / ".secrets-unlocked", "unlocked\n");
  EXPECT_EQ(Cli({"secrets", "reveal", "a/b"}).exit_code, 3);
  ASSERT_EQ(Cli({"secrets", "unlock", "--passphrase-file", (in_.path() / "pass.txt").string()})
                .exit_code,
            0);
  EXPECT_EQ(Cli({"secrets", "set", "a/b"}, "v").exit_code, 0);
  EXPECT_EQ(Cli({"secrets", "lock"}).exit_code, 0);
  EXPECT_EQ(Cli({"secrets", "reveal", "a/b"}).exit_code, 3);
  EXPECT_FALSE(fs::exists(root() / ".secrets-unlocked"));
}

TEST_F(VaultCliTest, WrongPassphraseFailsSlowlyAndIsAudited) {
  InitAndUnlock();
  ASSERT_EQ(Cli({"secrets", "lock"}).exit_code, 0);
  auto start = std::chrono::steady_clock::now();
  RunResult r = Cli({"secrets", "unlock"}, "not the passphrase\n");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("wrong passphrase"));
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_EQ(Cli({"secrets", "reveal", "x"}).exit_code, 3);
  std::string audit = AuditJson();
  EXPECT_THAT(audit, HasSubstr("\"event\":\"secrets.unlock.failed\""));
  EXPECT_THAT(audit, HasSubstr("\"outcome\":\"denied\""));
  EXPECT_THAT(audit, Not(HasSubstr("not the passphrase")));
  r = Cli({"secrets", "unlock"}, std::string(kPass) + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(VaultCliTest, HelpAndUsage) {
  for (const char* verb : {"init", "unlock", "lock", "status", "set", "reveal", "list", "delete",
                           "rotate", "generate", "restore"}) {
    RunResult r = Cli({"secrets", verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb;
    EXPECT_THAT(r.out, HasSubstr("usage: vigocli secrets")) << verb;
  }
  EXPECT_EQ(Cli({"secrets", "--help"}).exit_code, 0);
  EXPECT_EQ(Cli({"audit", "list", "--help"}).exit_code, 0);
  EXPECT_EQ(Cli({"audit", "verify", "--help"}).exit_code, 0);
  EXPECT_EQ(Cli({"secrets", "set", "a", "--bogus"}).exit_code, 2);
  EXPECT_EQ(Cli({"secrets", "set"}).exit_code, 2);
  EXPECT_EQ(Cli({"secrets", "set", "a", "value-in-argv"}).exit_code, 2);
  EXPECT_EQ(Cli({"secrets", "frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cli({"secrets", "generate", "a", "--length", "0"}).exit_code, 2);
}

TEST_F(VaultCliTest, BadPathsAndLimits) {
  InitAndUnlock();
  for (const char* bad : {"../x", "/abs", "a//b", ".master.key"}) {
    RunResult r = Cli({"secrets", "set", bad}, "v");
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_THAT(r.err, HasSubstr("secret path")) << bad;
  }
  // A value pasted as PATH by mistake never enters the permanent audit chain.
  RunResult pasted = Cli({"secrets", "set", "hunter2 Pasted!Value"}, "v");
  EXPECT_EQ(pasted.exit_code, 1);
  RunResult audit = Cli({"audit", "list", "--json"});
  EXPECT_THAT(audit.out, Not(HasSubstr("Pasted!Value")));
  EXPECT_THAT(audit.out, HasSubstr("<invalid path, 20 bytes>"));
  std::string mib(1 << 20, 'm');
  for (size_t i = 0; i < mib.size(); i += 97) mib[i] = static_cast<char>('a' + i % 26);
  WriteFileOrDie(in_.path() / "mib", mib);
  RunResult r = Cli({"secrets", "set", "big", "--from-file", (in_.path() / "mib").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("big"), mib);
  WriteFileOrDie(in_.path() / "mib1", mib + "x");
  r = Cli({"secrets", "set", "big", "--from-file", (in_.path() / "mib1").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("1 MiB"));
  EXPECT_EQ(Reveal("big"), mib);
  // Through stdin: 1 MiB plus the dropped newline is fine.
  r = Cli({"secrets", "set", "big2"}, mib + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Reveal("big2"), mib);
}

// Issue 15.3: a value on argv, an invalid PATH (a value pasted by mistake)
// or a bad flag value is refused without being repeated on stdout, stderr
// or in the audit log.
TEST_F(VaultCliTest, RefusedArgumentsAreNeverEchoed) {
  InitAndUnlock();
  constexpr char kValue[] = "Argv-Value-9f3e1d";
  RunResult r = Cli({"secrets", "set", "app/pw", kValue});
  EXPECT_EQ(r.exit_code, 2);  // CONTRACT: usage error
  EXPECT_THAT(r.err, HasSubstr("unexpected argument (argument 2, 17 bytes)"));
  EXPECT_THAT(r.err, HasSubstr("never read from argv"));
  EXPECT_THAT(r.err + r.out, Not(HasSubstr("Argv-Value")));
  r = Cli({"secrets", "set", "app/pw", StrCat("--", kValue)});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err + r.out, Not(HasSubstr("Argv-Value")));
  r = Cli({"secrets", "generate", "app/pw", "--length", kValue});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err + r.out, Not(HasSubstr("Argv-Value")));
  for (const char* flag : {"--after", "--limit"}) {
    r = Cli({"audit", "list", flag, kValue});
    EXPECT_EQ(r.exit_code, 2) << flag;
    EXPECT_THAT(r.err, HasSubstr("its value (17 bytes) is not a whole number")) << r.err;
    EXPECT_THAT(r.err + r.out, Not(HasSubstr("Argv-Value"))) << flag;
  }
  // An invalid path in every verb that takes one.
  const std::string pasted = StrCat("pasted ", kValue, "!");
  for (const char* verb : {"set", "reveal", "delete", "generate", "restore"}) {
    r = Cli({"secrets", verb, pasted}, "v");
    EXPECT_NE(r.exit_code, 0) << verb;
    EXPECT_THAT(r.err, HasSubstr("PATH argument (25 bytes) refused")) << verb << ": " << r.err;
    EXPECT_THAT(r.err + r.out, Not(HasSubstr("Argv-Value"))) << verb;
  }
  // A reserved segment is refused the same way.
  r = Cli({"secrets", "reveal", StrCat(".vigo", kValue)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err + r.out, Not(HasSubstr("Argv-Value")));
  const std::string audit = AuditJson();
  EXPECT_THAT(audit, HasSubstr("<invalid path, 25 bytes>"));
  EXPECT_THAT(audit, HasSubstr("<invalid path, 22 bytes>"));
  EXPECT_THAT(audit, Not(HasSubstr("Argv-Value")));
}

TEST_F(VaultCliTest, AuditVerifyNamesTheTamperedRecord) {
  InitAndUnlock();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Cli({"secrets", "set", "p/" + std::to_string(i)}, "v").exit_code, 0);
  }
  ASSERT_EQ(Cli({"audit", "verify"}).exit_code, 0);
  // Flip one byte of a stored column of record 3.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((root() / "db/vigo.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE audit SET paths = replace(paths, 'p/0', 'p/X') WHERE seq = 3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_changes(db), 1);
  sqlite3_close(db);
  RunResult r = Cli({"audit", "verify"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, HasSubstr("record 3"));
  r = Cli({"--json", "audit", "verify"});
  EXPECT_THAT(r.out, HasSubstr("\"first_bad_seq\":3"));
}

TEST_F(VaultCliTest, KillDuringRotateLosesNothing) {
  InitAndUnlock();
  constexpr int kN = 12;
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(Cli({"secrets", "set", "k/" + std::to_string(i)}, "value-" + std::to_string(i))
                  .exit_code,
              0);
  }
  for (const char* at : {"next-key", "file:1", "file:6", "file:12", "before-swap", "after-swap"}) {
    RunResult r = Cli({"secrets", "rotate"}, {}, {std::string("VIGO_TEST_ROTATE_CRASH_AT=") + at});
    ASSERT_EQ(r.signal, 9) << at << ": " << r.err;
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(Reveal("k/" + std::to_string(i)), "value-" + std::to_string(i)) << at;
    }
    r = Cli({"secrets", "rotate"});
    ASSERT_EQ(r.exit_code, 0) << at << ": " << r.err;
    EXPECT_EQ(fs::exists(root() / "secrets/.master.key.next"), false) << at;
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(Reveal("k/" + std::to_string(i)), "value-" + std::to_string(i)) << at;
    }
  }
  EXPECT_EQ(Cli({"audit", "verify"}).exit_code, 0);
}

// The data root lives on a small tmpfs so a large write hits ENOSPC.
class VaultCliDiskFullTest : public VaultCliTest {
 protected:
  void SetUp() override {
    mnt_ = tmp_.path() / "mnt";
    fs::create_directories(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=512k,mode=0700") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): "
                   << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  fs::path root() override { return mnt_; }
  fs::path mnt_;
  bool mounted_ = false;
};

TEST_F(VaultCliDiskFullTest, DiskFullDuringSetKeepsTheOldValue) {
  // The database must not be on the full disk for this test: point it
  // outside through server.yaml.
  WriteFileOrDie(mnt_ / "server.yaml",
                 "database:\n  driver: sqlite\n  path: " + (tmp_.path() / "db/vigo.db").string() +
                     "\n");
  InitAndUnlock();
  ASSERT_EQ(Cli({"secrets", "set", "app/pw"}, "the-old-value").exit_code, 0);
  std::string big(900 * 1024, 'b');
  WriteFileOrDie(in_.path() / "big", big);
  RunResult r = Cli({"secrets", "set", "app/pw", "--from-file", (in_.path() / "big").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("app/pw"));
  EXPECT_THAT(r.err, HasSubstr("No space left"));
  EXPECT_EQ(Reveal("app/pw"), "the-old-value");
  for (const auto& e : fs::recursive_directory_iterator(mnt_ / "secrets")) {
    EXPECT_EQ(e.path().filename().string().rfind(".vigo-tmp.", 0), std::string::npos)
        << e.path();
  }
  std::string audit = AuditJson();
  EXPECT_THAT(audit, HasSubstr("\"outcome\":\"failed\""));
}

TEST_F(VaultCliDiskFullTest, ReadVerbsWorkOnAFullDiskAndLeaveTheTokenAlone) {
  WriteFileOrDie(mnt_ / "server.yaml", "database:\n  driver: sqlite\n  path: " +
                                           (tmp_.path() / "db/vigo.db").string() + "\n");
  InitAndUnlock();
  ASSERT_EQ(Cli({"secrets", "set", "app/pw"}, "the-value").exit_code, 0);
  const std::string token = ReadFileOrEmpty(mnt_ / ".secrets-unlocked");
  FillFileSystem(mnt_);
  RunResult r = Cli({"secrets", "reveal", "app/pw"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "the-value");
  r = Cli({"secrets", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "app/pw\n");
  EXPECT_EQ(ReadFileOrEmpty(mnt_ / ".secrets-unlocked"), token);
}

// The database lives on a small tmpfs that the test fills; the vault does not.
class VaultCliDatabaseFullTest : public VaultCliTest {
 protected:
  void SetUp() override {
    db_mnt_ = in_.path() / "dbmnt";
    fs::create_directories(db_mnt_);
    if (::mount("tmpfs", db_mnt_.c_str(), "tmpfs", 0, "size=2m,mode=0700") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (holder_ != nullptr) sqlite3_close(holder_);
    if (mounted_) ::umount2(db_mnt_.c_str(), MNT_DETACH);
  }
  fs::path db_mnt_;
  bool mounted_ = false;
  sqlite3* holder_ = nullptr;
};

TEST_F(VaultCliDatabaseFullTest, FullDatabaseLeavesTheVaultAsItWasAndExits1) {
  const fs::path db = db_mnt_ / "vigo.db";
  WriteFileOrDie(root() / "server.yaml",
                 "database:\n  driver: sqlite\n  path: " + db.string() + "\n");
  InitAndUnlock();
  ASSERT_EQ(Cli({"secrets", "set", "app/pw"}, "the-old-value").exit_code, 0);
  ASSERT_EQ(Cli({"secrets", "set", "app/two"}, "second").exit_code, 0);
  const std::string before_audit = AuditJson();
  // A connection held open keeps the WAL file: emptied now, so the next
  // commit must grow it on the full disk (the main file is only read).
  ASSERT_EQ(sqlite3_open(db.c_str(), &holder_), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder_, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  FillFileSystem(db_mnt_);
  const auto vault_before = Snapshot(root() / "secrets");
  const std::vector<std::vector<std::string>> changes = {{"secrets", "set", "app/pw"},
                                                         {"secrets", "set", "app/new"},
                                                         {"secrets", "delete", "app/two"},
                                                         {"secrets", "generate", "app/gen"},
                                                         {"secrets", "rotate"},
                                                         {"secrets", "restore", "app/pw"},
                                                         {"secrets", "lock"}};
  for (const auto& args : changes) {
    RunResult r = Cli(args, "the-new-value");
    EXPECT_EQ(r.exit_code, 1) << args[1] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("cannot write the audit record")) << args[1];
    EXPECT_THAT(r.err, HasSubstr("full")) << args[1];
    EXPECT_THAT(r.err, HasSubstr("as it was")) << args[1];
    EXPECT_EQ(Snapshot(root() / "secrets"), vault_before) << args[1];
  }
  EXPECT_THAT(Cli({"secrets", "status"}).out, HasSubstr("unlocked"));
  ASSERT_EQ(::unlink((db_mnt_ / "filler").c_str()), 0);
  EXPECT_EQ(Reveal("app/pw"), "the-old-value");
  EXPECT_EQ(Reveal("app/two"), "second");
  // No record of a change that did not happen.
  std::string audit = AuditJson();
  EXPECT_EQ(audit.find("app/new"), std::string::npos) << audit;
  EXPECT_EQ(audit.find("app/gen"), std::string::npos) << audit;
  EXPECT_EQ(audit.find("secrets.rotate"), std::string::npos) << audit;
  EXPECT_EQ(audit.find("secrets.lock"), std::string::npos) << audit;
  EXPECT_EQ(Cli({"audit", "verify"}).exit_code, 0);
}

}  // namespace
}  // namespace vigo
