// SCAFFOLD: flag handling only; serving comes with the server issue.
#include "server/server_main.h"

#include <cstdio>
#include <string>
#include <vector>

#include "common/args.h"
#include "common/exit_codes.h"

namespace vigo::server {

int ServerMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ArgSpec spec{"vigosrv [init] --root DIR [--hostname NAME] [--grpc-listen HOST:PORT]",
               "The Vigo server.",
               {{"root", true, "server data root"},
                {"hostname", true, "init: server hostname"},
                {"grpc-listen", true, "override server.grpc_listen"},
                {"version", false, "print the version"}},
               0, 1};
  auto parsed = ParseArgs(spec, args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "vigosrv: %s\n", std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  if (parsed->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  if (parsed->Has("version")) {
    std::printf("vigosrv %s\n", kVigoVersion);
    return kExitOk;
  }
  std::fprintf(stderr, "vigosrv: not built yet\n");
  return kExitError;
}

}  // namespace vigo::server
