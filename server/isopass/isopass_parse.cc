#include "server/isopass/isopass_parse.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <span>

#include "common/status_macros.h"
#include "common/strings.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace vigo::server::isopass {
namespace {

using sandbox::SecretBuffer;
// uint8_t code units: string values are spans over the locked body, so no
// char/uint8_t reinterpretation is needed anywhere in this file.
using Encoding = rapidjson::UTF8<uint8_t>;
using Document = rapidjson::GenericDocument<Encoding>;
using Value = rapidjson::GenericValue<Encoding>;

// In situ (strings decoded inside the body), numbers kept as their literal
// text inside the body (never converted to doubles in the heap pool), and the
// iterative parser so that deep nesting cannot exhaust the C++ stack.
constexpr unsigned kParseFlags = rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag;

absl::Status Malformed(std::string_view what, std::string_view problem) {
  return absl::UnavailableError(StrCat("isopass response to ", what, " ", problem));
}

// In-situ parsing reads up to a NUL terminator: refuse NUL bytes inside the
// body (they would hide trailing content) and append one.
absl::Status ParseInPlace(Document& doc, SecretBuffer& body, std::string_view what) {
  const size_t n = body.size();
  if (n != 0 && std::memchr(body.Reveal().data(), 0, n) != nullptr) {
    return Malformed(what, "contains a NUL byte");
  }
  VIGO_RETURN_IF_ERROR(body.Resize(n + 1));
  body.RevealMutable()[n] = 0;
  doc.ParseInsitu<kParseFlags>(body.RevealMutable().data());
  if (doc.HasParseError()) {
    return Malformed(what,
                     StrCat("is not valid JSON (", rapidjson::GetParseError_En(doc.GetParseError()),
                            " at byte ", static_cast<uint64_t>(doc.GetErrorOffset()), ")"));
  }
  return absl::OkStatus();
}

std::span<const uint8_t> Bytes(const Value& v) {
  return {v.GetString(), static_cast<size_t>(v.GetStringLength())};
}

// For names and types only (never values).
std::string NonSecretString(const Value& v) {
  std::span<const uint8_t> b = Bytes(v);
  return std::string(b.begin(), b.end());
}

bool KeyEquals(const Value& name, std::string_view key) {
  std::span<const uint8_t> b = Bytes(name);
  return std::equal(b.begin(), b.end(), key.begin(), key.end(),
                    [](uint8_t a, char c) { return a == static_cast<uint8_t>(c); });
}

const Value* Member(const Value& obj, std::string_view key) {
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    if (KeyEquals(it->name, key)) return &it->value;
  }
  return nullptr;
}

const Value* StringMember(const Value& obj, std::string_view key) {
  const Value* v = Member(obj, key);
  return (v != nullptr && v->IsString()) ? v : nullptr;
}

// A scalar's bytes in a new SecretBuffer: a string's decoded bytes, a number's
// literal text (numbers are parsed as strings), "true"/"false". nullopt for
// null, objects and arrays.
absl::StatusOr<std::optional<SecretBuffer>> ScalarValue(const Value& v) {
  if (v.IsString()) {
    VIGO_ASSIGN_OR_RETURN(SecretBuffer out, SecretBuffer::CopyFrom(Bytes(v)));
    return std::optional<SecretBuffer>(std::move(out));
  }
  if (v.IsBool()) {
    static constexpr uint8_t kTrue[] = {'t', 'r', 'u', 'e'};
    static constexpr uint8_t kFalse[] = {'f', 'a', 'l', 's', 'e'};
    std::span<const uint8_t> lit =
        v.GetBool() ? std::span<const uint8_t>(kTrue) : std::span<const uint8_t>(kFalse);
    VIGO_ASSIGN_OR_RETURN(SecretBuffer out, SecretBuffer::CopyFrom(lit));
    return std::optional<SecretBuffer>(std::move(out));
  }
  return std::optional<SecretBuffer>();
}

// An array of strings joined with '\n' (tls_bundle ca_chain). nullopt when an
// element is not a string.
absl::StatusOr<std::optional<SecretBuffer>> JoinedStrings(const Value& arr) {
  size_t total = 0;
  for (const Value& e : arr.GetArray()) {
    if (!e.IsString()) return std::optional<SecretBuffer>();
    total += e.GetStringLength() + 1;
  }
  if (total > 0) total -= 1;
  VIGO_ASSIGN_OR_RETURN(SecretBuffer out, SecretBuffer::Create(total));
  size_t pos = 0;
  std::span<uint8_t> dst = out.RevealMutable();
  for (const Value& e : arr.GetArray()) {
    if (pos != 0) dst[pos++] = '\n';
    std::span<const uint8_t> b = Bytes(e);
    if (!b.empty()) std::memcpy(dst.data() + pos, b.data(), b.size());
    pos += b.size();
  }
  return std::optional<SecretBuffer>(std::move(out));
}

std::optional<uint64_t> ParseUnsigned(std::span<const uint8_t> digits) {
  if (digits.empty() || digits.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (uint8_t c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = c - '0';
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<uint64_t> ServiceVersion(const Value& item) {
  if (const Value* v = StringMember(item, "version")) {
    // A JSON number arrives as its literal text (numbers-as-strings).
    if (auto n = ParseUnsigned(Bytes(*v))) return n;
  }
  if (const Value* u = StringMember(item, "updated_at")) {
    auto t = ParseRfc3339(NonSecretString(*u));
    if (t.ok()) {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(t->time_since_epoch());
      if (us.count() >= 0) return static_cast<uint64_t>(us.count());
    }
  }
  return std::nullopt;
}

// Fills `out.fields` from a structured value: a JSON object, or a JSON string
// that holds one (decoded in place, then parsed in place again).
absl::Status ExtractFields(const Value& value, ParsedSecret& out) {
  const Value* obj = &value;
  Document nested;
  if (value.IsString()) {
    // In-situ strings are NUL-terminated inside the body; a number parsed as a
    // string is not, and a decoded "\u0000" would cut the text short.
    std::span<const uint8_t> b = Bytes(value);
    const bool terminated = b.data()[b.size()] == 0;
    if (!terminated || std::memchr(b.data(), 0, b.size()) != nullptr) {
      out.value_error = "has a value that is not a JSON object";
      return absl::OkStatus();
    }
    // The string's bytes are inside the mutable body owned by our caller.
    nested.ParseInsitu<kParseFlags>(const_cast<uint8_t*>(b.data()));
    if (nested.HasParseError()) {
      out.value_error = StrCat("has a value that is not valid JSON (",
                               rapidjson::GetParseError_En(nested.GetParseError()), " at byte ",
                               static_cast<uint64_t>(nested.GetErrorOffset()), ")");
      return absl::OkStatus();
    }
    obj = &nested;
  }
  if (!obj->IsObject()) {
    out.value_error = "has a value that is not a JSON object";
    return absl::OkStatus();
  }
  for (auto it = obj->MemberBegin(); it != obj->MemberEnd(); ++it) {
    std::optional<SecretBuffer> v;
    if (it->value.IsArray() && out.kind == SecretKind::kTlsBundle &&
        KeyEquals(it->name, "ca_chain")) {
      VIGO_ASSIGN_OR_RETURN(v, JoinedStrings(it->value));
    } else {
      VIGO_ASSIGN_OR_RETURN(v, ScalarValue(it->value));
    }
    if (!v.has_value()) continue;  // null, nested object: not addressable
    out.fields.emplace_back(NonSecretString(it->name), std::move(*v));
  }
  std::sort(out.fields.begin(), out.fields.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < out.fields.size(); ++i) {
    if (out.fields[i].first == out.fields[i - 1].first) {
      out.value_error = StrCat("has field '", out.fields[i].first, "' twice");
      out.fields.clear();
      return absl::OkStatus();
    }
  }
  switch (out.kind) {
    case SecretKind::kUsernamePassword:
      for (std::string_view need : {"username", "password"}) {
        bool found = std::any_of(out.fields.begin(), out.fields.end(),
                                 [&](const auto& f) { return f.first == need; });
        if (!found) {
          out.value_error = StrCat("has no '", need, "' field");
          out.fields.clear();
          return absl::OkStatus();
        }
      }
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<ParsedSecret> ParseItem(const Value& item, size_t index) {
  constexpr std::string_view kWhat = "POST /api/client/search";
  if (!item.IsObject()) {
    return Malformed(
        kWhat, StrCat("has element ", static_cast<uint64_t>(index), " that is not a JSON object"));
  }
  ParsedSecret out;
  const Value* name = StringMember(item, "name");
  if (name == nullptr || name->GetStringLength() == 0) {
    return Malformed(
        kWhat, StrCat("has element ", static_cast<uint64_t>(index), " without a string 'name'"));
  }
  out.name = NonSecretString(*name);
  const Value* type = StringMember(item, "type");
  if (type == nullptr) {
    return Malformed(kWhat, StrCat("has secret '", out.name, "' without a string 'type'"));
  }
  out.type = NonSecretString(*type);
  out.kind = KindOfType(out.type);
  if (const Value* org = StringMember(item, "organization")) {
    out.organization = NonSecretString(*org);
  } else if (const Value* org_id = StringMember(item, "organization_id")) {
    out.organization = NonSecretString(*org_id);
  }
  out.service_version = ServiceVersion(item);

  const Value* value = Member(item, "value");
  if (value == nullptr || value->IsNull()) {
    out.value_error = "has no value";
    return out;
  }
  if (out.kind == SecretKind::kRaw) {
    VIGO_ASSIGN_OR_RETURN(std::optional<SecretBuffer> v, ScalarValue(*value));
    if (!v.has_value()) {
      out.value_error = "has a value that is not a string";
    } else {
      out.raw = std::move(*v);
    }
    return out;
  }
  VIGO_RETURN_IF_ERROR(ExtractFields(*value, out));
  return out;
}

int Digits(std::string_view s, size_t pos, size_t n, bool* ok) {
  int v = 0;
  if (pos + n > s.size()) {
    *ok = false;
    return 0;
  }
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      *ok = false;
      return 0;
    }
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

absl::StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view s) {
  auto bad = [&] {
    return absl::InvalidArgumentError(StrCat("'", s.substr(0, 64), "' is not an RFC 3339 time"));
  };
  bool ok = true;
  const int year = Digits(s, 0, 4, &ok);
  const int month = Digits(s, 5, 2, &ok);
  const int day = Digits(s, 8, 2, &ok);
  const int hour = Digits(s, 11, 2, &ok);
  const int minute = Digits(s, 14, 2, &ok);
  const int second = Digits(s, 17, 2, &ok);
  if (!ok || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':') {
    return bad();
  }
  static constexpr int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  // Years outside 1900..2200 are refused: system_clock counts nanoseconds in
  // an int64 (about 1677..2262), and no isopass timestamp is that far off.
  if (year < 1900 || year > 2200 || month < 1 || month > 12 || day < 1 ||
      day > kDaysIn[month - 1] || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  size_t pos = 19;
  int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) micros = micros * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad();
    for (size_t i = digits; i < 6; ++i) micros *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    const int oh = Digits(s, pos + 1, 2, &ok);
    const int om = Digits(s, pos + 4, 2, &ok);
    if (!ok || s[pos + 3] != ':' || oh > 23 || om > 59) return bad();
    offset_s = sign * (oh * 3600 + om * 60);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size()) return bad();
  const int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::microseconds(secs * 1000000 + micros)));
}

SecretKind KindOfType(std::string_view type) {
  if (type == "username_password") return SecretKind::kUsernamePassword;
  if (type == "key_value_pair") return SecretKind::kKeyValuePair;
  if (type == "tls_bundle") return SecretKind::kTlsBundle;
  return SecretKind::kRaw;
}

absl::StatusOr<TokenGrant> ParseTokenResponse(SecretBuffer body) {
  constexpr std::string_view kWhat = "POST /api/auth/token";
  Document doc;
  VIGO_RETURN_IF_ERROR(ParseInPlace(doc, body, kWhat));
  if (!doc.IsObject()) return Malformed(kWhat, "is not a JSON object");
  const Value* token = StringMember(doc, "token");
  if (token == nullptr || token->GetStringLength() == 0) {
    return Malformed(kWhat, "has no string 'token'");
  }
  for (uint8_t c : Bytes(*token)) {
    // The token goes into an HTTP header: no spaces, controls or non-ASCII.
    if (c < 0x21 || c > 0x7e)
      return Malformed(kWhat, "has a 'token' with a character not allowed in an HTTP header");
  }
  const Value* expires = StringMember(doc, "expires_at");
  if (expires == nullptr) return Malformed(kWhat, "has no string 'expires_at'");
  auto when = ParseRfc3339(NonSecretString(*expires));
  if (!when.ok())
    return Malformed(kWhat, StrCat("has an 'expires_at' that is not an RFC 3339 time"));
  TokenGrant grant;
  VIGO_ASSIGN_OR_RETURN(grant.token, SecretBuffer::CopyFrom(Bytes(*token)));
  grant.expires_at = *when;
  body.Clear();
  return grant;
}

absl::Status ParseMeResponse(SecretBuffer body) {
  constexpr std::string_view kWhat = "GET /api/client/me";
  Document doc;
  VIGO_RETURN_IF_ERROR(ParseInPlace(doc, body, kWhat));
  if (!doc.IsObject()) return Malformed(kWhat, "is not a JSON object");
  body.Clear();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ParsedSecret>> ParseSearchResponse(SecretBuffer body, size_t limit) {
  constexpr std::string_view kWhat = "POST /api/client/search";
  Document doc;
  VIGO_RETURN_IF_ERROR(ParseInPlace(doc, body, kWhat));
  if (!doc.IsArray()) return Malformed(kWhat, "is not a JSON array");
  const size_t count = doc.Size();
  if (count >= limit) {
    return absl::FailedPreconditionError(
        StrCat("isopass search returned ", static_cast<uint64_t>(count),
               " secrets, as many as the request limit ", static_cast<uint64_t>(limit),
               ": the list may be truncated, refusing to use it"));
  }
  std::vector<ParsedSecret> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    VIGO_ASSIGN_OR_RETURN(ParsedSecret s, ParseItem(doc[static_cast<rapidjson::SizeType>(i)], i));
    out.push_back(std::move(s));
  }
  body.Clear();
  return out;
}

}  // namespace vigo::server::isopass
