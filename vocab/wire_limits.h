// Limits every process must agree on, stated once (issue 16). A value one
// side accepts and the other refuses fails far from its cause: a 2 MiB
// isopass value once made the broker end itself on every run, blaming the
// worker, because the server served what the agent IPC could not carry.
//
//   if (value.size() > vocab::kMaxSecretValueBytes) return TooLarge(path);
//
// Header-only constants.
#ifndef VIGO_VOCAB_WIRE_LIMITS_H_
#define VIGO_VOCAB_WIRE_LIMITS_H_

#include <cstddef>

namespace vigo::vocab {

// One secret value, in every backend (local vault files, isopass), the
// server's ResolveSecrets reply, the broker's cache and the worker IPC.
inline constexpr size_t kMaxSecretValueBytes = size_t{1} << 20;  // 1 MiB

// Refs in one ResolveSecrets call (server check, broker batching) and in one
// worker kResolveBatch.
inline constexpr size_t kMaxRefsPerCall = 256;

// Results in one run report: the server refuses more, the broker refuses a
// worker report with more, and the stacks compiler refuses a bundle with
// more resources (its runs could never be reported).
inline constexpr int kMaxReportResults = 10000;

}  // namespace vigo::vocab

#endif  // VIGO_VOCAB_WIRE_LIMITS_H_
