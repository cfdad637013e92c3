// One `vigocli secrets` invocation's view of the server root: the config,
// the audit actor, the database (opened on first use), the local vault, the
// unlock gate and the audit records every vault verb writes.
//
//   auto env = LoadEnv(ctx);
//   if (int rc = Gate(&*env, "secrets set"); rc >= 0) return rc;
//   VIGO_ASSIGN_OR_RETURN(auto vault, OpenVault(*env));
//   ... vault->Set(path, value, [&](uint64_t v) { return CommitAudit(...); });
//
// Thread safety: none; one per invocation.
#ifndef VIGO_CLI_VAULT_SESSION_H_
#define VIGO_CLI_VAULT_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/cli.h"
#include "common/args.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/vault/local_backend.h"

namespace vigo::cli {

// ParseVerb for a verb that handles secrets: a refused argument (a value
// pasted on argv, a mistyped flag) is named by position and length, never
// repeated; `secrets set` adds how a value is given instead.
int ParseSecretsVerb(const ArgSpec& spec, const std::vector<std::string>& args,
                     std::string_view cmd, ParsedArgs* out);

// The verbs of cli/secrets_keys_cmd.cc, for the table in secrets_cmd.cc.
int SecretsRotate(const CliContext& ctx, const std::vector<std::string>& args);
int SecretsGenerate(const CliContext& ctx, const std::vector<std::string>& args);
int SecretsRestore(const CliContext& ctx, const std::vector<std::string>& args);

struct Env {
  server::ServerConfig cfg;
  std::string actor;                     // Actor()
  std::unique_ptr<server::Database> db;  // EnsureDb
};

// server.yaml of ctx.root (defaults when it is missing) and the actor.
absl::StatusOr<Env> LoadEnv(const CliContext& ctx);
// Opens env->db when it is not open yet.
absl::Status EnsureDb(Env* env);

// Appends one audit record of `event` by env->actor.
absl::Status Audit(Env* env, std::string_view event, std::vector<std::string> paths,
                   std::string_view outcome, std::string_view detail);

// What a refused PATH argument's error says without quoting it: the problem
// (common/secret_ref.h ends each message with " (path '...')", which is cut)
// and the argument's length.
absl::Status InvalidPathArg(std::string_view path, const absl::Status& st);

// Audits (outcome "failed") and reports a failure of `event` on `paths`;
// returns the exit code. An invalid path is recorded and shown by its length
// only: the audit chain is permanent and the text may be a pasted value.
int FailAudited(Env* env, std::string_view cmd, std::string_view event,
                std::vector<std::string> paths, const absl::Status& st);

// The ok record of a vault change, for the backend's commit callback: written
// under the vault lock, after the change is on disk, in one transaction with
// the raised version floor of `floor_paths`. If it cannot be committed the
// backend undoes the change, so a change and its record succeed or fail
// together.
absl::Status CommitAudit(Env* env, std::string_view event, std::vector<std::string> paths,
                         std::string_view detail,
                         const std::vector<std::pair<std::string, uint64_t>>& floor_paths);

// The local vault with its rollback guard; FAILED_PRECONDITION when
// server.yaml selects another backend.
absl::StatusOr<std::unique_ptr<server::LocalBackend>> OpenVault(Env& env);

// The unlock gate for gated verbs: returns -1 to go on, else an exit code
// (kExitLocked when locked). Only verbs that change something slide the
// window (`extend`): a read verb writes nothing, so it works on a full disk.
int Gate(Env* env, std::string_view cmd, bool extend = true);

// Asks a running server to reload after a vault change and says on stderr
// what happened (reloaded, no server, failed).
void Notify(const Env& env, const std::string& reason);

}  // namespace vigo::cli

#endif  // VIGO_CLI_VAULT_SESSION_H_
