// Parsers for isopass HTTP response bodies. Every body arrives in a
// SecretBuffer (locked memory) and is parsed in place with RapidJSON's in-situ
// mode: decoded strings and (with numbers-as-strings) numbers stay inside the
// locked body, and each value that Vigo needs is copied straight into its own
// SecretBuffer. The body is zeroed before these functions return.
//
//   VIGO_ASSIGN_OR_RETURN(std::vector<ParsedSecret> secrets,
//                         ParseSearchResponse(std::move(body), /*limit=*/1000));
//   for (const ParsedSecret& s : secrets) { ... s.raw.Reveal() ... }
//
// Errors are UNAVAILABLE ("isopass response to <what> is not valid JSON (...)
// at byte N", "... is not a JSON array", "... element 3 has no string 'name'")
// or FAILED_PRECONDITION for a result count equal to the limit (possible
// truncation). They name the endpoint, a byte offset, a secret name or a
// field name, never a value. These functions never crash on arbitrary bytes
// (fuzzed by tests/fuzz/isopass_parser_fuzz.cc).
//
// Residual exposure: RapidJSON keeps the document's structure (member and
// element tables: pointers and lengths into the body) in its heap pool; no
// string or number content is copied there. Thread safety: pure functions.
#ifndef VIGO_SERVER_ISOPASS_ISOPASS_PARSE_H_
#define VIGO_SERVER_ISOPASS_ISOPASS_PARSE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::isopass {

// "2026-11-28T11:00:00Z", "2026-11-28T11:00:00.123+02:00" (RFC 3339;
// 't'/'z' accepted in lower case). INVALID_ARGUMENT on anything else.
absl::StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

struct TokenGrant {
  sandbox::SecretBuffer token;  // printable ASCII, no spaces
  std::chrono::system_clock::time_point expires_at;
};

// POST /api/auth/token → {"token": "...", "expires_at": "<RFC 3339>"}.
absl::StatusOr<TokenGrant> ParseTokenResponse(sandbox::SecretBuffer body);

// GET /api/client/me → a JSON object (its content is not used beyond the
// shape check; `email` is not logged).
absl::Status ParseMeResponse(sandbox::SecretBuffer body);

enum class SecretKind { kRaw, kUsernamePassword, kKeyValuePair, kTlsBundle };

// The kind for an isopass `type` string (anything unknown is kRaw).
SecretKind KindOfType(std::string_view type);

struct ParsedSecret {
  std::string name;          // isopass secret name (not secret)
  std::string type;          // as reported by isopass
  std::string organization;  // for messages about duplicate names
  SecretKind kind = SecretKind::kRaw;
  // From `version` (an unsigned integer or a string of digits), else from
  // `updated_at` (RFC 3339, as microseconds since the Unix epoch).
  std::optional<uint64_t> service_version;
  // kRaw: the value. A JSON string value is its decoded bytes; a number is its
  // literal text; true/false are "true"/"false".
  sandbox::SecretBuffer raw;
  // Structured kinds: field name → value, sorted by name. A structured value
  // may be a JSON object or a JSON string that holds one. Members that are
  // strings, numbers or booleans become fields; tls_bundle's `ca_chain` may
  // also be an array of strings (joined with '\n').
  std::vector<std::pair<std::string, sandbox::SecretBuffer>> fields;
  // Non-empty when the value cannot be served (missing, wrong JSON shape,
  // duplicate field). Names the problem, never the value.
  std::string value_error;
};

// POST /api/client/search → a JSON array of secrets. A result count equal to
// `limit` is FAILED_PRECONDITION (possible truncation), never silent loss.
absl::StatusOr<std::vector<ParsedSecret>> ParseSearchResponse(sandbox::SecretBuffer body,
                                                              size_t limit);

}  // namespace vigo::server::isopass

#endif  // VIGO_SERVER_ISOPASS_ISOPASS_PARSE_H_
