// OpenBeneath: open a path below a directory fd in one openat2(2) call.
//
//   UniqueFd fd(OpenBeneath(dir.get(), "app/db_password", O_RDONLY | O_CLOEXEC));
//   if (!fd) { /* errno says why; fall back to a per-segment walk */ }
//
// Resolution refuses every symbolic link, in any segment including the last
// (RESOLVE_NO_SYMLINKS, which implies RESOLVE_NO_MAGICLINKS), and any path
// that would leave `dirfd` (RESOLVE_BENEATH: absolute paths and ".." escapes
// fail with EXDEV). The kernel does this atomically, so a concurrent rename
// or symlink swap cannot redirect the open. `flags` are open(2) flags; O_CREAT
// is refused (mode handling stays with the caller's slower, explicit path).
//
// Returns the new fd, or -1 with errno set: ELOOP (a symlink), EXDEV (an
// escape), ENOENT/ENOTDIR as for openat, EAGAIN when the kernel asks for a
// retry, ENOSYS on kernels before 5.6 or when a seccomp filter denies
// openat2. Callers treat any failure as "use the portable walk", which gives
// the precise error message.
//
// Thread safety: stateless.
#ifndef VIGO_SANDBOX_OPEN_BENEATH_H_
#define VIGO_SANDBOX_OPEN_BENEATH_H_

namespace vigo::sandbox {

int OpenBeneath(int dirfd, const char* rel, int flags);

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_OPEN_BENEATH_H_
