// File-system primitives of the apply engine: durable atomic replacement of a
// file, owner/mode lookups, and the walk that resolves a target below the
// apply root.
//
//   UniqueFd root(::open(apply_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
//   auto t = ParseTargetPath(root.get(), apply_root, "/etc/webapp/config.yaml",
//                            "target_path");
//   auto dir = OpenParentDir(*t, /*create=*/true, &dirs_to_sync);
//   auto w = PrepareWriteAt(std::move(*dir), t->ParentFull(), t->base, ...);
//
// SECURITY (the apply root is a boundary): every operation on a target starts
// from an fd of the apply root. The parent directory is opened with one
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
// (sandbox/open_beneath.h); when that fails (a missing directory to create, a
// symlink to name, a kernel without openat2) a per-segment walk of
// openat(O_DIRECTORY | O_NOFOLLOW) from the root fd applies the same rules
// and gives the precise error. Segments are validated first (no "..", no NUL),
// so neither path can leave the root or pass through a link: a symlink
// anywhere on the way fails the operation naming that component. Everything
// after the walk is relative to the held parent fd (openat O_NOFOLLOW,
// fstatat AT_SYMLINK_NOFOLLOW, unlinkat, renameat, linkat, fchown/fchmod on
// an opened fd), so a directory swapped for a link after the walk cannot
// redirect it: at worst the write lands in the directory inode the walk
// verified, by name, never onto an existing inode elsewhere.
//
// SECURITY: WriteFileAtomic sets owner and mode on an anonymous (O_TMPFILE) or
// 0600 temp inode before writing any content, fsyncs it, then links/renames it
// into place and fsyncs the directory. A crash at any point leaves either the
// old file or the new one, never a partial file or one with a wrong mode; a
// named temp file left by a crash between link and rename is removed by the
// next write of the same target.
#ifndef VIGO_AGENT_WORKER_FS_OPS_H_
#define VIGO_AGENT_WORKER_FS_OPS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/unique_fd.h"

namespace vigo::worker {

// "0640" → 0640. INVALID_ARGUMENT naming the mode text on anything but 3–4
// octal digits (at most 07777).
absl::StatusOr<mode_t> ParseMode(std::string_view text);

// Owner and group names (or numeric ids) → ids; -1 means "leave as is".
// NOT_FOUND naming the user or group.
absl::StatusOr<uid_t> LookupUser(std::string_view name);
absl::StatusOr<gid_t> LookupGroup(std::string_view name);

struct FileState {
  bool exists = false;
  bool is_regular = false;
  bool is_directory = false;
  bool is_symlink = false;
  mode_t mode = 0;  // permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
  uint64_t nlink = 0;
};
// lstat without following a final symlink. exists=false on ENOENT. The
// directories on the way are followed: for paths the operator gave (exec
// `creates`), never for targets (InspectAt).
absl::StatusOr<FileState> Inspect(const std::string& path);

// A target path below the apply root, split for fd-relative operations.
// `root_fd` is borrowed and must outlive it.
struct TargetPath {
  int root_fd = -1;
  std::string root;               // the apply root as given ("" = "/")
  std::vector<std::string> dirs;  // segments of the parent: {"etc", "webapp"}
  std::string base;               // the final segment: "config.yaml"
  std::string shown;              // as the bundle names it: "/etc/webapp/config.yaml"

  std::string Full() const;        // root + shown, for messages
  std::string ParentFull() const;  // root + the parent's shown path
  // The first `n` segments as the bundle names them: "/etc/webapp" for 2.
  std::string ShownPrefix(size_t n) const;
};

// Splits an absolute `path` (a target_path, cwd, creates) into segments.
// INVALID_ARGUMENT naming `what` and the path when it is not absolute,
// contains a NUL byte or a ".." segment, or names the apply root itself.
// Empty and "." segments are dropped.
absl::StatusOr<TargetPath> ParseTargetPath(int root_fd, std::string_view root,
                                           std::string_view path, std::string_view what);

// Opens the parent directory of `t` below its root (see the header comment).
// With `create`, missing directories are made 0755 and owned as a root
// writer's would be (uid 0; gid 0, or the parent's group below a set-group-ID
// directory), whatever the worker's uid, and the parent of each new directory
// is added to `created_in` (fsync them with SyncDirs). Errors:
// FAILED_PRECONDITION naming the component that is a symbolic link or not a
// directory; NOT_FOUND when a directory is missing and !create.
absl::StatusOr<sandbox::UniqueFd> OpenParentDir(const TargetPath& t, bool create,
                                                std::set<std::string>* created_in = nullptr);

// The FAILED_PRECONDITION every walk returns for a link: names the first
// `n` segments of `t` (the link) and the target.
absl::Status SymlinkRefused(const TargetPath& t, size_t n);

// The owner a root writer would give a new entry of `dirfd`: uid 0, gid 0,
// or the directory's group when it is set-group-ID. The default owner of
// targets, so that --worker-user does not change who owns files.
struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};
absl::StatusOr<Owner> DefaultOwnerIn(int dirfd, const std::string& dir_shown);

// fstatat(dirfd, base, AT_SYMLINK_NOFOLLOW); exists=false on ENOENT.
absl::StatusOr<FileState> InspectAt(int dirfd, const std::string& base, const std::string& full);

// Reads a regular file (not following symlinks) into a SecretBuffer; at most
// `max_bytes` (FAILED_PRECONDITION when larger). The path form follows the
// directories on the way (tests, operator paths); targets use ReadFileSecretAt.
absl::StatusOr<sandbox::SecretBuffer> ReadFileSecret(const std::string& path, size_t max_bytes);
absl::StatusOr<sandbox::SecretBuffer> ReadFileSecretAt(int dirfd, const std::string& base,
                                                       const std::string& full, size_t max_bytes);

// mkdirat(dirfd, base) then, on the new directory opened O_NOFOLLOW, owner
// and `mode`. uid/gid of -1 keep the writer's ids. ALREADY_EXISTS when it
// exists.
absl::Status MakeDirAt(int dirfd, const std::string& base, const std::string& full, mode_t mode,
                       uid_t uid, gid_t gid);

// Replaces `path` with `content` atomically and durably (see above). uid/gid
// of -1 keep the writer's ids. When `deferred_dir_syncs` is given, the
// directory fsync is left to the caller (SyncDirs), which lets one apply
// fsync each directory once instead of once per file.
absl::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> content, mode_t mode,
                             uid_t uid, gid_t gid,
                             std::set<std::string>* deferred_dir_syncs = nullptr);

// The two halves of WriteFileAtomic, so that one apply can make many files'
// data durable with a single syncfs(2) instead of one fsync each:
//   PrepareWrite: temp inode (O_TMPFILE, else a 0600 named temp), owner and
//                 mode, then content. Not yet durable, not yet visible.
//   (caller)      fsync(w.fd) or syncfs on the file system.
//   CommitWrite:  link/rename into place; directory fsync (or deferred).
// Destroying an uncommitted PreparedWrite removes its named temp file; an
// anonymous one vanishes with its fd.
struct PreparedWrite {
  PreparedWrite() = default;
  PreparedWrite(PreparedWrite&&) = default;
  PreparedWrite& operator=(PreparedWrite&&) = default;
  ~PreparedWrite();
  std::string path, dir, base, tmp_base;
  sandbox::UniqueFd dirfd, fd;
  bool anonymous = false;
  bool target_exists = false;
  bool committed = false;
};
// The path form opens the directory of `path` following links (tests,
// directories Vigo made itself); targets use PrepareWriteAt with the fd of
// OpenParentDir. `dir` is the directory's path, for messages and SyncDirs.
absl::StatusOr<PreparedWrite> PrepareWrite(const std::string& path,
                                           std::span<const uint8_t> content, mode_t mode, uid_t uid,
                                           gid_t gid);
absl::StatusOr<PreparedWrite> PrepareWriteAt(sandbox::UniqueFd dirfd, const std::string& dir,
                                             const std::string& base,
                                             std::span<const uint8_t> content, mode_t mode,
                                             uid_t uid, gid_t gid);
absl::Status CommitWrite(PreparedWrite& w, std::set<std::string>* deferred_dir_syncs);

// fsyncs every directory in `dirs` and clears it. The first error is returned
// after all were tried; with `failed`, every directory whose fsync failed is
// added to it.
absl::Status SyncDirs(std::set<std::string>* dirs, std::set<std::string>* failed = nullptr);

// chown/chmod of the existing entry `base` of `dirfd`, opened O_NOFOLLOW |
// O_NONBLOCK and re-checked on the fd: FAILED_PRECONDITION when it is not a
// directory (want_directory) or not a regular file with a single link (a
// hard link shares its inode with a file elsewhere; replace it instead).
// uid/gid of -1 leave them; mode nullopt leaves it.
absl::Status FixOwnerModeAt(int dirfd, const std::string& base, const std::string& full,
                            bool want_directory, std::optional<mode_t> mode, uid_t uid, gid_t gid);

// unlinkat(dirfd, base) (a file: flags 0; a directory: AT_REMOVEDIR), then
// fsync of the directory.
absl::Status RemoveAt(int dirfd, const std::string& base, const std::string& full, bool directory);

// The temp name WriteFileAtomic uses for `path` when it needs one.
std::string TempNameFor(const std::string& path);

// Removes the named temp file (TempNameFor) an earlier worker may have left
// next to `base` in `dirfd` when it was killed mid-write on a file system
// without O_TMPFILE. Missing is fine; any other failure is returned.
absl::Status RemoveStaleTempAt(int dirfd, const std::string& base, const std::string& full);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_FS_OPS_H_
