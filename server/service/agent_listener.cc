#include "server/service/agent_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <utility>

#include "common/log.h"
#include "common/strings.h"

namespace vigo::server::service {
namespace {

// A TLS record: type(1) version(2) length(2), then at most 2^14 bytes of
// plaintext (+2048 allowed by RFC 5246 for compressed/encrypted records).
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecordBody = 16384 + 2048;
constexpr unsigned char kHandshakeRecord = 0x16;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr auto kWarnEvery = std::chrono::seconds(10);

uint16_t PortOf(const struct sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const struct sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<const struct sockaddr_in*>(&ss)->sin_port);
}

std::string SourceKey(const struct sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    return buf;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      ::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof(buf));
    } else {
      ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    }
    return buf;
  }
  return "other";
}

// Logs at most once per kWarnEvery per call site (a flood must not become a
// log flood); `suppressed` counts what was not logged.
class RateLimitedWarning {
 public:
  bool Due() {
    auto now = std::chrono::steady_clock::now();
    if (now < next_) {
      ++suppressed_;
      return false;
    }
    next_ = now + kWarnEvery;
    return true;
  }
  uint64_t TakeSuppressed() { return std::exchange(suppressed_, 0); }

 private:
  std::chrono::steady_clock::time_point next_{};
  uint64_t suppressed_ = 0;
};

}  // namespace

struct AgentListener::Pending {
  sandbox::UniqueFd fd;
  uint64_t id = 0;
  std::string source;
  std::string bytes;
};

AgentListener::AgentListener(AgentListenerOptions options) : options_(std::move(options)) {}

AgentListener::~AgentListener() { Stop(); }

absl::StatusOr<std::unique_ptr<AgentListener>> AgentListener::Bind(
    const AgentListenerOptions& options) {
  const std::string& addr = options.address;
  auto fail = [&](const std::string& why) {
    return absl::UnavailableError(StrCat("cannot listen on ", addr, ": ", why));
  };
  std::string host;
  int port = 0;
  if (absl::Status st =
          ParseListenAddress(addr, "listen address", /*allow_port_zero=*/true, &host, &port);
      !st.ok()) {
    return fail(std::string(st.message()));
  }
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (gai != 0 || res == nullptr) return fail(StrCat("cannot resolve: ", ::gai_strerror(gai)));
  std::unique_ptr<struct addrinfo, void (*)(struct addrinfo*)> owned(res, ::freeaddrinfo);

  std::unique_ptr<AgentListener> l(new AgentListener(options));
  l->listen_fd_ =
      sandbox::UniqueFd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l->listen_fd_) return fail(std::strerror(errno));
  // SO_REUSEADDR only lets us bind over TIME_WAIT remnants of an earlier
  // server; unlike SO_REUSEPORT it never lets two listeners share the port.
  const int one = 1;
  ::setsockopt(l->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(l->listen_fd_.get(), res->ai_addr, res->ai_addrlen) != 0) {
    return fail(std::strerror(errno));
  }
  if (::listen(l->listen_fd_.get(), std::max(16, options.backlog)) != 0) {
    return fail(std::strerror(errno));
  }
  struct sockaddr_storage bound {};
  socklen_t len = sizeof(bound);
  if (::getsockname(l->listen_fd_.get(), reinterpret_cast<struct sockaddr*>(&bound), &len) != 0) {
    return fail(std::strerror(errno));
  }
  l->family_ = bound.ss_family;
  l->port_ =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<struct sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<struct sockaddr_in*>(&bound)->sin_port);
  l->bound_host_ = SourceKey(bound);
  l->stop_fd_ = sandbox::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!l->stop_fd_) return fail(StrCat("eventfd: ", std::strerror(errno)));
  l->reserve_fd_ = sandbox::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return l;
}

std::string AgentListener::LoopbackTarget() const {
  if (family_ == AF_INET6) {
    if (bound_host_ == "::" || bound_host_ == "0.0.0.0") return StrCat("[::1]:", port_);
    if (bound_host_.find(':') == std::string::npos) return StrCat(bound_host_, ":", port_);
    return StrCat("[", bound_host_, "]:", port_);
  }
  if (bound_host_ == "0.0.0.0") return StrCat("127.0.0.1:", port_);
  return StrCat(bound_host_, ":", port_);
}

void AgentListener::AllowPastCaps(const std::string& source) {
  std::lock_guard<std::mutex> lock(exempt_mu_);
  exempt_source_ = source;
}

void AgentListener::Start(Handler handler) {
  handler_ = std::move(handler);
  running_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void AgentListener::Stop() {
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
}

AgentListener::Counters AgentListener::counters() const {
  std::lock_guard<std::mutex> lock(counters_mu_);
  return counters_;
}

void AgentListener::Loop() {
  using Clock = std::chrono::steady_clock;
  sandbox::UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) {
    Log(LogLevel::kError, "agent port: epoll_create1 failed; not accepting",
        {{"error", std::string(std::strerror(errno))}});
    running_ = false;
    return;
  }
  // epoll data: 0 = stop, 1 = listener, otherwise a pending connection's fd + 2.
  auto add = [&](int fd, uint64_t tag, uint32_t events) {
    struct epoll_event ev {};
    ev.events = events;
    ev.data.u64 = tag;
    return ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  add(stop_fd_.get(), 0, EPOLLIN);
  add(listen_fd_.get(), 1, EPOLLIN);

  std::map<int, Pending> pending;                                      // by fd
  std::map<std::string, size_t> per_source;                            // pending count by source
  std::deque<std::tuple<Clock::time_point, int, uint64_t>> deadlines;  // in arrival order
  uint64_t next_id = 1;
  bool listening = true;
  Clock::time_point resume_at{};
  RateLimitedWarning warn_cap, warn_accept;

  auto count = [&](uint64_t Counters::*field) {
    std::lock_guard<std::mutex> lock(counters_mu_);
    ++(counters_.*field);
    counters_.pending = pending.size();
  };
  auto drop = [&](int fd, uint64_t Counters::*why) {
    auto it = pending.find(fd);
    if (it == pending.end()) return;
    ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr);
    if (--per_source[it->second.source] == 0) per_source.erase(it->second.source);
    Pending p = std::move(it->second);
    pending.erase(it);
    if (why != nullptr) count(why);
    if (why == nullptr) {
      // Passed the gate.
      count(&Counters::handed);
      const int one = 1;
      ::setsockopt(p.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      handler_(std::move(p.fd), std::move(p.bytes));
    }
  };
  auto pause_listening = [&]() {
    if (!listening) return;
    struct epoll_event ev {};
    ev.data.u64 = 1;
    ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
    listening = false;
    resume_at = Clock::now() + kAcceptBackoff;
  };
  auto resume_listening = [&]() {
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = 1;
    ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
    listening = true;
  };

  auto accept_some = [&]() {
    // A bounded batch, so pending connections are served between batches.
    for (int batch = 0; batch < 256; ++batch) {
      struct sockaddr_storage ss {};
      socklen_t len = sizeof(ss);
      sandbox::UniqueFd conn(::accept4(listen_fd_.get(), reinterpret_cast<struct sockaddr*>(&ss),
                                       &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!conn) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
        count(&Counters::accept_errors);
        if (warn_accept.Due()) {
          Log(LogLevel::kWarn, "agent port: accept failed; backing off",
              {{"error", std::string(std::strerror(err))},
               {"pending", static_cast<uint64_t>(pending.size())},
               {"suppressed", warn_accept.TakeSuppressed()}});
        }
        if ((err == EMFILE || err == ENFILE) && reserve_fd_) {
          // Out of descriptors: spend the reserve one on the connection at
          // the head of the queue and close it, so the kernel queue drains
          // and the next poll is not the same failure at once.
          reserve_fd_.reset();
          sandbox::UniqueFd drop_conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
          drop_conn.reset();
          reserve_fd_ = sandbox::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        }
        pause_listening();
        return;
      }
      count(&Counters::accepted);
      std::string source = SourceKey(ss);
      bool exempt = false;
      {
        std::lock_guard<std::mutex> lock(exempt_mu_);
        if (!exempt_source_.empty()) {
          const std::string full = ss.ss_family == AF_INET6 && source.find(':') != std::string::npos
                                       ? StrCat("[", source, "]:", PortOf(ss))
                                       : StrCat(source, ":", PortOf(ss));
          if (full == exempt_source_) {
            exempt = true;
            exempt_source_.clear();
          }
        }
      }
      if (exempt) source = "(liveness probe)";
      if (!exempt && pending.size() >= options_.max_pending) {
        count(&Counters::over_cap);
        if (warn_cap.Due()) {
          Log(LogLevel::kWarn, "agent port: too many connections before the TLS handshake; closing",
              {{"source", source},
               {"max_pending", static_cast<uint64_t>(options_.max_pending)},
               {"suppressed", warn_cap.TakeSuppressed()}});
        }
        continue;  // `conn` closes here
      }
      size_t& from_source = per_source[source];
      if (!exempt && from_source >= options_.max_pending_per_source) {
        count(&Counters::over_source_cap);
        if (warn_cap.Due()) {
          Log(LogLevel::kWarn,
              "agent port: too many connections before the TLS handshake from one source; closing",
              {{"source", source},
               {"max_pending_per_source", static_cast<uint64_t>(options_.max_pending_per_source)},
               {"suppressed", warn_cap.TakeSuppressed()}});
        }
        continue;
      }
      const int fd = conn.get();
      if (!add(fd, static_cast<uint64_t>(fd) + 2, EPOLLIN | EPOLLRDHUP)) {
        if (from_source == 0) per_source.erase(source);
        count(&Counters::accept_errors);
        continue;
      }
      ++from_source;
      Pending p;
      p.fd = std::move(conn);
      p.id = next_id++;
      p.source = std::move(source);
      deadlines.emplace_back(Clock::now() + options_.hello_timeout, fd, p.id);
      pending.emplace(fd, std::move(p));
      std::lock_guard<std::mutex> lock(counters_mu_);
      counters_.pending = pending.size();
    }
  };

  // Reads what the first record still needs; drops or hands the connection on.
  auto on_readable = [&](int fd) {
    auto it = pending.find(fd);
    if (it == pending.end()) return;
    std::string& b = it->second.bytes;
    while (true) {
      size_t want = kRecordHeader;
      if (b.size() >= kRecordHeader) {
        const size_t body =
            (static_cast<unsigned char>(b[3]) << 8) | static_cast<unsigned char>(b[4]);
        if (static_cast<unsigned char>(b[0]) != kHandshakeRecord || body == 0 ||
            body > kMaxRecordBody) {
          drop(fd, &Counters::not_tls);
          return;
        }
        want = kRecordHeader + body;
      } else if (!b.empty() && static_cast<unsigned char>(b[0]) != kHandshakeRecord) {
        drop(fd, &Counters::not_tls);
        return;
      }
      if (b.size() >= want) {
        drop(fd, nullptr);  // complete: hand it on
        return;
      }
      char buf[4096];
      const size_t n_want = std::min(sizeof(buf), want - b.size());
      const ssize_t n = ::recv(fd, buf, n_want, 0);
      if (n > 0) {
        b.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      drop(fd, &Counters::closed_early);
      return;
    }
  };

  while (true) {
    auto now = Clock::now();
    // Expire in arrival order (all share one timeout). Entries of
    // connections that already left the gate are skipped by id.
    while (!deadlines.empty() && std::get<0>(deadlines.front()) <= now) {
      auto [at, fd, id] = deadlines.front();
      deadlines.pop_front();
      auto it = pending.find(fd);
      if (it != pending.end() && it->second.id == id) drop(fd, &Counters::timed_out);
    }
    while (!deadlines.empty()) {
      auto it = pending.find(std::get<1>(deadlines.front()));
      if (it != pending.end() && it->second.id == std::get<2>(deadlines.front())) break;
      deadlines.pop_front();
    }
    if (!listening && now >= resume_at) resume_listening();
    Clock::time_point wake = Clock::time_point::max();
    if (!deadlines.empty()) wake = std::get<0>(deadlines.front());
    if (!listening) wake = std::min(wake, resume_at);
    int timeout_ms = -1;
    if (wake != Clock::time_point::max()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          1, std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1));
    }
    struct epoll_event events[128];
    const int n = ::epoll_wait(ep.get(), events, 128, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "agent port: epoll_wait failed; no longer accepting",
          {{"error", std::string(std::strerror(errno))}});
      break;
    }
    bool stop = false;
    bool accept_ready = false;
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == 0) {
        stop = true;
      } else if (tag == 1) {
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          Log(LogLevel::kError, "agent port: listening socket failed; no longer accepting");
          stop = true;
        }
        accept_ready = true;
      } else {
        on_readable(static_cast<int>(tag - 2));
      }
    }
    if (stop) break;
    if (accept_ready) accept_some();
  }
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    counters_.pending = 0;
  }
  running_ = false;
  // `pending` closes every connection still waiting.
}

}  // namespace vigo::server::service
