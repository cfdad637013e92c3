// AgentListener: the listening TCP socket of the agent port, owned by Vigo
// rather than by gRPC, plus a gate that holds each new connection until its
// first TLS record (the ClientHello) has arrived.
//
//   AgentListenerOptions o;
//   o.address = "0.0.0.0:1530";
//   VIGO_ASSIGN_OR_RETURN(auto listener, AgentListener::Bind(o));   // port in use fails here
//   ... build the gRPC server with an external connection acceptor ...
//   listener->Start([acceptor](sandbox::UniqueFd fd, std::string hello) { ... });
//   ...
//   listener->Stop();   // before shutting the gRPC server down
//
// Why (issue 13.2): gRPC 1.51's own accept loop stops for good after a single
// accept4() EMFILE, and it keeps every connection that has sent nothing until
// its handshake deadline, without a cap. This accept loop never stops on a
// resource error (it backs off, and the reserve-fd trick drops the connection
// it cannot hold instead of spinning on it), and a connection costs gRPC
// nothing until it has shown a complete TLS handshake record:
//   - at most `max_pending` connections wait for their ClientHello at once,
//     at most `max_pending_per_source` from one source address (IPv4, or the
//     full IPv6 address); a connection over either cap is closed at once;
//   - a connection whose first record is not a TLS handshake record, or is
//     larger than a TLS record may be, is closed;
//   - a connection that has not sent its first record within `hello_timeout`
//     is closed.
// What remains of the handshake is bounded by gRPC
// (GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, set by VigoServer).
//
// Bind() takes no SO_REUSEPORT, so a port in use (by anyone) fails the start
// with "cannot listen on HOST:PORT: Address already in use".
//
// Ownership: the listener owns the listening fd, the pending connections and
// the gate thread. A connection that passes the gate is moved to the handler
// (which then owns it) together with the bytes already read from it; the fd
// is non-blocking and close-on-exec. After Stop() returns the handler is
// never called again and every pending connection is closed.
//
// Thread safety: the handler runs on the gate thread, one connection at a
// time. Stop() and the counters may be called from any thread; Stop() must
// not be called from inside the handler.
#ifndef VIGO_SERVER_SERVICE_AGENT_LISTENER_H_
#define VIGO_SERVER_SERVICE_AGENT_LISTENER_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"
#include "server/server_config.h"

namespace vigo::server::service {

struct AgentListenerOptions {
  std::string address;  // "HOST:PORT"; HOST may be "[v6]"; port 0 picks a free one
  int backlog = 1024;
  size_t max_pending = 1024;
  size_t max_pending_per_source = 64;
  std::chrono::milliseconds hello_timeout{5000};
};

class AgentListener {
 public:
  using Handler = std::function<void(sandbox::UniqueFd fd, std::string first_bytes)>;

  // Resolves options.address (numeric or a name; the first address returned
  // is used), binds and listens. Errors are one line:
  // "cannot listen on <address>: <reason>".
  static absl::StatusOr<std::unique_ptr<AgentListener>> Bind(const AgentListenerOptions& options);
  ~AgentListener();
  AgentListener(const AgentListener&) = delete;
  AgentListener& operator=(const AgentListener&) = delete;

  // Starts the gate thread. Call once.
  void Start(Handler handler);
  // Idempotent. See the header comment.
  void Stop();

  // The next connection from exactly this "IP:PORT" source (the liveness
  // probe's, bound just before it connects) is not counted against the caps:
  // a flood that fills them must not make the probe fail and the server exit.
  // It still has to send a TLS record in time.
  void AllowPastCaps(const std::string& source);

  int port() const { return port_; }
  // The bound address, for the liveness probe (0.0.0.0 → 127.0.0.1, :: → ::1).
  std::string LoopbackTarget() const;
  // True while the gate thread is running (it only ends on Stop() or on a
  // failure of the listening socket itself, which is logged).
  bool running() const { return running_.load(); }

  struct Counters {
    uint64_t accepted = 0;         // accept4 returned a connection
    uint64_t handed = 0;           // passed the gate
    uint64_t over_cap = 0;         // closed: max_pending reached
    uint64_t over_source_cap = 0;  // closed: max_pending_per_source reached
    uint64_t timed_out = 0;        // closed: no complete first record in time
    uint64_t not_tls = 0;          // closed: first record not a TLS handshake record / too big
    uint64_t closed_early = 0;     // the peer closed (or failed) before its first record
    uint64_t accept_errors = 0;    // EMFILE, ENFILE, ENOBUFS, ENOMEM
    uint64_t pending = 0;          // now waiting for a first record
  };
  Counters counters() const;

 private:
  struct Pending;
  explicit AgentListener(AgentListenerOptions options);
  void Loop();

  AgentListenerOptions options_;
  sandbox::UniqueFd listen_fd_;
  sandbox::UniqueFd stop_fd_;     // eventfd: readable once Stop() was called
  sandbox::UniqueFd reserve_fd_;  // closed to accept (and drop) a connection on EMFILE
  int family_ = 0;
  std::string bound_host_;
  int port_ = 0;
  Handler handler_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;  // under stop_mu_
  std::mutex exempt_mu_;
  std::string exempt_source_;  // under exempt_mu_
  mutable std::mutex counters_mu_;
  Counters counters_;  // under counters_mu_
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_AGENT_LISTENER_H_
