#include "server/isopass/isopass_backend.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "common/log.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"
#include "vocab/wire_limits.h"

namespace vigo::server {
namespace {

// A value larger than every other part of Vigo carries (vocab/wire_limits.h)
// is refused here, naming the path, at load (Exists) and at resolve, not
// served to an agent whose IPC would have to refuse it.
absl::Status ValueFits(std::string_view path, const sandbox::SecretBuffer& value) {
  if (value.size() <= vocab::kMaxSecretValueBytes) return absl::OkStatus();
  return absl::FailedPreconditionError(StrCat(
      "isopass secret '", path, "' is ", static_cast<uint64_t>(value.size()),
      " bytes; Vigo serves values of at most ", static_cast<uint64_t>(vocab::kMaxSecretValueBytes),
      " bytes (1 MiB, every backend's limit)"));
}

using isopass::ParsedSecret;
using isopass::SecretKind;
using sandbox::SecretBuffer;

constexpr std::string_view kTokenPath = "/api/auth/token";
constexpr std::string_view kMePath = "/api/client/me";
constexpr std::string_view kSearchPath = "/api/client/search";
constexpr size_t kMaxTokenFileBytes = size_t{64} << 10;
constexpr size_t kFingerprintKeyBytes = 32;

std::string Octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", mode & 07777);
  return buf;
}

// A response with a non-2xx status (other than a 401, handled by the caller).
absl::Status HttpError(std::string_view what, long status) {
  if (status == 401) {
    return absl::UnauthenticatedError(
        StrCat("isopass refused the credentials for ", what, " (HTTP 401)"));
  }
  if (status == 403) {
    return absl::PermissionDeniedError(
        StrCat("isopass denied ", what, " (HTTP 403); check the token's scopes"));
  }
  if (status >= 500 || status == 408 || status == 429) {
    return absl::UnavailableError(StrCat("isopass answered ", what, " with HTTP ", status));
  }
  if (status >= 300 && status < 400) {
    return absl::FailedPreconditionError(
        StrCat("isopass answered ", what, " with a redirect (HTTP ", status,
               "), which Vigo does not follow; set secrets.url to the final address"));
  }
  return absl::FailedPreconditionError(StrCat("isopass answered ", what, " with HTTP ", status,
                                              status == 404 ? " (is secrets.url right?)" : ""));
}

bool IsStructured(const ParsedSecret& s) { return s.kind != SecretKind::kRaw; }

std::string FieldNames(const ParsedSecret& s) {
  std::string out;
  for (size_t i = 0; i < s.fields.size() && i < 8; ++i) {
    StrAppend(&out, i == 0 ? "" : ", ", "'", s.name, "/", s.fields[i].first, "'");
  }
  if (s.fields.size() > 8) StrAppend(&out, ", ...");
  return out;
}

// The first 8 bytes of HMAC-SHA256(key, path || 0x00 || value), big-endian.
absl::StatusOr<uint64_t> FingerprintWithKey(const SecretBuffer& key, std::string_view path,
                                            const SecretBuffer& value) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return absl::InternalError("EVP_MAC_fetch(HMAC) failed");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  if (ctx == nullptr) return absl::InternalError("EVP_MAC_CTX_new failed");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  // The path is not secret; copying it gives OpenSSL the unsigned bytes it wants.
  std::vector<uint8_t> path_bytes(path.begin(), path.end());
  path_bytes.push_back(0);
  uint8_t out[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  const bool ok = EVP_MAC_init(ctx, key.Reveal().data(), key.size(), params) == 1 &&
                  EVP_MAC_update(ctx, path_bytes.data(), path_bytes.size()) == 1 &&
                  EVP_MAC_update(ctx, value.Reveal().data(), value.size()) == 1 &&
                  EVP_MAC_final(ctx, out, &out_len, sizeof(out)) == 1 && out_len >= 8;
  EVP_MAC_CTX_free(ctx);
  if (!ok) {
    sandbox::SecureZero(out, sizeof(out));
    return absl::InternalError("HMAC-SHA256 failed");
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | out[i];
  sandbox::SecureZero(out, sizeof(out));
  return v;
}

}  // namespace

absl::StatusOr<SecretBuffer> ReadIsopassTokenFile(const std::filesystem::path& path) {
  const std::string p = path.string();
  sandbox::UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!fd) {
    const int err = errno;
    if (err == ELOOP) {
      return absl::PermissionDeniedError(
          StrCat("isopass token file ", p, " is a symbolic link; point token_file at the file"));
    }
    return sandbox::ErrnoStatus(err, "cannot open isopass token file", p);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return sandbox::ErrnoStatus(errno, "cannot stat isopass token file", p);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat("isopass token file ", p, " is not a regular file"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::PermissionDeniedError(
        StrCat("isopass token file ", p, " is owned by uid ", static_cast<uint64_t>(st.st_uid),
               ", not by the server's uid ", static_cast<uint64_t>(::geteuid()), " (chown it)"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(StrCat("isopass token file ", p, " has mode ",
                                              Octal(st.st_mode), "; it must be 0600 (chmod 600 ", p,
                                              ")"));
  }
  if (st.st_size <= 0 || static_cast<uint64_t>(st.st_size) > kMaxTokenFileBytes) {
    return absl::FailedPreconditionError(
        StrCat("isopass token file ", p, st.st_size <= 0 ? " is empty" : " is larger than 64 KiB"));
  }
  VIGO_ASSIGN_OR_RETURN(SecretBuffer buf, SecretBuffer::Create(static_cast<size_t>(st.st_size)));
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd.get(), buf.RevealMutable().data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sandbox::ErrnoStatus(errno, "cannot read isopass token file", p);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  size_t len = got;
  std::span<const uint8_t> bytes = buf.Reveal();
  while (len > 0 && (bytes[len - 1] == '\n' || bytes[len - 1] == '\r' || bytes[len - 1] == ' ' ||
                     bytes[len - 1] == '\t')) {
    --len;
  }
  if (len == 0) return absl::FailedPreconditionError(StrCat("isopass token file ", p, " is empty"));
  for (size_t i = 0; i < len; ++i) {
    if (bytes[i] < 0x21 || bytes[i] > 0x7e) {
      return absl::FailedPreconditionError(
          StrCat("isopass token file ", p,
                 " must hold one token on one line (it has a space or control character)"));
    }
  }
  VIGO_RETURN_IF_ERROR(buf.Resize(len));
  return buf;
}

absl::StatusOr<std::unique_ptr<SecretBackend>> OpenIsopassBackend(const ServerConfig& config) {
  IsopassOptions options;
  options.config_name = (config.root / "server.yaml").string();
  options.url = config.isopass_url;
  if (!config.isopass_token_file.empty()) {
    options.token_file = config.Resolve(config.isopass_token_file);
  }
  if (!config.isopass_ca_file.empty()) options.ca_file = config.Resolve(config.isopass_ca_file);
  options.poll_interval = config.isopass_poll_interval;
  VIGO_ASSIGN_OR_RETURN(std::unique_ptr<IsopassBackend> backend,
                        IsopassBackend::Create(std::move(options)));
  return std::unique_ptr<SecretBackend>(std::move(backend));
}

absl::StatusOr<std::unique_ptr<IsopassBackend>> IsopassBackend::Create(IsopassOptions options) {
  if (options.url.empty()) {
    return absl::InvalidArgumentError(
        StrCat(options.config_name, ": secrets.url is required for backend isopass"));
  }
  VIGO_RETURN_IF_ERROR(
      isopass::ValidateIsopassUrl(options.url, StrCat(options.config_name, ": secrets.url")));
  if (options.token_file.empty()) {
    return absl::InvalidArgumentError(
        StrCat(options.config_name, ": secrets.token_file is required for backend isopass"));
  }
  if (options.search_limit == 0) {
    return absl::InvalidArgumentError("isopass search_limit must be positive");
  }
  if (options.poll_interval.count() < 0) {
    return absl::InvalidArgumentError(
        StrCat(options.config_name, ": secrets.poll_interval must not be negative"));
  }
  // Fail at start-up, before any network I/O, on a token file that is
  // missing or too open.
  { VIGO_ASSIGN_OR_RETURN(SecretBuffer probe, ReadIsopassTokenFile(options.token_file)); }
  isopass::HttpOptions http_options;
  http_options.base_url = options.url;
  http_options.ca_file = options.ca_file.string();
  http_options.connect_timeout = options.connect_timeout;
  http_options.total_timeout = options.total_timeout;
  http_options.max_body_bytes = options.max_body_bytes;
  auto http = isopass::HttpClient::Create(std::move(http_options));
  if (!http.ok()) {
    return absl::Status(http.status().code(),
                        StrCat(options.config_name, ": ", http.status().message()));
  }
  VIGO_ASSIGN_OR_RETURN(SecretBuffer key, SecretBuffer::Create(kFingerprintKeyBytes));
  if (RAND_bytes(key.RevealMutable().data(), static_cast<int>(key.size())) != 1) {
    return absl::InternalError("isopass: RAND_bytes failed for the fingerprint key");
  }
  return std::unique_ptr<IsopassBackend>(
      new IsopassBackend(std::move(options), std::move(*http), std::move(key)));
}

IsopassBackend::IsopassBackend(IsopassOptions options, isopass::HttpClient http,
                               SecretBuffer fingerprint_key)
    : options_(std::move(options)),
      http_(std::move(http)),
      fingerprint_key_(std::move(fingerprint_key)) {}

uint64_t IsopassBackend::token_exchanges() const {
  std::lock_guard<std::mutex> lock(mu_);
  return token_exchanges_;
}

absl::Status IsopassBackend::ExchangeTokenLocked() {
  token_.Clear();
  const std::string what = StrCat("POST ", http_.base_url(), kTokenPath);
  VIGO_ASSIGN_OR_RETURN(SecretBuffer long_lived, ReadIsopassTokenFile(options_.token_file));
  VIGO_ASSIGN_OR_RETURN(isopass::HttpResponse r,
                        http_.Send("POST", kTokenPath, &long_lived, std::string_view()));
  long_lived.Clear();
  if (r.status == 401 || r.status == 403) {
    return absl::UnauthenticatedError(StrCat("isopass refused the token from ",
                                             options_.token_file.string(), " (HTTP ", r.status,
                                             " from ", what, ")"));
  }
  if (r.status != 200 && r.status != 201) return HttpError(what, r.status);
  VIGO_ASSIGN_OR_RETURN(isopass::TokenGrant grant, isopass::ParseTokenResponse(std::move(r.body)));
  token_ = std::move(grant.token);
  token_expires_at_ = grant.expires_at;
  ++token_exchanges_;
  const auto valid_for = std::chrono::duration_cast<std::chrono::seconds>(
      token_expires_at_ - std::chrono::system_clock::now());
  Log(LogLevel::kDebug, "isopass token exchanged",
      {{"valid_for_s", static_cast<int64_t>(valid_for.count())}});
  return absl::OkStatus();
}

absl::Status IsopassBackend::EnsureTokenLocked() {
  // A token that expires within the margin is replaced; a freshly issued one
  // is used for at least this call even when its lifetime is shorter.
  if (!token_.empty() &&
      std::chrono::system_clock::now() + options_.token_refresh_margin < token_expires_at_) {
    return absl::OkStatus();
  }
  return ExchangeTokenLocked();
}

absl::StatusOr<SecretBuffer> IsopassBackend::CallLocked(std::string_view method,
                                                        std::string_view api_path,
                                                        std::string_view json_body) {
  const std::string what = StrCat(method, " ", http_.base_url(), api_path);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1) token_.Clear();  // forces a fresh exchange
    VIGO_RETURN_IF_ERROR(EnsureTokenLocked());
    VIGO_ASSIGN_OR_RETURN(isopass::HttpResponse r,
                          http_.Send(method, api_path, &token_, json_body));
    if (r.status == 401) {
      Log(LogLevel::kInfo, "isopass refused the access token",
          {{"request", what}, {"attempt", attempt + 1}});
      continue;
    }
    if (r.status < 200 || r.status > 299) return HttpError(what, r.status);
    return std::move(r.body);
  }
  token_.Clear();
  return absl::UnauthenticatedError(StrCat("isopass refused a freshly exchanged access token for ",
                                           what, " (HTTP 401 twice); check the token in ",
                                           options_.token_file.string(), " and its scopes"));
}

absl::StatusOr<uint64_t> IsopassBackend::Fingerprint(std::string_view path,
                                                     const SecretBuffer& value) const {
  return FingerprintWithKey(fingerprint_key_, path, value);
}

absl::StatusOr<std::shared_ptr<IsopassBackend::Snapshot>> IsopassBackend::BuildSnapshot(
    std::vector<ParsedSecret> secrets) const {
  auto snap = std::make_shared<Snapshot>();
  snap->secrets = std::move(secrets);
  snap->fetched_at = std::chrono::steady_clock::now();
  std::map<std::string_view, std::vector<const ParsedSecret*>> by_name;
  for (const ParsedSecret& s : snap->secrets) by_name[s.name].push_back(&s);

  auto version_of = [&](const ParsedSecret& s, std::string_view path,
                        const SecretBuffer& v) -> absl::StatusOr<uint64_t> {
    if (s.service_version.has_value()) return *s.service_version;
    return Fingerprint(path, v);
  };
  std::vector<const ParsedSecret*> structured;
  for (const auto& [name, list] : by_name) {
    const ParsedSecret& s = *list.front();
    if (list.size() > 1) {
      std::string orgs;
      for (const ParsedSecret* d : list) {
        StrAppend(&orgs, orgs.empty() ? "" : ", ", d->organization.empty() ? "?" : d->organization);
      }
      snap->name_errors.emplace(
          std::string(name),
          absl::FailedPreconditionError(StrCat("isopass has ", static_cast<uint64_t>(list.size()),
                                               " secrets named '", name, "' (organizations: ", orgs,
                                               "); Vigo needs each name to be unique")));
      continue;
    }
    if (!s.value_error.empty()) {
      snap->name_errors.emplace(std::string(name), absl::FailedPreconditionError(
                                                       StrCat("isopass secret '", name, "' (type ",
                                                              s.type, ") ", s.value_error)));
      continue;
    }
    if (IsStructured(s)) {
      snap->structured.emplace(std::string(name), s.type);
      structured.push_back(&s);
      continue;
    }
    if (!ValidateSecretPath(name).ok()) continue;  // not addressable from Vigo
    if (absl::Status big = ValueFits(name, s.raw); !big.ok()) {
      snap->name_errors.emplace(std::string(name), std::move(big));
      continue;
    }
    VIGO_ASSIGN_OR_RETURN(const uint64_t version, version_of(s, name, s.raw));
    snap->paths.emplace(std::string(name), PathEntry{&s.raw, version});
  }
  // Fields after raw names: an exact secret name wins over name/field.
  for (const ParsedSecret* s : structured) {
    for (const auto& [field, value] : s->fields) {
      std::string path = StrCat(s->name, "/", field);
      if (!ValidateSecretPath(path).ok()) continue;
      if (snap->paths.count(path) != 0 || snap->name_errors.count(path) != 0) continue;
      if (absl::Status big = ValueFits(path, value); !big.ok()) {
        snap->name_errors.emplace(std::move(path), std::move(big));
        continue;
      }
      VIGO_ASSIGN_OR_RETURN(const uint64_t version, version_of(*s, path, value));
      snap->paths.emplace(std::move(path), PathEntry{&value, version});
    }
  }
  return snap;
}

absl::StatusOr<const IsopassBackend::PathEntry*> IsopassBackend::Lookup(
    const Snapshot& snap, std::string_view path) const {
  if (auto it = snap.paths.find(path); it != snap.paths.end()) return &it->second;
  if (auto it = snap.name_errors.find(path); it != snap.name_errors.end()) return it->second;
  auto find_secret = [&](std::string_view name) -> const ParsedSecret* {
    for (const ParsedSecret& s : snap.secrets) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  if (auto it = snap.structured.find(path); it != snap.structured.end()) {
    const ParsedSecret* s = find_secret(path);
    return absl::NotFoundError(StrCat(
        "isopass secret '", path, "' is a ", it->second,
        "; reference one of its fields: ", s != nullptr ? FieldNames(*s) : std::string("?")));
  }
  const size_t slash = path.rfind('/');
  if (slash != std::string_view::npos) {
    const std::string_view name = path.substr(0, slash);
    const std::string_view field = path.substr(slash + 1);
    if (auto it = snap.name_errors.find(name); it != snap.name_errors.end()) return it->second;
    if (auto it = snap.structured.find(name); it != snap.structured.end()) {
      return absl::NotFoundError(
          StrCat("isopass secret '", name, "' (type ", it->second, ") has no field '", field, "'"));
    }
    if (snap.paths.count(name) != 0) {
      return absl::NotFoundError(
          StrCat("isopass secret '", name, "' is a plain value and has no field '", field, "'"));
    }
  }
  return absl::NotFoundError(StrCat("isopass has no secret named '", path, "'"));
}

absl::Status IsopassBackend::FetchSnapshotLocked() {
  const std::string body = StrCat("{\"limit\":", static_cast<uint64_t>(options_.search_limit), "}");
  VIGO_ASSIGN_OR_RETURN(SecretBuffer resp, CallLocked("POST", kSearchPath, body));
  VIGO_ASSIGN_OR_RETURN(std::vector<ParsedSecret> secrets,
                        isopass::ParseSearchResponse(std::move(resp), options_.search_limit));
  VIGO_ASSIGN_OR_RETURN(std::shared_ptr<Snapshot> snap, BuildSnapshot(std::move(secrets)));
  Log(LogLevel::kDebug, "isopass snapshot fetched",
      {{"secrets", snap->secrets.size()}, {"paths", snap->paths.size()}});
  snapshot_ = std::move(snap);
  last_failure_ = absl::OkStatus();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const IsopassBackend::Snapshot>>
IsopassBackend::FreshSnapshotLocked() {
  const auto now = std::chrono::steady_clock::now();
  if (snapshot_ != nullptr && now - snapshot_->fetched_at < options_.poll_interval) {
    return snapshot_;
  }
  if (!last_failure_.ok() && now - last_failure_at_ < options_.failure_backoff) {
    return last_failure_;
  }
  absl::Status st = FetchSnapshotLocked();
  if (!st.ok()) {
    // Never serve values older than the poll interval: drop (and zero) them.
    snapshot_.reset();
    last_failure_ = st;
    last_failure_at_ = now;
    Log(LogLevel::kWarn, "isopass fetch failed", {{"error", st}});
    return st;
  }
  return snapshot_;
}

absl::Status IsopassBackend::Refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status st = FetchSnapshotLocked();
  if (!st.ok()) {
    const auto now = std::chrono::steady_clock::now();
    if (snapshot_ != nullptr && now - snapshot_->fetched_at >= options_.poll_interval) {
      snapshot_.reset();
    }
    last_failure_ = st;
    last_failure_at_ = now;
    Log(LogLevel::kWarn, "isopass refresh failed", {{"error", st}});
  }
  return st;
}

absl::Status IsopassBackend::CheckHealth() {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(SecretBuffer me, CallLocked("GET", kMePath, std::string_view()));
  VIGO_RETURN_IF_ERROR(isopass::ParseMeResponse(std::move(me)));
  absl::Status st = FetchSnapshotLocked();
  if (!st.ok()) {
    last_failure_ = st;
    last_failure_at_ = std::chrono::steady_clock::now();
  }
  return st;
}

absl::StatusOr<bool> IsopassBackend::Exists(std::string_view path) {
  VIGO_RETURN_IF_ERROR(ValidateSecretPath(path));
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> lock(mu_);
    VIGO_ASSIGN_OR_RETURN(snap, FreshSnapshotLocked());
  }
  auto entry = Lookup(*snap, path);
  if (entry.ok()) return true;
  if (absl::IsNotFound(entry.status())) return false;
  return entry.status();
}

absl::StatusOr<SecretBuffer> IsopassBackend::Get(std::string_view path) {
  VIGO_RETURN_IF_ERROR(ValidateSecretPath(path));
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> lock(mu_);
    VIGO_ASSIGN_OR_RETURN(snap, FreshSnapshotLocked());
  }
  VIGO_ASSIGN_OR_RETURN(const PathEntry* entry, Lookup(*snap, path));
  return entry->value->Clone();
}

absl::StatusOr<uint64_t> IsopassBackend::Version(std::string_view path) {
  VIGO_RETURN_IF_ERROR(ValidateSecretPath(path));
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> lock(mu_);
    VIGO_ASSIGN_OR_RETURN(snap, FreshSnapshotLocked());
  }
  VIGO_ASSIGN_OR_RETURN(const PathEntry* entry, Lookup(*snap, path));
  return entry->version;
}

absl::StatusOr<std::vector<std::string>> IsopassBackend::List(std::string_view prefix) {
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> lock(mu_);
    VIGO_ASSIGN_OR_RETURN(snap, FreshSnapshotLocked());
  }
  std::vector<std::string> out;
  for (auto it = snap->paths.lower_bound(prefix); it != snap->paths.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back(it->first);
  }
  return out;
}

}  // namespace vigo::server
