// Scrubbing of command output before it leaves the worker.
//
//   std::string safe = ScrubOutput(output.Reveal(), values.Resolved());
//
// Every occurrence of a value in its raw, lower/upper hex, base64 (standard
// and URL alphabets, at every byte alignment inside a longer base64 stream),
// URL-encoded and JSON-escaped forms is replaced by "[REDACTED]". A fragment
// of at least 4 bytes of a form cut off at either end of `output` (output
// truncated by the capture cap) is also redacted.
//
// SECURITY: the forms are built in SecretBuffers; only scrubbed bytes are ever
// copied into the returned string. Values of fewer than 1 byte are ignored.
#ifndef VIGO_AGENT_WORKER_SCRUB_H_
#define VIGO_AGENT_WORKER_SCRUB_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sandbox/secret_buffer.h"

namespace vigo::worker {

inline constexpr std::string_view kRedacted = "[REDACTED]";

std::string ScrubOutput(std::span<const uint8_t> output,
                        const std::vector<const sandbox::SecretBuffer*>& values);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_SCRUB_H_
