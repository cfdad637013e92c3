#include "sandbox/syscall_status.h"

#include <cerrno>
#include <cstring>

#include "common/strings.h"

namespace vigo::sandbox {

absl::Status ErrnoStatus(int err, std::string_view what, std::string_view subject) {
  std::string msg = subject.empty() ? StrCat(what, ": ", std::strerror(err))
                                    : StrCat(what, " ", subject, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
      return absl::ResourceExhaustedError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EINVAL:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace vigo::sandbox
