// The broker's mTLS gRPC client for vigo.v1.VigoAgent.
//
//   VIGO_ASSIGN_OR_RETURN(auto client, AgentClient::Create(opts));
//   VIGO_ASSIGN_OR_RETURN(v1::CheckInResponse r, client->CheckIn(req));
//   VIGO_RETURN_IF_ERROR(client->ResolveInto(bundle, missing_refs, &cache));
//
// ResolveInto asks ResolveSecrets for all `refs` not yet in `cache`, each
// call with a fresh X25519 key (common/seal.h). The server answers with the
// values of the longest prefix of the refs that fits one reply (at least one)
// and says how many it deferred; ResolveInto asks again for those until every
// ref is in `cache`, so a bundle whose values total more than one message is
// resolved in several calls. Each answer must be for the requested epoch and
// carry exactly the prefix it claims, in order; its values are opened
// straight into SecretBuffers in `cache` (nothing of an answer is cached when
// any of its values fails to open). A retry after a failure asks only for
// the refs still missing.
//
// Errors keep the gRPC code (UNAVAILABLE, FAILED_PRECONDITION, PERMISSION_DENIED...)
// so callers can retry or re-check-in. Thread safety: CheckIn, ResolveInto
// and ReportResult may run concurrently (the gRPC stub is thread-safe and the
// calls only read the client's settings); SetDeadlineCap must not race a call.
#ifndef VIGO_AGENT_BROKER_AGENT_CLIENT_H_
#define VIGO_AGENT_BROKER_AGENT_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent-broker/secret_cache.h"
#include "agent-broker/tls_check.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace vigo::broker {

struct ClientOptions {
  std::string server;     // HOST:PORT
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;    // wiped by Create after the credentials are built
  std::string server_name_override;  // TLS name when it differs from HOST
  std::chrono::seconds rpc_timeout{30};
  // Optional (prepared): when a call finds the server unreachable, one TLS
  // handshake of its own tells a permanent failure (a server certificate not
  // for the expected name or not from the CA) from a server that is down.
  std::shared_ptr<const ServerProbe> probe;
};

class AgentClient {
 public:
  static absl::StatusOr<std::unique_ptr<AgentClient>> Create(ClientOptions options);

  absl::StatusOr<v1::CheckInResponse> CheckIn(const v1::CheckInRequest& request);
  absl::Status ResolveInto(const v1::PolicyBundle& bundle, const std::vector<std::string>& refs,
                           SecretCache* cache);
  absl::StatusOr<v1::ReportResultResponse> ReportResult(const v1::ReportResultRequest& request);

  // Calls wait for the channel to become ready (wait_for_ready) until their
  // deadline: now + rpc_timeout, but never past `cap` (the retry budget).
  // A call that finds the server unreachable for 2 s first asks the probe
  // (if any): a permanent TLS failure fails the call at once with
  // FAILED_PRECONDITION naming the cause (not retried); otherwise it logs
  // "server unreachable; waiting for it" (rpc, server) and keeps waiting.
  void SetDeadlineCap(std::chrono::steady_clock::time_point cap) { cap_ = cap; }

 private:
  AgentClient() = default;
  // One ResolveSecrets call for `refs`; returns how many (a prefix) it put
  // into `cache`.
  absl::StatusOr<size_t> ResolveOnce(const v1::PolicyBundle& bundle,
                                     const std::vector<std::string>& refs, SecretCache* cache);
  // `rpc` names the call in the unreachable-server log line.
  absl::StatusOr<std::unique_ptr<grpc::ClientContext>> Context(std::string_view rpc) const;
  std::shared_ptr<grpc::Channel> channel_;
  std::string server_;
  std::unique_ptr<v1::VigoAgent::Stub> stub_;
  std::shared_ptr<const ServerProbe> probe_;
  std::chrono::seconds rpc_timeout_{30};
  std::chrono::steady_clock::time_point cap_ = std::chrono::steady_clock::time_point::max();
};

// grpc::Status → absl::Status (same code, the message is the server's, which
// never holds a value).
absl::Status FromGrpc(const grpc::Status& s, std::string_view rpc);

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_AGENT_CLIENT_H_
