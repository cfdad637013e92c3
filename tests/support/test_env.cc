#include "tests/support/test_env.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include "absl/strings/escaping.h"
#include "common/strings.h"
#include "gtest/gtest.h"

namespace vigo::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = vigo::StrCat(base ? base : "/tmp", "/vigo-test-XXXXXX");
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {
fs::path EnvDir(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return v ? fs::path(v) : fs::path(fallback);
}
}  // namespace

fs::path BinPath(std::string_view name) { return EnvDir("VIGO_BIN_DIR", "bin") / name; }
fs::path TestBinPath(std::string_view name) { return EnvDir("VIGO_TEST_BIN_DIR", "tests") / name; }
fs::path SourcePath(std::string_view rel) { return EnvDir("VIGO_SOURCE_DIR", ".") / rel; }

RunResult Run(const std::vector<std::string>& argv, std::string_view stdin_data,
              const std::vector<std::string>& extra_env) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) std::abort();
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (const auto& e : extra_env) env.push_back(e);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> av, ev;
    for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    for (const auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
    ev.push_back(nullptr);
    ::execve(av[0], av.data(), ev.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  RunResult r;
  size_t written = 0;
  if (stdin_data.empty()) {
    ::close(in[1]);
    in[1] = -1;
  }
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    int nfds = in[1] >= 0 ? 3 : 2;
    if (::poll(fds, static_cast<nfds_t>(nfds), -1) < 0) continue;
    char buf[65536];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP)) {
        ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          (i == 0 ? out_open : err_open) = false;
          fds[i].fd = -1;
        } else {
          (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
        }
      }
    }
    if (!out_open) out[0] = -1;
    if (!err_open) err[0] = -1;
    if (nfds == 3 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in[1], stdin_data.data() + written, stdin_data.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n <= 0 || written == stdin_data.size()) {
        ::close(in[1]);
        in[1] = -1;
      }
    }
    if (!out_open && !err_open) break;
  }
  if (in[1] >= 0) ::close(in[1]);
  ::close(out[0] >= 0 ? out[0] : -1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

std::map<std::string, std::string> ReadReport(const fs::path& p) {
  std::map<std::string, std::string> m;
  std::istringstream in(ReadFileOrEmpty(p));
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    if (sp != std::string::npos) m[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return m;
}

std::string Argv(const std::vector<std::string>& argv) {
  std::string out = "[";
  for (const std::string& a : argv) out += (out.size() > 1 ? ", \"" : "\"") + a + "\"";
  return out + "]";
}

std::string ReadFileOrEmpty(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFileOrDie(const fs::path& p, std::string_view data, int mode) {
  fs::create_directories(p.parent_path());
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) std::abort();
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) std::abort();
  ::fchmod(fd, static_cast<mode_t>(mode));
  ::close(fd);
}

std::vector<std::string> CanaryForms(std::string_view canary_view) {
  const std::string canary(canary_view);
  std::string hex = absl::BytesToHexString(canary);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string url;
  for (unsigned char c : canary) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      url.push_back(static_cast<char>(c));
    } else {
      url += vigo::StrCat("%", absl::BytesToHexString(std::string(1, static_cast<char>(c))));
    }
  }
  std::string json;
  for (char c : canary) {
    if (c == '"' || c == '\\') json.push_back('\\');
    json.push_back(c);
  }
  std::vector<std::string> forms = {std::string(canary), hex, upper, absl::Base64Escape(canary),
                                    absl::WebSafeBase64Escape(canary), url, json};
  return forms;
}

std::vector<std::string> FindCanariesIn(std::string_view blob, std::string_view where,
                                        const std::vector<std::string>& canaries) {
  std::vector<std::string> hits;
  for (const std::string& c : canaries) {
    for (const std::string& form : CanaryForms(c)) {
      if (!form.empty() && blob.find(form) != std::string_view::npos) {
        hits.push_back(vigo::StrCat(where, ": contains a form of a canary"));
      }
    }
    for (size_t i = 0; i + 8 <= c.size(); ++i) {
      if (blob.find(std::string_view(c).substr(i, 8)) != std::string_view::npos) {
        hits.push_back(vigo::StrCat(where, ": contains an 8-byte substring of a canary"));
        break;
      }
    }
  }
  return hits;
}

std::vector<std::string> FindCanaries(const fs::path& dir,
                                      const std::vector<std::string>& canaries) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec)) continue;
    auto found = FindCanariesIn(ReadFileOrEmpty(it->path()), it->path().string(), canaries);
    hits.insert(hits.end(), found.begin(), found.end());
  }
  return hits;
}

}  // namespace vigo::testing
