#include "agent-broker/tls_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/strings.h"
#include "sandbox/unique_fd.h"

namespace vigo::broker {
namespace {

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

// Leaves OpenSSL's per-thread error queue empty on every return: a stale
// entry would be blamed on the next unrelated call (gRPC's own TLS code).
struct ClearErrors {
  ~ClearErrors() { ERR_clear_error(); }
};

// Every certificate in `pem`, in order.
std::vector<Ptr<X509>> ReadCerts(const std::string& pem) {
  std::vector<Ptr<X509>> out;
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();  // the loop ends on "no start line"
  return out;
}

// No passphrase prompt on the operator's terminal: an encrypted key fails.
int NoPassphrase(char*, int, int, void*) { return 0; }

bool IssuerError(long err) {
  return err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
         err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
         err == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
         err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
         err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || err == X509_V_ERR_CERT_SIGNATURE_FAILURE;
}

// The cause of a failed verification of `what` (a phrase naming the
// certificate) against --ca-file, as one clause.
std::string VerifyCause(long err, const std::string& what, const TlsFiles& files,
                        const std::string& name) {
  if (IssuerError(err)) {
    return StrCat(what, " is not signed by the CA in --ca-file ", files.ca_file,
                  " (the CA does not match)");
  }
  if (err == X509_V_ERR_CERT_HAS_EXPIRED) return StrCat(what, " has expired");
  if (err == X509_V_ERR_CERT_NOT_YET_VALID) return StrCat(what, " is not valid yet");
  if (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    return StrCat(what, " is not valid for the name '", name,
                  "' (check --server, or set --server-name to a name in the certificate)");
  }
  return StrCat(what, " does not verify against --ca-file ", files.ca_file, ": ",
                X509_verify_cert_error_string(err));
}

// Loads `ca_pem` into a new store; FAILED_PRECONDITION when it has no certificate.
absl::StatusOr<Ptr<X509_STORE>> CaStore(const TlsFiles& files, const std::string& ca_pem) {
  std::vector<Ptr<X509>> cas = ReadCerts(ca_pem);
  if (cas.empty()) {
    return absl::FailedPreconditionError(
        StrCat("--ca-file ", files.ca_file, ": no PEM certificate in it"));
  }
  Ptr<X509_STORE> store(X509_STORE_new());
  if (!store) return absl::InternalError("X509_STORE_new");
  for (auto& c : cas) {
    if (X509_STORE_add_cert(store.get(), c.get()) != 1)
      return absl::InternalError("X509_STORE_add_cert");
  }
  return store;
}

bool IsIpLiteral(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// A non-blocking TCP connection to one of `addresses` by `deadline`.
sandbox::UniqueFd Connect(const std::vector<sockaddr_storage>& addrs,
                          const std::vector<socklen_t>& lens,
                          std::chrono::steady_clock::time_point deadline) {
  for (size_t i = 0; i < addrs.size(); ++i) {
    sandbox::UniqueFd fd(
        ::socket(addrs[i].ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) continue;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addrs[i]), lens[i]) != 0) {
      if (errno != EINPROGRESS) continue;
      struct pollfd p = {fd.get(), POLLOUT, 0};
      int rc;
      do {
        rc = ::poll(&p, 1, RemainingMs(deadline));
      } while (rc < 0 && errno == EINTR);
      int err = 0;
      socklen_t len = sizeof(err);
      if (rc <= 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        continue;
      }
    }
    return fd;
  }
  return sandbox::UniqueFd();
}

// Alerts by which a server says it will not take this envoy's certificate.
bool RefusedCertificate(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
  switch (ERR_GET_REASON(e)) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

const char* Reason(unsigned long e) {
  const char* r = ERR_reason_error_string(e);
  return r != nullptr ? r : "unknown TLS error";
}

}  // namespace

absl::Status CheckClientCertificate(const TlsFiles& files, const std::string& ca_pem,
                                    const std::string& cert_pem) {
  ClearErrors clear;
  auto store = CaStore(files, ca_pem);
  if (!store.ok()) return store.status();
  std::vector<Ptr<X509>> certs = ReadCerts(cert_pem);
  if (certs.empty()) {
    return absl::FailedPreconditionError(
        StrCat("--cert-file ", files.cert_file, ": no PEM certificate in it"));
  }
  Ptr<STACK_OF(X509)> chain(sk_X509_new_null());
  if (!chain) return absl::InternalError("sk_X509_new_null");
  for (size_t i = 1; i < certs.size(); ++i) {
    if (sk_X509_push(chain.get(), certs[i].get()) == 0) return absl::InternalError("sk_X509_push");
    certs[i].release();  // owned by the stack now
  }
  Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store->get(), certs[0].get(), chain.get()) != 1) {
    return absl::InternalError("X509_STORE_CTX_init");
  }
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();
  const long err = X509_STORE_CTX_get_error(ctx.get());
  return absl::FailedPreconditionError(
      VerifyCause(err, StrCat("the certificate in --cert-file ", files.cert_file), files, ""));
}

absl::Status CheckKeyMatchesCertificate(const TlsFiles& files, const std::string& cert_pem,
                                        const std::string& key_pem) {
  ClearErrors clear;
  std::vector<Ptr<X509>> certs = ReadCerts(cert_pem);
  if (certs.empty()) {
    return absl::FailedPreconditionError(
        StrCat("--cert-file ", files.cert_file, ": no PEM certificate in it"));
  }
  // A read-only view of the caller's buffer: no copy of the key is made here.
  Ptr<BIO> bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  if (!bio) return absl::InternalError("BIO_new_mem_buf");
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    return absl::FailedPreconditionError(
        StrCat("--key-file ", files.key_file, ": not a PEM private key (or an encrypted one)"));
  }
  if (X509_check_private_key(certs[0].get(), key.get()) != 1) {
    return absl::FailedPreconditionError(
        StrCat("--key-file ", files.key_file, " is not the key of the certificate in --cert-file ",
               files.cert_file, " (they do not match)"));
  }
  return absl::OkStatus();
}

ServerProbe ServerProbe::Resolve(const std::string& server, const std::string& name) {
  ServerProbe p;
  p.server_ = server;
  // gRPC URIs (dns:///h:p, ipv4:, unix:...) are left to gRPC.
  if (server.find("://") != std::string::npos || server.rfind("unix:", 0) == 0 ||
      server.rfind("ipv4:", 0) == 0 || server.rfind("ipv6:", 0) == 0 ||
      server.rfind("dns:", 0) == 0) {
    return p;
  }
  std::string host, port;
  if (!server.empty() && server[0] == '[') {
    size_t close = server.find(']');
    if (close == std::string::npos || close + 1 >= server.size() || server[close + 1] != ':')
      return p;
    host = server.substr(1, close - 1);
    port = server.substr(close + 2);
  } else {
    size_t colon = server.rfind(':');
    if (colon == std::string::npos || server.find(':') != colon) return p;
    host = server.substr(0, colon);
    port = server.substr(colon + 1);
  }
  if (host.empty() || port.empty()) return p;
  p.name_ = name.empty() ? host : name;
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return p;
  for (struct addrinfo* a = res; a != nullptr && p.addresses_.size() < 8; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Address addr{};
    std::memcpy(&addr.addr, a->ai_addr, a->ai_addrlen);
    addr.len = a->ai_addrlen;
    p.addresses_.push_back(addr);
  }
  ::freeaddrinfo(res);
  return p;
}

absl::Status ServerProbe::Prepare(const TlsFiles& files, const std::string& ca_pem,
                                  const std::string& cert_pem, const std::string& key_pem) {
  ClearErrors clear;
  files_ = files;
  auto store = CaStore(files, ca_pem);
  if (!store.ok()) return store.status();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return absl::InternalError("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_cert_store(ctx.get(), store->release());  // the context owns it now
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  std::vector<Ptr<X509>> certs = ReadCerts(cert_pem);
  Ptr<BIO> bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  Ptr<EVP_PKEY> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr)
                        : nullptr);
  if (certs.empty() || !key || SSL_CTX_use_certificate(ctx.get(), certs[0].get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1) {
    return absl::FailedPreconditionError(
        StrCat("--key-file ", files.key_file, " does not go with --cert-file ", files.cert_file));
  }
  for (size_t i = 1; i < certs.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), certs[i].get()) != 1) {
      return absl::InternalError("SSL_CTX_add1_chain_cert");
    }
  }
  ctx_ = std::move(ctx);
  return absl::OkStatus();
}

absl::Status ServerProbe::Handshake(std::chrono::milliseconds timeout) const {
  if (!enabled()) return absl::UnavailableError("no address to probe");
  ClearErrors clear;
  const TlsFiles& files = files_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<sockaddr_storage> addrs;
  std::vector<socklen_t> lens;
  for (const Address& a : addresses_) {
    addrs.push_back(a.addr);
    lens.push_back(a.len);
  }
  sandbox::UniqueFd fd = Connect(addrs, lens, deadline);
  if (!fd) return absl::UnavailableError(StrCat(server_, " is not reachable"));
  Ptr<SSL> ssl(SSL_new(ctx_.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) return absl::InternalError("SSL_new");
  if (IsIpLiteral(name_)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name_.c_str()) != 1) {
      return absl::InternalError("X509_VERIFY_PARAM_set1_ip_asc");
    }
  } else {
    if (SSL_set1_host(ssl.get(), name_.c_str()) != 1 ||
        SSL_set_tlsext_host_name(ssl.get(), name_.c_str()) != 1) {
      return absl::InternalError("SSL_set1_host");
    }
  }
  for (;;) {
    const int rc = SSL_connect(ssl.get());
    if (rc == 1) return absl::OkStatus();
    const int err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      struct pollfd p = {fd.get(),
                         static_cast<short>(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
      int prc;
      do {
        prc = ::poll(&p, 1, RemainingMs(deadline));
      } while (prc < 0 && errno == EINTR);
      if (prc <= 0) {
        return absl::UnavailableError(StrCat(server_, ": no TLS handshake within ",
                                             static_cast<int64_t>(timeout.count()), " ms"));
      }
      continue;
    }
    const long verify = SSL_get_verify_result(ssl.get());
    // (OpenSSL keeps the peer certificate only once it verified, so the
    // verify result, X509_V_OK until a chain was checked, is what tells.)
    if (verify != X509_V_OK) {
      return absl::FailedPreconditionError(
          VerifyCause(verify, StrCat("the certificate of the server ", server_), files, name_));
    }
    const unsigned long e = ERR_peek_last_error();
    if (err == SSL_ERROR_SSL && RefusedCertificate(e)) {
      return absl::FailedPreconditionError(StrCat("the server ", server_,
                                                  " refused this envoy's certificate (--cert-file ",
                                                  files.cert_file, "): ", Reason(e)));
    }
    // Anything else (a reset, EOF, not TLS) may be a server that is starting
    // or overloaded: left to the retries.
    return absl::UnavailableError(
        StrCat(server_, ": TLS handshake failed: ", e != 0 ? Reason(e) : "connection closed"));
  }
}

}  // namespace vigo::broker
