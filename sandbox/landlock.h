// Landlock: a process restricts where it (and everything it later starts)
// may write, whatever its uid and capabilities.
//
//   VIGO_ASSIGN_OR_RETURN(LandlockRuleset rs, LandlockRuleset::ForWrites());
//   VIGO_RETURN_IF_ERROR(rs.AllowWritesBeneath(parent_fd, "/etc/webapp"));
//   VIGO_RETURN_IF_ERROR(rs.RestrictSelf());   // needs no_new_privs (lockdown step 7)
//
// What is handled: every file-system right that changes something — write
// and truncate a file, create, remove or rename an entry of any kind (file,
// directory, symlink, fifo, socket, device), and ioctl on a device — for
// the newest ABI the kernel has (REFER from ABI 2, TRUNCATE from 3,
// IOCTL_DEV from 5). Reading and executing are not handled: they stay as
// the rest of the sandbox leaves them. A rule on a directory grants the
// rights for everything beneath it (Landlock's unit is the hierarchy); a
// rule on a file grants only the rights a file can have (write, truncate,
// ioctl-dev).
//
// What Landlock does not cover (documented in SECURITY.md): chmod, chown,
// utimes and xattrs on existing files; those stay bounded by capabilities
// and by the path walks of agent-worker/fs_ops.h.
//
// Kernel without Landlock (ENOSYS, EOPNOTSUPP when disabled at boot):
// LandlockAbi() is 0 and ForWrites() is FAILED_PRECONDITION; callers decide
// whether that is fatal (confine: is; the applier reports it in the
// attestation and `require_hardening: strict` refuses).
//
// Thread safety: RestrictSelf restricts the calling thread only (Landlock
// has no TSYNC before ABI 8); call it while single-threaded.
#ifndef VIGO_SANDBOX_LANDLOCK_H_
#define VIGO_SANDBOX_LANDLOCK_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {

// The highest Landlock ABI the running kernel supports; 0 when it has none.
// Cached after the first call.
int LandlockAbi();

// The write rights handled for `abi` (0 for abi 0).
uint64_t LandlockWriteAccess(int abi);

// Names of the rights in `access`, comma-separated, in bit order
// ("write_file,remove_dir,...") for attestation and messages.
std::string LandlockAccessNames(uint64_t access);

class LandlockRuleset {
 public:
  // A ruleset handling LandlockWriteAccess(LandlockAbi()): once restricted,
  // writes are allowed only beneath the rules added.
  static absl::StatusOr<LandlockRuleset> ForWrites();

  LandlockRuleset(LandlockRuleset&&) noexcept = default;
  LandlockRuleset& operator=(LandlockRuleset&&) noexcept = default;

  // Allows every handled right beneath the object `fd` refers to (any fd,
  // O_PATH is enough; it is not kept). A directory gets all rights, a
  // regular file only write/truncate. `what` names the path in errors.
  absl::Status AllowWritesBeneath(int fd, std::string_view what);
  // Opens `path` (O_PATH, following links: operator-given paths are
  // trusted) and allows writes beneath it. NOT_FOUND when it does not exist.
  absl::Status AllowWritesBeneathPath(const std::string& path);

  // no_new_privs must already be set. The calling thread and everything it
  // starts from now on are bound by the ruleset; the fd may be closed after.
  absl::Status RestrictSelf() const;

  int fd() const { return fd_.get(); }
  int abi() const { return abi_; }
  uint64_t handled() const { return handled_; }
  // The paths given to the Allow* calls, in order (the domain, for reports).
  const std::vector<std::string>& allowed() const { return allowed_; }

 private:
  LandlockRuleset(UniqueFd fd, int abi, uint64_t handled)
      : fd_(std::move(fd)), abi_(abi), handled_(handled) {}
  UniqueFd fd_;
  int abi_ = 0;
  uint64_t handled_ = 0;
  std::vector<std::string> allowed_;
};

// For a child between fork and execve (async-signal-safe, raw syscalls):
// landlock_restrict_self(ruleset_fd). Returns 0 or errno. no_new_privs must
// be set first.
int LandlockRestrictSelfAsyncSignalSafe(int ruleset_fd);

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_LANDLOCK_H_
