// SCAFFOLD: replaced by the owning issue's implementation.
#include <cstdio>
#include "cli/cli.h"
#include "common/exit_codes.h"
namespace vigo::cli {
int RunEnvoy(const CliContext&, const std::vector<std::string>&) { std::fprintf(stderr, "vigocli: command not built yet\n"); return kExitError; }
int RunRuns(const CliContext&, const std::vector<std::string>&) { std::fprintf(stderr, "vigocli: command not built yet\n"); return kExitError; }
int RunServer(const CliContext&, const std::vector<std::string>&) { std::fprintf(stderr, "vigocli: command not built yet\n"); return kExitError; }
}  // namespace vigo::cli
