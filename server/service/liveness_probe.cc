#include "server/service/liveness_probe.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/unique_fd.h"
#include "server/service/agent_listener.h"

namespace vigo::server::service {
namespace {

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

std::string SslError(const char* what) {
  char buf[256] = {};
  unsigned long e = ERR_get_error();
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return e != 0 ? StrCat(what, ": ", buf) : std::string(what);
}

std::string AddrText(const struct sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return StrCat("[", buf, "]:", ntohs(in6->sin6_port));
  }
  const auto* in = reinterpret_cast<const struct sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
  return StrCat(buf, ":", ntohs(in->sin_port));
}

// Writes everything the client produced so far; false on error/timeout.
bool Flush(int fd, BIO* wbio, Clock::time_point deadline) {
  char buf[4096];
  int n;
  while ((n = BIO_read(wbio, buf, sizeof(buf))) > 0) {
    int off = 0;
    while (off < n) {
      ssize_t w = ::send(fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w > 0) {
        off += static_cast<int>(w);
        continue;
      }
      if (w < 0 && errno != EAGAIN && errno != EINTR) return false;
      struct pollfd p = {fd, POLLOUT, 0};
      if (::poll(&p, 1, MsLeft(deadline)) <= 0) return false;
    }
  }
  return true;
}

}  // namespace

absl::Status ProbeTlsListener(const LivenessProbeOptions& options) {
  const Clock::time_point deadline = Clock::now() + options.timeout;
  std::string host;
  int port = 0;
  VIGO_RETURN_IF_ERROR(ParseListenAddress(options.target, "probe target", false, &host, &port));
  struct addrinfo hints {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  if (::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res) != 0 || res == nullptr) {
    return absl::InvalidArgumentError(StrCat("probe target ", options.target, ": not numeric"));
  }
  std::unique_ptr<struct addrinfo, void (*)(struct addrinfo*)> owned(res, ::freeaddrinfo);

  sandbox::UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return absl::UnavailableError(StrCat("socket: ", std::strerror(errno)));
  if (options.before_connect) {
    // Bind first so the source port is known before the gate sees us.
    struct sockaddr_storage local {};
    std::memcpy(&local, res->ai_addr, res->ai_addrlen);
    if (local.ss_family == AF_INET6) {
      reinterpret_cast<struct sockaddr_in6*>(&local)->sin6_port = 0;
    } else {
      reinterpret_cast<struct sockaddr_in*>(&local)->sin_port = 0;
    }
    if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&local), res->ai_addrlen) != 0) {
      return absl::UnavailableError(StrCat("bind: ", std::strerror(errno)));
    }
    socklen_t len = sizeof(local);
    ::getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&local), &len);
    options.before_connect(AddrText(local));
  }
  if (::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
    return absl::UnavailableError(StrCat("connect: ", std::strerror(errno)));
  }
  struct pollfd p = {fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, MsLeft(deadline)) <= 0) return absl::DeadlineExceededError("connect timed out");
  int soerr = 0;
  socklen_t slen = sizeof(soerr);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &slen);
  if (soerr != 0) return absl::UnavailableError(StrCat("connect: ", std::strerror(soerr)));

  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return absl::InternalError(SslError("SSL_CTX_new"));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  {
    std::unique_ptr<BIO, int (*)(BIO*)> bio(
        BIO_new_mem_buf(options.ca_pem.data(), static_cast<int>(options.ca_pem.size())), BIO_free);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    int added = 0;
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      added += X509_STORE_add_cert(store, cert);
      X509_free(cert);
    }
    ERR_clear_error();  // the end of the PEM data
    if (added == 0) return absl::InvalidArgumentError("probe: no CA certificate");
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  std::unique_ptr<SSL, void (*)(SSL*)> ssl(SSL_new(ctx.get()), SSL_free);
  if (!ssl) return absl::InternalError(SslError("SSL_new"));
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn));
  // Memory BIOs: the probe decides what reaches the socket (see the header).
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // ssl owns both
  SSL_set_connect_state(ssl.get());
  while (true) {
    const int r = SSL_do_handshake(ssl.get());
    if (r == 1) return absl::OkStatus();  // server Finished verified; our flight stays unsent
    const int err = SSL_get_error(ssl.get(), r);
    if (err != SSL_ERROR_WANT_READ) return absl::UnavailableError(SslError("TLS handshake"));
    if (!Flush(fd.get(), wbio, deadline)) return absl::UnavailableError("send failed");
    struct pollfd in = {fd.get(), POLLIN, 0};
    const int n = ::poll(&in, 1, MsLeft(deadline));
    if (n == 0) return absl::DeadlineExceededError("TLS handshake timed out");
    if (n < 0 && errno != EINTR) return absl::UnavailableError("poll failed");
    char buf[16384];
    const ssize_t got = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (got == 0) return absl::UnavailableError("the server closed the connection");
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return absl::UnavailableError(StrCat("recv: ", std::strerror(errno)));
    }
    BIO_write(rbio, buf, static_cast<int>(got));
  }
}

LivenessProbe::LivenessProbe(LivenessProbeOptions options, OnDead on_dead)
    : options_(std::move(options)), on_dead_(std::move(on_dead)) {}

LivenessProbe::~LivenessProbe() { Stop(); }

std::unique_ptr<LivenessProbe> LivenessProbe::Start(LivenessProbeOptions options, OnDead on_dead) {
  std::unique_ptr<LivenessProbe> p(new LivenessProbe(std::move(options), std::move(on_dead)));
  LivenessProbe* raw = p.get();
  p->thread_ = std::thread([raw] { raw->Loop(); });
  return p;
}

void LivenessProbe::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void LivenessProbe::Loop() {
  int failures = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, options_.interval, [this] { return stopped_; })) return;
    }
    absl::Status st = ProbeTlsListener(options_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;  // a probe cut short by shutdown proves nothing
    }
    if (st.ok()) {
      failures = 0;
      continue;
    }
    ++failures;
    Log(LogLevel::kWarn, "agent port liveness probe failed",
        {{"target", options_.target}, {"failures", failures}, {"error", st}});
    if (failures >= options_.failures_to_exit) {
      on_dead_(StrCat("the agent port ", options_.target, " failed ", failures,
                      " liveness probes in a row (last: ", st.message(), ")"));
      return;
    }
  }
}

}  // namespace vigo::server::service
