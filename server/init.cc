#include "server/init.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/unique_fd.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/tls/pki.h"

namespace vigo::server {
namespace fs = std::filesystem;
namespace {

// The example stack: one rule for every envoy, a motd file, no secret
// references, so `vigosrv` starts on an empty vault.
constexpr std::string_view kEnvoys =
    "# First match wins; matched against the envoy name (the CN of its certificate).\n"
    "envoys:\n"
    "  - match: \"*\"\n"
    "    environment: default\n"
    "    roles: [base]\n";
constexpr std::string_view kRoles =
    "roles:\n"
    "  base:\n"
    "    configcrates: [motd]\n";
constexpr std::string_view kEnvironments =
    "# Put secret references here, e.g. db_password: \"secret:webapp/prod/db_password\"\n"
    "env:\n"
    "  default:\n"
    "    vars: { site: example }\n";
constexpr std::string_view kMotd =
    "configcrate: motd\n"
    "resources:\n"
    "  - name: motd\n"
    "    type: file\n"
    "    target_path: /etc/motd\n"
    "    state: present\n"
    "    mode: \"0644\"\n"
    "    owner: root\n"
    "    group: root\n"
    "    content: |\n"
    "      This host ({{ .Envoy.Name }}) is managed by Vigo ({{ .Vars.site }}).\n";

absl::Status MakeDir(const fs::path& root, const std::string& rel, mode_t mode,
                     InitReport* report) {
  fs::path p = rel.empty() ? root : root / rel;
  if (::mkdir(p.c_str(), mode) == 0) {
    ::chmod(p.c_str(), mode);
    if (!rel.empty()) report->created.push_back(rel + "/");
    return absl::OkStatus();
  }
  if (errno != EEXIST) return absl::InternalError(StrCat(p.string(), ": cannot create directory"));
  std::error_code ec;
  if (!fs::is_directory(p, ec)) {
    return absl::FailedPreconditionError(StrCat(p.string(), ": exists and is not a directory"));
  }
  if (!rel.empty()) report->kept.push_back(rel + "/");
  return absl::OkStatus();
}

absl::Status WriteNew(const fs::path& root, const std::string& rel, std::string_view text,
                      mode_t mode, InitReport* report) {
  fs::path p = root / rel;
  sandbox::UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) {
    if (errno == EEXIST) {
      report->kept.push_back(rel);
      return absl::OkStatus();
    }
    return absl::InternalError(StrCat(p.string(), ": cannot create"));
  }
  ::fchmod(fd.get(), mode);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n <= 0) return absl::InternalError(StrCat(p.string(), ": write failed"));
    off += static_cast<size_t>(n);
  }
  report->created.push_back(rel);
  return absl::OkStatus();
}

bool Exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(p, ec));
}

}  // namespace

absl::Status InitRoot(const fs::path& root, const std::string& hostname, InitReport* report) {
  InitReport local;
  if (report == nullptr) report = &local;
  if (hostname.empty()) return absl::InvalidArgumentError("--hostname is empty");
  std::error_code ec;
  if (!root.parent_path().empty()) fs::create_directories(root.parent_path(), ec);
  if (ec) return absl::InternalError(StrCat(root.parent_path().string(), ": cannot create directory"));
  VIGO_RETURN_IF_ERROR(MakeDir(root, "", 0750, report));
  VIGO_RETURN_IF_ERROR(WriteNew(root, "server.yaml", DefaultServerYaml(hostname), 0640, report));

  VIGO_RETURN_IF_ERROR(MakeDir(root, "stacks", 0750, report));
  // Only seed the example into an empty stacks dir: never mix it with an
  // operator's own tree.
  bool stacks_empty = fs::is_empty(root / "stacks", ec);
  if (stacks_empty && !ec) {
    VIGO_RETURN_IF_ERROR(MakeDir(root, "stacks/configcrates", 0750, report));
    VIGO_RETURN_IF_ERROR(WriteNew(root, "stacks/envoys.vgo", kEnvoys, 0640, report));
    VIGO_RETURN_IF_ERROR(WriteNew(root, "stacks/roles.vgo", kRoles, 0640, report));
    VIGO_RETURN_IF_ERROR(WriteNew(root, "stacks/environments.vgo", kEnvironments, 0640, report));
    VIGO_RETURN_IF_ERROR(WriteNew(root, "stacks/configcrates/motd.vgo", kMotd, 0640, report));
  } else {
    report->kept.push_back("stacks/*");
  }

  VIGO_RETURN_IF_ERROR(MakeDir(root, "secrets", 0700, report));
  VIGO_RETURN_IF_ERROR(MakeDir(root, "tls", 0700, report));
  VIGO_RETURN_IF_ERROR(MakeDir(root, "db", 0700, report));
  VIGO_RETURN_IF_ERROR(MakeDir(root, "run", 0700, report));

  const fs::path tls = root / "tls";
  tls::CaFiles ca{tls / "ca.pem", tls / "ca.key"};
  bool have_ca_cert = Exists(ca.cert);
  bool have_ca_key = Exists(ca.key);
  if (!have_ca_cert && !have_ca_key) {
    VIGO_RETURN_IF_ERROR(tls::CreateCa(ca, StrCat("Vigo CA ", hostname)));
    report->created.push_back("tls/ca.pem");
    report->created.push_back("tls/ca.key");
  } else if (have_ca_cert != have_ca_key) {
    return absl::FailedPreconditionError(
        StrCat(tls.string(), ": has only one of ca.pem and ca.key; restore the other or "
                             "move both away"));
  } else {
    report->kept.push_back("tls/ca.pem");
    report->kept.push_back("tls/ca.key");
  }
  bool have_srv_cert = Exists(tls / "server.pem");
  bool have_srv_key = Exists(tls / "server.key");
  if (!have_srv_cert && !have_srv_key) {
    VIGO_RETURN_IF_ERROR(
        tls::IssueServerCert(ca, tls / "server.pem", tls / "server.key", hostname).status());
    report->created.push_back("tls/server.pem");
    report->created.push_back("tls/server.key");
  } else if (have_srv_cert != have_srv_key) {
    return absl::FailedPreconditionError(
        StrCat(tls.string(), ": has only one of server.pem and server.key"));
  } else {
    report->kept.push_back("tls/server.pem");
    report->kept.push_back("tls/server.key");
  }

  // The database, at the path server.yaml names (the default unless the
  // operator edited an existing file).
  VIGO_ASSIGN_OR_RETURN(ServerConfig cfg, LoadServerConfig(root));
  bool had_db = Exists(cfg.DatabasePath());
  VIGO_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Create(cfg.DatabasePath()));
  VIGO_RETURN_IF_ERROR(service::EnsureServerSchema(*db));
  (had_db ? report->kept : report->created).push_back(cfg.database_path);
  return absl::OkStatus();
}

}  // namespace vigo::server
