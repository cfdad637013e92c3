// Shared pieces of the policy tables: the hard-denial floor that the worker
// and every command it runs keep, and a constexpr table concatenation.
// Internal to sandbox/policies/.
#ifndef VIGO_SANDBOX_POLICIES_POLICY_UTIL_H_
#define VIGO_SANDBOX_POLICIES_POLICY_UTIL_H_

#include <array>
#include <cstddef>

#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox::policies {

template <size_t N, size_t M>
constexpr std::array<SyscallRule, N + M> Concat(const std::array<SyscallRule, N>& a,
                                                const std::array<SyscallRule, M>& b) {
  std::array<SyscallRule, N + M> out{};
  for (size_t i = 0; i < N; ++i) out[i] = a[i];
  for (size_t i = 0; i < M; ++i) out[N + i] = b[i];
  return out;
}

// Syscalls no config applier (nor any command it runs) has a use for, and
// which are the usual first steps of an escape or of reading another
// process's memory. Killed in the worker and, again, in every exec child
// (the child layer stays correct even if the worker's allowlist grows).
// One row per line reads as a table.
// clang-format off
inline constexpr SyscallRule kHardDenials[] = {
    {"ptrace", {}, KillProcess(), "reading or steering another process (the broker)"},
    {"process_vm_readv", {}, KillProcess(), "reads another process's memory"},
    {"process_vm_writev", {}, KillProcess(), "writes another process's memory"},
    {"process_madvise", {}, KillProcess(), "acts on another process's memory"},
    {"pidfd_getfd", {}, KillProcess(), "steals file descriptors from another process"},
    {"kcmp", {}, KillProcess(), "probes another process's kernel objects"},
    {"kexec_load", {}, KillProcess(), "replaces the running kernel"},
    {"kexec_file_load", {}, KillProcess(), "replaces the running kernel"},
    {"init_module", {}, KillProcess(), "loads kernel code"},
    {"finit_module", {}, KillProcess(), "loads kernel code"},
    {"delete_module", {}, KillProcess(), "unloads kernel code"},
    {"bpf", {}, KillProcess(), "large kernel attack surface; no applier needs it"},
    {"perf_event_open", {}, KillProcess(), "side channels and kernel attack surface"},
    {"keyctl", {}, KillProcess(), "kernel keyrings may hold other processes' secrets"},
    {"add_key", {}, KillProcess(), "kernel keyrings"},
    {"request_key", {}, KillProcess(), "kernel keyrings"},
    {"mount", {}, KillProcess(), "could undo the tmpfs that hides the credential dir"},
    {"umount2", {}, KillProcess(), "could uncover the hidden credential dir"},
    {"pivot_root", {}, KillProcess(), "changes the filesystem view"},
    {"move_mount", {}, KillProcess(), "new mount API: same as mount"},
    {"open_tree", {}, KillProcess(), "new mount API: can clone the hidden tree"},
    {"fsopen", {}, KillProcess(), "new mount API"},
    {"fsconfig", {}, KillProcess(), "new mount API"},
    {"fsmount", {}, KillProcess(), "new mount API"},
    {"fspick", {}, KillProcess(), "new mount API"},
    {"mount_setattr", {}, KillProcess(), "new mount API: could make the cover writable"},
    {"setns", {}, KillProcess(), "could re-enter the host mount namespace"},
    {"unshare", {}, KillProcess(), "new namespaces are kernel attack surface"},
    {"chroot", {}, KillProcess(), "classic chroot escapes need it; appliers do not"},
    {"userfaultfd", {}, KillProcess(), "widens kernel race windows in exploits"},
    {"swapon", {}, KillProcess(), "system administration, not config application"},
    {"swapoff", {}, KillProcess(), "system administration"},
    {"reboot", {}, KillProcess(), "system administration"},
    {"acct", {}, KillProcess(), "system administration"},
    {"quotactl", {}, KillProcess(), "system administration"},
    {"open_by_handle_at", {}, KillProcess(), "opens files by handle, bypassing the mount view (shocker)"},
    {"name_to_handle_at", {}, KillProcess(), "pairs with open_by_handle_at"},
    {"iopl", {}, KillProcess(), "raw I/O port access"},
    {"ioperm", {}, KillProcess(), "raw I/O port access"},
    {"settimeofday", {}, KillProcess(), "changing the clock breaks TLS and audit times"},
    {"clock_settime", {}, KillProcess(), "changing the clock"},
    {"clock_adjtime", {}, KillProcess(), "changing the clock"},
    {"adjtimex", {}, KillProcess(), "changing the clock"},
    {"sethostname", {}, KillProcess(), "system identity"},
    {"setdomainname", {}, KillProcess(), "system identity"},
    {"syslog", {}, KillProcess(), "kernel log may leak addresses"},
    {"vhangup", {}, KillProcess(), "terminal hijack"},
    {"uselib", {}, KillProcess(), "obsolete loader entry point"},
    {"modify_ldt", {}, KillProcess(), "16-bit segments: historic exploit vector"},
    {"lookup_dcookie", {}, KillProcess(), "obsolete profiling interface"},
    {"fanotify_init", {}, KillProcess(), "watches every file access on the system"},
    {"io_uring_setup", {}, KillProcess(), "io_uring bypasses seccomp for the work it does"},
    {"io_uring_enter", {}, KillProcess(), "io_uring bypasses seccomp"},
    {"io_uring_register", {}, KillProcess(), "io_uring bypasses seccomp"},
};
// clang-format on

}  // namespace vigo::sandbox::policies

#endif  // VIGO_SANDBOX_POLICIES_POLICY_UTIL_H_
