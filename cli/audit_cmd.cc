// vigocli audit list|verify (CONTRACT §6): the hash-chained audit log.
// Read-only: neither verb creates a root or a database.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/terminal_text.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/strings.h"
#include "server/audit.h"
#include "server/server_config.h"

namespace vigo::cli {
namespace {

int AuditList(const CliContext& ctx, const std::vector<std::string>& args) {
  // Quiet: a value pasted into the wrong flag is not repeated.
  const ArgSpec spec{
      "vigocli audit list [--after SEQ] [--limit N] [--json]",
      "Print the audit log, oldest first. --json prints one object per line with "
      "seq, time, event, actor, envoy, paths, outcome, detail, prev_hash, hash.",
      {{"after", true, "only records with seq > SEQ"}, {"limit", true, "at most N records"}},
      0,
      0,
      /*echo_arguments=*/false};
  constexpr std::string_view kCmd = "audit list";
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  int64_t after = 0, limit = -1;
  for (const char* flag : {"after", "limit"}) {
    if (!a.Has(flag)) continue;
    std::string v = *a.Get(flag);
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0) {
      // By length only, as every refused value in a verb that handles
      // secrets (SECURITY.md §4): a value pasted into the wrong flag is not
      // repeated on the terminal.
      return Usage(kCmd, StrCat("flag '--", flag, "': its value (", v.size(),
                                " bytes) is not a whole number of 0 or more"));
    }
    (std::string_view(flag) == "after" ? after : limit) = n;
  }
  auto cfg = server::LoadServerConfig(ctx.root, /*allow_missing=*/true);
  if (!cfg.ok()) return Fail(kCmd, cfg.status());
  auto db = OpenExistingDatabase(*cfg);
  if (!db.ok()) return Fail(kCmd, db.status());
  server::AuditLog log(db->get());
  auto records = log.List(after, limit);
  if (!records.ok()) return Fail(kCmd, records.status());
  for (const server::AuditRecord& r : *records) {
    if (ctx.json) {
      std::printf("%s\n", server::AuditRecordJson(r).c_str());
      continue;
    }
    std::string paths;
    for (const std::string& p : r.event.paths) StrAppend(&paths, paths.empty() ? "" : ",", p);
    // Envoys supply names, paths and details (refused CNs, denied refs).
    std::printf("%lld  %s  %-22s %-10s %-8s %-7s %s%s%s\n", static_cast<long long>(r.seq),
                IsoTime(r.time_unix_ms).c_str(), TerminalText(r.event.event).c_str(),
                TerminalText(r.event.actor).c_str(),
                r.event.envoy.empty() ? "-" : TerminalText(r.event.envoy).c_str(),
                TerminalText(r.event.outcome).c_str(),
                paths.empty() ? "-" : TerminalText(paths).c_str(),
                r.event.detail.empty() ? "" : "  ", TerminalText(r.event.detail).c_str());
  }
  return kExitOk;
}

int AuditVerify(const CliContext& ctx, const std::vector<std::string>& args) {
  const ArgSpec spec{"vigocli audit verify",
                     "Recompute the audit hash chain. Exit 0 when intact; otherwise exit 1 and "
                     "name the first record that does not verify.",
                     {},
                     0,
                     0,
                     /*echo_arguments=*/false};
  constexpr std::string_view kCmd = "audit verify";
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto cfg = server::LoadServerConfig(ctx.root, /*allow_missing=*/true);
  if (!cfg.ok()) return Fail(kCmd, cfg.status());
  auto db = OpenExistingDatabase(*cfg);
  if (!db.ok()) return Fail(kCmd, db.status());
  server::AuditLog log(db->get());
  auto r = log.Verify();
  if (!r.ok()) return Fail(kCmd, r.status());
  std::string head;
  if (r->ok && r->records > 0) {
    auto last = log.List(r->records - 1, 1);
    if (last.ok() && !last->empty()) head = last->back().hash;
  }
  if (ctx.json) {
    if (r->ok) {
      std::printf("{\"ok\":true,\"records\":%lld,\"head\":%s}\n",
                  static_cast<long long>(r->records), JsonString(head).c_str());
    } else {
      std::printf("{\"ok\":false,\"records\":%lld,\"first_bad_seq\":%lld,\"problem\":%s}\n",
                  static_cast<long long>(r->records),
                  static_cast<long long>(r->first_bad_seq.value_or(0)),
                  JsonString(r->problem).c_str());
    }
  } else if (r->ok) {
    std::printf("audit chain OK: %lld records%s%s\n", static_cast<long long>(r->records),
                head.empty() ? "" : ", head ", head.c_str());
  } else {
    std::printf("audit chain BROKEN at record %lld: %s\n",
                static_cast<long long>(r->first_bad_seq.value_or(0)), r->problem.c_str());
  }
  return r->ok ? kExitOk : kExitError;
}

constexpr Verb kAuditVerbs[] = {
    {"list", AuditList, "print the audit log (--json: one object per line)"},
    {"verify", AuditVerify, "verify the hash chain; names the first bad record"},
};

}  // namespace

int RunAudit(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("audit", kAuditVerbs, ctx, args);
}

}  // namespace vigo::cli
