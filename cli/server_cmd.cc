// vigocli server reload (CONTRACT §6): tell the running server to reload.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/strings.h"
#include "server/admin_client.h"
#include "server/server_config.h"

namespace vigo::cli {
namespace {

int ServerReload(const CliContext& ctx, const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "server reload";
  ArgSpec spec{"vigocli server reload",
               "Tell the running server to reload the stacks now (admin socket, root only). "
               "Exit 1 with the errors when the reload fails; the server keeps its last good "
               "config.",
               {},
               0,
               0};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto cfg = server::LoadServerConfig(ctx.root, /*allow_missing=*/true);
  if (!cfg.ok()) return Fail(kCmd, cfg.status());
  server::ReloadNotice n = server::NotifyReload(cfg->AdminSocket(), "operator");
  switch (n.status) {
    case server::ReloadNotice::kReloaded:
      if (ctx.json) {
        std::printf("{\"ok\":true,\"secrets_epoch\":%llu}\n",
                    static_cast<unsigned long long>(n.secrets_epoch));
      } else {
        std::printf("reloaded: secrets_epoch %llu\n",
                    static_cast<unsigned long long>(n.secrets_epoch));
      }
      return kExitOk;
    case server::ReloadNotice::kNoServer:
      return Fail(kCmd, n.message);
    case server::ReloadNotice::kFailed:
      return Fail(kCmd,
                  StrCat("reload failed (the server keeps its last good config): ", n.message));
  }
  return kExitError;
}

constexpr Verb kServerVerbs[] = {{"reload", ServerReload, "reload the stacks now"}};

}  // namespace

int RunServer(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("server", kServerVerbs, ctx, args);
}

}  // namespace vigo::cli
