#include "server/vault/secure_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <functional>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/open_beneath.h"
#include "sandbox/syscall_status.h"
#include "server/vault/vault_crypto.h"
#include "vocab/hex.h"

namespace vigo::server::vault {
namespace {

using sandbox::ErrnoStatus;
using sandbox::UniqueFd;

std::vector<std::string_view> Split(std::string_view rel) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t slash = rel.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(rel.substr(start));
      break;
    }
    out.push_back(rel.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

absl::Status SymlinkRefused(const std::filesystem::path& base, std::string_view rel) {
  return absl::FailedPreconditionError(
      StrCat("refusing ", (base / std::string(rel)).string(),
             ": a symlink (or non-directory) in the vault path; the vault never follows links"));
}

absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& what) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", what);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status EnsureBase(const std::filesystem::path& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0) return absl::OkStatus();
  if (errno != ENOENT) return ErrnoStatus(errno, "stat", dir.string());
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    VIGO_RETURN_IF_ERROR(EnsureBase(dir.parent_path()));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "mkdir", dir.string());
  }
  return absl::OkStatus();
}

}  // namespace

bool IsReservedName(std::string_view segment) {
  return segment.substr(0, 5) == ".vigo" || segment.substr(0, 11) == ".master.key";
}

absl::StatusOr<SecureDir> SecureDir::Open(const std::filesystem::path& base, bool create) {
  if (create) VIGO_RETURN_IF_ERROR(EnsureBase(base));
  // The base itself may be reached through links the operator set up (e.g.
  // /srv -> /data/srv); below it, nothing is followed.
  UniqueFd fd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open vault directory", base.string());
  return SecureDir(base, std::move(fd));
}

absl::StatusOr<UniqueFd> SecureDir::OpenParent(std::string_view rel, bool create,
                                               std::string* leaf) const {
  std::vector<std::string_view> segs = Split(rel);
  UniqueFd cur(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!cur) return ErrnoStatus(errno, "dup", base_.string());
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    std::string seg(segs[i]);
    UniqueFd next(
        ::openat(cur.get(), seg.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), seg.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, "mkdir", (base_ / std::string(rel)).parent_path().string());
      }
      if (::fsync(cur.get()) != 0) return ErrnoStatus(errno, "fsync", base_.string());
      next = UniqueFd(
          ::openat(cur.get(), seg.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if (!next) {
      if (errno == ELOOP || errno == ENOTDIR) {
        std::string prefix;
        for (size_t j = 0; j <= i; ++j) StrAppend(&prefix, j ? "/" : "", segs[j]);
        struct stat sb;
        if (::fstatat(cur.get(), seg.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(sb.st_mode)) {
          return absl::NotFoundError(
              StrCat((base_ / prefix).string(), " is a secret, not a directory of secrets"));
        }
        return SymlinkRefused(base_, prefix);
      }
      return ErrnoStatus(errno, "open", (base_ / std::string(rel)).string());
    }
    cur = std::move(next);
  }
  *leaf = std::string(segs.back());
  return cur;
}

absl::StatusOr<std::optional<std::vector<uint8_t>>> SecureDir::Read(std::string_view rel,
                                                                    size_t max_bytes) const {
  // Fast path: one openat2 that refuses symlinks in every segment and any
  // escape from the vault directory. Any failure (missing file, a symlink,
  // an old kernel) takes the per-segment walk below, which applies the same
  // rules and produces the precise error.
  UniqueFd fd(sandbox::OpenBeneath(fd_.get(), std::string(rel).c_str(), O_RDONLY | O_NOFOLLOW));
  if (!fd) {
    std::string leaf;
    auto parent = OpenParent(rel, /*create=*/false, &leaf);
    if (!parent.ok()) {
      if (absl::IsNotFound(parent.status())) return std::optional<std::vector<uint8_t>>();
      return parent.status();
    }
    fd = UniqueFd(::openat(parent->get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) return std::optional<std::vector<uint8_t>>();
      if (errno == ELOOP) return SymlinkRefused(base_, rel);
      return ErrnoStatus(errno, "open", (base_ / std::string(rel)).string());
    }
  }
  const std::string full = (base_ / std::string(rel)).string();
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", full);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat(full, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::DataLossError(StrCat(full, " is ", static_cast<uint64_t>(st.st_size),
                                      " bytes, larger than any valid vault file (", max_bytes,
                                      ")"));
  }
  std::vector<uint8_t> out(static_cast<size_t>(st.st_size) + 1);
  size_t done = 0;
  while (true) {
    if (done == out.size()) {
      return absl::DataLossError(StrCat(full, " grew while being read"));
    }
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", full);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return std::optional<std::vector<uint8_t>>(std::move(out));
}

absl::StatusOr<sandbox::SecretBuffer> SecureDir::ReadPrivate(std::string_view rel,
                                                             size_t max_bytes) const {
  std::string leaf;
  VIGO_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(rel, false, &leaf));
  const std::string full = (base_ / std::string(rel)).string();
  UniqueFd fd(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ELOOP) return SymlinkRefused(base_, rel);
    return ErrnoStatus(errno, "open", full);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", full);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat(full, " is not a regular file"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(StrCat(
        full, " is owned by uid ", st.st_uid, ", not by the running uid ", ::geteuid(),
        "; refusing to use it. Fix: chown ", ::geteuid(), " ", full, " && chmod 600 ", full));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return absl::FailedPreconditionError(
        StrCat(full, " has mode ", mode,
               " and is accessible by group or others; refusing to use it. Fix: chmod 600 ", full));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::FailedPreconditionError(StrCat(full, " is ", static_cast<uint64_t>(st.st_size),
                                                " bytes; expected at most ", max_bytes));
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer buf,
                        sandbox::SecretBuffer::Create(static_cast<size_t>(st.st_size)));
  size_t done = 0;
  std::span<uint8_t> out = buf.RevealMutable();
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", full);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  VIGO_RETURN_IF_ERROR(buf.Resize(done));
  return buf;
}

bool SecureDir::Exists(std::string_view rel) const {
  std::string leaf;
  auto parent = OpenParent(rel, false, &leaf);
  if (!parent.ok()) return false;
  struct stat st;
  return ::fstatat(parent->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

absl::Status SecureDir::WriteTemp(int dir_fd, std::string_view rel, std::span<const uint8_t> bytes,
                                  std::string* temp_name) const {
  const std::string full = (base_ / std::string(rel)).string();
  uint8_t rnd[8];
  VIGO_RETURN_IF_ERROR(RandomBytes(rnd));
  *temp_name = StrCat(kTempPrefix, vocab::Hex(rnd));
  // 0600 from the first byte: O_CREAT with mode 0600 (umask can only remove
  // bits), and O_EXCL so an existing file or link is never reused.
  UniqueFd fd(::openat(dir_fd, temp_name->c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, "create temp file for", full);
  absl::Status st = WriteAll(fd.get(), bytes, full);
  if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoStatus(errno, "fsync", full);
  if (st.ok()) {
    int fd_num = fd.release();
    if (::close(fd_num) != 0 && errno != EINTR) st = ErrnoStatus(errno, "close", full);
  }
  if (!st.ok()) ::unlinkat(dir_fd, temp_name->c_str(), 0);
  return st;
}

absl::Status SecureDir::SyncDirOf(std::string_view rel) const {
  std::string leaf;
  VIGO_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(rel, false, &leaf));
  if (::fsync(parent.get()) != 0) {
    return ErrnoStatus(errno, "fsync directory of", (base_ / std::string(rel)).string());
  }
  return absl::OkStatus();
}

absl::Status SecureDir::WriteAtomic(std::string_view rel, std::span<const uint8_t> bytes,
                                    bool sync_dir) const {
  std::string leaf;
  VIGO_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(rel, /*create=*/true, &leaf));
  const std::string full = (base_ / std::string(rel)).string();
  struct stat st;
  if (::fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      !S_ISREG(st.st_mode)) {
    if (S_ISLNK(st.st_mode)) return SymlinkRefused(base_, rel);
    return absl::FailedPreconditionError(
        StrCat(full, " exists and is not a regular file (a directory of other secrets?)"));
  }
  std::string temp;
  VIGO_RETURN_IF_ERROR(WriteTemp(parent.get(), rel, bytes, &temp));
  if (::renameat(parent.get(), temp.c_str(), parent.get(), leaf.c_str()) != 0) {
    absl::Status err = ErrnoStatus(errno, "rename into place", full);
    ::unlinkat(parent.get(), temp.c_str(), 0);
    return err;
  }
  if (sync_dir && ::fsync(parent.get()) != 0) {
    return ErrnoStatus(errno, "fsync directory of", full);
  }
  return absl::OkStatus();
}

absl::Status SecureDir::CreateExclusive(std::string_view rel,
                                        std::span<const uint8_t> bytes) const {
  std::string leaf;
  VIGO_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(rel, /*create=*/true, &leaf));
  const std::string full = (base_ / std::string(rel)).string();
  std::string temp;
  VIGO_RETURN_IF_ERROR(WriteTemp(parent.get(), rel, bytes, &temp));
  // link(2) fails with EEXIST instead of replacing: a complete file appears
  // at `rel` or nothing does.
  int rc = ::linkat(parent.get(), temp.c_str(), parent.get(), leaf.c_str(), 0);
  int err = errno;
  ::unlinkat(parent.get(), temp.c_str(), 0);
  if (rc != 0) {
    if (err == EEXIST) return absl::AlreadyExistsError(StrCat(full, " already exists"));
    return ErrnoStatus(err, "create", full);
  }
  if (::fsync(parent.get()) != 0) return ErrnoStatus(errno, "fsync directory of", full);
  return absl::OkStatus();
}

absl::Status SecureDir::Rename(std::string_view from, std::string_view to) const {
  std::string from_leaf, to_leaf;
  VIGO_ASSIGN_OR_RETURN(UniqueFd from_dir, OpenParent(from, false, &from_leaf));
  VIGO_ASSIGN_OR_RETURN(UniqueFd to_dir, OpenParent(to, true, &to_leaf));
  if (::renameat(from_dir.get(), from_leaf.c_str(), to_dir.get(), to_leaf.c_str()) != 0) {
    return ErrnoStatus(errno, "rename", (base_ / std::string(from)).string());
  }
  if (::fsync(to_dir.get()) != 0) return ErrnoStatus(errno, "fsync", base_.string());
  if (::fsync(from_dir.get()) != 0) return ErrnoStatus(errno, "fsync", base_.string());
  return absl::OkStatus();
}

absl::Status SecureDir::Remove(std::string_view rel) const {
  std::string leaf;
  VIGO_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(rel, false, &leaf));
  const std::string full = (base_ / std::string(rel)).string();
  struct stat st;
  if (::fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, "remove", full);
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(StrCat(full, " is a directory of secrets, not a secret"));
  }
  if (::unlinkat(parent.get(), leaf.c_str(), 0) != 0) return ErrnoStatus(errno, "remove", full);
  if (::fsync(parent.get()) != 0) return ErrnoStatus(errno, "fsync directory of", full);
  // Remove now-empty parent directories, innermost first; stop at the first
  // that is not empty (ENOTEMPTY) or is the base.
  std::string dir(rel);
  while (true) {
    size_t slash = dir.rfind('/');
    if (slash == std::string::npos) break;
    dir.resize(slash);
    std::string dleaf;
    auto dparent = OpenParent(StrCat(dir), false, &dleaf);
    if (!dparent.ok()) break;
    if (::unlinkat(dparent->get(), dleaf.c_str(), AT_REMOVEDIR) != 0) break;
    ::fsync(dparent->get());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SecureDir::ListFiles() const {
  std::vector<std::string> out;
  std::function<absl::Status(int, const std::string&)> walk = [&](int dir_fd,
                                                                  const std::string& prefix) {
    UniqueFd dup(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dup) return ErrnoStatus(errno, "open", (base_ / prefix).string());
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) return ErrnoStatus(errno, "opendir", (base_ / prefix).string());
    dup.release();  // owned by d now
    absl::Status st;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == ".." || IsReservedName(name)) continue;
      names.emplace_back(name);
    }
    for (const std::string& name : names) {
      struct stat sb;
      if (::fstatat(::dirfd(d), name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) continue;
      std::string rel = prefix.empty() ? name : StrCat(prefix, "/", name);
      if (S_ISREG(sb.st_mode)) {
        out.push_back(rel);
      } else if (S_ISDIR(sb.st_mode)) {
        UniqueFd sub(
            ::openat(::dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) continue;
        st = walk(sub.get(), rel);
        if (!st.ok()) break;
      }
      // Symlinks and special files are never secrets.
    }
    ::closedir(d);
    return st;
  };
  VIGO_RETURN_IF_ERROR(walk(fd_.get(), ""));
  std::sort(out.begin(), out.end());
  return out;
}

size_t SecureDir::RemoveTempFiles(std::chrono::seconds min_age) const {
  size_t removed = 0;
  const time_t now = ::time(nullptr);
  const uid_t me = ::geteuid();
  std::function<void(int, int)> walk = [&](int dir_fd, int depth) {
    if (depth > 64) return;
    UniqueFd dup(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dup) return;
    DIR* d = ::fdopendir(dup.get());
    if (d == nullptr) return;
    dup.release();
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    for (const std::string& name : names) {
      struct stat sb;
      if (::fstatat(::dirfd(d), name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (name.rfind(kTempPrefix, 0) == 0) {
        // Only our own, plain, old files: a symlink or a file someone else
        // planted is left alone (unlinkat never follows the name either).
        if (S_ISREG(sb.st_mode) && sb.st_uid == me && now - sb.st_mtime >= min_age.count() &&
            ::unlinkat(::dirfd(d), name.c_str(), 0) == 0) {
          ++removed;
        }
      } else if (S_ISDIR(sb.st_mode)) {
        UniqueFd sub(
            ::openat(::dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub) walk(sub.get(), depth + 1);
      }
    }
    ::closedir(d);
  };
  walk(fd_.get(), 0);
  return removed;
}

absl::StatusOr<UniqueFd> SecureDir::LockExclusive() const {
  UniqueFd fd(::openat(fd_.get(), ".vigo-lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, "open lock file in", base_.string());
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoStatus(errno, "lock", base_.string());
  }
  return fd;
}

}  // namespace vigo::server::vault
