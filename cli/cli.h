// vigocli: command dispatch. Each command group lives in its own file and is
// registered in cli/cli.cc.
//
//   int main(int argc, char** argv) { return vigo::cli::Main(argc, argv); }
#ifndef VIGO_CLI_CLI_H_
#define VIGO_CLI_CLI_H_

#include <filesystem>
#include <string>
#include <vector>

namespace vigo::cli {

// Global flags, parsed before the command group.
struct CliContext {
  std::filesystem::path root;  // --root, $VIGO_ROOT, /srv/vigo
  bool json = false;           // --json
};

// Returns the process exit code (common/exit_codes.h).
int Main(int argc, char** argv);

// Command groups. `args` excludes the group name. Each handles --help.
int RunSecrets(const CliContext& ctx, const std::vector<std::string>& args);   // cli/secrets_cmd.cc
int RunAudit(const CliContext& ctx, const std::vector<std::string>& args);     // cli/audit_cmd.cc
int RunConfig(const CliContext& ctx, const std::vector<std::string>& args);    // cli/config_cmd.cc
int RunBundle(const CliContext& ctx, const std::vector<std::string>& args);    // cli/config_cmd.cc
int RunWhoNeeds(const CliContext& ctx, const std::vector<std::string>& args);  // cli/config_cmd.cc
int RunEnvoy(const CliContext& ctx, const std::vector<std::string>& args);     // cli/envoy_cmd.cc
int RunRuns(const CliContext& ctx, const std::vector<std::string>& args);      // cli/envoy_cmd.cc
int RunServer(const CliContext& ctx, const std::vector<std::string>& args);    // cli/envoy_cmd.cc

}  // namespace vigo::cli

#endif  // VIGO_CLI_CLI_H_
