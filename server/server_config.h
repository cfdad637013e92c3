// server.yaml (CONTRACT §2). Unknown keys are errors naming the key and file.
//
//   VIGO_ASSIGN_OR_RETURN(ServerConfig cfg, LoadServerConfig("/srv/vigo"));
//   cfg.SecretsDir()  // absolute: <root>/secrets
#ifndef VIGO_SERVER_SERVER_CONFIG_H_
#define VIGO_SERVER_SERVER_CONFIG_H_

#include <chrono>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace vigo::server {

struct ServerConfig {
  std::filesystem::path root;            // absolute data root

  std::string grpc_listen = "127.0.0.1:1530";
  std::string hostname = "localhost";

  std::string secrets_backend = "local";  // local | isopass
  std::string secrets_dir = "secrets";    // local, relative to root
  std::string isopass_url;                // isopass
  std::string isopass_token_file;         // isopass, relative to root
  std::string isopass_ca_file;            // isopass, optional
  std::chrono::seconds isopass_poll_interval{60};

  std::string database_driver = "sqlite";
  std::string database_path = "db/vigo.db";
  // full (default): every audit record and run is fsynced before the call
  // that caused it returns. normal: WAL commits are not fsynced one by one
  // (faster; a power loss may lose the newest records, never corrupt them).
  std::string database_synchronous = "full";
  // Stored runs older than this are pruned by the server (periodically) and
  // by `vigocli runs prune`.
  std::chrono::seconds runs_retention{30 * 24 * 3600};

  // Agent port (docs/operator/server.md, "Connection limits"): a connection
  // with no call for this long is closed (GOAWAY; agents reconnect on their
  // next check-in), and one that has not completed its TLS handshake and
  // HTTP/2 preface this long after its ClientHello is closed.
  std::chrono::seconds max_connection_idle{300};
  std::chrono::seconds handshake_timeout{10};

  std::chrono::seconds checkin_interval{300};
  // none | strict: strict refuses CheckIn from agents whose attestation
  // report shows a skipped hardening step.
  std::string require_hardening = "none";

  // Redaction window N of the server's report leak scan and, through the
  // bundle, of every worker's output scrubber: runs of N or more
  // consecutive characters of a form of a value are redacted
  // (leak_scan.window, 8..4096; docs/operator/server.md).
  size_t leak_scan_window = 12;

  std::string log_level = "info";
  bool log_json = false;

  // Resolves a path from server.yaml against root.
  std::filesystem::path Resolve(const std::string& p) const;
  std::filesystem::path SecretsDir() const { return Resolve(secrets_dir); }
  std::filesystem::path DatabasePath() const { return Resolve(database_path); }
  std::filesystem::path StacksDir() const { return root / "stacks"; }
  std::filesystem::path TlsDir() const { return root / "tls"; }
  std::filesystem::path AdminSocket() const { return root / "run" / "admin.sock"; }
  std::filesystem::path UnlockSentinel() const { return root / ".secrets-unlocked"; }
};

// Reads <root>/server.yaml. A missing file yields the defaults only when
// `allow_missing` is true. Errors name the file, line and key.
absl::StatusOr<ServerConfig> LoadServerConfig(const std::filesystem::path& root,
                                              bool allow_missing = false);

// Splits "HOST:PORT" ("[v6]:PORT" too) and checks that PORT is a decimal
// number in 1..65535 (0..65535 when `allow_port_zero`: "pick a free port",
// for --grpc-listen). INVALID_ARGUMENT naming `what` (e.g. "server.grpc_listen").
absl::Status ParseListenAddress(const std::string& text, const std::string& what,
                                bool allow_port_zero, std::string* host, int* port);

// Durations as server.yaml takes them (also for CLI flags): "90s", "5m",
// "2h", "30d", or a bare number of seconds; INVALID_ARGUMENT naming the text.
absl::StatusOr<std::chrono::seconds> ParseDurationText(const std::string& text);

// The data root from --root, else $VIGO_ROOT, else /srv/vigo; made absolute.
std::filesystem::path ResolveRoot(const std::string& flag_value);

// The default server.yaml text written by `vigosrv init`.
std::string DefaultServerYaml(const std::string& hostname);

}  // namespace vigo::server

#endif  // VIGO_SERVER_SERVER_CONFIG_H_
