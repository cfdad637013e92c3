#include "agent-broker/hidden_paths.h"

#include <limits.h>
#include <stdlib.h>

#include <filesystem>
#include <system_error>

#include "common/strings.h"

namespace vigo::broker {
namespace {

// The secret_file fallback of the worker when the apply root has no tmp/.
constexpr const char* kTmp = "/tmp";

struct Entry {
  std::string path;    // canonical when it exists
  std::string origin;  // for messages: "--hide", "--key-file", ...
  bool by_default = false;
};

// `path` made absolute against `cwd` and normalized, without a trailing '/'.
std::string Absolute(const std::string& path, const std::string& cwd) {
  std::filesystem::path p(path);
  if (p.is_relative()) {
    std::error_code ec;
    std::filesystem::path base =
        cwd.empty() ? std::filesystem::current_path(ec) : std::filesystem::path(cwd);
    p = base / p;
  }
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// True when `p` is `dir` or lies beneath it (component-wise).
bool AtOrBeneath(const std::string& p, const std::string& dir) {
  if (dir == "/") return true;
  return p == dir ||
         (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/');
}

std::string Canonical(const std::string& absolute, const ResolvePath& resolve) {
  std::optional<std::string> r = resolve(absolute);
  return r.has_value() ? *r : absolute;
}

}  // namespace

std::optional<std::string> ResolveOnHost(const std::string& absolute) {
  char buf[PATH_MAX];
  if (::realpath(absolute.c_str(), buf) == nullptr) return std::nullopt;
  return std::string(buf);
}

absl::StatusOr<std::vector<std::string>> ComputeHiddenPaths(const HiddenPathsRequest& request,
                                                            const ResolvePath& resolve) {
  std::vector<Entry> entries;
  // Always hidden; their existence is the caller's check (a clearer message
  // there), so a missing one keeps its absolute form here.
  entries.push_back({Canonical(Absolute(request.key_file, request.cwd), resolve), "--key-file"});
  entries.push_back({Canonical(Absolute(request.state_dir, request.cwd), resolve), "--state-dir"});
  for (const std::string& h : request.hide) {
    if (h.empty()) return absl::InvalidArgumentError("--hide: empty path");
    // ':' separates the list handed to vigo-worker (--hide=a:b).
    if (h.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(
          StrCat("--hide ", h, ": a path to hide may not contain ':'"));
    }
    const std::string abs = Absolute(h, request.cwd);
    if (abs == "/") {
      return absl::InvalidArgumentError(
          StrCat("--hide ", h, ": would hide the whole file system from the worker"));
    }
    std::optional<std::string> canonical = resolve(abs);
    if (!canonical.has_value()) {
      return absl::InvalidArgumentError(StrCat("--hide ", h, ": no such file or directory"));
    }
    if (*canonical == "/") {
      return absl::InvalidArgumentError(
          StrCat("--hide ", h, ": resolves to /, which would hide the whole file system"));
    }
    entries.push_back({*canonical, "--hide"});
  }
  for (const char* d : kDefaultHiddenPaths) {
    std::optional<std::string> canonical = resolve(d);
    if (canonical.has_value() && *canonical != "/") entries.push_back({*canonical, d, true});
  }

  // Canonical paths can carry a ':' from a symlink's target or the key's name.
  for (const Entry& e : entries) {
    if (e.path.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(StrCat(e.origin, " ", e.path,
                                               ": a path the worker must not see may not "
                                               "contain ':'"));
    }
  }
  // Inner paths are dropped: covered already, and unreachable for a second
  // cover once the outer one is mounted (the worker would fail to start).
  std::vector<Entry> kept;
  for (size_t i = 0; i < entries.size(); ++i) {
    bool inside_other = false;
    for (size_t j = 0; j < entries.size() && !inside_other; ++j) {
      if (i == j) continue;
      const bool same = entries[i].path == entries[j].path;
      inside_other = same ? j < i : AtOrBeneath(entries[i].path, entries[j].path);
    }
    if (!inside_other) kept.push_back(entries[i]);
  }

  // What the worker must still reach.
  struct Needed {
    std::string path;
    const char* what;
  };
  std::vector<Needed> needed;
  const std::string apply_root =
      request.apply_root.empty() ? "/"
                                 : Canonical(Absolute(request.apply_root, request.cwd), resolve);
  needed.push_back({apply_root, "--apply-root"});
  needed.push_back({Canonical(kTmp, resolve), "the secret_file directory"});
  if (!request.secret_file_dir.empty()) {
    needed.push_back({Canonical(Absolute(request.secret_file_dir, request.cwd), resolve),
                      "the secret_file directory"});
  }
  for (const Entry& e : kept) {
    for (const Needed& n : needed) {
      if (!AtOrBeneath(n.path, e.path)) continue;
      std::string why = e.by_default
                            ? StrCat("which vigo hides from the worker by default (", e.origin,
                                     ": a co-located vigosrv's data root or agent state)")
                            : StrCat("which ", e.origin, " hides from the worker");
      return absl::InvalidArgumentError(StrCat(n.what, " ", n.path, " is at or beneath ", e.path,
                                               ", ", why,
                                               "; the worker could not apply anything there"));
    }
  }
  std::vector<std::string> out;
  out.reserve(kept.size());
  for (Entry& e : kept) out.push_back(std::move(e.path));
  return out;
}

}  // namespace vigo::broker
