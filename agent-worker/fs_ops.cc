#include "agent-worker/fs_ops.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::worker {
namespace {

using sandbox::ErrnoStatus;
using sandbox::UniqueFd;

std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

absl::Status WriteAll(int fd, std::span<const uint8_t> data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status PrepareInode(int fd, mode_t mode, uid_t uid, gid_t gid, const std::string& path) {
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
      ::fchown(fd, uid, gid) != 0) {
    return ErrnoStatus(errno, "fchown", path);
  }
  // After fchown: chown clears set-id bits.
  if (::fchmod(fd, mode) != 0) return ErrnoStatus(errno, "fchmod", path);
  return absl::OkStatus();
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<mode_t> ParseMode(std::string_view text) {
  if (text.size() < 3 || text.size() > 5) {
    return absl::InvalidArgumentError(StrCat("mode '", text, "' is not an octal mode like 0640"));
  }
  unsigned v = 0;
  for (char c : text) {
    if (c < '0' || c > '7') {
      return absl::InvalidArgumentError(StrCat("mode '", text, "' is not an octal mode like 0640"));
    }
    v = v * 8 + static_cast<unsigned>(c - '0');
  }
  if (v > 07777) return absl::InvalidArgumentError(StrCat("mode '", text, "' is out of range"));
  return static_cast<mode_t>(v);
}

absl::StatusOr<uid_t> LookupUser(std::string_view name) {
  if (name.empty()) return static_cast<uid_t>(-1);
  if (AllDigits(name)) {
    unsigned long v = 0;
    std::from_chars(name.data(), name.data() + name.size(), v);
    return static_cast<uid_t>(v);
  }
  std::string n(name);
  struct passwd pw;
  struct passwd* res = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getpwnam_r(n.c_str(), &pw, buf.data(), buf.size(), &res);
  if (rc != 0 || res == nullptr) return absl::NotFoundError(StrCat("unknown user '", n, "'"));
  return pw.pw_uid;
}

absl::StatusOr<gid_t> LookupGroup(std::string_view name) {
  if (name.empty()) return static_cast<gid_t>(-1);
  if (AllDigits(name)) {
    unsigned long v = 0;
    std::from_chars(name.data(), name.data() + name.size(), v);
    return static_cast<gid_t>(v);
  }
  std::string n(name);
  struct group gr;
  struct group* res = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getgrnam_r(n.c_str(), &gr, buf.data(), buf.size(), &res);
  if (rc != 0 || res == nullptr) return absl::NotFoundError(StrCat("unknown group '", n, "'"));
  return gr.gr_gid;
}

absl::StatusOr<FileState> Inspect(const std::string& path) {
  struct stat st;
  FileState fs;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return fs;
    return ErrnoStatus(errno, "lstat", path);
  }
  fs.exists = true;
  fs.is_regular = S_ISREG(st.st_mode);
  fs.is_directory = S_ISDIR(st.st_mode);
  fs.mode = st.st_mode & 07777;
  fs.uid = st.st_uid;
  fs.gid = st.st_gid;
  fs.size = static_cast<uint64_t>(st.st_size);
  return fs;
}

absl::StatusOr<sandbox::SecretBuffer> ReadFileSecret(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return ErrnoStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat", path);
  if (!S_ISREG(st.st_mode))
    return absl::FailedPreconditionError(StrCat(path, " is not a regular file"));
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::FailedPreconditionError(
        StrCat(path, " is larger than ", static_cast<uint64_t>(max_bytes), " bytes"));
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer buf,
                        sandbox::SecretBuffer::Create(static_cast<size_t>(st.st_size)));
  size_t off = 0;
  std::span<uint8_t> dst = buf.RevealMutable();
  while (off < dst.size()) {
    ssize_t n = ::read(fd.get(), dst.data() + off, dst.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;  // shrank underneath us
    off += static_cast<size_t>(n);
  }
  if (off != dst.size()) VIGO_RETURN_IF_ERROR(buf.Resize(off));
  return buf;
}

absl::Status MakeDirs(const std::string& path, mode_t mode, std::set<std::string>* created_in) {
  if (path.empty() || path == "/") return absl::OkStatus();
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(StrCat(path, " exists and is not a directory"));
  }
  auto [parent, base] = SplitPath(path);
  VIGO_RETURN_IF_ERROR(MakeDirs(parent, 0755, created_in));
  if (::mkdir(path.c_str(), mode) != 0) {
    if (errno != EEXIST) return ErrnoStatus(errno, "mkdir", path);
  } else if (created_in != nullptr) {
    created_in->insert(parent);
  }
  return absl::OkStatus();
}

std::string TempNameFor(const std::string& path) {
  auto [dir, base] = SplitPath(path);
  return StrCat(dir == "/" ? "" : dir, "/.", base, ".vigo-tmp");
}

absl::Status RemoveStaleTemp(const std::string& path) {
  const std::string tmp = TempNameFor(path);
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
    return ErrnoStatus(errno, "unlink stale temp file", tmp);
  }
  return absl::OkStatus();
}

absl::Status SyncDirs(std::set<std::string>* dirs, std::set<std::string>* failed) {
  absl::Status first;
  for (const std::string& d : *dirs) {
    UniqueFd fd(::open(d.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) {
      if (first.ok()) first = ErrnoStatus(errno, "fsync directory", d);
      if (failed != nullptr) failed->insert(d);
    }
  }
  dirs->clear();
  return first;
}

PreparedWrite::~PreparedWrite() {
  // A named temp file that was never renamed into place.
  if (!committed && !anonymous && dirfd) ::unlinkat(dirfd.get(), tmp_base.c_str(), 0);
}

absl::StatusOr<PreparedWrite> PrepareWrite(const std::string& path,
                                           std::span<const uint8_t> content, mode_t mode, uid_t uid,
                                           gid_t gid) {
  PreparedWrite w;
  auto [dir, base] = SplitPath(path);
  w.path = path;
  w.dir = dir;
  w.base = base;
  w.tmp_base = StrCat(".", base, ".vigo-tmp");
  w.dirfd = UniqueFd(::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!w.dirfd) return ErrnoStatus(errno, "open directory", dir);
  // A temp file left by an earlier crash between link and rename.
  if (::unlinkat(w.dirfd.get(), w.tmp_base.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "unlink stale temp file", StrCat(dir, "/", w.tmp_base));
  }
  w.target_exists = ::faccessat(w.dirfd.get(), base.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
  // Preferred: an anonymous inode that vanishes if we die before linking it
  // (linking it needs /proc/self/fd, which the worker's namespace keeps).
  if (::access("/proc/self/fd", X_OK) == 0) {
    w.fd = UniqueFd(::openat(w.dirfd.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
    if (!w.fd && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
      return ErrnoStatus(errno, "open O_TMPFILE in", dir);
    }
  }
  w.anonymous = static_cast<bool>(w.fd);
  if (!w.anonymous) {
    // Fallback: a named 0600 temp file in the same directory.
    w.fd = UniqueFd(::openat(w.dirfd.get(), w.tmp_base.c_str(),
                             O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!w.fd) return ErrnoStatus(errno, "create temp file", StrCat(dir, "/", w.tmp_base));
  }
  // Owner and mode before any byte of content.
  VIGO_RETURN_IF_ERROR(PrepareInode(w.fd.get(), mode, uid, gid, path));
  VIGO_RETURN_IF_ERROR(WriteAll(w.fd.get(), content, path));
  return w;
}

absl::Status CommitWrite(PreparedWrite& w, std::set<std::string>* deferred_dir_syncs) {
  if (w.anonymous) {
    std::string proc = StrCat("/proc/self/fd/", w.fd.get());
    const char* link_name = w.target_exists ? w.tmp_base.c_str() : w.base.c_str();
    if (::linkat(AT_FDCWD, proc.c_str(), w.dirfd.get(), link_name, AT_SYMLINK_FOLLOW) != 0) {
      return ErrnoStatus(errno, "linkat", w.path);
    }
    w.committed = !w.target_exists;
    if (w.target_exists) w.anonymous = false;  // now a named temp: cleaned up on failure
  }
  if (!w.committed) {
    if (::renameat(w.dirfd.get(), w.tmp_base.c_str(), w.dirfd.get(), w.base.c_str()) != 0) {
      return ErrnoStatus(errno, "rename", w.path);
    }
    w.committed = true;
  }
  if (deferred_dir_syncs != nullptr) {
    deferred_dir_syncs->insert(w.dir);
  } else if (::fsync(w.dirfd.get()) != 0) {
    return ErrnoStatus(errno, "fsync directory", w.dir);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> content, mode_t mode,
                             uid_t uid, gid_t gid, std::set<std::string>* deferred_dir_syncs) {
  VIGO_ASSIGN_OR_RETURN(PreparedWrite w, PrepareWrite(path, content, mode, uid, gid));
  if (::fsync(w.fd.get()) != 0) return ErrnoStatus(errno, "fsync", path);
  return CommitWrite(w, deferred_dir_syncs);
}

absl::Status FixOwnerMode(const std::string& path, std::optional<mode_t> mode, uid_t uid,
                          gid_t gid) {
  // O_NOFOLLOW refuses to act through a symlink planted at the target.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return ErrnoStatus(errno, "open", path);
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
      ::fchown(fd.get(), uid, gid) != 0) {
    return ErrnoStatus(errno, "fchown", path);
  }
  if (mode.has_value() && ::fchmod(fd.get(), *mode) != 0) return ErrnoStatus(errno, "fchmod", path);
  return absl::OkStatus();
}

absl::Status RemoveFile(const std::string& path) {
  auto [dir, base] = SplitPath(path);
  if (::unlink(path.c_str()) != 0) return ErrnoStatus(errno, "unlink", path);
  UniqueFd dirfd(::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (dirfd) ::fsync(dirfd.get());
  return absl::OkStatus();
}

}  // namespace vigo::worker
