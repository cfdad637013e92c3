// vigocli secrets init|unlock|lock|status|set|reveal|list|delete (CONTRACT §6);
// rotate, generate and restore are cli/secrets_keys_cmd.cc, `audit` is
// cli/audit_cmd.cc.
//
// Input rules: values come from --from-file, else all of stdin (one trailing
// newline dropped), else a no-echo prompt; passphrases from
// --passphrase-file, else stdin when it is not a terminal, else a no-echo
// prompt. Never from argv. Values are read with read(2) straight into a
// SecretBuffer and written to stdout with write(2) (no stdio buffer copies).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/secret_input.h"
#include "cli/terminal_text.h"
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
using server::vault::UnlockGate;

// ---------------------------------------------------------------- verbs

int SecretsInit(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets init [--passphrase-file F]",
                     "Create the master key and the operator passphrase. The passphrase comes "
                     "from F, else stdin when it is not a terminal, else a no-echo prompt (asked "
                     "twice). The vault stays locked until `vigocli secrets unlock`.",
                     {{"passphrase-file", true, "read the passphrase from F"}}};
  constexpr std::string_view kCmd = "secrets init";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  UnlockGate gate(env->cfg.root, env->cfg.SecretsDir());
  if (gate.Initialized()) {
    return Fail(kCmd,
                absl::AlreadyExistsError(StrCat("the vault in ", env->cfg.SecretsDir().string(),
                                                " is already initialized (nothing changed)")));
  }
  auto pass = ReadPassphrase(a, /*confirm=*/true);
  if (!pass.ok()) return Fail(kCmd, pass.status());
  absl::Status st = server::vault::CreateMasterKey(env->cfg.SecretsDir());
  bool kept_key = absl::IsAlreadyExists(st);
  if (!st.ok() && !kept_key) return Fail(kCmd, st);
  // The key must load (mode, owner, format) before we call the vault ready.
  auto vault = server::LocalBackend::Open(env->cfg.SecretsDir());
  if (!vault.ok()) return Fail(kCmd, vault.status());
  st = gate.SetPassphrase(*pass);
  if (!st.ok()) return Fail(kCmd, st);
  absl::Status au = Audit(&*env, "secrets.init", {}, "ok",
                          kept_key ? "kept existing master key" : "new master key");
  if (!au.ok()) return Fail(kCmd, au);
  if (ctx.json) {
    std::printf("{\"ok\":true,\"secrets_dir\":%s,\"new_master_key\":%s}\n",
                JsonString(env->cfg.SecretsDir().string()).c_str(), kept_key ? "false" : "true");
  } else {
    std::printf("vault initialized in %s (%s); run `vigocli secrets unlock` to use it\n",
                env->cfg.SecretsDir().string().c_str(),
                kept_key ? "kept the existing master key" : "new master key");
  }
  return kExitOk;
}

int SecretsUnlock(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets unlock [--passphrase-file F]",
                     "Unlock the vault for 24 hours (sliding: each secrets command extends it). "
                     "The passphrase comes from F, else stdin when it is not a terminal, else a "
                     "no-echo prompt. Wrong passphrases are audited and slowed down.",
                     {{"passphrase-file", true, "read the passphrase from F"}}};
  constexpr std::string_view kCmd = "secrets unlock";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  UnlockGate gate(env->cfg.root, env->cfg.SecretsDir());
  if (!gate.Initialized()) {
    return Fail(kCmd, absl::FailedPreconditionError(
                          StrCat("the vault in ", env->cfg.SecretsDir().string(),
                                 " is not initialized; run `vigocli secrets init`")));
  }
  auto pass = ReadPassphrase(a, /*confirm=*/false);
  if (!pass.ok()) return Fail(kCmd, pass.status());
  int64_t now = server::vault::NowUnix();
  absl::Status st = gate.CheckPassphrase(*pass);
  if (absl::IsPermissionDenied(st)) {
    int failures = gate.RecordFailure(now);
    (void)Audit(&*env, "secrets.unlock.failed", {}, "denied",
                StrCat("wrong passphrase (", failures, " recent failures)"));
    std::this_thread::sleep_for(UnlockGate::DelayFor(failures));
    std::fprintf(stderr, "vigocli %s: wrong passphrase\n", std::string(kCmd).c_str());
    return kExitPermission;
  }
  if (!st.ok()) return Fail(kCmd, st);
  gate.ResetFailures();
  st = gate.Unlock(now);
  if (!st.ok()) return Fail(kCmd, st);
  absl::Status au = Audit(&*env, "secrets.unlock", {}, "ok", "");
  if (!au.ok()) {
    (void)gate.Lock();  // an unaudited unlock does not stand
    return Fail(kCmd, au);
  }
  int64_t exp = now + server::vault::kUnlockWindowSeconds;
  if (ctx.json) {
    std::printf("{\"state\":\"unlocked\",\"expires\":\"%s\",\"expires_unix\":%lld}\n",
                IsoTime(exp * 1000).c_str(), static_cast<long long>(exp));
  } else {
    std::printf("unlocked until %s (each secrets command extends it by 24 h)\n",
                IsoTime(exp * 1000).c_str());
  }
  return kExitOk;
}

int SecretsLock(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets lock", "Lock the vault now (removes the unlock token).", {}};
  constexpr std::string_view kCmd = "secrets lock";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd); rc >= 0) return rc;
  UnlockGate gate(env->cfg.root, env->cfg.SecretsDir());
  absl::Status st = gate.Lock([&] { return CommitAudit(&*env, "secrets.lock", {}, "", {}); });
  if (!st.ok()) return Fail(kCmd, st);
  std::printf(ctx.json ? "{\"state\":\"locked\"}\n" : "locked\n");
  return kExitOk;
}

int SecretsStatus(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets status",
                     "Print whether the vault is locked or unlocked, and until when.\n"
                     "Exit 0 when unlocked, 3 when locked, 4 when the vault is not initialized "
                     "(or the data root does not exist), 1 on an error. Creates nothing.",
                     {}};
  constexpr std::string_view kCmd = "secrets status";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  if (absl::Status root = RequireDataRoot(ctx.root); !root.ok()) return Fail(kCmd, root);
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  UnlockGate gate(env->cfg.root, env->cfg.SecretsDir());
  if (!gate.Initialized()) {
    std::printf(ctx.json ? "{\"initialized\":false,\"state\":\"locked\"}\n"
                         : "not initialized (run `vigocli secrets init`)\n");
    return kExitNotFound;
  }
  auto st = gate.Check(server::vault::NowUnix());
  if (!st.ok()) return Fail(kCmd, st.status());
  bool pending = false;
  if (auto dir = server::vault::SecureDir::Open(env->cfg.SecretsDir(), false); dir.ok()) {
    pending = dir->Exists(server::vault::kPendingKeyFile);
  }
  if (ctx.json) {
    if (st->unlocked) {
      std::printf(
          "{\"initialized\":true,\"state\":\"unlocked\",\"expires\":\"%s\",\"expires_unix\":%lld,"
          "\"rotation_pending\":%s}\n",
          IsoTime(st->expires_unix * 1000).c_str(), static_cast<long long>(st->expires_unix),
          pending ? "true" : "false");
    } else {
      std::printf(
          "{\"initialized\":true,\"state\":\"locked\",\"reason\":%s,"
          "\"rotation_pending\":%s}\n",
          JsonString(st->reason).c_str(), pending ? "true" : "false");
    }
  } else {
    if (st->unlocked) {
      std::printf("unlocked (expires %s)\n", IsoTime(st->expires_unix * 1000).c_str());
    } else {
      std::printf("locked (%s)\n", st->reason.c_str());
    }
    if (pending) {
      std::printf(
          "an interrupted rotation is pending: run `vigocli secrets rotate` to finish it\n");
    }
  }
  // As `vault status`: scripts can test the state by the exit code alone.
  return st->unlocked ? kExitOk : kExitLocked;
}

int SecretsSet(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets set PATH [--from-file F]",
                     "Store a value at PATH: from F (exact bytes), else all of stdin (one "
                     "trailing newline dropped), else a no-echo prompt. Never from argv. Values "
                     "are limited to 1 MiB. Notifies a running server.",
                     {{"from-file", true, "read the value from F"}},
                     1,
                     1};
  constexpr std::string_view kCmd = "secrets set";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string path = a.positional()[0];
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd); rc >= 0) return rc;
  absl::Status valid = server::vault::ValidateLocalPath(path);
  if (!valid.ok()) return FailAudited(&*env, kCmd, "secret.set", {path}, valid);
  auto vault = OpenVault(*env);
  if (!vault.ok()) return FailAudited(&*env, kCmd, "secret.set", {path}, vault.status());
  // One byte over the limit is enough to tell "too large"; stdin may carry
  // one extra trailing newline.
  const size_t limit = server::vault::kMaxValueBytes + 1;
  absl::StatusOr<SecretBuffer> value;
  if (a.Has("from-file")) {
    value = ReadFileSecret(*a.Get("from-file"), limit, "value");
  } else if (!::isatty(STDIN_FILENO)) {
    value = ReadAllSecret(STDIN_FILENO, limit, "value on stdin");
    if (value.ok()) {
      absl::Status d = DropOneTrailingNewline(&*value);
      if (!d.ok()) value = d;
    }
  } else {
    value = PromptNoEcho(StrCat("Value for ", path, ": "), limit);
  }
  if (value.ok() && value->empty() && !a.Has("from-file")) {
    // Almost always a forgotten pipe; an empty value can still be stored
    // deliberately with --from-file /dev/null.
    value = absl::InvalidArgumentError(StrCat("no value for '", path,
                                              "' (empty input); nothing stored. To store an empty "
                                              "value use --from-file /dev/null"));
  }
  if (!value.ok()) {
    absl::Status st = value.status();
    if (absl::IsInvalidArgument(st) &&
        st.message().find("larger than") != absl::string_view::npos) {
      st = absl::InvalidArgumentError(StrCat("value for '", path,
                                             "' is larger than the local vault limit of ",
                                             server::vault::kMaxValueBytes, " bytes (1 MiB)"));
    }
    return FailAudited(&*env, kCmd, "secret.set", {path}, st);
  }
  auto version = (*vault)->Set(path, *value, [&](uint64_t v) {
    return CommitAudit(&*env, "secret.set", {path}, StrCat("version ", v), {{path, v}});
  });
  value->Clear();
  if (!version.ok()) return FailAudited(&*env, kCmd, "secret.set", {path}, version.status());
  if (ctx.json) {
    std::printf("{\"ok\":true,\"path\":%s,\"version\":%llu}\n", JsonString(path).c_str(),
                static_cast<unsigned long long>(*version));
  } else {
    std::printf("stored %s\n", path.c_str());
  }
  Notify(*env, StrCat("secrets set ", path));
  return kExitOk;
}

int SecretsReveal(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets reveal PATH",
                     "Write the value at PATH to stdout, exactly (no newline added).",
                     {},
                     1,
                     1};
  constexpr std::string_view kCmd = "secrets reveal";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string path = a.positional()[0];
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd, /*extend=*/false); rc >= 0) return rc;
  auto vault = OpenVault(*env);
  if (!vault.ok()) return FailAudited(&*env, kCmd, "secret.reveal", {path}, vault.status());
  auto value = (*vault)->Get(path);
  if (!value.ok()) return FailAudited(&*env, kCmd, "secret.reveal", {path}, value.status());
  // No audit record, no value.
  absl::Status au = Audit(&*env, "secret.reveal", {path}, "ok", "");
  if (!au.ok()) return Fail(kCmd, au);
  absl::Status st = WriteAllFd(STDOUT_FILENO, value->Reveal());
  if (!st.ok()) return Fail(kCmd, st);
  return kExitOk;
}

int SecretsList(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets list [PREFIX]",
                     "Print the secret paths that start with PREFIX, one per line (never "
                     "values). --json prints one {\"path\": ...} object per line.",
                     {},
                     0,
                     1};
  constexpr std::string_view kCmd = "secrets list";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  std::string prefix = a.positional().empty() ? "" : a.positional()[0];
  if (absl::Status root = RequireDataRoot(ctx.root); !root.ok()) return Fail(kCmd, root);
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd, /*extend=*/false); rc >= 0) return rc;
  auto vault = OpenVault(*env);
  if (!vault.ok()) return Fail(kCmd, vault.status());
  auto paths = (*vault)->List(prefix);
  if (!paths.ok()) return Fail(kCmd, paths.status());
  for (const std::string& p : *paths) {
    if (ctx.json) {
      std::printf("{\"path\":%s}\n", JsonString(p).c_str());
    } else {
      std::printf("%s\n", TerminalText(p).c_str());
    }
  }
  return kExitOk;
}

int SecretsDelete(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets delete PATH",
                     "Remove the secret at PATH (exit 4 when it does not exist). Notifies a "
                     "running server.",
                     {},
                     1,
                     1};
  constexpr std::string_view kCmd = "secrets delete";
  ParsedArgs a;
  if (int rc = ParseSecretsVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string path = a.positional()[0];
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  if (int rc = Gate(&*env, kCmd); rc >= 0) return rc;
  auto vault = OpenVault(*env);
  if (!vault.ok()) return FailAudited(&*env, kCmd, "secret.delete", {path}, vault.status());
  // The floor stays: a deleted secret's old file put back is still refused.
  absl::Status st = (*vault)->Delete(path, [&](uint64_t v) {
    return CommitAudit(&*env, "secret.delete", {path}, "", {{path, v}});
  });
  if (!st.ok()) return FailAudited(&*env, kCmd, "secret.delete", {path}, st);
  if (ctx.json) {
    std::printf("{\"ok\":true,\"path\":%s}\n", JsonString(path).c_str());
  } else {
    std::printf("deleted %s\n", path.c_str());
  }
  Notify(*env, StrCat("secrets delete ", path));
  return kExitOk;
}

constexpr Verb kSecretsVerbs[] = {
    {"init", SecretsInit, "create the master key and the operator passphrase"},
    {"unlock", SecretsUnlock, "unlock the vault for 24 h (sliding)"},
    {"lock", SecretsLock, "lock the vault now"},
    {"status", SecretsStatus, "locked or unlocked, and until when"},
    {"set", SecretsSet, "store a value (file, stdin or prompt; never argv)"},
    {"reveal", SecretsReveal, "print a value to stdout"},
    {"list", SecretsList, "list paths (never values)"},
    {"delete", SecretsDelete, "remove a secret"},
    {"rotate", SecretsRotate, "re-encrypt everything under a new master key (crash-safe)"},
    {"generate", SecretsGenerate, "store a random value without showing it"},
    {"restore", SecretsRestore, "go back to an older vault file of a path (audited)"},
};

}  // namespace

int RunSecrets(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("secrets", kSecretsVerbs, ctx, args);
}

}  // namespace vigo::cli
