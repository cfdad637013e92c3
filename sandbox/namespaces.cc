#include "sandbox/namespaces.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "common/strings.h"
#include "sandbox/syscall_status.h"

namespace vigo::sandbox {
namespace {

std::atomic<bool> g_private_mount_ns{false};

int CloseRange(unsigned first, unsigned last) {
  return static_cast<int>(::syscall(SYS_close_range, first, last, 0));
}

}  // namespace

absl::StatusOr<std::vector<int>> ListOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return ErrnoStatus(errno, "opendir", "/proc/self/fd");
  const int self_fd = ::dirfd(dir);
  std::vector<int> fds;
  while (struct dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != self_fd) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

absl::Status CloseFdsExcept(std::span<const int> keep) {
  std::vector<int> sorted(keep.begin(), keep.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  unsigned next = 0;
  for (int k : sorted) {
    if (k < 0) return absl::InvalidArgumentError("close fds: negative fd in keep list");
    if (static_cast<unsigned>(k) > next) {
      if (CloseRange(next, static_cast<unsigned>(k) - 1) != 0) {
        return ErrnoStatus(errno, "close_range");
      }
    }
    next = static_cast<unsigned>(k) + 1;
  }
  if (CloseRange(next, ~0U) != 0) return ErrnoStatus(errno, "close_range");

  auto open = ListOpenFds();
  if (!open.ok()) return open.status();
  for (int fd : *open) {
    if (!std::binary_search(sorted.begin(), sorted.end(), fd)) {
      return absl::InternalError(StrCat("close fds: fd ", fd, " still open after close_range"));
    }
  }
  return absl::OkStatus();
}

absl::Status EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) return ErrnoStatus(errno, "unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoStatus(errno, "mount --make-rprivate", "/");
  }
  g_private_mount_ns.store(true);
  return absl::OkStatus();
}

absl::Status HidePaths(const std::vector<std::string>& paths) {
  if (!g_private_mount_ns.load()) {
    return absl::FailedPreconditionError(
        "hide paths: refusing to mount covers in the host mount namespace");
  }
  for (const std::string& path : paths) {
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(StrCat("hide paths: not absolute: ", path));
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "hide paths: stat", path);
    const unsigned long ro_flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (S_ISDIR(st.st_mode)) {
      if (::mount("vigo-hidden", path.c_str(), "tmpfs", ro_flags, "size=4k,nr_inodes=1,mode=000") !=
          0) {
        return ErrnoStatus(errno, "hide paths: mount tmpfs", path);
      }
    } else {
      if (::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        return ErrnoStatus(errno, "hide paths: bind /dev/null", path);
      }
      // A bind mount ignores MS_RDONLY until remounted.
      if (::mount(nullptr, path.c_str(), nullptr, MS_REMOUNT | MS_BIND | ro_flags, nullptr) != 0) {
        return ErrnoStatus(errno, "hide paths: remount read-only", path);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace vigo::sandbox
