#include "server/service/admin_listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"

namespace vigo::server::service {

std::vector<uid_t> DefaultAdminPeerUids() {
  std::vector<uid_t> uids = {0};
  const uid_t self = ::geteuid();
  if (self != 0) uids.push_back(self);
  return uids;
}

AdminListener::AdminListener(AdminListenerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

AdminListener::~AdminListener() { Stop(); }

absl::StatusOr<std::unique_ptr<AdminListener>> AdminListener::Start(
    const AdminListenerOptions& options, Handler handler) {
  const std::string path = options.socket_path.string();
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(StrCat("admin socket path ", path, ": empty or longer than ",
                                             sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());

  std::unique_ptr<AdminListener> l(new AdminListener(options, std::move(handler)));
  // A socket left by a server that died is replaced; anything else at the
  // path is the operator's and is not touched.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(
          StrCat("admin socket path ", path, " exists and is not a socket"));
    }
    if (::unlink(path.c_str()) != 0) return sandbox::ErrnoStatus(errno, "unlink", path);
  }

  l->listen_fd_ = sandbox::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l->listen_fd_) return sandbox::ErrnoStatus(errno, "socket AF_UNIX for", path);
  // The socket inode takes its mode from the umask at bind time: 0077 means
  // it never exists, even briefly, with group/other access. umask is
  // process-wide; another thread creating a file during this window only
  // gets a stricter mode.
  const mode_t old_mask = ::umask(0077);
  const int bound =
      ::bind(l->listen_fd_.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) return sandbox::ErrnoStatus(bind_errno, "bind", path);
  if (::chmod(path.c_str(), 0600) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return sandbox::ErrnoStatus(err, "chmod 0600", path);
  }
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    return sandbox::ErrnoStatus(err, "stat", path);
  }
  l->bound_dev_ = st.st_dev;
  l->bound_ino_ = st.st_ino;
  if (::listen(l->listen_fd_.get(), std::max(1, options.backlog)) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return sandbox::ErrnoStatus(err, "listen", path);
  }
  l->stop_fd_ = sandbox::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!l->stop_fd_) {
    const int err = errno;
    ::unlink(path.c_str());
    return sandbox::ErrnoStatus(err, "eventfd for", path);
  }
  AdminListener* raw = l.get();
  l->thread_ = std::thread([raw] { raw->AcceptLoop(); });
  return l;
}

void AdminListener::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (stop_fd_) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  listen_fd_.reset();
  // Only our own inode: a newer server may already have bound the path.
  struct stat st {};
  const std::string path = options_.socket_path.string();
  if (bound_ino_ != 0 && ::lstat(path.c_str(), &st) == 0 && st.st_dev == bound_dev_ &&
      st.st_ino == bound_ino_) {
    ::unlink(path.c_str());
  }
}

bool AdminListener::CheckPeer(const sandbox::UniqueFd& fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    const int err = errno;
    refused_.fetch_add(1);
    Log(LogLevel::kWarn, "admin connection refused: peer credentials unavailable",
        {{"socket", options_.socket_path.string()}, {"error", std::string(std::strerror(err))}});
    return false;
  }
  if (std::find(options_.allowed_uids.begin(), options_.allowed_uids.end(), cred.uid) !=
      options_.allowed_uids.end()) {
    return true;
  }
  refused_.fetch_add(1);
  Log(LogLevel::kWarn, "admin connection refused: peer uid not allowed",
      {{"socket", options_.socket_path.string()},
       {"peer_uid", static_cast<int64_t>(cred.uid)},
       {"peer_gid", static_cast<int64_t>(cred.gid)},
       {"peer_pid", static_cast<int64_t>(cred.pid)}});
  return false;
}

void AdminListener::AcceptLoop() {
  while (true) {
    struct pollfd fds[2] = {{stop_fd_.get(), POLLIN, 0}, {listen_fd_.get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "admin socket: poll failed; no longer accepting",
          {{"socket", options_.socket_path.string()},
           {"error", std::string(std::strerror(errno))}});
      return;
    }
    if (fds[0].revents != 0) return;  // Stop()
    if ((fds[1].revents & POLLIN) == 0) {
      if (fds[1].revents & (POLLERR | POLLNVAL)) {
        Log(LogLevel::kError, "admin socket: listening socket failed; no longer accepting",
            {{"socket", options_.socket_path.string()}});
        return;
      }
      continue;
    }
    // Non-blocking: gRPC's endpoint expects it, and it is set before the
    // handler (or anyone) can read from the connection.
    sandbox::UniqueFd conn(
        ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN || err == ECONNABORTED || err == EPROTO) continue;
      Log(LogLevel::kWarn, "admin socket: accept failed",
          {{"socket", options_.socket_path.string()}, {"error", std::string(std::strerror(err))}});
      // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a pending
      // connection we cannot take, but stay responsive to Stop().
      struct pollfd stop = {stop_fd_.get(), POLLIN, 0};
      if (::poll(&stop, 1, 100) > 0) return;
      continue;
    }
    if (!CheckPeer(conn)) continue;  // `conn` closes here
    accepted_.fetch_add(1);
    handler_(std::move(conn));
  }
}

}  // namespace vigo::server::service
