#include "server/server_config.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/window_index.h"
#include "yaml-cpp/yaml.h"

namespace vigo::server {
namespace fs = std::filesystem;

namespace {

// Durations in server.yaml: "90s", "5m", "2h", or a bare number of seconds.
absl::StatusOr<std::chrono::seconds> ParseDuration(const std::string& text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9) {
    return absl::InvalidArgumentError(StrCat("bad duration '", text, "' (use e.g. 30s, 5m, 1h)"));
  }
  long n = std::stol(text.substr(0, digits));
  std::string unit = text.substr(digits);
  long mult = 0;
  if (unit.empty() || unit == "s") mult = 1;
  if (unit == "m") mult = 60;
  if (unit == "h") mult = 3600;
  if (unit == "d") mult = 86400;
  if (mult == 0 || n <= 0) {
    return absl::InvalidArgumentError(StrCat("bad duration '", text, "' (use e.g. 30s, 5m, 1h)"));
  }
  return std::chrono::seconds(n * mult);
}

struct Section {
  const char* name;
  std::set<std::string> keys;
};

}  // namespace

absl::StatusOr<std::chrono::seconds> ParseDurationText(const std::string& text) {
  return ParseDuration(text);
}

absl::Status ParseListenAddress(const std::string& text, const std::string& what,
                                bool allow_port_zero, std::string* host, int* port) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(StrCat("'", what, "' is '", text, "': ", why));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("expected HOST:PORT");
  std::string h = text.substr(0, colon);
  std::string p = text.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string::npos) {
    return bad("an IPv6 address must be in brackets, e.g. [::]:1530");
  }
  if (h.empty()) return bad("expected HOST:PORT (HOST is empty)");
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(p) > 65535 || (!allow_port_zero && std::stoi(p) == 0)) {
    return bad(allow_port_zero ? "the port must be a number from 0 (any free port) to 65535"
                               : "the port must be a number from 1 to 65535");
  }
  *host = h;
  *port = std::stoi(p);
  return absl::OkStatus();
}

fs::path ServerConfig::Resolve(const std::string& p) const {
  fs::path path(p);
  return path.is_absolute() ? path : root / path;
}

fs::path ResolveRoot(const std::string& flag_value) {
  std::string r = flag_value;
  if (r.empty()) {
    const char* env = std::getenv("VIGO_ROOT");
    r = (env && *env) ? env : "/srv/vigo";
  }
  std::error_code ec;
  fs::path abs = fs::absolute(r, ec);
  return ec ? fs::path(r) : abs.lexically_normal();
}

std::string DefaultServerYaml(const std::string& hostname) {
  return StrCat(
      "# Vigo server configuration. Unknown keys are errors.\n"
      "server:\n"
      "  grpc_listen: \"127.0.0.1:1530\"\n"
      "  hostname: \"", hostname, "\"\n"
      "secrets:\n"
      "  backend: local            # local | isopass\n"
      "  secrets_dir: secrets      # local\n"
      "  # url: https://isopass.example:8443   (isopass)\n"
      "  # token_file: isopass-token           (isopass; bearer token, mode 0600)\n"
      "  # ca_file: tls/isopass-ca.pem          (isopass; optional)\n"
      "  # poll_interval: 60s                   (isopass)\n"
      "database:\n"
      "  driver: sqlite\n"
      "  path: db/vigo.db\n"
      "  # synchronous: full                   (full | normal; see docs/operator/server.md)\n"
      "checkin:\n"
      "  interval: 5m\n"
      "  # require_hardening: strict           (refuse agents whose sandbox is weakened)\n"
      "log:\n"
      "  level: info               # trace | debug | info | warn | error\n"
      "  json: false\n");
}

absl::StatusOr<ServerConfig> LoadServerConfig(const fs::path& root, bool allow_missing) {
  ServerConfig cfg;
  cfg.root = root;
  fs::path file = root / "server.yaml";
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    if (allow_missing) return cfg;
    return absl::NotFoundError(
        StrCat(file.string(), ": not found (run 'vigosrv init --root ", root.string(), "')"));
  }
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat(file.string(), ":", e.mark.line + 1, ": malformed YAML: ", e.msg));
  }
  if (doc.IsNull()) return cfg;
  if (!doc.IsMap()) {
    return absl::InvalidArgumentError(StrCat(file.string(), ": top level must be a mapping"));
  }
  static const std::map<std::string, std::set<std::string>> kKnown = {
      {"server", {"grpc_listen", "hostname", "max_connection_idle", "handshake_timeout"}},
      {"secrets", {"backend", "secrets_dir", "url", "token_file", "ca_file", "poll_interval"}},
      {"database", {"driver", "path", "synchronous", "runs_retention"}},
      {"checkin", {"interval", "require_hardening"}},
      {"log", {"level", "json"}},
      {"leak_scan", {"window"}},
  };
  auto where = [&](const YAML::Node& n) {
    return StrCat(file.string(), ":", n.Mark().line + 1);
  };
  // yaml-cpp keeps both entries of a repeated key; the last would silently
  // win, so a key given twice (a section or a key within one) is an error
  // naming both lines.
  std::map<std::string, int> seen;  // "section" or "section.key" -> line
  auto once = [&](const std::string& name, const YAML::Node& n) -> absl::Status {
    auto [it, fresh] = seen.emplace(name, n.Mark().line + 1);
    if (fresh) return absl::OkStatus();
    return absl::InvalidArgumentError(
        StrCat(where(n), ": duplicate key '", name, "' (first given on line ", it->second, ")"));
  };
  try {
    for (const auto& sec : doc) {
      std::string sname = sec.first.as<std::string>();
      auto known = kKnown.find(sname);
      if (known == kKnown.end()) {
        return absl::InvalidArgumentError(
            StrCat(where(sec.first), ": unknown key '", sname, "'"));
      }
      VIGO_RETURN_IF_ERROR(once(sname, sec.first));
      if (sec.second.IsNull()) continue;
      if (!sec.second.IsMap()) {
        return absl::InvalidArgumentError(
            StrCat(where(sec.first), ": '", sname, "' must be a mapping"));
      }
      for (const auto& kv : sec.second) {
        std::string key = kv.first.as<std::string>();
        if (known->second.count(key) == 0) {
          return absl::InvalidArgumentError(
              StrCat(where(kv.first), ": unknown key '", sname, ".", key, "'"));
        }
        if (!kv.second.IsScalar()) {
          return absl::InvalidArgumentError(
              StrCat(where(kv.first), ": '", sname, ".", key, "' must be a scalar"));
        }
        std::string v = kv.second.as<std::string>();
        std::string full = StrCat(sname, ".", key);
        VIGO_RETURN_IF_ERROR(once(full, kv.first));
        auto duration = [&](std::chrono::seconds* out) -> absl::Status {
          auto d = ParseDuration(v);
          if (!d.ok()) {
            return absl::InvalidArgumentError(
                StrCat(where(kv.first), ": '", full, "': ", std::string(d.status().message())));
          }
          *out = *d;
          return absl::OkStatus();
        };
        absl::Status st;
        if (full == "server.grpc_listen") {
          std::string host;
          int port = 0;
          absl::Status parsed = ParseListenAddress(v, full, /*allow_port_zero=*/true, &host, &port);
          if (!parsed.ok()) {
            return absl::InvalidArgumentError(
                StrCat(where(kv.first), ": ", std::string(parsed.message())));
          }
          cfg.grpc_listen = v;
        }
        if (full == "server.max_connection_idle") st = duration(&cfg.max_connection_idle);
        if (full == "server.handshake_timeout") {
          st = duration(&cfg.handshake_timeout);
          if (st.ok() && cfg.handshake_timeout > std::chrono::seconds(120)) {
            return absl::InvalidArgumentError(
                StrCat(where(kv.first), ": '", full, "' must be at most 120s"));
          }
        }
        if (full == "server.hostname") cfg.hostname = v;
        if (full == "secrets.backend") {
          if (v != "local" && v != "isopass") {
            return absl::InvalidArgumentError(StrCat(where(kv.first), ": 'secrets.backend' is '", v,
                                                     "'; expected local or isopass"));
          }
          cfg.secrets_backend = v;
        }
        if (full == "secrets.secrets_dir") cfg.secrets_dir = v;
        if (full == "secrets.url") cfg.isopass_url = v;
        if (full == "secrets.token_file") cfg.isopass_token_file = v;
        if (full == "secrets.ca_file") cfg.isopass_ca_file = v;
        if (full == "secrets.poll_interval") st = duration(&cfg.isopass_poll_interval);
        if (full == "database.driver") {
          if (v != "sqlite") {
            return absl::InvalidArgumentError(
                StrCat(where(kv.first), ": 'database.driver' is '", v, "'; only sqlite is supported"));
          }
          cfg.database_driver = v;
        }
        if (full == "database.path") cfg.database_path = v;
        if (full == "database.synchronous") {
          if (v != "full" && v != "normal") {
            return absl::InvalidArgumentError(StrCat(
                where(kv.first), ": 'database.synchronous' is '", v, "'; expected full or normal"));
          }
          cfg.database_synchronous = v;
        }
        if (full == "database.runs_retention") st = duration(&cfg.runs_retention);
        if (full == "checkin.interval") st = duration(&cfg.checkin_interval);
        if (full == "checkin.require_hardening") {
          if (v != "none" && v != "strict") {
            return absl::InvalidArgumentError(StrCat(
                where(kv.first), ": 'checkin.require_hardening' is '", v, "'; expected none or strict"));
          }
          cfg.require_hardening = v;
        }
        if (full == "leak_scan.window") {
          // Decimal digits only: "12abc", "-1" or "0x10" are typos, not a
          // number the parser happened to read a prefix of.
          const bool digits =
              !v.empty() && v.size() <= 4 &&
              std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
          const size_t n = digits ? std::stoul(v) : 0;
          if (!digits || n < kMinRedactionWindow || n > kMaxRedactionWindow) {
            return absl::InvalidArgumentError(StrCat(where(kv.first), ": 'leak_scan.window' is '",
                                                     v, "'; expected a whole number of bytes from ",
                                                     kMinRedactionWindow, " to ",
                                                     kMaxRedactionWindow));
          }
          cfg.leak_scan_window = n;
        }
        if (full == "log.level") {
          if (auto lv = ParseLogLevel(v); !lv.ok()) {
            return absl::InvalidArgumentError(
                StrCat(where(kv.first), ": 'log.level': ", std::string(lv.status().message())));
          }
          cfg.log_level = v;
        }
        if (full == "log.json") {
          // Only the two YAML booleans: `maybe`, `yes` or `1` are typos here,
          // not a silent "false".
          if (v != "true" && v != "false") {
            return absl::InvalidArgumentError(
                StrCat(where(kv.first), ": 'log.json' is '", v, "'; expected true or false"));
          }
          cfg.log_json = (v == "true");
        }
        if (!st.ok()) return st;
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat(file.string(), ":", e.mark.line + 1, ": ", e.msg));
  }
  return cfg;
}

}  // namespace vigo::server
