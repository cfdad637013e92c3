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
#include <iterator>
#include <string>
#include <utility>
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

absl::Status MountMinimalDev() {
  if (!g_private_mount_ns.load()) {
    return absl::FailedPreconditionError(
        "minimal /dev: refusing to replace /dev in the host mount namespace");
  }
  // The host's /dev stays mounted underneath the new tmpfs (hidden); the
  // nodes to keep are held open (O_PATH) first and bound back from their fds.
  static constexpr const char* kNodes[] = {"null", "zero", "full", "random", "urandom"};
  int node_fds[std::size(kNodes)];
  for (size_t i = 0; i < std::size(kNodes); ++i) {
    std::string path = StrCat("/dev/", kNodes[i]);
    node_fds[i] = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (node_fds[i] < 0) {
      const int err = errno;
      for (size_t j = 0; j < i; ++j) ::close(node_fds[j]);
      return ErrnoStatus(err, "minimal /dev: open", path);
    }
    struct stat st;
    if (::fstat(node_fds[i], &st) != 0 || !S_ISCHR(st.st_mode)) {
      for (size_t j = 0; j <= i; ++j) ::close(node_fds[j]);
      return absl::FailedPreconditionError(StrCat("minimal /dev: ", path, " is not a character device"));
    }
  }
  auto close_all = [&] {  // idempotent: an error after the binds must not close twice
    for (int& fd : node_fds) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  };
  // /dev/log: a socket (syslog) or a symlink to one (systemd's journal).
  std::string log_link;
  bool log_socket = false;
  int log_fd = -1;
  {
    struct stat st;
    if (::lstat("/dev/log", &st) == 0) {
      if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t n = ::readlink("/dev/log", buf, sizeof(buf) - 1);
        if (n > 0) log_link.assign(buf, static_cast<size_t>(n));
      } else if (S_ISSOCK(st.st_mode)) {
        log_fd = ::open("/dev/log", O_PATH | O_CLOEXEC | O_NOFOLLOW);
        log_socket = log_fd >= 0;
      }
    }
  }
  auto fail = [&](int err, std::string_view what, std::string_view path) {
    close_all();
    if (log_fd >= 0) ::close(log_fd);
    return ErrnoStatus(err, StrCat("minimal /dev: ", what), path);
  };
  if (::mount("vigo-dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=755") != 0) {
    return fail(errno, "mount tmpfs", "/dev");
  }
  auto bind_from_fd = [&](int fd, const std::string& target) -> int {
    std::string src = StrCat("/proc/self/fd/", fd);
    if (::mount(src.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) return errno;
    if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC,
                nullptr) != 0) {
      return errno;
    }
    return 0;
  };
  for (size_t i = 0; i < std::size(kNodes); ++i) {
    std::string target = StrCat("/dev/", kNodes[i]);
    int fd = ::open(target.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) return fail(errno, "create", target);
    ::close(fd);
    if (int err = bind_from_fd(node_fds[i], target); err != 0) return fail(err, "bind", target);
  }
  close_all();
  if (log_socket) {
    int fd = ::open("/dev/log", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) return fail(errno, "create", "/dev/log");
    ::close(fd);
    int err = bind_from_fd(log_fd, "/dev/log");
    ::close(log_fd);
    log_fd = -1;
    if (err != 0) return fail(err, "bind", "/dev/log");
  } else if (!log_link.empty() && ::symlink(log_link.c_str(), "/dev/log") != 0) {
    return fail(errno, "symlink", "/dev/log");
  }
  const std::pair<const char*, const char*> kLinks[] = {{"/proc/self/fd", "/dev/fd"},
                                                        {"/proc/self/fd/0", "/dev/stdin"},
                                                        {"/proc/self/fd/1", "/dev/stdout"},
                                                        {"/proc/self/fd/2", "/dev/stderr"}};
  for (const auto& [to, from] : kLinks) {
    if (::symlink(to, from) != 0) return fail(errno, "symlink", from);
  }
  if (::mkdir("/dev/shm", 01777) != 0) return fail(errno, "mkdir", "/dev/shm");
  if (::mount("vigo-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777") != 0) {
    return fail(errno, "mount tmpfs", "/dev/shm");
  }
  // Nothing may be added later (no device node, no planted link).
  if (::mount(nullptr, "/dev", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
              "size=64k,nr_inodes=64,mode=755") != 0) {
    return fail(errno, "remount read-only", "/dev");
  }
  return absl::OkStatus();
}

absl::Status MountOwnProc() {
  if (!g_private_mount_ns.load()) {
    return absl::FailedPreconditionError("own /proc: the mount namespace is not private");
  }
  if (::getpid() != 1) {
    return absl::FailedPreconditionError(
        StrCat("own /proc: this process is pid ", ::getpid(),
               ", not PID 1 of its own PID namespace (it must be started with CLONE_NEWPID)"));
  }
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return ErrnoStatus(errno, "own /proc: mount proc", "/proc");
  }
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
