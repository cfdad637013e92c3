// The values one ResolveSecrets reply carries: the longest prefix of the
// call's refs (in request order) whose sealed values fit one message, read
// from the backend; the rest are deferred (the agent asks again). A value
// that cannot be served — missing, refused by the vault, the backend down,
// or larger than any reply — ends the read with the status the agent gets,
// which names the ref (the envoy is entitled to it, so naming it tells it
// nothing new and lets its operator act).
//
//   auto values = ReadReplyValues(backend, req.refs(), rid, envoy);
//   if (!values.ok()) return fail(ToGrpc(values.status()));
//   // values->size() refs are released; the rest are deferred
//
// Thread safety: as the backend.
#ifndef VIGO_SERVER_SERVICE_RESOLVE_VALUES_H_
#define VIGO_SERVER_SERVICE_RESOLVE_VALUES_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sandbox/secret_buffer.h"
#include "server/backend.h"
#include "server/service/agent_service.h"

namespace vigo::server::service {

// A reply must fit in one message. Each SealedValue costs its ref, a 12-byte
// nonce, the value plus a 16-byte tag, and at most 16 bytes of protobuf
// framing; the reply adds the server key, the call id and the epoch. The
// 64 KiB margin keeps the estimate above the real encoded size.
inline constexpr size_t kResolveReplyOverhead = 1024;
inline constexpr size_t kMaxResolveReplyBytes = kMaxAgentMessageBytes - 64 * 1024;
constexpr size_t SealedValueBytes(size_t ref_bytes, size_t value_bytes) {
  return ref_bytes + 12 + value_bytes + 16 + 16;
}

// The first values of `refs` that fit one reply (at least one, or an
// error): UNAVAILABLE (backend down), FAILED_PRECONDITION (the secret no
// longer exists, or its vault file was refused), RESOURCE_EXHAUSTED (a
// value alone is larger than a reply), INTERNAL (any other backend error).
// Each failure is logged at error with `rid` and `envoy`.
absl::StatusOr<std::vector<sandbox::SecretBuffer>> ReadReplyValues(
    SecretBackend& backend, const google::protobuf::RepeatedPtrField<std::string>& refs,
    const std::string& rid, const std::string& envoy);

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_RESOLVE_VALUES_H_
