#include "agent-broker/agent_client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "common/seal.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/secret_buffer.h"

namespace vigo::broker {

absl::Status FromGrpc(const grpc::Status& s, std::string_view rpc) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      StrCat(rpc, ": ", s.error_message()));
}

absl::StatusOr<std::unique_ptr<AgentClient>> AgentClient::Create(ClientOptions options) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.ca_pem;
  ssl.pem_cert_chain = options.cert_pem;
  ssl.pem_private_key = options.key_pem;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(ssl);
  // Our copies of the private key are no longer needed.
  sandbox::SecureZero(options.key_pem.data(), options.key_pem.size());
  sandbox::SecureZero(ssl.pem_private_key.data(), ssl.pem_private_key.size());
  if (!creds) return absl::InternalError("cannot build TLS credentials");
  grpc::ChannelArguments args;
  if (!options.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.server_name_override);
  }
  // Our own backoff drives reconnects; keep gRPC's short so a returning
  // server is seen quickly.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  auto channel = grpc::CreateCustomChannel(options.server, creds, args);
  std::unique_ptr<AgentClient> c(new AgentClient());
  c->channel_ = channel;
  c->server_ = options.server;
  c->stub_ = v1::VigoAgent::NewStub(channel);
  c->rpc_timeout_ = options.rpc_timeout;
  c->probe_ = std::move(options.probe);
  return c;
}

absl::StatusOr<std::unique_ptr<grpc::ClientContext>> AgentClient::Context(
    std::string_view rpc) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  // Wait through transient failures (a restarting server) instead of failing
  // fast; the deadline bounds the wait.
  ctx->set_wait_for_ready(true);
  auto now = std::chrono::steady_clock::now();
  auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::min<std::chrono::steady_clock::duration>(rpc_timeout_, cap_ - now));
  budget = std::max(budget, std::chrono::milliseconds(1000));
  ctx->set_deadline(std::chrono::system_clock::now() + budget);
  // wait_for_ready alone would make a call to a dead server wait silently up
  // to its whole deadline; say so after a short probe (within the same budget).
  if (channel_ && channel_->GetState(/*try_to_connect=*/true) != GRPC_CHANNEL_READY &&
      !channel_->WaitForConnected(std::chrono::system_clock::now() +
                                  std::min(budget, std::chrono::milliseconds(2000)))) {
    if (probe_ != nullptr && probe_->enabled()) {
      // Within what is left of this call's deadline, at most 1 s.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          ctx->deadline() - std::chrono::system_clock::now());
      absl::Status p = probe_->Handshake(
          std::clamp(left, std::chrono::milliseconds(100), std::chrono::milliseconds(1000)));
      if (absl::IsFailedPrecondition(p)) return absl::FailedPreconditionError(StrCat(rpc, ": ", p.message()));
    }
    Log(LogLevel::kWarn, "server unreachable; waiting for it",
        {{"rpc", rpc}, {"server", server_}, {"wait_ms", static_cast<int64_t>(budget.count())}});
  }
  return ctx;
}

absl::StatusOr<v1::CheckInResponse> AgentClient::CheckIn(const v1::CheckInRequest& request) {
  v1::CheckInResponse response;
  VIGO_ASSIGN_OR_RETURN(auto ctx, Context("CheckIn"));
  VIGO_RETURN_IF_ERROR(FromGrpc(stub_->CheckIn(ctx.get(), request, &response), "CheckIn"));
  return response;
}

absl::StatusOr<v1::ReportResultResponse> AgentClient::ReportResult(
    const v1::ReportResultRequest& request) {
  v1::ReportResultResponse response;
  VIGO_ASSIGN_OR_RETURN(auto ctx, Context("ReportResult"));
  VIGO_RETURN_IF_ERROR(FromGrpc(stub_->ReportResult(ctx.get(), request, &response), "ReportResult"));
  return response;
}

absl::Status AgentClient::ResolveInto(const v1::PolicyBundle& bundle,
                                      const std::vector<std::string>& refs, SecretCache* cache) {
  std::vector<std::string> remaining;
  for (const std::string& r : refs) {
    if (cache->Find(bundle.secrets_epoch(), r) == nullptr) remaining.push_back(r);
  }
  // Each answer covers at least one more ref, so this ends.
  size_t calls = 0;
  while (!remaining.empty()) {
    VIGO_ASSIGN_OR_RETURN(size_t got, ResolveOnce(bundle, remaining, cache));
    remaining.erase(remaining.begin(), remaining.begin() + static_cast<ptrdiff_t>(got));
    ++calls;
  }
  if (calls > 1) {
    Log(LogLevel::kDebug, "resolve split by size",
        {{"refs", static_cast<int64_t>(refs.size())}, {"calls", static_cast<int64_t>(calls)}});
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> AgentClient::ResolveOnce(const v1::PolicyBundle& bundle,
                                                const std::vector<std::string>& refs,
                                                SecretCache* cache) {
  // A fresh key per call: a recorded response is useless later.
  VIGO_ASSIGN_OR_RETURN(RecipientKey key, RecipientKey::Generate());
  v1::ResolveSecretsRequest request;
  for (const std::string& r : refs) request.add_refs(r);
  request.set_secrets_epoch(bundle.secrets_epoch());
  request.set_recipient_key(key.public_key());
  v1::ResolveSecretsResponse response;
  VIGO_ASSIGN_OR_RETURN(auto ctx, Context("ResolveSecrets"));
  VIGO_RETURN_IF_ERROR(
      FromGrpc(stub_->ResolveSecrets(ctx.get(), request, &response), "ResolveSecrets"));
  if (response.secrets_epoch() != bundle.secrets_epoch()) {
    return absl::FailedPreconditionError("ResolveSecrets: answer for another epoch");
  }
  // The values of a non-empty prefix, the rest deferred: anything else is
  // not an answer to this request.
  const size_t n = static_cast<size_t>(response.values_size());
  if (n == 0 || n > refs.size() || n + response.deferred() != refs.size()) {
    return absl::DataLossError("ResolveSecrets: answer does not cover the request");
  }
  // One key agreement for the whole response, not one per value.
  VIGO_ASSIGN_OR_RETURN(SealOpener opener, key.OpenerFor(response.server_key(), response.call_id()));
  std::vector<sandbox::SecretBuffer> opened;
  opened.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const v1::SealedValue& sv = response.values(static_cast<int>(i));
    if (sv.ref() != refs[i]) {
      return absl::DataLossError(StrCat("ResolveSecrets: unexpected value for ", sv.ref()));
    }
    SealContext ctx_seal{bundle.envoy_name(), response.secrets_epoch(), sv.ref(), response.call_id()};
    SealedBox box{sv.nonce(), sv.ciphertext()};
    VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v, opener.Open(ctx_seal, box));
    opened.push_back(std::move(v));
  }
  for (size_t i = 0; i < n; ++i)
    cache->Put(response.secrets_epoch(), refs[i], std::move(opened[i]));
  Log(LogLevel::kDebug, "resolved",
      {{"count", static_cast<int64_t>(n)},
       {"deferred", static_cast<int64_t>(response.deferred())},
       {"epoch", response.secrets_epoch()},
       {"call_id", response.call_id()}});
  return n;
}

}  // namespace vigo::broker
