// The paths the worker's mount namespace covers (sandbox::HidePaths): the
// client key, the state dir, every `vigo --hide PATH`, and the defaults
// (kDefaultHiddenPaths) that exist on the host.
//
//   HiddenPathsRequest req;
//   req.key_file = key; req.state_dir = state; req.hide = args.GetAll("hide");
//   req.apply_root = args.Get("apply-root").value_or("");
//   absl::StatusOr<std::vector<std::string>> hidden = ComputeHiddenPaths(req, ResolveOnHost);
//   if (!hidden.ok()) ... usage error (exit 2), nothing started ...
//
// SECURITY: the result is what an exec command or a compromised worker cannot
// read. A path the operator names must exist (a typo must not leave the
// vault visible while the operator believes it is hidden); defaults that are
// absent are skipped. Paths are made canonical (symlinks resolved, as the
// kernel's mount does) and a path beneath another one is dropped, since the
// outer cover hides it already and the worker could no longer find it to
// cover it again. A cover over the apply root or the secret_file directory
// would make every run fail in the worker, so that combination is refused
// here, naming both paths.
//
// Thread safety: pure function of its arguments (and `resolve`).
#ifndef VIGO_AGENT_BROKER_HIDDEN_PATHS_H_
#define VIGO_AGENT_BROKER_HIDDEN_PATHS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vigo::broker {

// Hidden when they exist: a co-located vigosrv's data root (its vault, master
// key, CA key and database) and the default agent state dir.
inline constexpr const char* kDefaultHiddenPaths[] = {"/srv/vigo", "/var/lib/vigo"};

// The canonical absolute path of an existing file or directory (`absolute`
// is absolute), or nullopt when it does not exist.
using ResolvePath = std::function<std::optional<std::string>(const std::string& absolute)>;

// realpath(3) on this host.
std::optional<std::string> ResolveOnHost(const std::string& absolute);

struct HiddenPathsRequest {
  std::string key_file;           // always hidden (checked for existence elsewhere)
  std::string state_dir;          // always hidden (created elsewhere)
  std::vector<std::string> hide;  // --hide values, in order; relative = against `cwd`
  std::string apply_root;         // "" = "/"
  std::string secret_file_dir;    // "" = none configured; /tmp, the fallback, is checked anyway
  std::string cwd;                // base of relative paths; "" = the process's working dir
};

// The list for WorkerStartOptions::hidden_paths: canonical, absolute, no
// entry beneath another, in first-seen order (key, state dir, --hide,
// defaults). INVALID_ARGUMENT (a usage error), naming the path, when a --hide
// value is empty, contains ':' (the worker's list separator), does not exist
// or is "/"; when any path to hide contains ':'; or when a hidden path is, or
// contains, the apply root, /tmp or the secret_file dir.
absl::StatusOr<std::vector<std::string>> ComputeHiddenPaths(const HiddenPathsRequest& request,
                                                            const ResolvePath& resolve);

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_HIDDEN_PATHS_H_
