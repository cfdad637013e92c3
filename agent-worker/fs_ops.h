// File-system primitives of the apply engine: durable atomic replacement of a
// file, owner/mode lookups. Paths here are already rooted (apply_root applied).
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
  mode_t mode = 0;  // permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
};
// lstat without following a final symlink. exists=false on ENOENT.
absl::StatusOr<FileState> Inspect(const std::string& path);

// Reads a regular file (not following symlinks) into a SecretBuffer; at most
// `max_bytes` (FAILED_PRECONDITION when larger).
absl::StatusOr<sandbox::SecretBuffer> ReadFileSecret(const std::string& path, size_t max_bytes);

// mkdir -p with `mode` for the directories it creates. When `created_in` is
// given, the parent of every directory it creates is added to it: fsyncing
// those (SyncDirs) makes the new directories' entries durable.
absl::Status MakeDirs(const std::string& path, mode_t mode,
                      std::set<std::string>* created_in = nullptr);

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
absl::StatusOr<PreparedWrite> PrepareWrite(const std::string& path,
                                           std::span<const uint8_t> content, mode_t mode, uid_t uid,
                                           gid_t gid);
absl::Status CommitWrite(PreparedWrite& w, std::set<std::string>* deferred_dir_syncs);

// fsyncs every directory in `dirs` and clears it. The first error is returned
// after all were tried; with `failed`, every directory whose fsync failed is
// added to it.
absl::Status SyncDirs(std::set<std::string>* dirs, std::set<std::string>* failed = nullptr);

// chown/chmod of an existing path (no symlink following).
absl::Status FixOwnerMode(const std::string& path, std::optional<mode_t> mode, uid_t uid,
                          gid_t gid);

// Removes a file and fsyncs its directory.
absl::Status RemoveFile(const std::string& path);

// The temp name WriteFileAtomic uses for `path` when it needs one.
std::string TempNameFor(const std::string& path);

// Removes the named temp file (TempNameFor) an earlier worker may have left
// next to `path` when it was killed mid-write on a file system without
// O_TMPFILE. Missing is fine; any other failure is returned.
absl::Status RemoveStaleTemp(const std::string& path);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_FS_OPS_H_
