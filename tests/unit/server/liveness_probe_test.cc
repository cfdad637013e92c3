// The agent port's liveness probe (server/service/liveness_probe.h): a port
// that accepts TCP but never answers TLS is a failed probe, and K failures
// in a row call on_dead exactly once (vigosrv then exits 1).
#include "server/service/liveness_probe.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "sandbox/unique_fd.h"
#include "server/tls/pki.h"
#include "tests/support/test_env.h"

namespace vigo::server::service {
namespace {

using namespace std::chrono_literals;

// A listening socket nobody accepts on: connects succeed (backlog), TLS
// never answers, like gRPC 1.51 after its accept loop died.
struct DeadListener {
  sandbox::UniqueFd fd;
  int port = 0;
  DeadListener() {
    fd = sandbox::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
    ::listen(fd.get(), 64);
    socklen_t len = sizeof(a);
    ::getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
};

// A real CA certificate, so a failure is the listener's, not a parse error.
std::string SomeCa() {
  static const std::string pem = [] {
    static vigo::testing::TempDir dir;
    tls::CaFiles ca{dir.path() / "ca.pem", dir.path() / "ca.key"};
    if (!tls::CreateCa(ca, "probe test CA").ok()) std::abort();
    return vigo::testing::ReadFileOrEmpty(ca.cert);
  }();
  return pem;
}

TEST(LivenessProbeTest, ListenerThatNeverHandshakesFailsTheProbe) {
  DeadListener dead;
  LivenessProbeOptions o;
  o.target = "127.0.0.1:" + std::to_string(dead.port);
  o.ca_pem = SomeCa();
  o.timeout = 300ms;
  absl::Status st = ProbeTlsListener(o);
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
}

TEST(LivenessProbeTest, ConsecutiveFailuresCallOnDeadOnce) {
  DeadListener dead;
  LivenessProbeOptions o;
  o.target = "127.0.0.1:" + std::to_string(dead.port);
  o.ca_pem = SomeCa();
  o.interval = 20ms;
  o.timeout = 100ms;
  o.failures_to_exit = 3;
  std::atomic<int> calls{0};
  std::string why;
  auto probe = LivenessProbe::Start(o, [&](const std::string& w) {
    why = w;
    calls.fetch_add(1);
  });
  for (int i = 0; i < 500 && calls.load() == 0; ++i) std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);  // no second call
  probe->Stop();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_NE(why.find("3 liveness probes in a row"), std::string::npos) << why;
}

}  // namespace
}  // namespace vigo::server::service
