// Rotation detection: a thread that asks "did a referenced secret change?"
// when the local vault's directory tree changes (inotify, debounced) and at
// every version poll (any backend), and reloads when the answer is yes.
//
//   RotationWatcherOptions o{.watch_dir = cfg.SecretsDir(), .poll_interval = 30s, .debounce =
//   300ms}; VIGO_ASSIGN_OR_RETURN(auto w, RotationWatcher::Start(o, [&](const char* why) {
//     if (policy.last_reload_failed() || policy.VersionsChanged()) policy.Reload(why);
//   }));
//   w->Stop();   // or the destructor: wakes the thread and joins it
//
// The watcher owns its descriptors (the inotify fd, both ends of the stop
// pipe) and its thread. An inotify fd that cannot be created leaves the poll
// (a missed event is found at the next poll, at most poll_interval later).
//
// Thread safety: Stop may be called from any thread but the watcher's own
// (it joins it); `check` runs on the watcher thread only.
#ifndef VIGO_SERVER_SERVICE_ROTATION_WATCHER_H_
#define VIGO_SERVER_SERVICE_ROTATION_WATCHER_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"

namespace vigo::server::service {

struct RotationWatcherOptions {
  // Watched recursively with inotify when not empty (the local vault).
  std::filesystem::path watch_dir;
  std::chrono::milliseconds poll_interval{30000};
  std::chrono::milliseconds debounce{300};
};

class RotationWatcher {
 public:
  // `check(why)` is called with "secrets dir changed" (debounced) or
  // "version poll". INTERNAL when the stop pipe cannot be created.
  static absl::StatusOr<std::unique_ptr<RotationWatcher>> Start(
      const RotationWatcherOptions& options, std::function<void(const char* why)> check);
  ~RotationWatcher() { Stop(); }
  RotationWatcher(const RotationWatcher&) = delete;
  RotationWatcher& operator=(const RotationWatcher&) = delete;

  // Wakes the thread and joins it (idempotent).
  void Stop();

 private:
  RotationWatcher(RotationWatcherOptions options, std::function<void(const char*)> check)
      : options_(std::move(options)), check_(std::move(check)) {}
  void Loop();
  void AddWatches();

  RotationWatcherOptions options_;
  std::function<void(const char*)> check_;
  sandbox::UniqueFd inotify_;
  sandbox::UniqueFd stop_read_;
  sandbox::UniqueFd stop_write_;
  std::mutex stop_mu_;
  std::thread thread_;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_ROTATION_WATCHER_H_
