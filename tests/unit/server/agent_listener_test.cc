// The agent port's connection gate (server/service/agent_listener.h): caps on
// connections that have not sent their first TLS record, overall and per
// source, the first-record timeout, and an accept loop that survives EMFILE.
#include "server/service/agent_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/unique_fd.h"

namespace vigo::server::service {
namespace {

using namespace std::chrono_literals;
using sandbox::UniqueFd;

// A complete TLS handshake record header + body (the gate looks at the
// framing only).
std::string HandshakeRecord(size_t body) {
  std::string r = {'\x16', '\x03', '\x01', static_cast<char>(body >> 8),
                   static_cast<char>(body & 0xff)};
  r.append(body, 'h');
  return r;
}

UniqueFd ConnectFrom(int port, const char* source = nullptr) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (source != nullptr) {
    struct sockaddr_in local {};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &local.sin_addr);
    if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&local), sizeof(local)) != 0) {
      return UniqueFd();
    }
  }
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UniqueFd();
  }
  return fd;
}

// True when the server closed `fd` (EOF or reset) within `within`.
bool ClosedWithin(const UniqueFd& fd, std::chrono::milliseconds within) {
  struct pollfd p = {fd.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(within.count())) <= 0) return false;
  char c;
  return ::recv(fd.get(), &c, 1, MSG_DONTWAIT) <= 0;
}

// Passed connections, kept open so the client side sees no EOF.
struct Handed {
  std::mutex mu;
  std::vector<UniqueFd> fds;
  std::vector<std::string> bytes;
  size_t size() {
    std::lock_guard<std::mutex> l(mu);
    return fds.size();
  }
};

std::unique_ptr<AgentListener> StartListener(const AgentListenerOptions& o, Handed* handed) {
  auto l = AgentListener::Bind(o);
  if (!l.ok()) return nullptr;
  (*l)->Start([handed](UniqueFd fd, std::string bytes) {
    std::lock_guard<std::mutex> lock(handed->mu);
    handed->fds.push_back(std::move(fd));
    handed->bytes.push_back(std::move(bytes));
  });
  return std::move(*l);
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

TEST(AgentListenerTest, CompleteFirstRecordIsHandedOnWithTheBytesAlreadyRead) {
  Handed handed;
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  auto l = StartListener(o, &handed);
  ASSERT_NE(l, nullptr);
  UniqueFd c = ConnectFrom(l->port());
  ASSERT_TRUE(c);
  const std::string record = HandshakeRecord(300);
  // In two pieces: the gate must wait for the whole record.
  ASSERT_EQ(::send(c.get(), record.data(), 100, 0), 100);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(handed.size(), 0u);
  ASSERT_EQ(::send(c.get(), record.data() + 100, record.size() - 100, 0),
            static_cast<ssize_t>(record.size() - 100));
  ASSERT_TRUE(WaitFor([&] { return handed.size() == 1; }, 10s));
  std::lock_guard<std::mutex> lock(handed.mu);
  EXPECT_EQ(handed.bytes[0], record);
  EXPECT_EQ(l->counters().handed, 1u);
}

TEST(AgentListenerTest, SilentConnectionIsClosedAfterTheHelloTimeout) {
  Handed handed;
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  o.hello_timeout = 300ms;
  auto l = StartListener(o, &handed);
  ASSERT_NE(l, nullptr);
  UniqueFd c = ConnectFrom(l->port());
  ASSERT_TRUE(c);
  // A partial record does not extend the deadline either.
  ASSERT_EQ(::send(c.get(), "\x16\x03\x01", 3, 0), 3);
  EXPECT_TRUE(ClosedWithin(c, 10s));
  EXPECT_EQ(l->counters().timed_out, 1u);
  EXPECT_EQ(handed.size(), 0u);
}

TEST(AgentListenerTest, FirstRecordThatIsNotTlsIsClosed) {
  Handed handed;
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  auto l = StartListener(o, &handed);
  ASSERT_NE(l, nullptr);
  UniqueFd c = ConnectFrom(l->port());
  ASSERT_TRUE(c);
  const std::string http = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(c.get(), http.data(), http.size(), 0), static_cast<ssize_t>(http.size()));
  EXPECT_TRUE(ClosedWithin(c, 10s));
  EXPECT_EQ(l->counters().not_tls, 1u);
  EXPECT_EQ(handed.size(), 0u);
}

TEST(AgentListenerTest, PerSourceCapClosesOnlyThatSourcesExtraConnection) {
  Handed handed;
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  o.max_pending_per_source = 2;
  o.hello_timeout = 60s;
  auto l = StartListener(o, &handed);
  ASSERT_NE(l, nullptr);
  UniqueFd a = ConnectFrom(l->port(), "127.0.0.1");
  UniqueFd b = ConnectFrom(l->port(), "127.0.0.1");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitFor([&] { return l->counters().pending == 2; }, 10s));
  UniqueFd over = ConnectFrom(l->port(), "127.0.0.1");
  ASSERT_TRUE(over);
  EXPECT_TRUE(ClosedWithin(over, 10s)) << "the third connection from one source was kept";
  EXPECT_EQ(l->counters().over_source_cap, 1u);
  // Another source still gets in, and the first two are still held.
  UniqueFd other = ConnectFrom(l->port(), "127.0.0.2");
  ASSERT_TRUE(other);
  ASSERT_TRUE(WaitFor([&] { return l->counters().pending == 3; }, 10s));
  EXPECT_FALSE(ClosedWithin(a, 200ms));
  EXPECT_FALSE(ClosedWithin(other, 200ms));
  // A slot that leaves the gate is free again.
  const std::string record = HandshakeRecord(10);
  ASSERT_EQ(::send(a.get(), record.data(), record.size(), 0), static_cast<ssize_t>(record.size()));
  ASSERT_TRUE(WaitFor([&] { return handed.size() == 1; }, 10s));
  UniqueFd again = ConnectFrom(l->port(), "127.0.0.1");
  ASSERT_TRUE(WaitFor([&] { return l->counters().pending == 3; }, 10s));
  EXPECT_FALSE(ClosedWithin(again, 200ms));
}

TEST(AgentListenerTest, OverallCapClosesTheConnectionOverIt) {
  Handed handed;
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  o.max_pending = 2;
  o.hello_timeout = 60s;
  auto l = StartListener(o, &handed);
  ASSERT_NE(l, nullptr);
  UniqueFd a = ConnectFrom(l->port(), "127.0.0.1");
  UniqueFd b = ConnectFrom(l->port(), "127.0.0.2");
  ASSERT_TRUE(WaitFor([&] { return l->counters().pending == 2; }, 10s));
  UniqueFd over = ConnectFrom(l->port(), "127.0.0.3");
  ASSERT_TRUE(over);
  EXPECT_TRUE(ClosedWithin(over, 10s));
  EXPECT_EQ(l->counters().over_cap, 1u);
}

TEST(AgentListenerTest, ExemptedSourceGetsPastAFullGate) {
  Handed handed;
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  o.max_pending_per_source = 1;
  o.hello_timeout = 60s;
  auto l = StartListener(o, &handed);
  ASSERT_NE(l, nullptr);
  UniqueFd a = ConnectFrom(l->port());
  ASSERT_TRUE(WaitFor([&] { return l->counters().pending == 1; }, 10s));
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in local {};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe.get(), reinterpret_cast<struct sockaddr*>(&local), sizeof(local)), 0);
  socklen_t len = sizeof(local);
  ASSERT_EQ(::getsockname(probe.get(), reinterpret_cast<struct sockaddr*>(&local), &len), 0);
  l->AllowPastCaps("127.0.0.1:" + std::to_string(ntohs(local.sin_port)));
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(l->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(probe.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_TRUE(WaitFor([&] { return l->counters().pending == 2; }, 10s));
  EXPECT_FALSE(ClosedWithin(probe, 200ms));
  EXPECT_EQ(l->counters().over_source_cap, 0u);
}

TEST(AgentListenerTest, PortInUseFailsBindWithOneLineNamingTheAddress) {
  AgentListenerOptions o;
  o.address = "127.0.0.1:0";
  auto first = AgentListener::Bind(o);
  ASSERT_TRUE(first.ok()) << first.status();
  o.address = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = AgentListener::Bind(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(std::string(second.status().message()),
            "cannot listen on " + o.address + ": Address already in use");
}

// In a child whose soft RLIMIT_NOFILE is tiny: a flood makes accept4 fail
// with EMFILE; afterwards the listener still accepts and hands connections
// on (gRPC 1.51's own loop stops for good at the first EMFILE).
TEST(AgentListenerTest, AcceptsAgainAfterEmfile) {
  int port_pipe[2];
  ASSERT_EQ(::pipe(port_pipe), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(port_pipe[0]);
    AgentListenerOptions o;
    o.address = "127.0.0.1:0";
    o.hello_timeout = 500ms;
    auto l = AgentListener::Bind(o);
    if (!l.ok()) ::_exit(2);
    struct rlimit lim {};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = 32;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(3);
    AgentListener* raw = l->get();
    (*l)->Start([raw](UniqueFd fd, std::string) {
      // Tell the client how many accept errors came before it.
      const std::string reply = "OK " + std::to_string(raw->counters().accept_errors);
      (void)!::send(fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    });
    const int port = (*l)->port();
    (void)!::write(port_pipe[1], &port, sizeof(port));
    std::this_thread::sleep_for(60s);
    ::_exit(0);
  }
  ::close(port_pipe[1]);
  int port = 0;
  ASSERT_EQ(::read(port_pipe[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(port_pipe[0]);
  {
    std::vector<UniqueFd> flood;
    for (int i = 0; i < 100; ++i) flood.push_back(ConnectFrom(port));
    std::this_thread::sleep_for(1s);
  }
  // Wait out the hello timeout of the ones the gate held.
  std::this_thread::sleep_for(1500ms);
  std::string reply;
  for (int attempt = 0; attempt < 50 && reply.rfind("OK ", 0) != 0; ++attempt) {
    UniqueFd c = ConnectFrom(port);
    ASSERT_TRUE(c);
    const std::string record = HandshakeRecord(10);
    ASSERT_EQ(::send(c.get(), record.data(), record.size(), 0),
              static_cast<ssize_t>(record.size()));
    struct pollfd p = {c.get(), POLLIN, 0};
    if (::poll(&p, 1, 2000) == 1) {
      char buf[64] = {};
      ssize_t n = ::recv(c.get(), buf, sizeof(buf) - 1, 0);
      if (n > 0) reply.assign(buf, static_cast<size_t>(n));
    }
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(reply.rfind("OK ", 0), 0u) << "the listener no longer hands connections on";
  EXPECT_GT(std::stoi(reply.substr(3)), 0) << "the flood never hit EMFILE; the test proves nothing";
}

}  // namespace
}  // namespace vigo::server::service
