// VigoServer: the running server. Owns the backend, the database, the loaded
// stacks and the secrets_epoch; serves VigoAgent over mutual TLS and
// VigoAdmin on <root>/run/admin.sock; reloads on request, on SIGHUP (via the
// caller) and when the watcher sees a referenced secret change.
//
//   VIGO_ASSIGN_OR_RETURN(ServerConfig cfg, LoadServerConfig(root));
//   VIGO_ASSIGN_OR_RETURN(auto srv, VigoServer::Create(cfg, /*backend=*/nullptr));
//   VIGO_RETURN_IF_ERROR(srv->Start("127.0.0.1:0"));
//   std::printf("vigosrv: listening on %s\n", srv->listen_address().c_str());
//   srv->Wait();   // until Shutdown()
//
// Start-up is fail-fast: Create returns the first problem as one line naming
// its cause (TLS material, backend health, stacks load errors including a
// missing referenced secret, database). After start, a failed reload keeps
// serving the last good stacks and logs/audits why.
//
// The parts (issue 16): caller_identity.h (who is calling), agent_service.h
// (the VigoAgent handlers), admin_service.h (VigoAdmin), policy_state.h
// (stacks, epoch, bundle cache, reload), rotation_watcher.h (when to reload);
// this class is the glue: it opens and owns them, and serves.
//
// Thread safety: all public methods are thread-safe.
#ifndef VIGO_SERVER_SERVICE_VIGO_SERVER_H_
#define VIGO_SERVER_SERVICE_VIGO_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"
#include "server/audit.h"
#include "server/backend.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/service/audit_writer.h"
#include "server/service/envoy_limits.h"
#include "server/service/key_pool.h"
#include "server/service/policy_state.h"
#include "server/service/recordable_text.h"
#include "server/service/rotation_watcher.h"
#include "server/service/store.h"
#include "server/stacks.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace grpc {
class Server;
namespace experimental {
class ExternalConnectionAcceptor;
}
}  // namespace grpc

namespace vigo::server::service {

struct ServerOptions {
  // Watch the secrets dir (local backend) and poll Version() periodically.
  bool enable_watcher = true;
  // Version poll period for rotation detection (any backend).
  std::chrono::milliseconds poll_interval{30000};
  // Debounce for inotify bursts.
  std::chrono::milliseconds debounce{300};
  // Serve the admin socket (tests that run several servers may turn it off).
  bool enable_admin = true;
  // Per-envoy rate limits and the stored-run quota (issue 13.4).
  EnvoyLimits limits;
  // How often ReportResult also prunes runs older than database.runs_retention.
  std::chrono::milliseconds runs_prune_interval{std::chrono::hours(1)};
  // Agent port connection gate (issue 13.2, see agent_listener.h): caps on
  // connections that have not yet sent their ClientHello, overall (further
  // capped at a quarter of the soft RLIMIT_NOFILE) and per source address,
  // and how long one may take to send it.
  size_t max_pending_handshakes = 1024;
  size_t max_pending_handshakes_per_source = 64;
  std::chrono::milliseconds hello_timeout{5000};
  // Liveness probe of the agent port (liveness_probe.h); interval 0 turns it
  // off. After `liveness_failures` failed probes in a row the server logs one
  // error line, agent_port_dead() becomes true and on_agent_port_dead runs
  // (vigosrv: shut down and exit 1).
  std::chrono::milliseconds liveness_interval{10000};
  std::chrono::milliseconds liveness_timeout{5000};
  int liveness_failures = 3;
  std::function<void()> on_agent_port_dead;
};

class VigoServer {
 public:
  // `backend` may be null: then OpenBackend(cfg) is used. Never serves.
  static absl::StatusOr<std::unique_ptr<VigoServer>> Create(
      const ServerConfig& cfg, std::unique_ptr<SecretBackend> backend,
      const ServerOptions& options = {});
  ~VigoServer();

  // Binds the agent port (`listen` overrides cfg.grpc_listen when non-empty)
  // and the admin socket, writes <root>/run/vigosrv.addr, starts the watcher.
  absl::Status Start(const std::string& listen);
  // "HOST:PORT" actually bound (port resolved when 0 was asked).
  const std::string& listen_address() const { return listen_address_; }
  int port() const { return port_; }
  // True once the liveness probe gave up on the agent port (see ServerOptions).
  bool agent_port_dead() const { return agent_port_dead_.load(); }

  // Reloads the stacks against the backend; on success bumps and returns the
  // new secrets_epoch and audits config.reload; on failure keeps the current
  // state, audits the failure and returns the error (file:line, no values).
  absl::StatusOr<uint64_t> Reload(const std::string& reason);

  uint64_t epoch() const;
  std::shared_ptr<const PolicyState> state() const;
  const ServerConfig& config() const { return cfg_; }
  const ServerOptions& options() const { return options_; }
  SecretBackend& backend() { return *backend_; }
  // Fingerprints envoy-chosen text that may not be recorded verbatim.
  // Precondition: Start succeeded.
  const TextFingerprinter& text_fingerprinter() const { return *text_fp_; }
  ServerStore& store() { return *store_; }
  int64_t started_unix_ms() const { return started_ms_; }

  // Appends an audit event and waits until it is committed (group commit
  // through the AuditWriter: concurrent calls share one transaction).
  absl::Status Audit(const AuditEvent& event);
  // Queues an audit event; the future resolves once it is committed (or
  // failed). Lets a handler do other work while the record is written; it must
  // still wait on the future before releasing anything.
  std::future<absl::Status> AuditAsync(AuditEvent event);
  // Adds `runs` to the count of runs the report leak scan has redacted since
  // start and returns the new total (logged with each leak; the metrics
  // endpoint of issue 18 will export it).
  uint64_t CountLeakRedactions(uint64_t runs) { return leak_redactions_ += runs; }
  uint64_t leak_redactions() const { return leak_redactions_.load(); }
  // Pre-generated server ephemeral keys for sealing (one per call).
  EphemeralKeyPool& key_pool() { return *key_pool_; }

  // The compiled bundle for `envoy` under `state` (cached per state).
  absl::StatusOr<std::shared_ptr<const CompiledBundle>> BundleFor(
      const std::shared_ptr<const PolicyState>& state, const std::string& envoy);

  // Stops serving (idempotent) and wakes Wait().
  void Shutdown();
  void Wait();

 private:
  VigoServer(ServerConfig cfg, ServerOptions options);

  ServerConfig cfg_;
  ServerOptions options_;
  std::unique_ptr<SecretBackend> backend_;
  std::unique_ptr<Database> store_db_;
  std::unique_ptr<Database> audit_db_;
  std::unique_ptr<ServerStore> store_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<AuditWriter> audit_writer_;  // the only user of audit_
  std::unique_ptr<EphemeralKeyPool> key_pool_;
  // Set by Start from the TLS key (recordable_text.h says why); the agent
  // service only runs after it is set.
  std::optional<TextFingerprinter> text_fp_;

  std::unique_ptr<PolicyStore> policy_;  // set by Create
  std::atomic<uint64_t> leak_redactions_{0};

  // Owns the agent port's listening socket and the pre-handshake gate; hands
  // each connection to agent_server_ through agent_acceptor_. Stopped (with
  // the probe) before agent_server_ shuts down.
  std::unique_ptr<class AgentListener> agent_listener_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> agent_acceptor_;
  std::unique_ptr<class LivenessProbe> liveness_;
  std::atomic<bool> agent_port_dead_{false};
  std::unique_ptr<grpc::Server> agent_server_;
  std::unique_ptr<grpc::Server> admin_server_;
  std::unique_ptr<v1::VigoAgent::Service> agent_service_;
  std::unique_ptr<class AdminService> admin_service_;
  // Owns admin.sock: checks SO_PEERCRED on every connection, then hands it to
  // admin_server_ (which has no listening port of its own). Stopped before
  // admin_server_ shuts down.
  std::unique_ptr<class AdminListener> admin_listener_;
  std::string listen_address_;
  int port_ = 0;
  int64_t started_ms_ = 0;

  sandbox::UniqueFd lock_fd_;  // flock on <root>/run/vigosrv.lock while serving
  std::unique_ptr<RotationWatcher> watcher_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool shutdown_ = false;  // under done_mu_
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_VIGO_SERVER_H_
