// Idle agent-port connections are given back (issue 13.8): one that
// completed mTLS with a valid envoy certificate and then sent nothing is
// closed after server.handshake_timeout; one that made its HTTP/2 preface but
// no call is closed after server.max_connection_idle. And the liveness probe
// completes against the real port (issue 13.2).
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "sandbox/unique_fd.h"
#include "server/service/liveness_probe.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

ServerFixtureOptions Options(std::chrono::seconds handshake, std::chrono::seconds idle) {
  ServerFixtureOptions o;
  o.stacks = {{"envoys.vgo", "envoys: []\n"}};
  o.server_options.enable_watcher = false;
  o.edit_config = [handshake, idle](server::ServerConfig& cfg) {
    cfg.handshake_timeout = handshake;
    cfg.max_connection_idle = idle;
  };
  return o;
}

// Completes a TLS handshake with the envoy's certificate on a plain socket,
// then sends nothing. Returns true if the server closes the connection
// within `within`.
bool MutualTlsThenSilenceIsClosedWithin(int port, const EnvoyCreds& c, std::chrono::seconds within,
                                        std::string* error) {
  sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) {
    *error = "connect failed";
    return false;
  }
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (SSL_CTX_use_certificate_file(ctx.get(), (c.dir / "cert.pem").c_str(), SSL_FILETYPE_PEM) !=
          1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), (c.dir / "key.pem").c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx.get(), (c.dir / "ca.pem").c_str(), nullptr) != 1) {
    *error = "cannot load the envoy credentials";
    return false;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  std::unique_ptr<SSL, void (*)(SSL*)> ssl(SSL_new(ctx.get()), SSL_free);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn));
  SSL_set_fd(ssl.get(), fd.get());
  if (SSL_connect(ssl.get()) != 1) {
    *error = "TLS handshake failed";
    return false;
  }
  const auto until = Clock::now() + within;
  while (Clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    struct pollfd p = {fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) continue;
    char buf[256];
    const int n = SSL_read(ssl.get(), buf, sizeof(buf));
    if (n > 0) continue;  // (the server sends nothing before our preface)
    const int err = SSL_get_error(ssl.get(), n);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ) continue;  // e.g. a session ticket
    return true;                               // close_notify, EOF or reset
  }
  *error = "still open";
  return false;
}

TEST(ServerConnectionLimitsTest, MutualTlsThenSilenceIsClosedAfterTheHandshakeTimeout) {
  ServerFixture fx(Options(/*handshake=*/2s, /*idle=*/300s));
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds c = fx.IssueEnvoy("web-1");
  ASSERT_TRUE(fx.ok()) << fx.error();
  std::string error;
  // gRPC's default would keep it 120 s.
  EXPECT_TRUE(MutualTlsThenSilenceIsClosedWithin(fx.server().port(), c, 30s, &error)) << error;
}

TEST(ServerConnectionLimitsTest, ConnectionWithoutCallsIsClosedAfterMaxConnectionIdle) {
  ServerFixture fx(Options(/*handshake=*/10s, /*idle=*/1s));
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds c = fx.IssueEnvoy("web-1");
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto channel = fx.Channel(c);
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + 20s));
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // The server's GOAWAY takes the channel out of READY; without
  // max_connection_idle it stays READY for good.
  EXPECT_TRUE(
      channel->WaitForStateChange(GRPC_CHANNEL_READY, std::chrono::system_clock::now() + 30s))
      << "the idle connection was not closed";
}

TEST(ServerConnectionLimitsTest, LivenessProbeCompletesAgainstTheAgentPort) {
  ServerFixture fx(Options(10s, 300s));
  ASSERT_TRUE(fx.ok()) << fx.error();
  server::service::LivenessProbeOptions o;
  o.target = fx.target();
  o.ca_pem = ReadFileOrEmpty(fx.cfg().TlsDir() / "ca.pem");
  o.timeout = 10s;
  absl::Status st = server::service::ProbeTlsListener(o);
  EXPECT_TRUE(st.ok()) << st;
  // And fails once the port is gone.
  fx.server().Shutdown();
  o.timeout = 2s;
  EXPECT_FALSE(server::service::ProbeTlsListener(o).ok());
}

}  // namespace
}  // namespace vigo::testing
