// Random ids and the wall clock, one implementation each.
//
//   VIGO_ASSIGN_OR_RETURN(std::string rid, vocab::RandomHexId(8));  // 16 hex digits
//   std::string run = vocab::NewRunId();                            // 32 hex digits
//   int64_t ms = vocab::NowUnixMs();
//
// RandomHexId fails (INTERNAL) when the random generator does: callers that
// need unpredictability (request and call ids) must not go on without it.
// NewRunId never fails: a run id only has to be unique, so when the generator
// fails it is built from the time in ms, the pid and a per-process counter
// (still 32 hex digits, still valid for ValidateRunId).
//
// Thread safety: all functions are thread-safe.
#ifndef VIGO_VOCAB_IDS_H_
#define VIGO_VOCAB_IDS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace vigo::vocab {

// `bytes` random bytes as 2*bytes lower-case hex digits (bytes <= 64).
absl::StatusOr<std::string> RandomHexId(size_t bytes);

// A run id: 16 random bytes as 32 lower-case hex digits.
std::string NewRunId();

// Milliseconds since the Unix epoch (CLOCK_REALTIME).
int64_t NowUnixMs();

}  // namespace vigo::vocab

#endif  // VIGO_VOCAB_IDS_H_
