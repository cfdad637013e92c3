// errno → absl::Status, used only inside sandbox/ wrappers (house rule: errno
// becomes a Status only here).
#ifndef VIGO_SANDBOX_SYSCALL_STATUS_H_
#define VIGO_SANDBOX_SYSCALL_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace vigo::sandbox {

// "<what> <subject>: <strerror(err)>", with a code derived from errno
// (ENOENT → NOT_FOUND, EACCES/EPERM → PERMISSION_DENIED, ENOSPC →
// RESOURCE_EXHAUSTED, EEXIST → ALREADY_EXISTS, else INTERNAL).
// SECURITY: `subject` must be a path or name, never a value.
absl::Status ErrnoStatus(int err, std::string_view what, std::string_view subject = {});

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_SYSCALL_STATUS_H_
