// The two status-propagation macros that abseil 20220623 lacks.
//
//   DISTD_RETURN_IF_ERROR(DoThing());
//   DISTD_ASSIGN_OR_RETURN(auto value, ComputeValue());
//
// Both evaluate their argument exactly once and return the failing absl::Status
// from the enclosing function, which must return absl::Status or absl::StatusOr<T>.
#ifndef DISTD_COMMON_STATUS_MACROS_H_
#define DISTD_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DISTD_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status distd_status_ = (expr);         \
    if (!distd_status_.ok()) return distd_status_; \
  } while (false)

#define DISTD_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define DISTD_STATUS_MACROS_CONCAT_(a, b) DISTD_STATUS_MACROS_CONCAT_INNER_(a, b)

#define DISTD_ASSIGN_OR_RETURN(lhs, expr) \
  DISTD_ASSIGN_OR_RETURN_IMPL_(DISTD_STATUS_MACROS_CONCAT_(distd_statusor_, __LINE__), lhs, expr)

#define DISTD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // DISTD_COMMON_STATUS_MACROS_H_
