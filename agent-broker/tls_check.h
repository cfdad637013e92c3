// Checks of the agent's TLS setup that tell a permanent misconfiguration from
// a server that is merely down, so the first kind fails at once with one line
// naming the cause (exit 1) instead of being retried like the second until
// --retry-for runs out (issue 13.6).
//
//   TlsFiles files{ca_file, cert_file, key_file};
//   VIGO_RETURN_IF_ERROR(CheckClientCertificate(files, ca_pem, cert_pem));   // before the worker
//   VIGO_ASSIGN_OR_RETURN(ServerProbe probe, ServerProbe::Resolve(server, name));  // before
//   lockdown
//   ...read the key...
//   VIGO_RETURN_IF_ERROR(CheckKeyMatchesCertificate(files, cert_pem, key_pem));
//   VIGO_RETURN_IF_ERROR(probe.Prepare(files, ca_pem, cert_pem, key_pem));
//   absl::Status s = probe.Handshake(2s);   // again whenever the server seems unreachable
//
// Every error is FAILED_PRECONDITION (permanent: fix the flags or the files)
// except Handshake's UNAVAILABLE (no TCP connection or no complete handshake
// in time: may heal, retry as before). Messages name the flag and file, and
// the expected server name; never key material.
//
// Handshake is one TLS handshake with the same CA, certificate, key and
// expected name gRPC will use; it verifies the server's certificate the way
// gRPC does (chain to --ca-file, not expired, the name in its subjectAltName:
// DNS names for a host name, IP addresses for an IP literal). It needs only
// connect/poll/read/write, which the locked-down broker may do; name
// resolution happens in Resolve, before lockdown (glibc may open a netlink
// socket to sort addresses, which the broker's filter forbids).
//
// Thread safety: the functions are reentrant; after Prepare a ServerProbe is
// not modified and Handshake may run on several threads at once (each makes
// its own SSL from the shared context).
#ifndef VIGO_AGENT_BROKER_TLS_CHECK_H_
#define VIGO_AGENT_BROKER_TLS_CHECK_H_

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace vigo::broker {

struct TlsFiles {
  std::string ca_file, cert_file, key_file;  // for messages only
};

// The CA file holds at least one certificate, the certificate file parses,
// and the certificate chains to the CA for client use and is within its
// validity period (so is every certificate of the chain).
absl::Status CheckClientCertificate(const TlsFiles& files, const std::string& ca_pem,
                                    const std::string& cert_pem);

// The key parses (PEM, not encrypted) and is the certificate's key.
absl::Status CheckKeyMatchesCertificate(const TlsFiles& files, const std::string& cert_pem,
                                        const std::string& key_pem);

class ServerProbe {
 public:
  // `server` is --server (HOST:PORT or [V6]:PORT); `name` the --server-name
  // override or empty (then HOST). Never fails: a target it cannot interpret
  // (a gRPC URI such as dns:///h:p) or resolve gives a probe that is
  // disabled (Handshake returns UNAVAILABLE and gRPC's own retries decide).
  static ServerProbe Resolve(const std::string& server, const std::string& name);

  // Builds the TLS context (CA, certificate, key) the handshakes use. The
  // context holds the private key in OpenSSL's heap for the probe's life,
  // as gRPC's channel credentials do for the channel's.
  absl::Status Prepare(const TlsFiles& files, const std::string& ca_pem,
                       const std::string& cert_pem, const std::string& key_pem);

  bool enabled() const { return !addresses_.empty() && ctx_ != nullptr; }
  const std::string& name() const { return name_; }

  // One TLS handshake within `timeout`: OK, FAILED_PRECONDITION (permanent)
  // or UNAVAILABLE (not reachable, no handshake in time, or not enabled).
  absl::Status Handshake(std::chrono::milliseconds timeout) const;

 private:
  struct Address {
    sockaddr_storage addr;
    socklen_t len;
  };
  std::string server_;
  std::string name_;
  std::vector<Address> addresses_;
  TlsFiles files_;
  std::shared_ptr<ssl_ctx_st> ctx_;  // SSL_CTX; shared by copies, used read-only
};

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_TLS_CHECK_H_
