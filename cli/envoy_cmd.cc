// vigocli envoy issue|list|revoke (CONTRACT §6): client certificates.
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
#include "cli/command.h"
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
using server::service::EnvoyCertRecord;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(JsonWriter& w, const char* k, const std::string& v) {
  w.Key(k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
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
  constexpr std::string_view kCmd = "envoy issue";
  ArgSpec spec{"vigocli envoy issue NAME --out DIR [--days N]",
               "Issue a client certificate for envoy NAME (CN = NAME) signed by the server CA; "
               "writes DIR/ca.pem, DIR/cert.pem and DIR/key.pem (0600) and records it.",
               {{"out", true,
                 "output directory (created 0700 if missing; its parent must exist)"},
                {"days", true,
                 "validity in days (default 365; refused if it would outlive the CA)"}},
               1, 1};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string name = a.positional()[0];
  absl::Status valid = vocab::ValidateEnvoyName(name);
  if (!valid.ok()) return Usage(kCmd, StrCat("envoy name: ", std::string(valid.message())));
  if (!a.Has("out")) return Usage(kCmd, "--out DIR is required");
  int64_t days = 365;
  if (a.Has("days")) {
    const std::string d = *a.Get("days");
    if (d.empty() || d.size() > 5 || d.find_first_not_of("0123456789") != std::string::npos ||
        std::stol(d) < 1) {
      return Usage(kCmd, "--days must be a positive number of days");
    }
    days = std::stol(d);
  }
  if (a.Get("out")->empty()) return Usage(kCmd, "--out needs a directory");
  auto o = OpenStore(ctx);
  if (!o.ok()) return Fail(kCmd, o.status());
  server::tls::CaFiles ca{o->cfg.TlsDir() / "ca.pem", o->cfg.TlsDir() / "ca.key"};
  const std::chrono::seconds validity = std::chrono::hours(24 * days);
  // Refuse a --days that outlives the CA before anything is written (the
  // issuer checks again). Refused rather than capped: a certificate shorter
  // than asked for would surprise whoever schedules its renewal.
  {
    auto ca_info = server::tls::ReadCertInfo(ca.cert);
    if (!ca_info.ok()) return Fail(kCmd, ca_info.status());
    absl::Status within =
        server::tls::CheckValidityWithinCa(*ca_info, validity, ::time(nullptr));
    if (!within.ok()) {
      return Usage(kCmd, StrCat("--days ", days, ": ", within.message(), " (nothing written)"));
    }
  }
  auto out_dir = PrepareOutDir(*a.Get("out"));
  if (!out_dir.ok()) return Fail(kCmd, out_dir.status());
  const fs::path out = out_dir->path;
  auto info = server::tls::IssueClientCert(ca, out / "cert.pem", out / "key.pem", name, validity);
  if (!info.ok()) {
    if (out_dir->created) ::rmdir(out.c_str());  // leave no trace of a failed issue
    return Fail(kCmd, info.status());
  }
  absl::Status st = CopyCaIfMissing(ca.cert, out / "ca.pem");
  if (!st.ok()) return Fail(kCmd, st);
  st = o->store->RecordEnvoyCert(name, *info);
  if (!st.ok()) return Fail(kCmd, st);
  server::AuditLog audit(o->db.get());
  st = audit.Append({.event = "envoy.issue",
                     .actor = Actor(),
                     .envoy = name,
                     .paths = {},
                     .outcome = "ok",
                     .detail = StrCat("serial=", info->serial_hex, " sha256=",
                                      info->fingerprint_sha256)});
  if (!st.ok())
    return Fail(kCmd, StrCat("certificate issued but audit failed: ", std::string(st.message())));
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
  constexpr std::string_view kCmd = "envoy list";
  ArgSpec spec{"vigocli envoy list",
               "Issued envoy certificates, with revocation and last seen. STATE is revoked, "
               "expired (its notAfter has passed, computed now) or active.",
               {}, 0, 0};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  auto o = OpenStore(ctx);
  if (!o.ok()) return Fail(kCmd, o.status());
  auto list = o->store->ListEnvoyCerts();
  if (!list.ok()) return Fail(kCmd, list.status());
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
      w.Key("expired");
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
  constexpr std::string_view kCmd = "envoy revoke";
  ArgSpec spec{"vigocli envoy revoke NAME",
               "Revoke every active certificate of envoy NAME; the server refuses them on the "
               "next call (checked per call).",
               {}, 1, 1};
  ParsedArgs a;
  if (int rc = ParseVerb(spec, args, kCmd, &a); rc >= 0) return rc;
  const std::string name = a.positional()[0];
  absl::Status valid = vocab::ValidateEnvoyName(name);
  if (!valid.ok()) return Usage(kCmd, StrCat("envoy name: ", std::string(valid.message())));
  auto o = OpenStore(ctx);
  if (!o.ok()) return Fail(kCmd, o.status());
  auto n = o->store->RevokeEnvoy(name);
  if (!n.ok()) return Fail(kCmd, n.status());
  server::AuditLog audit(o->db.get());
  absl::Status st = audit.Append({.event = "envoy.revoke",
                                  .actor = Actor(),
                                  .envoy = name,
                                  .paths = {},
                                  .outcome = "ok",
                                  .detail = StrCat("certificates=", *n)});
  if (!st.ok()) return Fail(kCmd, StrCat("revoked but audit failed: ", std::string(st.message())));
  if (ctx.json) {
    std::printf("{\"name\":\"%s\",\"revoked\":%d}\n", name.c_str(), *n);
  } else {
    std::printf("revoked envoy %s (%d certificate%s)\n", name.c_str(), *n, *n == 1 ? "" : "s");
  }
  return kExitOk;
}

constexpr Verb kEnvoyVerbs[] = {
    {"issue", EnvoyIssue, "issue NAME --out DIR: a client certificate"},
    {"list", EnvoyList, "issued certificates"},
    {"revoke", EnvoyRevoke, "revoke NAME: refuse its certificates"},
};

}  // namespace

int RunEnvoy(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("envoy", kEnvoyVerbs, ctx, args);
}

}  // namespace vigo::cli
