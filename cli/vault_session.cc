#include "cli/vault_session.h"

#include <string>
#include <utility>

#include "cli/command.h"
#include "common/exit_codes.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/admin_client.h"
#include "server/audit.h"
#include "server/service/recordable_text.h"
#include "server/vault/secret_file.h"
#include "server/vault/unlock_gate.h"
#include "server/vault/vault_crypto.h"
#include "server/vault/version_floor.h"

namespace vigo::cli {

using server::vault::UnlockGate;

absl::StatusOr<Env> LoadEnv(const CliContext& ctx) {
  Env env;
  VIGO_ASSIGN_OR_RETURN(env.cfg, server::LoadServerConfig(ctx.root, /*allow_missing=*/true));
  env.actor = Actor();
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
  return absl::Status(st.code(), StrCat("PATH argument (", path.size(),
                                        " bytes) refused: ", problem, "; it is not repeated here"));
}

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

int Gate(Env* env, std::string_view cmd, bool extend) {
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

int ParseSecretsVerb(const ArgSpec& spec, const std::vector<std::string>& args,
                     std::string_view cmd, ParsedArgs* out) {
  ArgSpec quiet = spec;
  quiet.echo_arguments = false;
  if (cmd == "secrets set") {
    auto a = ParseArgs(quiet, args);
    if (!a.ok() && a.status().message().find("unexpected argument") == 0) {
      return Usage(cmd, StrCat(a.status().message(),
                               " (a value is never read from argv: pipe it on stdin, use "
                               "--from-file F or answer the prompt)"));
    }
  }
  return ParseVerb(quiet, args, cmd, out);
}

}  // namespace vigo::cli
