// vigocli secrets rotate|generate|restore (CONTRACT §6): the verbs that make
// a new master key or a new value without anyone typing one. Input and
// output rules are cli/secret_input.h's.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/secret_input.h"
#include "cli/vault_session.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"
#include "server/audit.h"
#include "server/server_config.h"
#include "server/vault/local_backend.h"
#include "server/vault/secret_file.h"
#include "server/vault/unlock_gate.h"
#include "server/vault/vault_crypto.h"
#include "server/vault/version_floor.h"

namespace vigo::cli {
namespace {

using sandbox::SecretBuffer;

constexpr size_t kMaxGenerateLength = 4096;
constexpr size_t kDefaultGenerateLength = 32;

// Test hook: VIGO_TEST_ROTATE_CRASH_AT=next-key|file:N|before-swap|after-swap
// makes this process SIGKILL itself at that step, so tests can prove that a
// crash at any point loses nothing. It only ever kills the caller.
server::LocalBackend::RotateHook CrashHookFromEnv() {
  const char* at = std::getenv("VIGO_TEST_ROTATE_CRASH_AT");
  if (at == nullptr || *at == '\0') return nullptr;
  std::string want = at;
  return [want](std::string_view step, size_t n) {
    std::string here = step == "file" ? StrCat("file:", n) : std::string(step);
    if (here == want) ::raise(SIGKILL);
  };
}

}  // namespace

int SecretsRotate(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets rotate",
                     "Re-encrypt every secret under a new master key. Crash-safe: every secret "
                     "stays readable at every point, and the next run finishes an interrupted "
                     "rotation. Notifies a running server.",
                     {}};
  constexpr std::string_view kCmd = "secrets rotate";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd); rc >= 0) return rc;
  auto vault = OpenVault(*env);
  if (!vault.ok()) return FailAudited(&*env, kCmd, "secrets.rotate", {}, vault.status());
  auto r = (*vault)->Rotate(CrashHookFromEnv(), [&](const server::LocalBackend::RotateResult& res) {
    // Every file's counter joins the floor: files from before the floor
    // existed are guarded from here on.
    return CommitAudit(&*env, "secrets.rotate", {},
                       StrCat(res.reencrypted, " of ", res.secrets, " secrets re-encrypted",
                              res.resumed ? " (finished an interrupted rotation)" : ""),
                       res.versions);
  });
  if (!r.ok()) return FailAudited(&*env, kCmd, "secrets.rotate", {}, r.status());
  if (ctx.json) {
    std::printf("{\"ok\":true,\"secrets\":%zu,\"reencrypted\":%zu,\"resumed\":%s}\n", r->secrets,
                r->reencrypted, r->resumed ? "true" : "false");
  } else {
    std::printf("rotated the master key: %zu secrets under the new key%s\n", r->secrets,
                r->resumed ? " (finished an interrupted rotation)" : "");
  }
  Notify(*env, "secrets rotate");
  return kExitOk;
}

int SecretsGenerate(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets generate PATH [--length N]",
                     "Store a random value at PATH without showing it: N characters (default "
                     "32, at most 4096) from the URL-safe base64 alphabet [A-Za-z0-9_-], 6 "
                     "random bits each. Notifies a running server.",
                     {{"length", true, "number of characters (default 32)"}},
                     1,
                     1};
  constexpr std::string_view kCmd = "secrets generate";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string path = a.positional()[0];
  size_t length = kDefaultGenerateLength;
  if (a.Has("length")) {
    std::string v = *a.Get("length");
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || n < 1 || n > kMaxGenerateLength) {
      return Usage(kCmd, StrCat("flag '--length': its value (", v.size(),
                                " bytes) is not a number from 1 to ", kMaxGenerateLength));
    }
    length = static_cast<size_t>(n);
  }
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd); rc >= 0) return rc;
  absl::Status valid = server::vault::ValidateLocalPath(path);
  if (!valid.ok()) return FailAudited(&*env, kCmd, "secret.generate", {path}, valid);
  auto vault = OpenVault(*env);
  if (!vault.ok()) return FailAudited(&*env, kCmd, "secret.generate", {path}, vault.status());
  auto value = server::vault::RandomSecret(length);
  if (!value.ok()) return Fail(kCmd, value.status());
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (uint8_t& c : value->RevealMutable()) c = static_cast<uint8_t>(kAlphabet[c & 63]);
  auto version = (*vault)->Set(path, *value, [&](uint64_t v) {
    return CommitAudit(&*env, "secret.generate", {path}, StrCat(length, " characters, version ", v),
                       {{path, v}});
  });
  value->Clear();
  if (!version.ok()) return FailAudited(&*env, kCmd, "secret.generate", {path}, version.status());
  if (ctx.json) {
    std::printf("{\"ok\":true,\"path\":%s,\"length\":%zu,\"version\":%llu}\n",
                JsonString(path).c_str(), length, static_cast<unsigned long long>(*version));
  } else {
    std::printf("generated %s (%zu characters)\n", path.c_str(), length);
  }
  Notify(*env, StrCat("secrets generate ", path));
  return kExitOk;
}

int SecretsRestore(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{
      "vigocli secrets restore PATH [--from-file F]",
      "Go back to an older value of PATH on purpose, audited. The vault refuses a vault file "
      "whose version is below the highest one committed for its path (a restored or "
      "rolled-back file); restore takes such a file - F (e.g. a backup copy of "
      "<secrets>/PATH), else the file now at PATH - checks that it authenticates for PATH under "
      "the current (or pending) master key, and stores its value again with a new, highest "
      "version. Writes a secret.restore audit record naming both versions. Notifies a running "
      "server.",
      {{"from-file", true, "the vault file to restore (default: the file now at PATH)"}},
      1,
      1};
  constexpr std::string_view kCmd = "secrets restore";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string path = a.positional()[0];
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd); rc >= 0) return rc;
  absl::Status valid = server::vault::ValidateLocalPath(path);
  if (!valid.ok()) return FailAudited(&*env, kCmd, "secret.restore", {path}, valid);
  std::optional<std::vector<uint8_t>> file;
  std::string source = "the file at the path";
  if (a.Has("from-file")) {
    // A vault file holds ciphertext only: an ordinary read is fine.
    const std::string f = *a.Get("from-file");
    sandbox::UniqueFd fd(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      return FailAudited(&*env, kCmd, "secret.restore", {path},
                         sandbox::ErrnoStatus(errno, "open vault file", f));
    }
    std::vector<uint8_t> bytes;
    uint8_t buf[65536];
    while (true) {
      ssize_t n = ::read(fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return FailAudited(&*env, kCmd, "secret.restore", {path},
                           sandbox::ErrnoStatus(errno, "read vault file", f));
      }
      if (n == 0) break;
      bytes.insert(bytes.end(), buf, buf + n);
      if (bytes.size() > server::vault::kMaxSecretFileLen) {
        return FailAudited(&*env, kCmd, "secret.restore", {path},
                           absl::InvalidArgumentError(
                               StrCat("vault file ", f, " is larger than any valid vault file")));
      }
    }
    file = std::move(bytes);
    source = StrCat("file ", f);
  }
  auto vault = OpenVault(*env);
  if (!vault.ok()) return FailAudited(&*env, kCmd, "secret.restore", {path}, vault.status());
  auto r =
      (*vault)->Restore(path, std::move(file), [&](const server::LocalBackend::RestoreResult& res) {
        return CommitAudit(&*env, "secret.restore", {path},
                           StrCat("value of version ", res.from_version, " (", source,
                                  ") stored again as version ", res.version),
                           {{path, res.version}});
      });
  if (!r.ok()) return FailAudited(&*env, kCmd, "secret.restore", {path}, r.status());
  if (ctx.json) {
    std::printf("{\"ok\":true,\"path\":%s,\"from_version\":%llu,\"version\":%llu}\n",
                JsonString(path).c_str(), static_cast<unsigned long long>(r->from_version),
                static_cast<unsigned long long>(r->version));
  } else {
    std::printf("restored %s: the value of version %llu is now version %llu\n", path.c_str(),
                static_cast<unsigned long long>(r->from_version),
                static_cast<unsigned long long>(r->version));
  }
  Notify(*env, StrCat("secrets restore ", path));
  return kExitOk;
}

}  // namespace vigo::cli
