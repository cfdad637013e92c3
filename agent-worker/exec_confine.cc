#include "agent-worker/exec_confine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "agent-worker/fs_ops.h"
#include "common/exec_confine.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::worker {
namespace {

using sandbox::UniqueFd;

constexpr std::string_view kWhat = "confine.writable";

// Devices a command may always write: they keep nothing.
constexpr const char* kSinkDevices[] = {"/dev/null", "/dev/zero", "/dev/full"};

bool OnlySlashes(std::string_view path) {
  return !path.empty() && path.find_first_not_of('/') == std::string_view::npos;
}

// An O_PATH fd of `path` below the apply root, never through a link.
absl::StatusOr<UniqueFd> OpenWritable(int root_fd, std::string_view root, const std::string& path) {
  if (OnlySlashes(path)) {
    UniqueFd fd(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
    if (!fd) return sandbox::ErrnoStatus(errno, "dup apply root");
    return fd;
  }
  VIGO_ASSIGN_OR_RETURN(TargetPath t, ParseTargetPath(root_fd, root, path, kWhat));
  absl::StatusOr<UniqueFd> parent = OpenParentDir(t, /*create=*/false);
  if (!parent.ok()) {
    if (absl::IsNotFound(parent.status())) {
      return absl::FailedPreconditionError(
          StrCat(kWhat, " '", path, "' does not exist below the apply root (", t.Full(),
                 "); create it first, e.g. with a directory resource the exec depends_on"));
    }
    return parent.status();
  }
  UniqueFd fd(::openat(parent->get(), t.base.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return absl::FailedPreconditionError(
          StrCat(kWhat, " '", path, "' does not exist below the apply root (", t.Full(),
                 "); create it first, e.g. with a directory resource the exec depends_on"));
    }
    return sandbox::ErrnoStatus(errno, "open", t.Full());
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return sandbox::ErrnoStatus(errno, "fstat", t.Full());
  if (S_ISLNK(st.st_mode)) return SymlinkRefused(t, t.dirs.size() + 1);
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat(kWhat, " '", path, "' is neither a directory nor a regular file"));
  }
  return fd;
}

}  // namespace

absl::StatusOr<ExecConfineSetup> PrepareExecConfine(const v1::ExecConfine& confine, int root_fd,
                                                    std::string_view root, int landlock_abi) {
  ExecConfineSetup out;
  out.deny_network = confine.deny_network();
  if (!confine.restrict_writes()) {
    if (confine.writable_size() > 0) {
      return absl::InvalidArgumentError(
          "confine.writable is set but writes are not marked confined (malformed bundle)");
    }
    return out;
  }
  if (static_cast<size_t>(confine.writable_size()) > kMaxConfineWritable) {
    return absl::InvalidArgumentError(StrCat("confine.writable lists ", confine.writable_size(),
                                             " paths, more than ", kMaxConfineWritable));
  }
  // The server refuses these; the worker re-checks what it is about to trust.
  for (const std::string& path : confine.writable()) {
    if (ContainsMarkerText(path)) {
      return absl::InvalidArgumentError("confine.writable holds a secret marker (refused)");
    }
    // Relative, NUL, '..': refused here, before anything is opened.
    if (!OnlySlashes(path)) {
      VIGO_RETURN_IF_ERROR(ParseTargetPath(root_fd, root, path, kWhat).status());
    }
  }
  if (landlock_abi < 1) {
    return absl::FailedPreconditionError(
        "confine.writable needs Landlock, which this kernel does not have (or has disabled); "
        "the command is not run unconfined");
  }
  if (root_fd < 0) {
    return absl::FailedPreconditionError(
        StrCat("apply root ", root.empty() ? "/" : root, " cannot be opened"));
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::LandlockRuleset rs, sandbox::LandlockRuleset::ForWrites());
  for (const std::string& path : confine.writable()) {
    VIGO_ASSIGN_OR_RETURN(UniqueFd fd, OpenWritable(root_fd, root, path));
    VIGO_RETURN_IF_ERROR(rs.AllowWritesBeneath(fd.get(), StrCat(kWhat, " ", path)));
  }
  for (const char* dev : kSinkDevices) {
    UniqueFd fd(::open(dev, O_PATH | O_CLOEXEC));
    struct stat st;
    // Missing, or not the character device it should be: not allowed.
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISCHR(st.st_mode)) continue;
    VIGO_RETURN_IF_ERROR(rs.AllowWritesBeneath(fd.get(), dev));
  }
  out.writes = std::move(rs);
  return out;
}

}  // namespace vigo::worker
