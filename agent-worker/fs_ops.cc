#include "agent-worker/fs_ops.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <vector>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/open_beneath.h"
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

// fchown when the ids differ from the inode's (a no-op chown needs no
// capability), then fchmod.
absl::Status SetOwnerMode(int fd, std::optional<mode_t> mode, uid_t uid, gid_t gid,
                          const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat", path);
  const bool uid_differs = uid != static_cast<uid_t>(-1) && uid != st.st_uid;
  const bool gid_differs = gid != static_cast<gid_t>(-1) && gid != st.st_gid;
  if ((uid_differs || gid_differs) && ::fchown(fd, uid, gid) != 0) {
    return ErrnoStatus(errno, "fchown", path);
  }
  // After fchown: chown clears set-id bits.
  if (mode.has_value() && ::fchmod(fd, *mode) != 0) return ErrnoStatus(errno, "fchmod", path);
  return absl::OkStatus();
}

absl::Status PrepareInode(int fd, mode_t mode, uid_t uid, gid_t gid, const std::string& path) {
  return SetOwnerMode(fd, mode, uid, gid, path);
}

FileState StateOf(const struct stat& st) {
  FileState fs;
  fs.exists = true;
  fs.is_regular = S_ISREG(st.st_mode);
  fs.is_directory = S_ISDIR(st.st_mode);
  fs.is_symlink = S_ISLNK(st.st_mode);
  fs.mode = st.st_mode & 07777;
  fs.uid = st.st_uid;
  fs.gid = st.st_gid;
  fs.size = static_cast<uint64_t>(st.st_size);
  fs.nlink = static_cast<uint64_t>(st.st_nlink);
  return fs;
}

absl::StatusOr<sandbox::SecretBuffer> ReadOpenedSecret(int fd, const std::string& path,
                                                       size_t max_bytes) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat", path);
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
    ssize_t n = ::read(fd, dst.data() + off, dst.size() - off);
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
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return FileState{};
    return ErrnoStatus(errno, "lstat", path);
  }
  return StateOf(st);
}

absl::StatusOr<FileState> InspectAt(int dirfd, const std::string& base, const std::string& full) {
  struct stat st;
  if (::fstatat(dirfd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return FileState{};
    return ErrnoStatus(errno, "lstat", full);
  }
  return StateOf(st);
}

absl::StatusOr<sandbox::SecretBuffer> ReadFileSecret(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return ErrnoStatus(errno, "open", path);
  return ReadOpenedSecret(fd.get(), path, max_bytes);
}

absl::StatusOr<sandbox::SecretBuffer> ReadFileSecretAt(int dirfd, const std::string& base,
                                                       const std::string& full, size_t max_bytes) {
  UniqueFd fd(::openat(dirfd, base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return ErrnoStatus(errno, "open", full);
  return ReadOpenedSecret(fd.get(), full, max_bytes);
}

std::string TargetPath::ShownPrefix(size_t n) const {
  std::string out;
  for (size_t i = 0; i < n && i < dirs.size() + 1; ++i) {
    StrAppend(&out, "/", i < dirs.size() ? dirs[i] : base);
  }
  return out.empty() ? "/" : out;
}

std::string TargetPath::Full() const { return StrCat(root, shown); }

std::string TargetPath::ParentFull() const {
  if (dirs.empty()) return root.empty() ? "/" : root;
  return StrCat(root, ShownPrefix(dirs.size()));
}

absl::StatusOr<TargetPath> ParseTargetPath(int root_fd, std::string_view root,
                                           std::string_view path, std::string_view what) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(StrCat(what, " '", path, "' is not an absolute path"));
  }
  if (path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat(what, " contains a NUL byte"));
  }
  TargetPath t;
  t.root_fd = root_fd;
  t.root = std::string(root);
  while (!t.root.empty() && t.root.back() == '/') t.root.pop_back();
  std::vector<std::string> segs;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (seg == "..") {
      return absl::InvalidArgumentError(StrCat(what, " '", path, "' contains '..'"));
    }
    if (!seg.empty() && seg != ".") segs.emplace_back(seg);
    i = j + 1;
  }
  if (segs.empty()) {
    return absl::InvalidArgumentError(StrCat(what, " '", path, "' names the apply root itself"));
  }
  t.base = std::move(segs.back());
  segs.pop_back();
  t.dirs = std::move(segs);
  t.shown = t.ShownPrefix(t.dirs.size() + 1);
  return t;
}

absl::Status SymlinkRefused(const TargetPath& t, size_t n) {
  const bool is_target = n >= t.dirs.size() + 1;
  return absl::FailedPreconditionError(
      StrCat(t.ShownPrefix(n), " is a symbolic link; refusing ", is_target ? "it" : t.shown,
             " (the worker never follows a link below the apply root)"));
}

absl::StatusOr<Owner> DefaultOwnerIn(int dirfd, const std::string& dir_shown) {
  struct stat st;
  if (::fstat(dirfd, &st) != 0) return ErrnoStatus(errno, "fstat", dir_shown);
  Owner o;
  if ((st.st_mode & S_ISGID) != 0) o.gid = st.st_gid;
  return o;
}

absl::StatusOr<UniqueFd> OpenParentDir(const TargetPath& t, bool create,
                                       std::set<std::string>* created_in) {
  if (t.dirs.empty()) {
    UniqueFd fd(::fcntl(t.root_fd, F_DUPFD_CLOEXEC, 0));
    if (!fd) return ErrnoStatus(errno, "dup apply root", t.root);
    return fd;
  }
  // Fast path: one openat2 that refuses a link in any segment and any escape.
  std::string rel;
  for (const std::string& d : t.dirs) StrAppend(&rel, rel.empty() ? "" : "/", d);
  UniqueFd fast(sandbox::OpenBeneath(t.root_fd, rel.c_str(), O_RDONLY | O_DIRECTORY));
  if (fast) return fast;
  // The per-segment walk: directories to create, the precise error, and the
  // fallback where openat2 is missing (ENOSYS): every step is relative to
  // the fd of the previous one and refuses a link (O_NOFOLLOW), and no
  // segment is "..", so it cannot leave the root either.
  UniqueFd cur(::fcntl(t.root_fd, F_DUPFD_CLOEXEC, 0));
  if (!cur) return ErrnoStatus(errno, "dup apply root", t.root);
  for (size_t i = 0; i < t.dirs.size(); ++i) {
    const std::string& seg = t.dirs[i];
    const int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd next(::openat(cur.get(), seg.c_str(), kDirFlags));
    if (!next && errno == ENOENT && create) {
      const std::string full = StrCat(t.root, t.ShownPrefix(i + 1));
      VIGO_ASSIGN_OR_RETURN(Owner owner, DefaultOwnerIn(cur.get(), full));
      if (::mkdirat(cur.get(), seg.c_str(), 0755) == 0) {
        if (created_in != nullptr) {
          created_in->insert(i == 0 ? (t.root.empty() ? "/" : t.root)
                                    : StrCat(t.root, t.ShownPrefix(i)));
        }
        next = UniqueFd(::openat(cur.get(), seg.c_str(), kDirFlags));
        if (next)
          VIGO_RETURN_IF_ERROR(SetOwnerMode(next.get(), std::nullopt, owner.uid, owner.gid, full));
      } else if (errno == EEXIST) {
        next = UniqueFd(::openat(cur.get(), seg.c_str(), kDirFlags));
      } else {
        return ErrnoStatus(errno, "mkdir", full);
      }
    }
    if (!next) {
      const int err = errno;
      if (err == ELOOP || err == ENOTDIR) {
        struct stat st;
        if (::fstatat(cur.get(), seg.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            !S_ISLNK(st.st_mode)) {
          return absl::FailedPreconditionError(
              StrCat(t.ShownPrefix(i + 1), " exists and is not a directory (on the way to ",
                     t.shown, ")"));
        }
        return SymlinkRefused(t, i + 1);
      }
      if (err == ENOENT) {
        return absl::NotFoundError(StrCat(t.root, t.ShownPrefix(i + 1), " does not exist"));
      }
      return ErrnoStatus(err, "open directory", StrCat(t.root, t.ShownPrefix(i + 1)));
    }
    cur = std::move(next);
  }
  return cur;
}

absl::Status MakeDirAt(int dirfd, const std::string& base, const std::string& full, mode_t mode,
                       uid_t uid, gid_t gid) {
  // 0700 until owner and mode are set.
  if (::mkdirat(dirfd, base.c_str(), 0700) != 0) return ErrnoStatus(errno, "mkdir", full);
  UniqueFd fd(::openat(dirfd, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open directory", full);
  return SetOwnerMode(fd.get(), mode, uid, gid, full);
}

std::string TempNameFor(const std::string& path) {
  auto [dir, base] = SplitPath(path);
  return StrCat(dir == "/" ? "" : dir, "/.", base, ".vigo-tmp");
}

absl::Status RemoveStaleTempAt(int dirfd, const std::string& base, const std::string& full) {
  const std::string tmp = StrCat(".", base, ".vigo-tmp");
  if (::unlinkat(dirfd, tmp.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "unlink stale temp file", TempNameFor(full));
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
  auto [dir, base] = SplitPath(path);
  UniqueFd dirfd(::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!dirfd) return ErrnoStatus(errno, "open directory", dir);
  return PrepareWriteAt(std::move(dirfd), dir, base, content, mode, uid, gid);
}

absl::StatusOr<PreparedWrite> PrepareWriteAt(UniqueFd dirfd, const std::string& dir,
                                             const std::string& base,
                                             std::span<const uint8_t> content, mode_t mode,
                                             uid_t uid, gid_t gid) {
  PreparedWrite w;
  w.path = StrCat(dir == "/" ? "" : dir, "/", base);
  w.dir = dir;
  w.base = base;
  w.tmp_base = StrCat(".", base, ".vigo-tmp");
  w.dirfd = std::move(dirfd);
  const std::string& path = w.path;
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

absl::Status FixOwnerModeAt(int dirfd, const std::string& base, const std::string& full,
                            bool want_directory, std::optional<mode_t> mode, uid_t uid, gid_t gid) {
  // O_NOFOLLOW refuses to act through a symlink planted at the target,
  // O_NONBLOCK not to hang on a FIFO put there instead.
  UniqueFd fd(::openat(dirfd, base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(StrCat(full, " is a symbolic link; not followed"));
    }
    return ErrnoStatus(errno, "open", full);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat", full);
  if (want_directory ? !S_ISDIR(st.st_mode) : (!S_ISREG(st.st_mode) || st.st_nlink != 1)) {
    return absl::FailedPreconditionError(
        StrCat(full, want_directory ? " is no longer a directory"
                                    : " is not a regular file with a single link"));
  }
  return SetOwnerMode(fd.get(), mode, uid, gid, full);
}

absl::Status RemoveAt(int dirfd, const std::string& base, const std::string& full, bool directory) {
  if (::unlinkat(dirfd, base.c_str(), directory ? AT_REMOVEDIR : 0) != 0) {
    return ErrnoStatus(errno, directory ? "rmdir" : "unlink", full);
  }
  if (::fsync(dirfd) != 0) return ErrnoStatus(errno, "fsync directory of", full);
  return absl::OkStatus();
}

}  // namespace vigo::worker
