// AdminListener: the listening AF_UNIX socket of the local admin endpoint
// (<root>/run/admin.sock), owned by Vigo rather than by gRPC so that every
// accepted connection's peer credentials (SO_PEERCRED) are checked before a
// single byte of it reaches the admin service.
//
//   AdminListenerOptions o;
//   o.socket_path = cfg.AdminSocket();
//   o.allowed_uids = DefaultAdminPeerUids();          // {0, geteuid()}
//   VIGO_ASSIGN_OR_RETURN(auto listener, AdminListener::Start(o,
//       [srv](sandbox::UniqueFd fd) { grpc::AddInsecureChannelFromFd(srv, fd.release()); }));
//   ...
//   listener->Stop();   // before shutting the gRPC server down
//
// Security: the socket is created 0600 (bind under umask 0077, then chmod)
// and is expected inside a 0700 directory; those modes stay the first wall.
// The second wall is the peer check: a connection whose peer uid (as the
// kernel recorded it at connect time) is not in `allowed_uids` is closed at
// once, before the handler sees it, and a warning naming the peer's uid, gid
// and pid is logged. Nothing secret is involved in either path.
//
// Ownership: the listener owns the listening fd and the accept thread;
// accepted and authorized fds are moved to the handler (which then owns
// them). Stop() (also run by the destructor) wakes the accept thread through
// an eventfd, joins it, closes the listening socket and unlinks the socket
// path if it is still the inode this listener bound. After Stop() returns
// the handler is never called again.
//
// Thread safety: the handler runs on the accept thread, one connection at a
// time. Stop() and the counters may be called from any thread; Stop() must
// not be called from inside the handler.
#ifndef VIGO_SERVER_SERVICE_ADMIN_LISTENER_H_
#define VIGO_SERVER_SERVICE_ADMIN_LISTENER_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"

namespace vigo::server::service {

// {0, geteuid()} (one entry when the server runs as root).
std::vector<uid_t> DefaultAdminPeerUids();

struct AdminListenerOptions {
  std::filesystem::path socket_path;
  // Peers whose uid is not listed are refused. Empty refuses everyone.
  std::vector<uid_t> allowed_uids;
  int backlog = 16;
};

class AdminListener {
 public:
  using Handler = std::function<void(sandbox::UniqueFd fd)>;

  // Binds and listens on options.socket_path and starts the accept thread.
  // A stale socket at the path is replaced; any other kind of file there is
  // an error (ALREADY_EXISTS) and is left alone. Errors name the path.
  static absl::StatusOr<std::unique_ptr<AdminListener>> Start(const AdminListenerOptions& options,
                                                              Handler handler);
  ~AdminListener();
  AdminListener(const AdminListener&) = delete;
  AdminListener& operator=(const AdminListener&) = delete;

  // Idempotent. See the header comment.
  void Stop();

  const std::filesystem::path& socket_path() const { return options_.socket_path; }
  // Connections handed to the handler / refused by the peer check so far.
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  AdminListener(AdminListenerOptions options, Handler handler);
  void AcceptLoop();
  // Closes `fd` (by dropping it) unless its peer is allowed; true when allowed.
  bool CheckPeer(const sandbox::UniqueFd& fd);

  AdminListenerOptions options_;
  Handler handler_;
  sandbox::UniqueFd listen_fd_;
  sandbox::UniqueFd stop_fd_;  // eventfd: readable once Stop() was called
  dev_t bound_dev_ = 0;
  ino_t bound_ino_ = 0;
  std::thread thread_;
  std::mutex stop_mu_;
  bool stopped_ = false;  // under stop_mu_
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_ADMIN_LISTENER_H_
