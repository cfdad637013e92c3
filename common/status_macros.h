// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef VIGO_COMMON_STATUS_MACROS_H_
#define VIGO_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VIGO_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::absl::Status vigo_status_ = (expr);   \
    if (!vigo_status_.ok()) return vigo_status_; \
  } while (0)

#define VIGO_CONCAT_INNER_(a, b) a##b
#define VIGO_CONCAT_(a, b) VIGO_CONCAT_INNER_(a, b)
#define VIGO_ASSIGN_OR_RETURN(lhs, expr) \
  VIGO_ASSIGN_OR_RETURN_IMPL_(VIGO_CONCAT_(vigo_statusor_, __LINE__), lhs, expr)
#define VIGO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()

#endif  // VIGO_COMMON_STATUS_MACROS_H_
