// Mount namespace and file descriptor hygiene for lockdown.
//
//   // In the worker, before dropping CAP_SYS_ADMIN:
//   VIGO_RETURN_IF_ERROR(CloseFdsExcept({0, 1, 2, kBrokerSocketFd}));
//   VIGO_RETURN_IF_ERROR(EnterPrivateMountNamespace());
//   VIGO_RETURN_IF_ERROR(HidePaths({"/etc/vigo/agent", "/var/lib/vigo"}));
//
// Why: the worker runs as uid 0 (or keeps CAP_DAC_OVERRIDE) to manage files,
// so file permissions cannot keep it away from the agent's client key. In its
// own mount namespace an empty read-only tmpfs covers the credential and
// state directories; with mount/umount2/setns/open_by_handle_at killed by
// seccomp and CAP_SYS_ADMIN dropped, the cover cannot be lifted. Paths in
// the host namespace are unchanged (propagation is made private first).
//
// SECURITY (known residual path): /proc/<pid>/root of a process in the host
// namespace leads around the cover. The kernel only allows it with ptrace
// read access to that process: the broker is non-dumpable, and other root
// processes hold capabilities the worker lacks (the ptrace access check
// requires the caller's permitted set to cover the target's).
//
// Thread safety: unshare(CLONE_NEWNS) affects the calling thread only; call
// while single-threaded.
#ifndef VIGO_SANDBOX_NAMESPACES_H_
#define VIGO_SANDBOX_NAMESPACES_H_

#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigo::sandbox {

// Closes every fd not in `keep` (close_range over the gaps), then lists
// /proc/self/fd and fails (INTERNAL, naming the fd) if anything else is open.
absl::Status CloseFdsExcept(std::span<const int> keep);

// The fds open in this process, from /proc/self/fd (excluding the fd used to
// read the directory), sorted.
absl::StatusOr<std::vector<int>> ListOpenFds();

// unshare(CLONE_NEWNS) and make every mount recursively private, so nothing
// we mount leaks to the host and host mounts stop propagating in.
absl::Status EnterPrivateMountNamespace();

// Replaces /dev with a read-only tmpfs holding only null, zero, full, random
// and urandom (read-write binds of the host's nodes), the fd/stdin/stdout/
// stderr links, an empty private /dev/shm and the syslog socket /dev/log
// when the host has one. No block device, no tty, no pty, no /dev/mem: a
// process in this mount namespace cannot read a file system around the
// mount covers (debugfs on the raw device) or reach a terminal. Requires
// EnterPrivateMountNamespace first (FAILED_PRECONDITION otherwise).
absl::Status MountMinimalDev();

// For PID 1 of a new PID namespace, in a private mount namespace: mounts a
// fresh procfs on /proc, so /proc shows only this namespace's processes and
// /proc/<pid>/root|cwd|fd of host processes does not exist. Fails
// (FAILED_PRECONDITION) unless getpid() == 1 and the mount namespace is
// private.
absl::Status MountOwnProc();

// Covers each path: a directory with an empty, read-only, mode 000,
// nosuid/nodev/noexec tmpfs; a regular file with a read-only bind of
// /dev/null. A missing path is NOT_FOUND (fail closed: a typo must not leave
// the key visible). Refuses (FAILED_PRECONDITION) unless this process called
// EnterPrivateMountNamespace first, so covers never land on the host.
absl::Status HidePaths(const std::vector<std::string>& paths);

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_NAMESPACES_H_
