// What every vigocli command group shares, written once (issue 16: cli/ had
// three dispatchers written three ways and a copy of each output helper per
// file): the verb table and its dispatcher, the one way a verb fails, its
// argument parsing, JSON string quoting, the time format and the audit actor.
//
//   constexpr Verb kVerbs[] = {{"list", RunsList, "stored runs"}, ...};
//   int RunRuns(const CliContext& ctx, const std::vector<std::string>& args) {
//     return DispatchVerbs("runs", kVerbs, ctx, args);
//   }
//   int RunsList(const CliContext& ctx, const std::vector<std::string>& args) {
//     ParsedArgs a;
//     if (int rc = ParseVerb(kSpec, args, "runs list", &a); rc >= 0) return rc;
//     ...
//     if (!st.ok()) return Fail("runs list", st);
//   }
//
// Why not CLI11 (Debian has it): its errors quote the refused argument, and
// the verbs that handle secrets must name a refused argument by position and
// length only (common/args.h `echo_arguments`); one small parser with that
// rule built in is easier to audit than a wrapper around a general one.
//
// Thread safety: plain functions; vigocli is single-threaded.
#ifndef VIGO_CLI_COMMAND_H_
#define VIGO_CLI_COMMAND_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/cli.h"
#include "common/args.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/service/store.h"

namespace vigo::cli {

// One verb of a command group (`vigocli GROUP VERB ...`).
struct Verb {
  const char* name;
  int (*run)(const CliContext&, const std::vector<std::string>&);
  const char* summary;
};

// Runs the verb named by args[0] with the rest; `vigocli GROUP --help` lists
// the verbs on stdout (exit 0); no verb or an unknown one lists them on
// stderr (exit 2).
int DispatchVerbs(std::string_view group, std::span<const Verb> verbs, const CliContext& ctx,
                  const std::vector<std::string>& args);

// Prints "vigocli CMD: MESSAGE" on stderr; returns ExitCodeFor(st).
int Fail(std::string_view cmd, const absl::Status& st);
// Prints "vigocli CMD: MESSAGE" on stderr; returns kExitError.
int Fail(std::string_view cmd, std::string_view message);
// Prints "vigocli CMD: MESSAGE" on stderr; returns kExitUsage.
int Usage(std::string_view cmd, std::string_view message);

// Parses `args` for the verb `cmd`: returns -1 with *out set to go on; on
// --help prints the help on stdout and returns kExitOk; on a usage error
// prints "vigocli CMD: PROBLEM" and "see `vigocli CMD --help`" on stderr and
// returns kExitUsage.
int ParseVerb(const ArgSpec& spec, const std::vector<std::string>& args, std::string_view cmd,
              ParsedArgs* out);

// The existing root, its server.yaml and database, and the store over it:
// the read and record verbs (envoy, runs) never create a root or a database
// (a typo must not look like an empty, healthy installation).
struct OpenedStore {
  server::ServerConfig cfg;
  std::unique_ptr<server::Database> db;
  std::unique_ptr<server::service::ServerStore> store;
};
absl::StatusOr<OpenedStore> OpenStore(const CliContext& ctx);

// `s` as a JSON string literal, quotes included.
std::string JsonString(std::string_view s);
// UTC ISO 8601 to the second ("2026-12-04T20:59:27Z"); "-" when unix_ms <= 0
// (a time that was never set).
std::string IsoTime(int64_t unix_ms);
// The audit actor of this process: "uid:<effective uid>" (the identity the
// change is made with).
std::string Actor();

}  // namespace vigo::cli

#endif  // VIGO_CLI_COMMAND_H_
