#include "server/service/resolve_values.h"

#include "common/log.h"
#include "common/strings.h"

namespace vigo::server::service {

absl::StatusOr<std::vector<sandbox::SecretBuffer>> ReadReplyValues(
    SecretBackend& backend, const google::protobuf::RepeatedPtrField<std::string>& refs,
    const std::string& rid, const std::string& envoy) {
  std::vector<sandbox::SecretBuffer> values;
  values.reserve(static_cast<size_t>(refs.size()));
  size_t reply_bytes = kResolveReplyOverhead;
  for (const std::string& ref : refs) {
    auto value = backend.Get(ref);
    if (!value.ok()) {
      Log(LogLevel::kError, "resolve: backend read failed",
          {{"req", rid}, {"envoy", envoy}, {"path", ref}, {"status", value.status()}});
      if (absl::IsUnavailable(value.status())) {
        return absl::UnavailableError("secret backend unavailable");
      }
      if (absl::IsNotFound(value.status())) {
        return absl::FailedPreconditionError(
            StrCat("secret '", ref,
                   "' is referenced by this envoy's bundle but no longer exists on the server "
                   "(deleted from the vault); the operator must store it again or change the "
                   "stacks"));
      }
      if (absl::IsDataLoss(value.status()) || absl::IsFailedPrecondition(value.status())) {
        // A tampered, rolled-back or unreadable vault file: the server log
        // has the details; the agent learns which of its secrets.
        return absl::FailedPreconditionError(
            StrCat("secret '", ref,
                   "' cannot be served: its vault file was refused (see the server log)"));
      }
      return absl::InternalError("secret backend error");
    }
    const size_t sealed = SealedValueBytes(ref.size(), value->size());
    if (reply_bytes + sealed > kMaxResolveReplyBytes) {
      if (values.empty()) {
        // Alone in a reply and still too big: no split can deliver it.
        Log(LogLevel::kError, "resolve: a value is larger than any reply",
            {{"req", rid}, {"envoy", envoy}, {"path", ref}, {"bytes", value->size()}});
        return absl::ResourceExhaustedError(
            StrCat("secret '", ref, "' is ", value->size(),
                   " bytes, more than one ResolveSecrets reply can carry (",
                   kMaxResolveReplyBytes - kResolveReplyOverhead,
                   " bytes with its framing); it can never be delivered: store a smaller value"));
      }
      // This value (wiped now) and the rest are deferred: the call holds at
      // most one reply's worth, plus one value, of plaintext.
      break;
    }
    reply_bytes += sealed;
    values.push_back(std::move(value).value());
  }
  return values;
}

}  // namespace vigo::server::service
