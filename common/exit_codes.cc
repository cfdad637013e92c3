#include "common/exit_codes.h"

namespace vigo {

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kPermissionDenied:
      return kExitPermission;
    default:
      return kExitError;
  }
}

}  // namespace vigo
