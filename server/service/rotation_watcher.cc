#include "server/service/rotation_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/strings.h"

namespace vigo::server::service {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<RotationWatcher>> RotationWatcher::Start(
    const RotationWatcherOptions& options, std::function<void(const char* why)> check) {
  std::unique_ptr<RotationWatcher> w(new RotationWatcher(options, std::move(check)));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    return absl::InternalError(StrCat("rotation watcher: pipe2: ", std::strerror(errno)));
  }
  w->stop_read_ = sandbox::UniqueFd(p[0]);
  w->stop_write_ = sandbox::UniqueFd(p[1]);
  if (!options.watch_dir.empty()) {
    w->inotify_ = sandbox::UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!w->inotify_) {
      Log(LogLevel::kWarn, "rotation watcher: no inotify; relying on the version poll",
          {{"dir", options.watch_dir.string()}, {"errno", static_cast<int64_t>(errno)}});
    }
    w->AddWatches();
  }
  RotationWatcher* raw = w.get();
  w->thread_ = std::thread([raw] { raw->Loop(); });
  return w;
}

void RotationWatcher::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stop_write_) {
    char c = 'x';
    (void)!::write(stop_write_.get(), &c, 1);
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void RotationWatcher::AddWatches() {
  if (!inotify_) return;
  const uint32_t mask =
      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB | IN_ONLYDIR;
  // Watches already present are kept (inotify_add_watch on a watched
  // directory only updates its mask); a directory that vanished meanwhile
  // is simply not watched.
  (void)::inotify_add_watch(inotify_.get(), options_.watch_dir.c_str(), mask);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(options_.watch_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) (void)::inotify_add_watch(inotify_.get(), it->path().c_str(), mask);
  }
}

void RotationWatcher::Loop() {
  auto next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
  bool pending = false;
  auto pending_at = std::chrono::steady_clock::now();
  while (true) {
    auto now = std::chrono::steady_clock::now();
    auto deadline = pending ? std::min(pending_at, next_poll) : next_poll;
    int timeout_ms = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()));
    struct pollfd fds[2] = {{stop_read_.get(), POLLIN, 0},
                            {inotify_ ? inotify_.get() : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) {
      Log(LogLevel::kError, "rotation watcher stopped: poll failed",
          {{"errno", static_cast<int64_t>(errno)}});
      return;
    }
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP))) return;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      char buf[4096];
      while (::read(inotify_.get(), buf, sizeof(buf)) > 0) {
      }
      AddWatches();  // new subdirectories
      pending = true;
      pending_at = std::chrono::steady_clock::now() + options_.debounce;
      continue;
    }
    now = std::chrono::steady_clock::now();
    const char* why = nullptr;
    if (pending && now >= pending_at) {
      pending = false;
      why = "secrets dir changed";
    }
    if (now >= next_poll) {
      next_poll = now + options_.poll_interval;
      if (why == nullptr) why = "version poll";
    }
    if (why != nullptr) check_(why);
  }
}

}  // namespace vigo::server::service
