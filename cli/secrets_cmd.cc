// vigocli secrets ... and vigocli audit ... (CONTRACT §6).
//
// Input rules: values come from --from-file, else all of stdin (one trailing
// newline dropped), else a no-echo prompt; passphrases from
// --passphrase-file, else stdin when it is not a terminal, else a no-echo
// prompt. Never from argv. Values are read with read(2) straight into a
// SecretBuffer and written to stdout with write(2) (no stdio buffer copies).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "cli/terminal_text.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"
#include "server/admin_client.h"
#include "server/audit.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/service/recordable_text.h"
#include "server/vault/local_backend.h"
#include "server/vault/secret_file.h"
#include "server/vault/unlock_gate.h"
#include "server/vault/vault_crypto.h"
#include "server/vault/version_floor.h"

namespace vigo::cli {
namespace {

using sandbox::SecretBuffer;
using server::vault::UnlockGate;

constexpr size_t kMaxGenerateLength = 4096;
constexpr size_t kDefaultGenerateLength = 32;
constexpr size_t kMaxPassphraseBytes = 4096;

// ---------------------------------------------------------------- output

std::string JsonString(std::string_view s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(sb.GetString(), sb.GetSize());
}

std::string FormatUnix(int64_t secs) {
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int Fail(std::string_view cmd, const absl::Status& st) {
  std::fprintf(stderr, "vigocli %.*s: %.*s\n", static_cast<int>(cmd.size()), cmd.data(),
               static_cast<int>(st.message().size()), st.message().data());
  return ExitCodeFor(st);
}

int Usage(std::string_view cmd, const absl::Status& st) {
  std::fprintf(stderr, "vigocli %.*s: %.*s\n", static_cast<int>(cmd.size()), cmd.data(),
               static_cast<int>(st.message().size()), st.message().data());
  return kExitUsage;
}

absl::Status WriteAllFd(int fd, std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sandbox::ErrnoStatus(errno, "write", "stdout");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- input

// Reads everything from `fd` into a SecretBuffer, refusing more than `limit`
// bytes (the error names `what`, never content).
absl::StatusOr<SecretBuffer> ReadAllSecret(int fd, size_t limit, std::string_view what) {
  VIGO_ASSIGN_OR_RETURN(SecretBuffer buf, SecretBuffer::Create(std::min<size_t>(4096, limit + 1)));
  size_t used = 0;
  while (true) {
    if (used == buf.size()) {
      if (buf.size() > limit) {
        return absl::InvalidArgumentError(
            StrCat(what, " is larger than the limit of ", limit, " bytes"));
      }
      VIGO_RETURN_IF_ERROR(buf.Resize(std::min(buf.size() * 2, limit + 1)));
    }
    std::span<uint8_t> w = buf.RevealMutable();
    ssize_t n = ::read(fd, w.data() + used, w.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sandbox::ErrnoStatus(errno, "read", what);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > limit) {
    return absl::InvalidArgumentError(
        StrCat(what, " is larger than the limit of ", limit, " bytes"));
  }
  VIGO_RETURN_IF_ERROR(buf.Resize(used));
  return buf;
}

absl::Status DropOneTrailingNewline(SecretBuffer* buf) {
  std::span<const uint8_t> b = buf->Reveal();
  if (!b.empty() && b.back() == '\n') return buf->Resize(b.size() - 1);
  return absl::OkStatus();
}

absl::StatusOr<SecretBuffer> ReadFileSecret(const std::string& file, size_t limit,
                                            std::string_view what) {
  sandbox::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sandbox::ErrnoStatus(errno, StrCat("open ", what, " file"), file);
  return ReadAllSecret(fd.get(), limit, StrCat(what, " file ", file));
}

// Reads one line from the terminal with echo off.
// The signal that interrupted a no-echo prompt (0: none).
volatile sig_atomic_t g_prompt_signal = 0;
void OnPromptSignal(int sig) { g_prompt_signal = sig; }

// Signals that would otherwise end or stop the process with echo still off.
constexpr int kPromptSignals[] = {SIGINT,  SIGTERM, SIGQUIT, SIGHUP, SIGALRM,
                                  SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};

// Reads one line from the controlling terminal with echo off. On a signal
// (Ctrl-C, Ctrl-Z, kill) the terminal settings are restored first, the typed
// bytes wiped, and then the signal is re-raised with its previous disposition
// (OpenSSH readpassphrase(3) does the same).
absl::StatusOr<SecretBuffer> PromptNoEcho(std::string_view prompt, size_t limit) {
  sandbox::UniqueFd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!tty) return absl::FailedPreconditionError("no terminal to prompt on; use a file or stdin");
  termios old{};
  if (::tcgetattr(tty.get(), &old) != 0) {
    return absl::FailedPreconditionError("cannot read terminal settings");
  }
  g_prompt_signal = 0;
  struct sigaction on_signal {};
  on_signal.sa_handler = OnPromptSignal;
  sigemptyset(&on_signal.sa_mask);
  on_signal.sa_flags = 0;  // no SA_RESTART: read() returns EINTR
  struct sigaction saved[std::size(kPromptSignals)] = {};
  for (size_t i = 0; i < std::size(kPromptSignals); ++i) {
    ::sigaction(kPromptSignals[i], &on_signal, &saved[i]);
    // A signal the caller ignores (nohup: SIGHUP) stays ignored.
    if (saved[i].sa_handler == SIG_IGN) ::sigaction(kPromptSignals[i], &saved[i], nullptr);
  }
  // The prompt signals stay blocked except inside ppoll(), which unblocks
  // them atomically while it waits: a signal can never land between the
  // flag check and the wait (and leave the prompt waiting for a keystroke).
  sigset_t prompt_set, outside;
  sigemptyset(&prompt_set);
  for (int sig : kPromptSignals) sigaddset(&prompt_set, sig);
  ::sigprocmask(SIG_BLOCK, &prompt_set, &outside);
  auto restore_handlers = [&] {
    for (size_t i = 0; i < std::size(kPromptSignals); ++i) {
      ::sigaction(kPromptSignals[i], &saved[i], nullptr);
    }
    ::sigprocmask(SIG_SETMASK, &outside, nullptr);
  };
  termios noecho = old;
  noecho.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  noecho.c_lflag |= ECHONL;
  if (::tcsetattr(tty.get(), TCSAFLUSH, &noecho) != 0) {
    restore_handlers();
    return absl::FailedPreconditionError("cannot turn terminal echo off");
  }
  if (::write(tty.get(), prompt.data(), prompt.size()) < 0) {
    // The prompt is cosmetic; reading still works.
  }
  absl::StatusOr<SecretBuffer> out = SecretBuffer::Create(limit);
  size_t used = 0;
  absl::Status st;
  if (out.ok()) {
    std::span<uint8_t> w = out->RevealMutable();
    while (g_prompt_signal == 0) {
      struct pollfd p = {tty.get(), POLLIN, 0};
      if (::ppoll(&p, 1, nullptr, &outside) < 0) {
        if (errno == EINTR) continue;  // the loop condition sees a caught signal
        break;
      }
      uint8_t c = 0;
      ssize_t n = ::read(tty.get(), &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || c == '\n') break;
      if (used == w.size()) {
        st = absl::InvalidArgumentError(StrCat("input is longer than ", limit, " bytes"));
        break;
      }
      w[used++] = c;
      c = 0;
    }
  }
  ::tcsetattr(tty.get(), TCSAFLUSH, &old);
  if (g_prompt_signal != 0 && ::write(tty.get(), "\n", 1) < 0) {
    // Cosmetic: end the prompt line after an interruption.
  }
  restore_handlers();
  if (const int sig = g_prompt_signal; sig != 0) {
    out = absl::CancelledError("interrupted");  // wipes what was typed
    ::raise(sig);  // the previous disposition: usually ends or stops the process
    return absl::CancelledError(StrCat("prompt interrupted by signal ", sig));
  }
  if (!out.ok()) return out.status();
  VIGO_RETURN_IF_ERROR(st);
  VIGO_RETURN_IF_ERROR(out->Resize(used));
  return out;
}

// The passphrase: --passphrase-file, else stdin when not a terminal, else a
// prompt (twice when `confirm`).
absl::StatusOr<SecretBuffer> ReadPassphrase(const ParsedArgs& a, bool confirm) {
  absl::StatusOr<SecretBuffer> pass;
  if (a.Has("passphrase-file")) {
    pass = ReadFileSecret(*a.Get("passphrase-file"), kMaxPassphraseBytes, "passphrase");
    if (pass.ok()) VIGO_RETURN_IF_ERROR(DropOneTrailingNewline(&*pass));
  } else if (!::isatty(STDIN_FILENO)) {
    pass = ReadAllSecret(STDIN_FILENO, kMaxPassphraseBytes, "passphrase on stdin");
    if (pass.ok()) VIGO_RETURN_IF_ERROR(DropOneTrailingNewline(&*pass));
  } else {
    pass = PromptNoEcho("Passphrase: ", kMaxPassphraseBytes);
    if (pass.ok() && confirm) {
      VIGO_ASSIGN_OR_RETURN(SecretBuffer again,
                            PromptNoEcho("Repeat passphrase: ", kMaxPassphraseBytes));
      if (!again.ConstantTimeEquals(*pass)) {
        return absl::InvalidArgumentError("the two passphrases differ");
      }
    }
  }
  if (pass.ok() && pass->empty()) return absl::InvalidArgumentError("the passphrase is empty");
  return pass;
}

// ---------------------------------------------------------------- context

struct Env {
  server::ServerConfig cfg;
  std::string actor;
  std::unique_ptr<server::Database> db;
};

absl::StatusOr<Env> LoadEnv(const CliContext& ctx) {
  Env env;
  VIGO_ASSIGN_OR_RETURN(env.cfg, server::LoadServerConfig(ctx.root, /*allow_missing=*/true));
  env.actor = StrCat("uid:", static_cast<int64_t>(::geteuid()));
  return env;
}

absl::Status EnsureDb(Env* env) {
  if (!env->db) {
    VIGO_ASSIGN_OR_RETURN(env->db, server::Database::Open(env->cfg.DatabasePath()));
  }
  return absl::OkStatus();
}

absl::Status Audit(Env* env, std::string_view event, std::vector<std::string> paths,
                   std::string_view outcome, std::string_view detail) {
  VIGO_RETURN_IF_ERROR(EnsureDb(env));
  server::AuditLog log(env->db.get());
  server::AuditEvent e;
  e.event = std::string(event);
  e.actor = env->actor;
  e.paths = std::move(paths);
  e.outcome = std::string(outcome);
  e.detail = std::string(detail);
  return log.Append(e);
}

// What a refused PATH argument's error says without quoting it: the problem
// (common/secret_ref.h ends each message with " (path '...')", which is cut)
// and the argument's length.
absl::Status InvalidPathArg(std::string_view path, const absl::Status& st) {
  const std::string msg(st.message());
  std::string problem;
  // find, not rfind: the problem text never holds " (path '", the quoted
  // path may.
  if (size_t at = msg.find(" (path '"); at != std::string::npos) {
    problem = std::string(msg.substr(0, at));
  } else if (msg.find("is reserved") != std::string::npos) {
    problem = "secret path has a segment reserved for the vault's own files (.vigo*, .master.key*)";
  } else {
    problem = "not a valid secret path";
  }
  return absl::Status(st.code(), StrCat("PATH argument (", path.size(), " bytes) refused: ",
                                        problem, "; it is not repeated here"));
}

// Audits and reports a failure of `event` on `paths`; returns the exit code.
int FailAudited(Env* env, std::string_view cmd, std::string_view event,
                std::vector<std::string> paths, const absl::Status& st) {
  // The audit chain is permanent: an invalid PATH (perhaps a value pasted by
  // mistake) is recorded by its length only, and so is the error that quotes
  // it; stderr gets the problem and the length, not the text.
  std::string detail(st.message());
  absl::Status shown = st;
  for (std::string& p : paths) {
    absl::Status v = server::vault::ValidateLocalPath(p);
    if (!v.ok()) {
      // The path checks' errors quote it; other errors (vault locked,
      // unreadable) do not, and stay as they are.
      if (absl::IsInvalidArgument(st)) shown = InvalidPathArg(p, st);
      p = server::service::InvalidPathRecord(p.size());
      detail = "invalid path";
    }
  }
  absl::Status a = Audit(env, event, std::move(paths), "failed", detail);
  if (!a.ok()) {
    std::fprintf(stderr, "vigocli %.*s: audit log: %.*s\n", static_cast<int>(cmd.size()),
                 cmd.data(), static_cast<int>(a.message().size()), a.message().data());
  }
  return Fail(cmd, shown);
}

// The ok record of a vault change, written by the backend's commit callback
// (under the vault lock, after the change is on disk) in one transaction
// with the raised version floor of `floor_paths`: if it cannot be committed
// (database full, locked, unwritable) the backend undoes the change, so a
// change and its audit record succeed or fail together.
absl::Status CommitAudit(Env* env, std::string_view event, std::vector<std::string> paths,
                         std::string_view detail,
                         const std::vector<std::pair<std::string, uint64_t>>& floor_paths) {
  server::AuditEvent e;
  e.event = std::string(event);
  e.actor = env->actor;
  e.paths = std::move(paths);
  e.outcome = "ok";
  e.detail = std::string(detail);
  absl::Status st = EnsureDb(env);
  if (st.ok()) {
    server::AuditLog log(env->db.get());
    st = log.AppendWith(e, [&](server::Database* db) -> absl::Status {
      for (const auto& [path, version] : floor_paths) {
        VIGO_RETURN_IF_ERROR(server::vault::VersionFloor::RaiseInTransaction(db, path, version));
      }
      return absl::OkStatus();
    });
  }
  if (st.ok()) return st;
  return absl::Status(st.code(), StrCat("cannot write the audit record (", st.message(), ")"));
}

absl::StatusOr<std::unique_ptr<server::LocalBackend>> OpenVault(Env& env) {
  if (env.cfg.secrets_backend != "local") {
    return absl::FailedPreconditionError(
        StrCat("server.yaml selects the '", env.cfg.secrets_backend,
               "' backend; `vigocli secrets` manages the local vault only"));
  }
  // Reads and writes check the highest committed version per path (rollback
  // guard); it lives in the database, read-only here.
  VIGO_RETURN_IF_ERROR(EnsureDb(&env));
  return server::LocalBackend::Open(env.cfg.SecretsDir(),
                                    std::make_shared<server::vault::VersionFloor>(env.db.get()));
}

// The unlock gate for gated verbs: returns -1 to go on, else an exit code.
// Only verbs that change something slide the window (`extend`): a read verb
// writes nothing, so it works on a full disk.
int Gate(Env* env, std::string_view cmd, bool extend = true) {
  UnlockGate gate(env->cfg.root, env->cfg.SecretsDir());
  auto st =
      extend ? gate.CheckAndExtend(server::vault::NowUnix()) : gate.Check(server::vault::NowUnix());
  if (!st.ok()) return Fail(cmd, st.status());
  if (!st->unlocked) {
    std::fprintf(stderr,
                 "vigocli %.*s: the vault is locked (%s); run `vigocli secrets unlock` first\n",
                 static_cast<int>(cmd.size()), cmd.data(), st->reason.c_str());
    return kExitLocked;
  }
  return -1;
}

void Notify(const Env& env, const std::string& reason) {
  server::ReloadNotice n = server::NotifyReload(env.cfg.AdminSocket(), reason);
  switch (n.status) {
    case server::ReloadNotice::kReloaded:
      std::fprintf(stderr, "note: the running server reloaded (secrets epoch %llu)\n",
                   static_cast<unsigned long long>(n.secrets_epoch));
      break;
    case server::ReloadNotice::kNoServer:
      std::fprintf(stderr,
                   "note: no running server to notify; it reads the vault when it starts\n");
      break;
    case server::ReloadNotice::kFailed:
      std::fprintf(stderr, "warning: the running server did not reload: %s\n", n.message.c_str());
      break;
  }
}

// Parses args for one verb; returns -1 to go on, else an exit code.
int Parse(const ArgSpec& spec, const std::vector<std::string>& args, std::string_view cmd,
          ParsedArgs* out) {
  // These verbs handle secrets: a refused argument (a value pasted on argv,
  // a mistyped flag) is named by position and length, never repeated.
  ArgSpec quiet = spec;
  quiet.echo_arguments = false;
  auto a = ParseArgs(quiet, args);
  if (!a.ok()) {
    if (cmd == "secrets set" && a.status().message().find("unexpected argument") == 0) {
      return Usage(cmd, absl::InvalidArgumentError(StrCat(
                            a.status().message(),
                            " (a value is never read from argv: pipe it on stdin, use "
                            "--from-file F or answer the prompt)")));
    }
    return Usage(cmd, a.status());
  }
  if (a->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  *out = std::move(a).value();
  return -1;
}

// ---------------------------------------------------------------- verbs

int SecretsInit(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets init [--passphrase-file F]",
                     "Create the master key and the operator passphrase. The passphrase comes "
                     "from F, else stdin when it is not a terminal, else a no-echo prompt (asked "
                     "twice). The vault stays locked until `vigocli secrets unlock`.",
                     {{"passphrase-file", true, "read the passphrase from F"}}};
  constexpr std::string_view kCmd = "secrets init";
  ParsedArgs a;
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
                FormatUnix(exp).c_str(), static_cast<long long>(exp));
  } else {
    std::printf("unlocked until %s (each secrets command extends it by 24 h)\n",
                FormatUnix(exp).c_str());
  }
  return kExitOk;
}

int SecretsLock(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets lock", "Lock the vault now (removes the unlock token).", {}};
  constexpr std::string_view kCmd = "secrets lock";
  ParsedArgs a;
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
          FormatUnix(st->expires_unix).c_str(), static_cast<long long>(st->expires_unix),
          pending ? "true" : "false");
    } else {
      std::printf(
          "{\"initialized\":true,\"state\":\"locked\",\"reason\":%s,"
          "\"rotation_pending\":%s}\n",
          JsonString(st->reason).c_str(), pending ? "true" : "false");
    }
  } else {
    if (st->unlocked) {
      std::printf("unlocked (expires %s)\n", FormatUnix(st->expires_unix).c_str());
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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

int SecretsRotate(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli secrets rotate",
                     "Re-encrypt every secret under a new master key. Crash-safe: every secret "
                     "stays readable at every point, and the next run finishes an interrupted "
                     "rotation. Notifies a running server.",
                     {}};
  constexpr std::string_view kCmd = "secrets rotate";
  ParsedArgs a;
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string path = a.positional()[0];
  size_t length = kDefaultGenerateLength;
  if (a.Has("length")) {
    std::string v = *a.Get("length");
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || n < 1 || n > kMaxGenerateLength) {
      return Usage(
          kCmd, absl::InvalidArgumentError(StrCat("flag '--length': its value (", v.size(),
                                                  " bytes) is not a number from 1 to ",
                                                  kMaxGenerateLength)));
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
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
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

struct Verb {
  const char* name;
  int (*run)(const CliContext&, const std::vector<std::string>&);
  const char* summary;
};

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

// ---------------------------------------------------------------- audit

int AuditList(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{
      "vigocli audit list [--after SEQ] [--limit N] [--json]",
      "Print the audit log, oldest first. --json prints one object per line with "
      "seq, time, event, actor, envoy, paths, outcome, detail, prev_hash, hash.",
      {{"after", true, "only records with seq > SEQ"}, {"limit", true, "at most N records"}}};
  constexpr std::string_view kCmd = "audit list";
  ParsedArgs a;
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
  int64_t after = 0, limit = -1;
  for (const char* flag : {"after", "limit"}) {
    if (!a.Has(flag)) continue;
    std::string v = *a.Get(flag);
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0) {
      // By length only, as every refused value in a verb that handles
      // secrets (SECURITY.md §4): a value pasted into the wrong flag is not
      // repeated on the terminal.
      return Usage(
          kCmd, absl::InvalidArgumentError(StrCat("flag '--", flag, "': its value (", v.size(),
                                                  " bytes) is not a whole number of 0 or more")));
    }
    (std::string_view(flag) == "after" ? after : limit) = n;
  }
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  auto db = OpenExistingDatabase(env->cfg);
  if (!db.ok()) return Fail(kCmd, db.status());
  server::AuditLog log(db->get());
  auto records = log.List(after, limit);
  if (!records.ok()) return Fail(kCmd, records.status());
  for (const server::AuditRecord& r : *records) {
    if (ctx.json) {
      std::printf("%s\n", server::AuditRecordJson(r).c_str());
      continue;
    }
    std::string paths;
    for (const std::string& p : r.event.paths) StrAppend(&paths, paths.empty() ? "" : ",", p);
    // Envoys supply names, paths and details (refused CNs, denied refs).
    std::printf("%lld  %s  %-22s %-10s %-8s %-7s %s%s%s\n", static_cast<long long>(r.seq),
                FormatUnix(r.time_unix_ms / 1000).c_str(), TerminalText(r.event.event).c_str(),
                TerminalText(r.event.actor).c_str(),
                r.event.envoy.empty() ? "-" : TerminalText(r.event.envoy).c_str(),
                TerminalText(r.event.outcome).c_str(),
                paths.empty() ? "-" : TerminalText(paths).c_str(),
                r.event.detail.empty() ? "" : "  ", TerminalText(r.event.detail).c_str());
  }
  return kExitOk;
}

int AuditVerify(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli audit verify",
                     "Recompute the audit hash chain. Exit 0 when intact; otherwise exit 1 and "
                     "name the first record that does not verify.",
                     {}};
  constexpr std::string_view kCmd = "audit verify";
  ParsedArgs a;
  if (int rc = Parse(spec, args, kCmd, &a); rc >= 0) return rc;
  auto env = LoadEnv(ctx);
  if (!env.ok()) return Fail(kCmd, env.status());
  auto db = OpenExistingDatabase(env->cfg);
  if (!db.ok()) return Fail(kCmd, db.status());
  server::AuditLog log(db->get());
  auto r = log.Verify();
  if (!r.ok()) return Fail(kCmd, r.status());
  std::string head;
  if (r->ok && r->records > 0) {
    auto last = log.List(r->records - 1, 1);
    if (last.ok() && !last->empty()) head = last->back().hash;
  }
  if (ctx.json) {
    if (r->ok) {
      std::printf("{\"ok\":true,\"records\":%lld,\"head\":%s}\n",
                  static_cast<long long>(r->records), JsonString(head).c_str());
    } else {
      std::printf("{\"ok\":false,\"records\":%lld,\"first_bad_seq\":%lld,\"problem\":%s}\n",
                  static_cast<long long>(r->records),
                  static_cast<long long>(r->first_bad_seq.value_or(0)),
                  JsonString(r->problem).c_str());
    }
  } else if (r->ok) {
    std::printf("audit chain OK: %lld records%s%s\n", static_cast<long long>(r->records),
                head.empty() ? "" : ", head ", head.c_str());
  } else {
    std::printf("audit chain BROKEN at record %lld: %s\n",
                static_cast<long long>(r->first_bad_seq.value_or(0)), r->problem.c_str());
  }
  return r->ok ? kExitOk : kExitError;
}

constexpr Verb kAuditVerbs[] = {
    {"list", AuditList, "print the audit log (--json: one object per line)"},
    {"verify", AuditVerify, "verify the hash chain; names the first bad record"},
};

template <size_t N>
int Dispatch(std::string_view group, const Verb (&verbs)[N], const CliContext& ctx,
             const std::vector<std::string>& args) {
  auto usage = [&](std::FILE* out) {
    std::fprintf(out, "usage: vigocli %.*s VERB ...\n\nverbs:\n", static_cast<int>(group.size()),
                 group.data());
    for (const Verb& v : verbs) std::fprintf(out, "  %-9s %s\n", v.name, v.summary);
    std::fprintf(out, "\nvigocli %.*s VERB --help shows a verb's flags.\n",
                 static_cast<int>(group.size()), group.data());
  };
  if (args.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    usage(stdout);
    return kExitOk;
  }
  for (const Verb& v : verbs) {
    if (args[0] == v.name) {
      return v.run(ctx, std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  std::fprintf(stderr, "vigocli %.*s: unknown verb '%s' (see vigocli %.*s --help)\n",
               static_cast<int>(group.size()), group.data(), args[0].c_str(),
               static_cast<int>(group.size()), group.data());
  return kExitUsage;
}

}  // namespace

int RunSecrets(const CliContext& ctx, const std::vector<std::string>& args) {
  return Dispatch("secrets", kSecretsVerbs, ctx, args);
}

int RunAudit(const CliContext& ctx, const std::vector<std::string>& args) {
  return Dispatch("audit", kAuditVerbs, ctx, args);
}

}  // namespace vigo::cli
