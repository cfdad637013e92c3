// isopass_stub: a minimal isopass server for tests. HTTPS (OpenSSL) on
// 127.0.0.1, one blocking HTTP/1.1 request per connection, Content-Length
// bodies only. Prints "PORT <n>" on stdout once it listens.
//
//   isopass_stub --cert C --key K --fixture F --token-file T
//                [--port N] [--control FILE] [--request-log FILE] [--issued-tokens FILE]
//
// Endpoints (as isopass's public client uses them):
//   POST /api/auth/token   Bearer <contents of --token-file> → 201 {"token","expires_at"}
//   GET  /api/client/me    Bearer <issued token>            → 200 {"email",...}
//   POST /api/client/search {"limit":N}                      → 200 [fixture secrets, at most N]
// The fixture (a JSON array of search results) and the token file are re-read
// on every request, so a test rotates a value by rewriting the fixture.
//
// Control file (re-read per request; "key=value" lines; all optional):
//   token_ttl=SECONDS        lifetime of newly issued tokens (default 3600)
//   revoke=ANY               when this value changes, every issued token is revoked
//   api_401=always           /api/client/* always answer 401
//   status_token=CODE        force an HTTP status for an endpoint
//   status_me=CODE           (e.g. 500, 403, 302)
//   status_search=CODE
//   search=malformed|truncated|cut|oversized|notarray|object_values
//     malformed: invalid JSON; truncated: the first half of the JSON with a
//     matching Content-Length; cut: the full Content-Length announced but only
//     half sent before closing; oversized: a valid array padded to
//     oversize_bytes (default 8 MiB); notarray: a JSON object.
//   oversize_bytes=N
//   delay_ms=N               sleep before answering
// Request log: one line per request, "METHOD PATH STATUS". Issued tokens:
// one per line (so tests can scan logs for them).
//
// Test code: plain std::string is fine here (the values are test fixtures).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace {

struct Flags {
  std::string cert, key, fixture, token_file, control, request_log, issued_tokens;
  int port = 0;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::map<std::string, std::string> ReadControl(const std::string& path) {
  std::map<std::string, std::string> out;
  if (path.empty()) return out;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    out[Trim(line.substr(0, eq))] = Trim(line.substr(eq + 1));
  }
  return out;
}

// Tokens use consonants only, so a canary scan for any 8-byte substring of a
// token cannot match ordinary log text (numbers, words).
std::string RandomToken(size_t len) {
  unsigned char buf[64];
  RAND_bytes(buf, static_cast<int>(len));
  static const char kAlphabet[] = "ghjkmnpqrstvwxyzGHJKMNPQRSTVWXYZ";
  std::string out;
  for (size_t i = 0; i < len; ++i) out.push_back(kAlphabet[buf[i] % 32]);
  return out;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Response {
  int status = 200;
  std::string body;
  // Announce this Content-Length instead of body.size() (for "cut").
  long announced_length = -1;
};

class Stub {
 public:
  explicit Stub(Flags flags) : flags_(std::move(flags)) {}

  Response Handle(const std::string& method, const std::string& path,
                  const std::string& authorization, const std::string& body) {
    auto control = ReadControl(flags_.control);
    if (control.count("revoke") && control["revoke"] != revoke_seen_) {
      revoke_seen_ = control["revoke"];
      tokens_.clear();
    }
    if (control.count("delay_ms")) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::atol(control["delay_ms"].c_str())));
    }
    const std::string bearer =
        authorization.rfind("Bearer ", 0) == 0 ? authorization.substr(7) : std::string();
    auto forced = [&](const char* key) -> int {
      auto it = control.find(key);
      return it == control.end() ? 0 : std::atoi(it->second.c_str());
    };

    if (path == "/api/auth/token") {
      if (method != "POST") return {405, "{\"error\":\"method\"}"};
      if (int s = forced("status_token")) return {s, "{\"error\":\"forced\"}"};
      const std::string expected = Trim(ReadFile(flags_.token_file));
      if (expected.empty() || bearer != expected) return {401, "{\"error\":\"bad token\"}"};
      long ttl = control.count("token_ttl") ? std::atol(control["token_ttl"].c_str()) : 3600;
      std::string token = RandomToken(40);
      if (!flags_.issued_tokens.empty()) {
        std::ofstream log(flags_.issued_tokens, std::ios::app);
        log << token << "\n";
      }
      auto exp = std::chrono::system_clock::now() + std::chrono::seconds(ttl);
      tokens_[token] = exp;
      return {201, "{\"token\":\"" + token + "\",\"expires_at\":\"" + Rfc3339(exp) + "\"}"};
    }
    if (path.rfind("/api/client/", 0) != 0) return {404, "{\"error\":\"not found\"}"};
    auto it = tokens_.find(bearer);
    if (control["api_401"] == "always" || it == tokens_.end() ||
        std::chrono::system_clock::now() >= it->second) {
      return {401, "{\"error\":\"unauthorized\"}"};
    }
    if (path == "/api/client/me") {
      if (method != "GET") return {405, "{}"};
      if (int s = forced("status_me")) return {s, "{\"error\":\"forced\"}"};
      return {200, R"({"email":"vigo@example.com","organizations":["acme"],"scopes":["read"]})"};
    }
    if (path == "/api/client/search") {
      if (method != "POST") return {405, "{}"};
      if (int s = forced("status_search")) return {s, "{\"error\":\"forced\"}"};
      return Search(body, control);
    }
    return {404, "{\"error\":\"not found\"}"};
  }

 private:
  Response Search(const std::string& body, std::map<std::string, std::string>& control) {
    rapidjson::Document req;
    req.Parse(body.c_str(), body.size());
    if (req.HasParseError() || !req.IsObject() || !req.HasMember("limit") ||
        !req["limit"].IsUint()) {
      return {400, "{\"error\":\"limit\"}"};
    }
    const unsigned limit = req["limit"].GetUint();
    rapidjson::Document fixture;
    std::string text = ReadFile(flags_.fixture);
    fixture.Parse(text.c_str(), text.size());
    if (fixture.HasParseError() || !fixture.IsArray()) return {500, "{\"error\":\"fixture\"}"};
    while (fixture.Size() > limit) fixture.PopBack();
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    fixture.Accept(w);
    std::string out(sb.GetString(), sb.GetSize());
    const std::string mode = control["search"];
    if (mode == "malformed") return {200, "[{\"name\": \"x\", \"type\": }}"};
    if (mode == "truncated") return {200, out.substr(0, out.size() / 2)};
    if (mode == "notarray") return {200, "{\"secrets\": []}"};
    if (mode == "cut") {
      Response r{200, out.substr(0, out.size() / 2)};
      r.announced_length = static_cast<long>(out.size());
      return r;
    }
    if (mode == "oversized") {
      size_t n = control.count("oversize_bytes")
                     ? static_cast<size_t>(std::atol(control["oversize_bytes"].c_str()))
                     : (size_t{8} << 20);
      std::string big = "[" + std::string(n, ' ') + "]";
      return {200, big};
    }
    return {200, out};
  }

  Flags flags_;
  std::map<std::string, std::chrono::system_clock::time_point> tokens_;
  std::string revoke_seen_;
};

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 302:
      return "Found";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool WriteAll(SSL* ssl, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    int n = SSL_write(ssl, data.data() + off,
                      static_cast<int>(std::min<size_t>(data.size() - off, 1 << 20)));
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void Serve(SSL* ssl, Stub& stub, const Flags& flags) {
  std::string in;
  char buf[16384];
  size_t header_end = std::string::npos;
  while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
    int n = SSL_read(ssl, buf, sizeof(buf));
    if (n <= 0 || in.size() > (1 << 20)) return;
    in.append(buf, static_cast<size_t>(n));
  }
  std::istringstream head(in.substr(0, header_end));
  std::string method, path, version, line;
  head >> method >> path >> version;
  std::getline(head, line);
  std::string authorization;
  size_t content_length = 0;
  while (std::getline(head, line)) {
    line = Trim(line);
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(value.begin());
    if (name == "authorization") authorization = value;
    if (name == "content-length") content_length = static_cast<size_t>(std::atol(value.c_str()));
  }
  std::string body = in.substr(header_end + 4);
  while (body.size() < content_length) {
    int n = SSL_read(ssl, buf, sizeof(buf));
    if (n <= 0) return;
    body.append(buf, static_cast<size_t>(n));
  }
  Response r = stub.Handle(method, path, authorization, body);
  if (!flags.request_log.empty()) {
    std::ofstream log(flags.request_log, std::ios::app);
    log << method << " " << path << " " << r.status << "\n";
  }
  const long length =
      r.announced_length >= 0 ? r.announced_length : static_cast<long>(r.body.size());
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\n";
  out += "Content-Type: application/json\r\nConnection: close\r\n";
  if (r.status == 302) out += "Location: https://127.0.0.1:1/elsewhere\r\n";
  out += "Content-Length: " + std::to_string(length) + "\r\n\r\n";
  out += r.body;
  WriteAll(ssl, out);
}

int Usage() {
  std::fprintf(stderr,
               "usage: isopass_stub --cert C --key K --fixture F --token-file T [--port N] "
               "[--control FILE] [--request-log FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help") {
      Usage();
      return 0;
    }
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--cert")
      flags.cert = v;
    else if (a == "--key")
      flags.key = v;
    else if (a == "--fixture")
      flags.fixture = v;
    else if (a == "--token-file")
      flags.token_file = v;
    else if (a == "--control")
      flags.control = v;
    else if (a == "--request-log")
      flags.request_log = v;
    else if (a == "--issued-tokens")
      flags.issued_tokens = v;
    else if (a == "--port")
      flags.port = std::atoi(v.c_str());
    else
      return Usage();
  }
  if (flags.cert.empty() || flags.key.empty() || flags.fixture.empty() ||
      flags.token_file.empty()) {
    return Usage();
  }
  ::signal(SIGPIPE, SIG_IGN);

  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr || SSL_CTX_use_certificate_chain_file(ctx, flags.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, flags.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(flags.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Retry briefly: a restarted stub may race the old socket's teardown.
  int bound = -1;
  for (int attempt = 0; attempt < 50 && bound != 0; ++attempt) {
    bound = ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (bound != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (bound != 0 || ::listen(lfd, 16) != 0) {
    std::perror("isopass_stub: bind/listen");
    return 1;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("PORT %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  Stub stub(flags);
  for (;;) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      Serve(ssl, stub, flags);
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ::close(fd);
  }
}
