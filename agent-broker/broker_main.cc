// SCAFFOLD: flag handling only; the agent comes with the agent issue.
#include "agent-broker/broker_main.h"

#include <cstdio>
#include <string>
#include <vector>

#include "common/args.h"
#include "common/exit_codes.h"

namespace vigo::broker {

int BrokerMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ArgSpec spec{"vigo run --once|daemon|status [flags]", "The Vigo agent (broker).",
               {{"version", false, "print the version"}}, 0, 1};
  auto parsed = ParseArgs(spec, args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "vigo: %s\n", std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  if (parsed->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  if (parsed->Has("version")) {
    std::printf("vigo %s\n", kVigoVersion);
    return kExitOk;
  }
  std::fprintf(stderr, "vigo: not built yet\n");
  return kExitError;
}

}  // namespace vigo::broker
