// vigocli envoy issue|list|revoke, runs list|show|prune, server reload.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "cli/cli.h"
#include "cli/terminal_text.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/strings.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "server/admin_client.h"
#include "server/audit.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/tls/pki.h"
#include "vocab/envoy_name.h"
#include "vocab/ids.h"

namespace vigo::cli {
namespace {

namespace fs = std::filesystem;
using server::service::ApplierRecord;
using server::service::EnvoyCertRecord;
using server::service::RunRecord;
using server::service::ServerStore;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

int Error(const std::string& msg, int code = kExitError) {
  std::fprintf(stderr, "vigocli: %s\n", msg.c_str());
  return code;
}
int ErrorStatus(const absl::Status& st) { return Error(std::string(st.message()), ExitCodeFor(st)); }

std::string Actor() { return StrCat("uid:", static_cast<int64_t>(::getuid())); }

std::string IsoTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void Key(JsonWriter& w, const char* k) { w.Key(k); }
void Str(JsonWriter& w, const char* k, const std::string& v) {
  w.Key(k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

// The parsed spec, or an exit code (help printed / usage error).
struct Parsed {
  std::optional<ParsedArgs> args;
  int exit_code = kExitOk;
};
Parsed Parse(const ArgSpec& spec, const std::vector<std::string>& args) {
  Parsed p;
  auto a = ParseArgs(spec, args);
  if (!a.ok()) {
    std::fprintf(stderr, "vigocli: %s\n%s", std::string(a.status().message()).c_str(),
                 HelpText(spec).c_str());
    p.exit_code = kExitUsage;
    return p;
  }
  if (a->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    p.exit_code = kExitOk;
    return p;
  }
  p.args = std::move(*a);
  return p;
}

struct Opened {
  server::ServerConfig cfg;
  std::unique_ptr<server::Database> db;
  std::unique_ptr<ServerStore> store;
};

// The existing root, config and database: no verb here creates a root or a
// database (a typo must not look like an empty, healthy installation).
absl::StatusOr<Opened> Open(const CliContext& ctx) {
  Opened o;
  if (absl::Status st = RequireDataRoot(ctx.root); !st.ok()) return st;
  auto cfg = server::LoadServerConfig(ctx.root);
  if (!cfg.ok()) return cfg.status();
  o.cfg = *cfg;
  auto db = OpenExistingDatabase(o.cfg);
  if (!db.ok()) return db.status();
  o.db = std::move(*db);
  o.store = std::make_unique<ServerStore>(o.db.get());
  absl::Status st = o.store->Init();
  if (!st.ok()) return st;
  return o;
}

absl::Status CopyCaIfMissing(const fs::path& from, const fs::path& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(from.string(), ": cannot read"));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::error_code ec;
  if (fs::exists(to, ec)) {
    std::ifstream old(to, std::ios::binary);
    std::ostringstream os;
    os << old.rdbuf();
    if (os.str() == ss.str()) return absl::OkStatus();
    return absl::AlreadyExistsError(
        StrCat(to.string(), ": exists and is a different CA; not overwriting"));
  }
  std::ofstream out(to, std::ios::binary);
  out << ss.str();
  if (!out) return absl::InternalError(StrCat(to.string(), ": write failed"));
  return absl::OkStatus();
}

// The --out directory of `envoy issue`: an existing directory is used as it
// is (its mode untouched: `--out /tmp` must not change /tmp); a missing one is
// created 0700, but only its last component: a missing parent is refused
// (NOT_FOUND naming it, nothing created), so a typo cannot grow a tree of
// 0755 directories from the file system root.
struct OutDir {
  fs::path path;
  bool created = false;
};

absl::StatusOr<OutDir> PrepareOutDir(const std::string& flag) {
  OutDir d;
  std::error_code ec;
  d.path = fs::absolute(flag, ec).lexically_normal();
  if (ec) return absl::FailedPreconditionError(StrCat("--out ", flag, ": cannot resolve"));
  if (d.path.filename().empty() && d.path.has_parent_path() && d.path != d.path.root_path()) {
    d.path = d.path.parent_path();  // "dir/" → "dir"
  }
  struct stat st;
  if (::stat(d.path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          StrCat("--out ", d.path.string(), ": exists and is not a directory"));
    }
    return d;
  }
  if (const int err = errno; err != ENOENT) {
    return absl::FailedPreconditionError(
        StrCat("--out ", d.path.string(), ": cannot stat (", std::strerror(err), ")"));
  }
  const fs::path parent = d.path.parent_path();
  if (::stat(parent.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat("--out ", d.path.string(), ": ", parent.string(),
                                                " is not a directory (nothing created)"));
  }
  if (::stat(parent.c_str(), &st) != 0) {
    return absl::NotFoundError(StrCat("--out ", d.path.string(), ": the parent directory ",
                                      parent.string(),
                                      " does not exist; create it first (nothing created)"));
  }
  if (::mkdir(d.path.c_str(), 0700) != 0) {
    const int err = errno;
    return absl::FailedPreconditionError(StrCat("--out ", d.path.string(),
                                                ": cannot create directory (",
                                                std::strerror(err), ")"));
  }
  d.created = true;
  return d;
}

// ---------------------------------------------------------------------------

int EnvoyIssue(const CliContext& ctx, const std::vector<std::string>& args) {
  ArgSpec spec{"vigocli envoy issue NAME --out DIR [--days N]",
               "Issue a client certificate for envoy NAME (CN = NAME) signed by the server CA; "
               "writes DIR/ca.pem, DIR/cert.pem and DIR/key.pem (0600) and records it.",
               {{"out", true,
                 "output directory (created 0700 if missing; its parent must exist)"},
                {"days", true,
                 "validity in days (default 365; refused if it would outlive the CA)"}},
               1, 1};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  const std::string name = p.args->positional()[0];
  absl::Status valid = vocab::ValidateEnvoyName(name);
  if (!valid.ok()) return Error(StrCat("envoy name: ", std::string(valid.message())), kExitUsage);
  if (!p.args->Has("out")) return Error("envoy issue needs --out DIR", kExitUsage);
  int64_t days = 365;
  if (p.args->Has("days")) {
    const std::string d = *p.args->Get("days");
    if (d.empty() || d.size() > 5 || d.find_first_not_of("0123456789") != std::string::npos ||
        std::stol(d) < 1) {
      return Error("--days must be a positive number of days", kExitUsage);
    }
    days = std::stol(d);
  }
  if (p.args->Get("out")->empty()) return Error("--out needs a directory", kExitUsage);
  auto o = Open(ctx);
  if (!o.ok()) return ErrorStatus(o.status());
  server::tls::CaFiles ca{o->cfg.TlsDir() / "ca.pem", o->cfg.TlsDir() / "ca.key"};
  const std::chrono::seconds validity = std::chrono::hours(24 * days);
  // Refuse a --days that outlives the CA before anything is written (the
  // issuer checks again). Refused rather than capped: a certificate shorter
  // than asked for would surprise whoever schedules its renewal.
  {
    auto ca_info = server::tls::ReadCertInfo(ca.cert);
    if (!ca_info.ok()) return ErrorStatus(ca_info.status());
    absl::Status within =
        server::tls::CheckValidityWithinCa(*ca_info, validity, ::time(nullptr));
    if (!within.ok()) {
      return Error(StrCat("--days ", days, ": ", within.message(), " (nothing written)"),
                   kExitUsage);
    }
  }
  auto out_dir = PrepareOutDir(*p.args->Get("out"));
  if (!out_dir.ok()) return ErrorStatus(out_dir.status());
  const fs::path out = out_dir->path;
  auto info = server::tls::IssueClientCert(ca, out / "cert.pem", out / "key.pem", name, validity);
  if (!info.ok()) {
    if (out_dir->created) ::rmdir(out.c_str());  // leave no trace of a failed issue
    return ErrorStatus(info.status());
  }
  absl::Status st = CopyCaIfMissing(ca.cert, out / "ca.pem");
  if (!st.ok()) return ErrorStatus(st);
  st = o->store->RecordEnvoyCert(name, *info);
  if (!st.ok()) return ErrorStatus(st);
  server::AuditLog audit(o->db.get());
  st = audit.Append({.event = "envoy.issue",
                     .actor = Actor(),
                     .envoy = name,
                     .paths = {},
                     .outcome = "ok",
                     .detail = StrCat("serial=", info->serial_hex, " sha256=",
                                      info->fingerprint_sha256)});
  if (!st.ok()) return Error(StrCat("certificate issued but audit failed: ", std::string(st.message())));
  if (ctx.json) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    Str(w, "name", name);
    Str(w, "serial", info->serial_hex);
    Str(w, "fingerprint", info->fingerprint_sha256);
    Str(w, "not_after", IsoTime(info->not_after_unix * 1000));
    Str(w, "cert", (out / "cert.pem").string());
    Str(w, "key", (out / "key.pem").string());
    Str(w, "ca", (out / "ca.pem").string());
    w.EndObject();
    std::printf("%s\n", sb.GetString());
  } else {
    std::printf("issued envoy %s: %s (serial %s, expires %s)\n", name.c_str(),
                (out / "cert.pem").c_str(), info->serial_hex.c_str(),
                IsoTime(info->not_after_unix * 1000).c_str());
  }
  return kExitOk;
}

int EnvoyList(const CliContext& ctx, const std::vector<std::string>& args) {
  ArgSpec spec{"vigocli envoy list",
               "Issued envoy certificates, with revocation and last seen. STATE is revoked, "
               "expired (its notAfter has passed, computed now) or active.",
               {}, 0, 0};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  auto o = Open(ctx);
  if (!o.ok()) return ErrorStatus(o.status());
  auto list = o->store->ListEnvoyCerts();
  if (!list.ok()) return ErrorStatus(list.status());
  if (!ctx.json) {
    std::printf("%-24s %-8s %-20s %-20s %-20s %s\n", "NAME", "STATE", "ISSUED", "LAST_SEEN",
                "NOT_AFTER", "SERIAL");
  }
  // Expiry is computed from the certificate's notAfter at every listing, never
  // stored: an inventory must not call an expired certificate active.
  const int64_t now_unix = vocab::NowUnixMs() / 1000;
  for (const EnvoyCertRecord& r : *list) {
    const bool expired = r.not_after_unix <= now_unix;
    const char* state = r.revoked_at_ms ? "revoked" : expired ? "expired" : "active";
    if (ctx.json) {
      rapidjson::StringBuffer sb;
      JsonWriter w(sb);
      w.StartObject();
      Str(w, "name", r.name);
      Str(w, "state", state);
      Key(w, "expired");
      w.Bool(expired);
      Str(w, "serial", r.serial);
      Str(w, "fingerprint", r.fingerprint);
      Str(w, "issued_at", IsoTime(r.issued_at_ms));
      Str(w, "not_after", IsoTime(r.not_after_unix * 1000));
      Str(w, "revoked_at", r.revoked_at_ms ? IsoTime(*r.revoked_at_ms) : "");
      Str(w, "last_seen", r.last_seen_ms ? IsoTime(*r.last_seen_ms) : "");
      w.EndObject();
      std::printf("%s\n", sb.GetString());
    } else {
      std::printf("%-24s %-8s %-20s %-20s %-20s %s\n", TerminalText(r.name).c_str(), state,
                  IsoTime(r.issued_at_ms).c_str(),
                  r.last_seen_ms ? IsoTime(*r.last_seen_ms).c_str() : "-",
                  IsoTime(r.not_after_unix * 1000).c_str(), TerminalText(r.serial).c_str());
    }
  }
  return kExitOk;
}

int EnvoyRevoke(const CliContext& ctx, const std::vector<std::string>& args) {
  ArgSpec spec{"vigocli envoy revoke NAME",
               "Revoke every active certificate of envoy NAME; the server refuses them on the "
               "next call (checked per call).",
               {}, 1, 1};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  const std::string name = p.args->positional()[0];
  absl::Status valid = vocab::ValidateEnvoyName(name);
  if (!valid.ok()) return Error(StrCat("envoy name: ", std::string(valid.message())), kExitUsage);
  auto o = Open(ctx);
  if (!o.ok()) return ErrorStatus(o.status());
  auto n = o->store->RevokeEnvoy(name);
  if (!n.ok()) return ErrorStatus(n.status());
  server::AuditLog audit(o->db.get());
  absl::Status st = audit.Append({.event = "envoy.revoke",
                                  .actor = Actor(),
                                  .envoy = name,
                                  .paths = {},
                                  .outcome = "ok",
                                  .detail = StrCat("certificates=", *n)});
  if (!st.ok()) return Error(StrCat("revoked but audit failed: ", std::string(st.message())));
  if (ctx.json) {
    std::printf("{\"name\":\"%s\",\"revoked\":%d}\n", name.c_str(), *n);
  } else {
    std::printf("revoked envoy %s (%d certificate%s)\n", name.c_str(), *n, *n == 1 ? "" : "s");
  }
  return kExitOk;
}

void RunJson(JsonWriter& w, const RunRecord& r, bool with_results) {
  w.StartObject();
  Str(w, "id", r.id);
  Str(w, "envoy", r.envoy);
  Str(w, "outcome", r.outcome);
  Str(w, "bundle_digest", r.bundle_digest);
  Key(w, "secrets_epoch");
  w.Uint64(r.secrets_epoch);
  Str(w, "started", IsoTime(r.started_ms));
  Str(w, "finished", IsoTime(r.finished_ms));
  Str(w, "received", IsoTime(r.received_ms));
  Key(w, "redacted");
  w.Bool(r.redacted);
  Key(w, "results_count");
  w.Int64(r.result_count);
  if (with_results && r.applier) {
    const ApplierRecord& a = *r.applier;
    Key(w, "applier");
    w.StartObject();
    Key(w, "landlock_abi");
    w.Int(a.landlock_abi);
    Key(w, "enforced");
    w.Bool(a.enforced);
    Str(w, "rights", a.rights);
    Key(w, "domain");
    w.StartArray();
    for (const std::string& d : a.domain)
      w.String(d.c_str(), static_cast<rapidjson::SizeType>(d.size()));
    w.EndArray();
    Key(w, "domain_truncated");
    w.Bool(a.domain_truncated);
    Str(w, "cap_eff", a.cap_eff);
    Key(w, "setup_us");
    w.Int64(a.setup_us);
    Key(w, "no_new_process");
    w.Bool(a.no_new_process);
    w.EndObject();
  }
  if (with_results) {
    Key(w, "results");
    w.StartArray();
    for (const auto& res : r.results) {
      w.StartObject();
      Str(w, "name", res.name);
      Str(w, "type", res.type);
      Str(w, "status", res.status);
      Str(w, "action", res.action);
      Str(w, "message", res.message);
      Key(w, "redactions");
      w.Int64(res.redactions);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

int RunsList(const CliContext& ctx, const std::vector<std::string>& args) {
  ArgSpec spec{"vigocli runs list [--envoy NAME] [--limit N]", "Stored run results, newest first.",
               {{"envoy", true, "only this envoy"}, {"limit", true, "at most N runs (default 100)"}},
               0, 0};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  int64_t limit = 100;
  if (p.args->Has("limit")) {
    const std::string l = *p.args->Get("limit");
    if (l.empty() || l.size() > 9 || l.find_first_not_of("0123456789") != std::string::npos) {
      return Error("--limit must be a number", kExitUsage);
    }
    limit = std::stol(l);
  }
  auto o = Open(ctx);
  if (!o.ok()) return ErrorStatus(o.status());
  auto runs = o->store->ListRuns(p.args->Get("envoy").value_or(""), limit);
  if (!runs.ok()) return ErrorStatus(runs.status());
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
                  static_cast<unsigned long long>(r.secrets_epoch),
                  IsoTime(r.finished_ms).c_str(), static_cast<long long>(r.result_count),
                  r.redacted ? " (redacted: the agent leaked a value)" : "");
    }
  }
  return kExitOk;
}

int RunsShow(const CliContext& ctx, const std::vector<std::string>& args) {
  ArgSpec spec{"vigocli runs show ID", "One stored run with its per-resource results.", {}, 1, 1};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  auto o = Open(ctx);
  if (!o.ok()) return ErrorStatus(o.status());
  auto run = o->store->GetRun(p.args->positional()[0]);
  if (!run.ok()) return ErrorStatus(run.status());
  if (ctx.json) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    RunJson(w, *run, true);
    std::printf("%s\n", sb.GetString());
    return kExitOk;
  }
  std::printf("run       %s\nenvoy     %s\noutcome   %s\nepoch     %llu\nbundle    %s\n"
              "started   %s\nfinished  %s\nreceived  %s\n",
              TerminalText(run->id).c_str(), TerminalText(run->envoy).c_str(),
              TerminalText(run->outcome).c_str(),
              static_cast<unsigned long long>(run->secrets_epoch),
              TerminalText(run->bundle_digest).c_str(),
              IsoTime(run->started_ms).c_str(), IsoTime(run->finished_ms).c_str(),
              IsoTime(run->received_ms).c_str());
  if (run->redacted) std::printf("note      the agent leaked a secret value; stored redacted\n");
  if (run->applier) {
    const ApplierRecord& a = *run->applier;
    std::printf("applier   landlock abi %d, %s; cap_eff %s; set-up %lld us; %s\n", a.landlock_abi,
                a.enforced ? "enforced" : "NOT enforced",
                a.cap_eff.empty() ? "-" : TerminalText(a.cap_eff).c_str(),
                static_cast<long long>(a.setup_us),
                a.no_new_process ? "no fork/exec" : "fork/exec NOT blocked");
    if (!a.rights.empty()) std::printf("rights    %s\n", TerminalText(a.rights).c_str());
    for (const std::string& d : a.domain) std::printf("domain    %s\n", TerminalText(d).c_str());
    if (a.domain_truncated) std::printf("domain    (more directories, not stored)\n");
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
  ArgSpec spec{"vigocli runs prune [--older-than DUR]",
               "Delete stored runs received longer ago than DUR (e.g. 12h, 7d), by default "
               "database.runs_retention from server.yaml (default 30d). Audited (runs.prune): "
               "the record is written first, so no runs are deleted unaudited.",
               {{"older-than", true, "delete runs older than DUR instead of the retention"}},
               0, 0};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  auto o = Open(ctx);
  if (!o.ok()) return ErrorStatus(o.status());
  std::chrono::seconds age = o->cfg.runs_retention;
  if (p.args->Has("older-than")) {
    auto d = server::ParseDurationText(*p.args->Get("older-than"));
    if (!d.ok()) return Error(StrCat("--older-than: ", d.status().message()), kExitUsage);
    age = *d;
  }
  const int64_t cutoff =
      vocab::NowUnixMs() - std::chrono::duration_cast<std::chrono::milliseconds>(age).count();
  server::AuditLog log(o->db.get());
  const std::string what = StrCat("runs received before ", IsoTime(cutoff), " (older than ",
                                  age.count(), " s)");
  absl::Status au = log.Append({.event = "runs.prune", .actor = Actor(), .envoy = "", .paths = {},
                                .outcome = "ok", .detail = what});
  if (!au.ok()) return Error(StrCat("audit log: ", au.message(), "; nothing deleted"));
  auto n = o->store->PruneRuns(cutoff);
  if (!n.ok()) {
    (void)log.Append({.event = "runs.prune", .actor = Actor(), .envoy = "", .paths = {},
                      .outcome = "failed", .detail = StrCat(what, ": ", n.status().message())});
    return ErrorStatus(n.status());
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

int ServerReload(const CliContext& ctx, const std::vector<std::string>& args) {
  ArgSpec spec{"vigocli server reload",
               "Tell the running server to reload the stacks now (admin socket, root only). "
               "Exit 1 with the errors when the reload fails; the server keeps its last good "
               "config.",
               {}, 0, 0};
  Parsed p = Parse(spec, args);
  if (!p.args) return p.exit_code;
  auto cfg = server::LoadServerConfig(ctx.root, /*allow_missing=*/true);
  if (!cfg.ok()) return ErrorStatus(cfg.status());
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
      return Error(n.message);
    case server::ReloadNotice::kFailed:
      return Error(StrCat("reload failed (the server keeps its last good config): ", n.message));
  }
  return kExitError;
}

struct Sub {
  const char* name;
  int (*run)(const CliContext&, const std::vector<std::string>&);
  const char* summary;
};

int Dispatch(const char* group, const std::vector<Sub>& subs, const CliContext& ctx,
             const std::vector<std::string>& args) {
  auto usage = [&](std::FILE* f) {
    std::fprintf(f, "usage: vigocli %s COMMAND ...\n\ncommands:\n", group);
    for (const Sub& s : subs) std::fprintf(f, "  %-8s %s\n", s.name, s.summary);
  };
  if (args.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    usage(stdout);
    return kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const Sub& s : subs) {
    if (args[0] == s.name) return s.run(ctx, rest);
  }
  std::fprintf(stderr, "vigocli: unknown command '%s %s'\n", group, args[0].c_str());
  usage(stderr);
  return kExitUsage;
}

}  // namespace

int RunEnvoy(const CliContext& ctx, const std::vector<std::string>& args) {
  return Dispatch("envoy",
                  {{"issue", EnvoyIssue, "issue NAME --out DIR: a client certificate"},
                   {"list", EnvoyList, "issued certificates"},
                   {"revoke", EnvoyRevoke, "revoke NAME: refuse its certificates"}},
                  ctx, args);
}

int RunRuns(const CliContext& ctx, const std::vector<std::string>& args) {
  return Dispatch("runs",
                  {{"list", RunsList, "list [--envoy NAME]: stored runs"},
                   {"show", RunsShow, "show ID: one run with its results"},
                   {"prune", RunsPrune, "prune [--older-than DUR]: delete old runs"}},
                  ctx, args);
}

int RunServer(const CliContext& ctx, const std::vector<std::string>& args) {
  return Dispatch("server", {{"reload", ServerReload, "reload the stacks now"}}, ctx, args);
}

}  // namespace vigo::cli
