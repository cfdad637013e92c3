#include "server/service/vigo_server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_posix.h>
#include <openssl/crypto.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/unique_fd.h"
#include "server/service/admin_listener.h"
#include "server/service/admin_service.h"
#include "server/service/agent_listener.h"
#include "server/service/agent_service.h"
#include "server/service/liveness_probe.h"
#include "server/tls/pki.h"
#include "vocab/ids.h"

namespace vigo::server::service {
namespace fs = std::filesystem;

namespace {

// Pre-generated server X25519 keys (EphemeralKeyPool); a burst beyond this
// generates inline.
constexpr size_t kKeyPoolSize = 32;

absl::StatusOr<std::string> ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(p.string(), ": cannot read"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads a small private file (the TLS key) with exactly one heap buffer, so
// the caller can wipe the only copy this process makes.
absl::StatusOr<std::string> ReadKeyFile(const fs::path& p) {
  constexpr off_t kMaxKeyFile = 64 * 1024;
  sandbox::UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return absl::NotFoundError(StrCat(p.string(), ": cannot read"));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxKeyFile) {
    return absl::FailedPreconditionError(
        StrCat(p.string(), ": not a regular file of at most 64 KiB"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      OPENSSL_cleanse(out.data(), out.size());
      return absl::DataLossError(StrCat(p.string(), ": short read"));
    }
    done += static_cast<size_t>(n);
  }
  return out;
}

// Writes "HOST:PORT\n" to `path` through a temporary file and a rename, so a
// reader never sees a half-written address; every failure names the file.
absl::Status WriteAddressFile(const fs::path& path, const std::string& address) {
  const fs::path tmp = path.string() + ".tmp";
  sandbox::UniqueFd fd(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) {
    return absl::FailedPreconditionError(StrCat(tmp.string(), ": ", std::strerror(errno)));
  }
  const std::string line = address + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
      ::fsync(fd.get()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::FailedPreconditionError(
        StrCat(tmp.string(), ": cannot write: ", std::strerror(err)));
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::FailedPreconditionError(StrCat(path.string(), ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// VigoServer

VigoServer::VigoServer(ServerConfig cfg, ServerOptions options)
    : cfg_(std::move(cfg)), options_(options) {}

VigoServer::~VigoServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<VigoServer>> VigoServer::Create(
    const ServerConfig& cfg, std::unique_ptr<SecretBackend> backend, const ServerOptions& options) {
  std::unique_ptr<VigoServer> s(new VigoServer(cfg, options));
  // TLS material first: cheap, and the most common operator mistake.
  absl::Status tls_ok = tls::CheckServerTlsMaterial(cfg.TlsDir());
  if (!tls_ok.ok()) {
    return absl::Status(tls_ok.code(), StrCat("bad TLS material: ", tls_ok.message()));
  }
  if (options.enable_admin) {
    // One server per data root (the admin socket, the watcher and the epoch
    // assume it); taken before anything is loaded or written.
    fs::path run_dir = cfg.root / "run";
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    fs::path lock_path = run_dir / "vigosrv.lock";
    s->lock_fd_ = sandbox::UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!s->lock_fd_ || ::flock(s->lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      return absl::FailedPreconditionError(
          StrCat("another vigosrv is serving this root (", lock_path.string(), " is locked)"));
    }
  }
  if (backend == nullptr) {
    auto opened = OpenBackend(cfg);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          StrCat("secret backend '", cfg.secrets_backend,
                                 "' unusable: ", opened.status().message()));
    }
    backend = std::move(*opened);
  } else {
    absl::Status h = backend->CheckHealth();
    if (!h.ok()) {
      return absl::Status(
          h.code(), StrCat("secret backend '", backend->Name(), "' unhealthy: ", h.message()));
    }
  }
  s->backend_ = std::move(backend);
  auto db1 = Database::Open(cfg.DatabasePath());
  if (!db1.ok()) {
    return absl::Status(db1.status().code(), StrCat("database: ", db1.status().message()));
  }
  s->store_db_ = std::move(*db1);
  VIGO_ASSIGN_OR_RETURN(s->audit_db_, Database::Open(cfg.DatabasePath()));
  if (cfg.database_synchronous == "normal") {
    // Operator's choice (server.yaml database.synchronous): WAL commits are
    // not fsynced one by one; a power loss may drop the newest records.
    VIGO_RETURN_IF_ERROR(s->audit_db_->Exec("PRAGMA synchronous=NORMAL"));
    VIGO_RETURN_IF_ERROR(s->store_db_->Exec("PRAGMA synchronous=NORMAL"));
  }
  s->store_ = std::make_unique<ServerStore>(s->store_db_.get());
  VIGO_RETURN_IF_ERROR(s->store_->Init());
  s->audit_ = std::make_unique<AuditLog>(s->audit_db_.get());
  s->audit_writer_ = std::make_unique<AuditWriter>(s->audit_.get());
  s->key_pool_ = std::make_unique<EphemeralKeyPool>(kKeyPoolSize);

  VigoServer* raw = s.get();
  s->policy_ = std::make_unique<PolicyStore>(s->cfg_, s->backend_.get(), s->store_.get(),
                                             [raw](const AuditEvent& e) { return raw->Audit(e); });
  VIGO_RETURN_IF_ERROR(s->policy_->LoadInitial());
  return s;
}

absl::StatusOr<uint64_t> VigoServer::Reload(const std::string& reason) {
  return policy_->Reload(reason);
}

uint64_t VigoServer::epoch() const { return policy_->epoch(); }

std::shared_ptr<const PolicyState> VigoServer::state() const { return policy_->state(); }

absl::StatusOr<std::shared_ptr<const CompiledBundle>> VigoServer::BundleFor(
    const std::shared_ptr<const PolicyState>& state, const std::string& envoy) {
  return policy_->BundleFor(state, envoy);
}

absl::Status VigoServer::Audit(const AuditEvent& event) {
  absl::Status st = audit_writer_->Append(event);
  if (!st.ok()) {
    Log(LogLevel::kError, "audit append failed", {{"event", event.event}, {"status", st}});
  }
  return st;
}

std::future<absl::Status> VigoServer::AuditAsync(AuditEvent event) {
  return audit_writer_->Submit(std::move(event));
}

absl::Status VigoServer::Start(const std::string& listen) {
  started_ms_ = vocab::NowUnixMs();
  const std::string addr = listen.empty() ? cfg_.grpc_listen : listen;
  // The TLS key goes to gRPC (which wants a string) and our copy is wiped.
  VIGO_ASSIGN_OR_RETURN(std::string ca_pem, ReadFile(cfg_.TlsDir() / "ca.pem"));
  VIGO_ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cfg_.TlsDir() / "server.pem"));
  VIGO_ASSIGN_OR_RETURN(std::string key_pem, ReadKeyFile(cfg_.TlsDir() / "server.key"));
  {
    auto fp = TextFingerprinter::FromKeyMaterial(key_pem);
    if (!fp.ok()) {
      OPENSSL_cleanse(key_pem.data(), key_pem.size());
      return fp.status();
    }
    text_fp_.emplace(std::move(*fp));
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ca_pem;
  ssl.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  auto creds = grpc::SslServerCredentials(ssl);
  OPENSSL_cleanse(ssl.pem_key_cert_pairs[0].private_key.data(),
                  ssl.pem_key_cert_pairs[0].private_key.size());

  // The agent port is ours (agent_listener.h): bound here, so a port in use
  // or a bad address fails the start with one line and before gRPC starts;
  // gRPC only ever sees connections that passed the ClientHello gate.
  {
    std::string host;
    int want_port = 0;
    absl::Status parsed =
        ParseListenAddress(addr, listen.empty() ? "server.grpc_listen" : "--grpc-listen",
                           /*allow_port_zero=*/true, &host, &want_port);
    if (!parsed.ok()) return parsed;
  }
  AgentListenerOptions gate;
  gate.address = addr;
  gate.max_pending = options_.max_pending_handshakes;
  gate.max_pending_per_source = options_.max_pending_handshakes_per_source;
  gate.hello_timeout = options_.hello_timeout;
  struct rlimit nofile {};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    // Pending connections must never be what exhausts the descriptors.
    gate.max_pending =
        std::min<size_t>(gate.max_pending, std::max<size_t>(16, nofile.rlim_cur / 4));
  }
  VIGO_ASSIGN_OR_RETURN(agent_listener_, AgentListener::Bind(gate));
  port_ = agent_listener_->port();

  agent_service_ = NewAgentService(this);
  grpc::ServerBuilder builder;
  // No AddListeningPort: gRPC's own listener would bring back its accept
  // loop (which stops for good after one EMFILE) and SO_REUSEPORT.
  agent_acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, creds);
  const auto ms = [](std::chrono::seconds d) {
    return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  // The rest of the handshake after the gate (TLS and the HTTP/2 preface): a
  // client that completes mTLS and then sends nothing is closed here.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, ms(cfg_.handshake_timeout));
  // Connections without calls are closed (GOAWAY); agents dial again at their
  // next check-in, so an idle fleet holds no memory here.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(cfg_.max_connection_idle));
  // The server pings connections (calls or not) after 2 min of silence and
  // drops those that do not answer in 20 s: a vanished peer is noticed
  // before max_connection_idle. Agents send no pings of their own, so the
  // client-ping policing (max ping strikes) never applies to them.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // All agent connections together may hold at most this much gRPC buffer
  // memory; under pressure gRPC shrinks per-connection buffers and refuses
  // new calls with RESOURCE_EXHAUSTED instead of growing.
  constexpr size_t kAgentPortMemoryQuota = size_t{512} << 20;
  grpc::ResourceQuota quota("vigosrv-agent-port");
  quota.Resize(kAgentPortMemoryQuota);
  builder.SetResourceQuota(quota);
  builder.RegisterService(agent_service_.get());
  builder.SetMaxReceiveMessageSize(kMaxAgentMessageBytes);
  // Replies: a CheckIn carries one bundle of up to stacks' kMaxBundleBytes
  // (refused at load when larger); every other reply stays far below.
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxBundleBytes + 64 * 1024));
  agent_server_ = builder.BuildAndStart();
  if (!agent_server_) {
    agent_listener_.reset();
    return absl::UnavailableError(StrCat("cannot start the agent service on ", addr));
  }
  grpc::experimental::ExternalConnectionAcceptor* acceptor = agent_acceptor_.get();
  agent_listener_->Start([acceptor](sandbox::UniqueFd fd, std::string first_bytes) {
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
    p.fd = fd.release();  // gRPC owns it from here
    if (!first_bytes.empty()) {
      grpc::Slice slice(first_bytes);
      p.read_buffer = grpc::ByteBuffer(&slice, 1);
    }
    acceptor->HandleNewConnection(&p);
  });
  std::string host = addr.substr(0, addr.rfind(':'));
  listen_address_ = StrCat(host, ":", port_);
  if (options_.liveness_interval.count() > 0) {
    LivenessProbeOptions po;
    po.target = agent_listener_->LoopbackTarget();
    po.ca_pem = ca_pem;
    po.interval = options_.liveness_interval;
    po.timeout = options_.liveness_timeout;
    po.failures_to_exit = options_.liveness_failures;
    AgentListener* listener = agent_listener_.get();
    po.before_connect = [listener](const std::string& source) { listener->AllowPastCaps(source); };
    liveness_ = LivenessProbe::Start(po, [this](const std::string& why) {
      Log(LogLevel::kError, "agent port is dead; exiting so the service manager restarts vigosrv",
          {{"why", why}});
      agent_port_dead_ = true;
      if (options_.on_agent_port_dead) options_.on_agent_port_dead();
    });
  }

  const fs::path run_dir = cfg_.root / "run";
  {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec || ::chmod(run_dir.c_str(), 0700) != 0) {
      return absl::FailedPreconditionError(
          StrCat(run_dir.string(), ": cannot create it with mode 0700",
                 ec ? StrCat(" (", ec.message(), ")") : StrCat(" (", std::strerror(errno), ")")));
    }
  }
  if (options_.enable_admin) {
    // gRPC gets no listening port: AdminListener owns admin.sock, checks each
    // peer's SO_PEERCRED uid (root or our own euid) and only then hands the
    // connection to admin_server_.
    fs::path sock = cfg_.AdminSocket();
    admin_service_ = std::make_unique<AdminService>(this);
    grpc::ServerBuilder ab;
    ab.RegisterService(admin_service_.get());
    admin_server_ = ab.BuildAndStart();
    if (!admin_server_) {
      return absl::UnavailableError(StrCat("cannot start the admin service for ", sock.string()));
    }
    AdminListenerOptions lo;
    lo.socket_path = sock;
    lo.allowed_uids = DefaultAdminPeerUids();
    grpc::Server* admin = admin_server_.get();
    auto listener = AdminListener::Start(lo, [admin](sandbox::UniqueFd fd) {
      grpc::AddInsecureChannelFromFd(admin, fd.release());  // gRPC owns it from here
    });
    if (!listener.ok()) {
      return absl::UnavailableError(
          StrCat("cannot listen on ", sock.string(), ": ", listener.status().message()));
    }
    admin_listener_ = std::move(*listener);
  }
  VIGO_RETURN_IF_ERROR(WriteAddressFile(run_dir / "vigosrv.addr", listen_address_));
  if (options_.enable_watcher) {
    RotationWatcherOptions wo;
    if (backend_->Name() == "local") wo.watch_dir = cfg_.SecretsDir();
    wo.poll_interval = options_.poll_interval;
    wo.debounce = options_.debounce;
    // A failed previous reload is retried at every check, the version poll
    // included: the operator may have added the missing secret, and a backend
    // without a file watch (isopass) is only ever seen recovering by the poll.
    VIGO_ASSIGN_OR_RETURN(watcher_, RotationWatcher::Start(wo, [this](const char* why) {
                            if (policy_->last_reload_failed() || policy_->VersionsChanged()) {
                              Log(LogLevel::kInfo, "rotation detected", {{"why", why}});
                              (void)Reload(StrCat("watcher: ", why));
                            }
                          }));
  }
  Log(LogLevel::kInfo, "serving",
      {{"listen", listen_address_},
       {"admin", options_.enable_admin ? cfg_.AdminSocket().string() : std::string("off")},
       {"backend", std::string(backend_->Name())},
       {"epoch", epoch()}});
  return absl::OkStatus();
}

void VigoServer::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  // The watcher first: no reload starts while the services shut down.
  if (watcher_) watcher_->Stop();
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  // Probe, then gate: no connection is handed to agent_server_ while or after
  // it shuts down (the acceptor would neither serve nor close it).
  if (liveness_) liveness_->Stop();
  if (agent_listener_) agent_listener_->Stop();
  if (agent_server_) agent_server_->Shutdown(deadline);
  // The listener first (joins its thread, unlinks admin.sock): no connection
  // is handed to admin_server_ while or after it shuts down.
  if (admin_listener_) admin_listener_->Stop();
  if (admin_server_) admin_server_->Shutdown(deadline);
  if (agent_server_) Log(LogLevel::kInfo, "stopped");
  done_cv_.notify_all();
}

void VigoServer::Wait() {
  std::unique_lock<std::mutex> lock(done_mu_);
  done_cv_.wait(lock, [this] { return shutdown_; });
}

}  // namespace vigo::server::service
