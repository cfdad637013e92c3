// VigoAgent: the three RPCs an envoy calls (CheckIn, ResolveSecrets,
// ReportResult), over mutual TLS. Caller identity comes from
// caller_identity.h, policy from the server's PolicyStore, every record from
// the server's audit writer; this file holds the handlers only.
//
//   std::unique_ptr<v1::VigoAgent::Service> svc = NewAgentService(&server);
//   builder.RegisterService(svc.get());
//   builder.SetMaxReceiveMessageSize(kMaxAgentMessageBytes);
//
// Thread safety: the service is called concurrently by gRPC; it is safe.
#ifndef VIGO_SERVER_SERVICE_AGENT_SERVICE_H_
#define VIGO_SERVER_SERVICE_AGENT_SERVICE_H_

#include <memory>

#include "vigo/v1/agent.grpc.pb.h"

namespace vigo::server::service {

class VigoServer;

// The largest request the agent port accepts (and the bound a
// ResolveSecrets reply is sized against).
inline constexpr int kMaxAgentMessageBytes = 4 * 1024 * 1024;

// `server` must outlive the service and have started (text_fingerprinter()).
std::unique_ptr<v1::VigoAgent::Service> NewAgentService(VigoServer* server);

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_AGENT_SERVICE_H_
