#include "server/isopass/isopass_http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace vigo::server::isopass {
namespace {

using sandbox::SecretBuffer;

constexpr std::string_view kAuthPrefix = "Authorization: Bearer ";
constexpr size_t kInitialBodyBytes = size_t{64} << 10;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// libcurl's C API wants `const char*`; the bytes are the SecretBuffer's own
// (char may alias any object type, so this is a view, not a type pun).
const char* AsCString(const SecretBuffer& b) {
  return static_cast<const char*>(static_cast<const void*>(b.Reveal().data()));
}

struct Sink {
  CURL* easy = nullptr;
  SecretBuffer buf;
  size_t used = 0;
  size_t cap = 0;
  bool too_large = false;
  absl::Status alloc_error;
};

size_t WriteToSecretBuffer(char* data, size_t size, size_t nmemb, void* userdata) {
  Sink* sink = static_cast<Sink*>(userdata);
  const size_t n = size * nmemb;
  if (n > sink->cap - sink->used) {
    sink->too_large = true;
    return 0;  // makes libcurl abort with CURLE_WRITE_ERROR
  }
  const size_t need = sink->used + n;
  if (need > sink->buf.size()) {
    size_t grow = std::max(kInitialBodyBytes, sink->buf.size() * 2);
    if (sink->used == 0) {
      // The announced length avoids re-allocations (and the transient double
      // footprint in the locked arena) for large bodies.
      curl_off_t announced = -1;
      if (curl_easy_getinfo(sink->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) ==
              CURLE_OK &&
          announced > 0) {
        grow = static_cast<size_t>(announced);
      }
    }
    // One spare byte: the in-situ parser appends a NUL terminator, which then
    // fits without a copy (Resize below capacity keeps the storage).
    grow = std::max(need, std::min(grow, sink->cap)) + 1;
    absl::Status st = sink->buf.Resize(grow);
    if (!st.ok()) {
      sink->alloc_error = st;
      return 0;
    }
  }
  std::memcpy(sink->buf.RevealMutable().data() + sink->used, data, n);
  sink->used = need;
  return n;
}

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const {
    // curl_slist_append strdup()ed our header lines (including the bearer
    // token): zero those copies before they return to the heap.
    for (curl_slist* p = l; p != nullptr; p = p->next) {
      if (p->data != nullptr) sandbox::SecureZero(p->data, std::strlen(p->data));
    }
    curl_slist_free_all(l);
  }
};

bool IsTlsVerifyError(CURLcode code) {
  return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
         code == CURLE_SSL_ISSUER_ERROR || code == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
         code == CURLE_SSL_INVALIDCERTSTATUS;
}

}  // namespace

absl::Status ValidateIsopassUrl(std::string_view url, std::string_view where) {
  auto lower_prefix = [&](std::string_view p) {
    if (url.size() < p.size()) return false;
    for (size_t i = 0; i < p.size(); ++i) {
      char c = url[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != p[i]) return false;
    }
    return true;
  };
  if (url.empty()) return absl::InvalidArgumentError(StrCat(where, ": the isopass URL is empty"));
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return absl::InvalidArgumentError(
          StrCat(where, ": the isopass URL contains a space or control character"));
    }
  }
  const size_t scheme_end = url.find("://");
  const std::string_view authority_and_path =
      scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  const std::string_view authority = authority_and_path.substr(0, authority_and_path.find('/'));
  if (authority.find('@') != std::string_view::npos) {
    // Do not repeat the URL: it carries credentials.
    return absl::InvalidArgumentError(StrCat(
        where, ": the isopass URL must not contain credentials (user:password@); use token_file"));
  }
  // A query or fragment may carry a token: errors show the URL without it.
  const size_t query_at = url.find_first_of("?#");
  const std::string shown = query_at == std::string_view::npos
                                ? std::string(url)
                                : StrCat(url.substr(0, query_at), url[query_at], "<hidden>");
  if (lower_prefix("http://")) {
    return absl::InvalidArgumentError(StrCat(where, ": '", shown,
                                             "' uses plain http://, which is refused; isopass "
                                             "needs an https:// URL"));
  }
  if (!lower_prefix("https://")) {
    return absl::InvalidArgumentError(StrCat(where, ": '", shown, "' is not an https:// URL"));
  }
  if (authority.empty()) {
    return absl::InvalidArgumentError(StrCat(where, ": '", shown, "' has no host"));
  }
  if (query_at != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat(where, ": '", shown, "' must not have a query or fragment"));
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpClient> HttpClient::Create(HttpOptions options) {
  VIGO_RETURN_IF_ERROR(ValidateIsopassUrl(options.base_url, "isopass client"));
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  if (!options.ca_file.empty() && ::access(options.ca_file.c_str(), R_OK) != 0) {
    return absl::FailedPreconditionError(
        StrCat("isopass CA file ", options.ca_file, " cannot be read"));
  }
  if (options.max_body_bytes == 0) {
    return absl::InvalidArgumentError("isopass client: max_body_bytes must be positive");
  }
  GlobalInitOnce();
  return HttpClient(std::move(options));
}

absl::StatusOr<HttpResponse> HttpClient::Send(std::string_view method, std::string_view api_path,
                                              const SecretBuffer* bearer,
                                              std::string_view json_body) const {
  const std::string url = StrCat(options_.base_url, api_path);
  const std::string what = StrCat(method, " ", url);
  std::unique_ptr<CURL, EasyDeleter> easy(curl_easy_init());
  if (!easy) return absl::InternalError(StrCat("isopass ", what, ": curl_easy_init failed"));
  CURL* c = easy.get();

  // Build "Authorization: Bearer <token>" in locked memory; libcurl copies it.
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto append = [&](const char* line) -> absl::Status {
    curl_slist* l = curl_slist_append(headers.get(), line);
    if (l == nullptr) return absl::ResourceExhaustedError("curl_slist_append failed");
    (void)headers.release();
    headers.reset(l);
    return absl::OkStatus();
  };
  if (bearer != nullptr) {
    for (uint8_t ch : bearer->Reveal()) {
      if (ch < 0x21 || ch > 0x7e) {
        return absl::InvalidArgumentError(StrCat(
            "isopass ", what, ": the bearer token has a character not allowed in an HTTP header"));
      }
    }
    VIGO_ASSIGN_OR_RETURN(SecretBuffer line,
                          SecretBuffer::Create(kAuthPrefix.size() + bearer->size() + 1));
    std::span<uint8_t> dst = line.RevealMutable();
    std::memcpy(dst.data(), kAuthPrefix.data(), kAuthPrefix.size());
    if (bearer->size() != 0) {
      std::memcpy(dst.data() + kAuthPrefix.size(), bearer->Reveal().data(), bearer->size());
    }
    dst[dst.size() - 1] = 0;
    VIGO_RETURN_IF_ERROR(append(AsCString(line)));
    // `line` is zeroed when it goes out of scope; libcurl holds its own copy.
  }
  VIGO_RETURN_IF_ERROR(append("Accept: application/json"));
  if (method == "POST") VIGO_RETURN_IF_ERROR(append("Content-Type: application/json"));
  VIGO_RETURN_IF_ERROR(append("Expect:"));

  Sink sink;
  sink.easy = c;
  sink.cap = options_.max_body_bytes;
  char errbuf[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) {
    // Trust exactly this bundle, not the system store as well.
    curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.total_timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "vigosrv-isopass/1");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(sink.cap));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteToSecretBuffer);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body.data());
  } else {
    return absl::InvalidArgumentError(StrCat("isopass client: unsupported method ", method));
  }

  const auto start = std::chrono::steady_clock::now();
  const CURLcode rc = curl_easy_perform(c);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  headers.reset();  // zero libcurl's copies of the header lines now

  if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return absl::ResourceExhaustedError(StrCat("isopass response to ", what,
                                               " is larger than the limit of ",
                                               static_cast<uint64_t>(sink.cap), " bytes"));
  }
  if (!sink.alloc_error.ok()) {
    return absl::ResourceExhaustedError(
        StrCat("isopass response to ", what,
               " does not fit in locked memory: ", sink.alloc_error.message()));
  }
  if (rc != CURLE_OK) {
    const std::string detail = errbuf[0] != 0 ? std::string(errbuf) : curl_easy_strerror(rc);
    Log(LogLevel::kDebug, "isopass request failed",
        {{"method", method}, {"url", url}, {"curl_code", static_cast<int>(rc)}, {"ms", ms}});
    if (IsTlsVerifyError(rc)) {
      return absl::UnavailableError(StrCat("isopass TLS verification failed for ", url,
                                           options_.ca_file.empty()
                                               ? std::string(" (system CA store)")
                                               : StrCat(" (CA file ", options_.ca_file, ")"),
                                           ": ", detail));
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
      return absl::InvalidArgumentError(StrCat("isopass ", what, ": ", detail));
    }
    return absl::UnavailableError(StrCat("cannot reach isopass: ", what, ": ", detail));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  Log(LogLevel::kTrace, "isopass request",
      {{"method", method}, {"url", url}, {"status", status}, {"bytes", sink.used}, {"ms", ms}});
  HttpResponse resp;
  resp.status = status;
  VIGO_RETURN_IF_ERROR(sink.buf.Resize(sink.used));
  resp.body = std::move(sink.buf);
  return resp;
}

}  // namespace vigo::server::isopass
