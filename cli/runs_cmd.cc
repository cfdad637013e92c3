// vigocli runs list|show|prune (CONTRACT §6): stored run results.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/terminal_text.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/strings.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "server/audit.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "vocab/ids.h"

namespace vigo::cli {
namespace {

using server::service::ApplierRecord;
using server::service::RunRecord;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(JsonWriter& w, const char* k, const std::string& v) {
  w.Key(k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

void RunJson(JsonWriter& w, const RunRecord& r, bool with_results) {
  w.StartObject();
  Str(w, "id", r.id);
  Str(w, "envoy", r.envoy);
  Str(w, "outcome", r.outcome);
  Str(w, "bundle_digest", r.bundle_digest);
  w.Key("secrets_epoch");
  w.Uint64(r.secrets_epoch);
  Str(w, "started", IsoTime(r.started_ms));
  Str(w, "finished", IsoTime(r.finished_ms));
  Str(w, "received", IsoTime(r.received_ms));
  w.Key("redacted");
  w.Bool(r.redacted);
  w.Key("results_count");
  w.Int64(r.result_count);
  if (with_results && r.applier) {
    const ApplierRecord& a = *r.applier;
    w.Key("applier");
    w.StartObject();
    w.Key("landlock_abi");
    w.Int(a.landlock_abi);
    w.Key("enforced");
    w.Bool(a.enforced);
    Str(w, "rights", a.rights);
    w.Key("domain");
    w.StartArray();
    for (const std::string& d : a.domain)
      w.String(d.c_str(), static_cast<rapidjson::SizeType>(d.size()));
    w.EndArray();
    w.Key("domain_truncated");
    w.Bool(a.domain_truncated);
    Str(w, "cap_eff", a.cap_eff);
    w.Key("setup_us");
    w.Int64(a.setup_us);
    w.Key("no_new_process");
    w.Bool(a.no_new_process);
    w.EndObject();
  }
  if (with_results) {
    w.Key("results");
    w.StartArray();
    for (const auto& res : r.results) {
      w.StartObject();
      Str(w, "name", res.name);
      Str(w, "type", res.type);
      Str(w, "status", res.status);
      Str(w, "action", res.action);
      Str(w, "message", res.message);
      w.Key("redactions");
      w.Int64(res.redactions);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

int RunsList(const CliContext& ctx, const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "runs list";
  ArgSpec spec{
      "vigocli runs list [--envoy NAME] [--limit N]",
      "Stored run results, newest first.",
      {{"envoy", true, "only this envoy"}, {"limit", true, "at most N runs (default 100)"}},
      0,
      0};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  int64_t limit = 100;
  if (a.Has("limit")) {
    const std::string l = *a.Get("limit");
    if (l.empty() || l.size() > 9 || l.find_first_not_of("0123456789") != std::string::npos) {
      return Usage(kCmd, "--limit must be a number");
    }
    limit = std::stol(l);
  }
  auto o = OpenStore(ctx);
  if (!o.ok()) return Fail(kCmd, o.status());
  auto runs = o->store->ListRuns(a.Get("envoy").value_or(""), limit);
  if (!runs.ok()) return Fail(kCmd, runs.status());
  if (!ctx.json) {
    std::printf("%-34s %-20s %-8s %-7s %-20s %s\n", "ID", "ENVOY", "OUTCOME", "EPOCH", "FINISHED",
                "RESULTS");
  }
  for (const RunRecord& r : *runs) {
    if (ctx.json) {
      rapidjson::StringBuffer sb;
      JsonWriter w(sb);
      RunJson(w, r, false);
      std::printf("%s\n", sb.GetString());
    } else {
      std::printf("%-34s %-20s %-8s %-7llu %-20s %lld%s\n", TerminalText(r.id).c_str(),
                  TerminalText(r.envoy).c_str(), TerminalText(r.outcome).c_str(),
                  static_cast<unsigned long long>(r.secrets_epoch), IsoTime(r.finished_ms).c_str(),
                  static_cast<long long>(r.result_count),
                  r.redacted ? " (redacted: the agent leaked a value)" : "");
    }
  }
  return kExitOk;
}

int RunsShow(const CliContext& ctx, const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "runs show";
  ArgSpec spec{"vigocli runs show ID", "One stored run with its per-resource results.", {}, 1, 1};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto o = OpenStore(ctx);
  if (!o.ok()) return Fail(kCmd, o.status());
  auto run = o->store->GetRun(a.positional()[0]);
  if (!run.ok()) return Fail(kCmd, run.status());
  if (ctx.json) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    RunJson(w, *run, true);
    std::printf("%s\n", sb.GetString());
    return kExitOk;
  }
  std::printf(
      "run       %s\nenvoy     %s\noutcome   %s\nepoch     %llu\nbundle    %s\n"
      "started   %s\nfinished  %s\nreceived  %s\n",
      TerminalText(run->id).c_str(), TerminalText(run->envoy).c_str(),
      TerminalText(run->outcome).c_str(), static_cast<unsigned long long>(run->secrets_epoch),
      TerminalText(run->bundle_digest).c_str(), IsoTime(run->started_ms).c_str(),
      IsoTime(run->finished_ms).c_str(), IsoTime(run->received_ms).c_str());
  if (run->redacted) std::printf("note      the agent leaked a secret value; stored redacted\n");
  if (run->applier) {
    const ApplierRecord& ap = *run->applier;
    std::printf("applier   landlock abi %d, %s; cap_eff %s; set-up %lld us; %s\n", ap.landlock_abi,
                ap.enforced ? "enforced" : "NOT enforced",
                ap.cap_eff.empty() ? "-" : TerminalText(ap.cap_eff).c_str(),
                static_cast<long long>(ap.setup_us),
                ap.no_new_process ? "no fork/exec" : "fork/exec NOT blocked");
    if (!ap.rights.empty()) std::printf("rights    %s\n", TerminalText(ap.rights).c_str());
    for (const std::string& d : ap.domain) std::printf("domain    %s\n", TerminalText(d).c_str());
    if (ap.domain_truncated) std::printf("domain    (more directories, not stored)\n");
  }
  std::printf("\n%-24s %-10s %-8s %-8s %-10s %s\n", "RESOURCE", "TYPE", "STATUS", "ACTION",
              "REDACTIONS", "MESSAGE");
  for (const auto& r : run->results) {
    std::printf("%-24s %-10s %-8s %-8s %-10lld %s\n", TerminalText(r.name).c_str(),
                TerminalText(r.type).c_str(), TerminalText(r.status).c_str(),
                TerminalText(r.action).c_str(), static_cast<long long>(r.redactions),
                TerminalText(r.message).c_str());
  }
  return kExitOk;
}

int RunsPrune(const CliContext& ctx, const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "runs prune";
  ArgSpec spec{"vigocli runs prune [--older-than DUR]",
               "Delete stored runs received longer ago than DUR (e.g. 12h, 7d), by default "
               "database.runs_retention from server.yaml (default 30d). Audited (runs.prune): "
               "the record is written first, so no runs are deleted unaudited.",
               {{"older-than", true, "delete runs older than DUR instead of the retention"}},
               0,
               0};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto o = OpenStore(ctx);
  if (!o.ok()) return Fail(kCmd, o.status());
  std::chrono::seconds age = o->cfg.runs_retention;
  if (a.Has("older-than")) {
    auto d = server::ParseDurationText(*a.Get("older-than"));
    if (!d.ok()) return Usage(kCmd, StrCat("--older-than: ", d.status().message()));
    age = *d;
  }
  const int64_t cutoff =
      vocab::NowUnixMs() - std::chrono::duration_cast<std::chrono::milliseconds>(age).count();
  server::AuditLog log(o->db.get());
  const std::string what =
      StrCat("runs received before ", IsoTime(cutoff), " (older than ", age.count(), " s)");
  absl::Status au = log.Append({.event = "runs.prune",
                                .actor = Actor(),
                                .envoy = "",
                                .paths = {},
                                .outcome = "ok",
                                .detail = what});
  if (!au.ok()) return Fail(kCmd, StrCat("audit log: ", au.message(), "; nothing deleted"));
  auto n = o->store->PruneRuns(cutoff);
  if (!n.ok()) {
    (void)log.Append({.event = "runs.prune",
                      .actor = Actor(),
                      .envoy = "",
                      .paths = {},
                      .outcome = "failed",
                      .detail = StrCat(what, ": ", n.status().message())});
    return Fail(kCmd, n.status());
  }
  if (ctx.json) {
    std::printf("{\"ok\":true,\"pruned\":%lld,\"before_unix_ms\":%lld}\n",
                static_cast<long long>(*n), static_cast<long long>(cutoff));
  } else {
    std::printf("pruned %lld runs received before %s\n", static_cast<long long>(*n),
                IsoTime(cutoff).c_str());
  }
  return kExitOk;
}

constexpr Verb kRunsVerbs[] = {
    {"list", RunsList, "list [--envoy NAME]: stored runs"},
    {"show", RunsShow, "show ID: one run with its results"},
    {"prune", RunsPrune, "prune [--older-than DUR]: delete old runs"},
};

}  // namespace

int RunRuns(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("runs", kRunsVerbs, ctx, args);
}

}  // namespace vigo::cli
