#include "cli/cli.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

#include "common/args.h"
#include "sandbox/lockdown.h"
#include "common/exit_codes.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "server/server_config.h"

namespace vigo::cli {
namespace {

struct Group {
  const char* name;
  int (*run)(const CliContext&, const std::vector<std::string>&);
  const char* summary;
};

constexpr Group kGroups[] = {
    {"secrets", RunSecrets, "the secrets vault: init, unlock, set, reveal, rotate, ..."},
    {"config", RunConfig, "config validate: load the stacks against the backend"},
    {"bundle", RunBundle, "bundle show --envoy NAME: the bundle an envoy would receive"},
    {"who-needs", RunWhoNeeds, "who-needs PATH: envoys whose bundle references PATH"},
    {"envoy", RunEnvoy, "envoy issue|list|revoke: client certificates"},
    {"runs", RunRuns, "runs list|show: stored run results"},
    {"audit", RunAudit, "audit list|verify: the hash-chained audit log"},
    {"server", RunServer, "server reload: reload the stacks now"},
};

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "usage: vigocli [--root DIR] [--json] COMMAND ...\n\n"
               "The Vigo operator CLI.\n\ncommands:\n");
  for (const Group& g : kGroups) std::fprintf(out, "  %-10s %s\n", g.name, g.summary);
  std::fprintf(out,
               "\nglobal flags:\n"
               "  --root DIR   server data root (default $VIGO_ROOT or /srv/vigo)\n"
               "  --json       machine-readable output\n"
               "  --version    print the version\n"
               "  --help       show this help (also: vigocli COMMAND --help)\n");
}

// `--root` with an empty value is a mistake (an unset shell variable), not a
// request for the default root.
bool EmptyRootFlag(std::string_view value) {
  if (!value.empty()) return false;
  std::fprintf(stderr,
               "vigocli: flag '--root' is empty; give a directory (or leave the flag out to use "
               "$VIGO_ROOT or /srv/vigo)\n");
  return true;
}

}  // namespace

absl::Status RequireDataRoot(const std::filesystem::path& root) {
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(StrCat("data root ", root.string(),
                                        " does not exist (check --root or $VIGO_ROOT; "
                                        "`vigosrv init --root DIR` creates one)"));
    }
    return sandbox::ErrnoStatus(err, "stat data root", root.string());
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat("data root ", root.string(), " is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<server::Database>> OpenExistingDatabase(
    const server::ServerConfig& cfg) {
  if (absl::Status st = RequireDataRoot(cfg.root); !st.ok()) return st;
  // Database::Open refuses a missing file with a message naming it.
  return server::Database::Open(cfg.DatabasePath());
}

int Main(int argc, char** argv) {
  // vigocli handles passphrases, the master key and revealed values: no core
  // file, no same-uid ptrace.
  if (absl::Status h = sandbox::HardenUnsandboxedProcess(); !h.ok()) {
    std::fprintf(stderr, "vigocli: cannot harden the process: %s\n",
                 std::string(h.message()).c_str());
    return kExitError;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  CliContext ctx;
  std::string root_flag;
  size_t i = 0;
  // Global flags come before the command.
  for (; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      PrintUsage(stdout);
      return kExitOk;
    }
    if (a == "--version") {
      std::printf("vigocli %s\n", kVigoVersion);
      return kExitOk;
    }
    if (a == "--json") {
      ctx.json = true;
    } else if (a == "--root") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "vigocli: flag '--root' needs a value\n");
        return kExitUsage;
      }
      root_flag = args[++i];
      if (EmptyRootFlag(root_flag)) return kExitUsage;
    } else if (a.substr(0, 7) == "--root=") {
      root_flag = std::string(a.substr(7));
      if (EmptyRootFlag(root_flag)) return kExitUsage;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "vigocli: unknown flag '%s'\n", args[i].c_str());
      return kExitUsage;
    } else {
      break;
    }
  }
  if (i >= args.size()) {
    PrintUsage(stderr);
    return kExitUsage;
  }
  ctx.root = server::ResolveRoot(root_flag);
  std::string_view cmd = args[i];
  std::vector<std::string> rest;
  // Global flags are also accepted after the command (vigocli secrets list --json).
  for (size_t j = i + 1; j < args.size(); ++j) {
    if (args[j] == "--json") {
      ctx.json = true;
    } else if (args[j] == "--root" && j + 1 < args.size()) {
      if (EmptyRootFlag(args[j + 1])) return kExitUsage;
      ctx.root = server::ResolveRoot(args[++j]);
    } else if (args[j].rfind("--root=", 0) == 0) {
      if (EmptyRootFlag(std::string_view(args[j]).substr(7))) return kExitUsage;
      ctx.root = server::ResolveRoot(args[j].substr(7));
    } else {
      rest.push_back(args[j]);
    }
  }
  for (const Group& g : kGroups) {
    if (cmd == g.name) return g.run(ctx, rest);
  }
  std::fprintf(stderr, "vigocli: unknown command '%s' (see vigocli --help)\n", args[i].c_str());
  return kExitUsage;
}

}  // namespace vigo::cli
