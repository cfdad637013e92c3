// vigocli: command dispatch. Each command group lives in its own file, is
// registered in cli/cli.cc and dispatches its verbs with cli/command.h.
//
//   int main(int argc, char** argv) { return vigo::cli::Main(argc, argv); }
#ifndef VIGO_CLI_CLI_H_
#define VIGO_CLI_CLI_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/db.h"
#include "server/server_config.h"

namespace vigo::cli {

// Global flags, parsed before the command group.
struct CliContext {
  std::filesystem::path root;  // --root, $VIGO_ROOT, /srv/vigo
  bool json = false;           // --json
};

// Returns the process exit code (common/exit_codes.h).
int Main(int argc, char** argv);

// Read-only verbs (audit, runs, envoy list, secrets status/list) never
// create anything: a typo in --root or database.path must fail, not show an
// empty, healthy-looking new root (CONTRACT §8).
// NOT_FOUND naming `root` when it does not exist; FAILED_PRECONDITION when it
// is not a directory.
absl::Status RequireDataRoot(const std::filesystem::path& root);
// The existing database of `cfg`: NOT_FOUND naming the data root or the
// database file when either is missing (nothing is created then); otherwise
// server::Database::Open.
absl::StatusOr<std::unique_ptr<server::Database>> OpenExistingDatabase(
    const server::ServerConfig& cfg);

// Command groups. `args` excludes the group name. Each handles --help.
int RunSecrets(const CliContext& ctx, const std::vector<std::string>& args);   // cli/secrets_cmd.cc
int RunAudit(const CliContext& ctx, const std::vector<std::string>& args);     // cli/audit_cmd.cc
int RunConfig(const CliContext& ctx, const std::vector<std::string>& args);    // cli/config_cmd.cc
int RunBundle(const CliContext& ctx, const std::vector<std::string>& args);    // cli/config_cmd.cc
int RunWhoNeeds(const CliContext& ctx, const std::vector<std::string>& args);  // cli/config_cmd.cc
int RunEnvoy(const CliContext& ctx, const std::vector<std::string>& args);     // cli/envoy_cmd.cc
int RunRuns(const CliContext& ctx, const std::vector<std::string>& args);      // cli/runs_cmd.cc
int RunServer(const CliContext& ctx, const std::vector<std::string>& args);    // cli/server_cmd.cc

}  // namespace vigo::cli

#endif  // VIGO_CLI_CLI_H_
