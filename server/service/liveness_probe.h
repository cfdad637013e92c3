// LivenessProbe: a thread that periodically opens a TCP connection to the
// server's own agent port and drives a TLS handshake far enough to have
// received and verified the server's certificate and Finished message. After
// `failures_to_exit` consecutive failures it calls `on_dead` once (VigoServer
// then logs one line and makes vigosrv exit 1, so the service manager
// restarts it: issue 13.2, a listener that no longer accepts must not leave
// a process that looks alive).
//
//   LivenessProbeOptions o;
//   o.target = listener->LoopbackTarget();
//   o.ca_pem = ca_pem;
//   o.before_connect = [l](const std::string& src) { l->AllowPastCaps(src); };
//   auto probe = LivenessProbe::Start(o, [](const std::string& why) { ... });
//   probe->Stop();
//
// The probe offers ALPN h2, sends no client certificate and closes the
// connection before its own last flight leaves (TLS 1.3): the server sees a
// client that went away mid-handshake, not a refused certificate, so the
// probe adds no error lines to the server log. Nothing secret is involved:
// the probe holds only the CA certificate.
//
// Thread safety: Stop() from any thread but `on_dead` (it joins the thread
// `on_dead` runs on); idempotent; the destructor stops.
#ifndef VIGO_SERVER_SERVICE_LIVENESS_PROBE_H_
#define VIGO_SERVER_SERVICE_LIVENESS_PROBE_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace vigo::server::service {

struct LivenessProbeOptions {
  std::string target;  // numeric "HOST:PORT" or "[v6]:PORT"
  std::string ca_pem;  // the server certificate must chain to this CA
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{5000};  // per probe: connect + handshake
  int failures_to_exit = 3;
  // Called with the probe's own source address ("IP:PORT") after binding and
  // before connecting (lets the connection gate exempt it from its caps).
  std::function<void(const std::string&)> before_connect;
};

// One probe. OK when the handshake got as far as described above; otherwise
// an error naming the step (connect, timeout, TLS error).
absl::Status ProbeTlsListener(const LivenessProbeOptions& options);

class LivenessProbe {
 public:
  using OnDead = std::function<void(const std::string& why)>;
  static std::unique_ptr<LivenessProbe> Start(LivenessProbeOptions options, OnDead on_dead);
  ~LivenessProbe();
  void Stop();

 private:
  LivenessProbe(LivenessProbeOptions options, OnDead on_dead);
  void Loop();

  LivenessProbeOptions options_;
  OnDead on_dead_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // under mu_
  std::thread thread_;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_LIVENESS_PROBE_H_
