// Fuzz target for the isopass response parsers: arbitrary bytes as the body of
// POST /api/client/search, POST /api/auth/token and GET /api/client/me. The
// parsers must return a Status for any input (never crash, hang or read out of
// bounds) and every secret they accept must be self-consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "server/isopass/isopass_parse.h"

using vigo::sandbox::SecretBuffer;
using vigo::server::isopass::ParseMeResponse;
using vigo::server::isopass::ParseSearchResponse;
using vigo::server::isopass::ParseTokenResponse;
using vigo::server::isopass::SecretKind;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (size_t{1} << 20)) return 0;
  std::span<const uint8_t> input(data, size);
  auto body = SecretBuffer::CopyFrom(input);
  if (!body.ok()) return 0;
  auto token_body = body->Clone();
  auto me_body = body->Clone();

  auto secrets = ParseSearchResponse(std::move(*body), 64);
  if (secrets.ok()) {
    if (secrets->size() >= 64) std::abort();  // count == limit must be an error
    for (const auto& s : *secrets) {
      if (s.name.empty()) std::abort();
      if (!s.value_error.empty() && !s.fields.empty()) std::abort();
      if (s.kind == SecretKind::kRaw && !s.fields.empty()) std::abort();
      for (size_t i = 1; i < s.fields.size(); ++i) {
        if (!(s.fields[i - 1].first < s.fields[i].first)) std::abort();  // sorted, unique
      }
    }
  }
  if (token_body.ok()) {
    auto grant = ParseTokenResponse(std::move(*token_body));
    if (grant.ok()) {
      if (grant->token.empty()) std::abort();
      for (uint8_t c : grant->token.Reveal()) {
        if (c < 0x21 || c > 0x7e) std::abort();
      }
    }
  }
  if (me_body.ok()) (void)ParseMeResponse(std::move(*me_body));
  return 0;
}
