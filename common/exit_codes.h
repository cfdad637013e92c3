// Process exit codes shared by every Vigo binary (CONTRACT §6).
#ifndef VIGO_COMMON_EXIT_CODES_H_
#define VIGO_COMMON_EXIT_CODES_H_

#include "absl/status/status.h"

namespace vigo {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitLocked = 3;      // refused by the unlock gate
inline constexpr int kExitNotFound = 4;
inline constexpr int kExitPermission = 5;  // permission denied

// NOT_FOUND → 4, PERMISSION_DENIED → 5, INVALID_ARGUMENT → 2 is NOT implied
// (bad input is an error, 1); everything else non-OK → 1. The unlock gate's
// refusal is signalled by the caller with kExitLocked explicitly.
int ExitCodeFor(const absl::Status& status);

}  // namespace vigo

#endif  // VIGO_COMMON_EXIT_CODES_H_
