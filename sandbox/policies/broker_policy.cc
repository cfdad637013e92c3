// The broker's seccomp table: a strict allowlist for what runs after
// LockDownBroker: the gRPC client (threads, epoll, TCP/Unix sockets, TLS via
// OpenSSL's libcrypto/libssl in memory), the socketpair protocol with the
// worker, and the already-mapped secret arena. Everything else kills.
//
// What the broker must do BEFORE lockdown, because the table forbids it:
// start the worker (no fork/exec after), open files for writing (state dir
// files are opened before lockdown or written through fds passed in), load
// shared objects (no PROT_EXEC mappings: dlopen of NSS modules would die;
// glibc 2.34+ has files/dns NSS built in), create the socketpair.
#include <fcntl.h>
#include <linux/prctl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <termios.h>

#include <cerrno>

#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {
namespace {

// __O_TMPFILE without the O_DIRECTORY bit it shares.
constexpr uint64_t kOTmpfileBit = O_TMPFILE & ~O_DIRECTORY;

// One row per line reads as a table.
// clang-format off
constexpr SyscallRule kBrokerRules[] = {
    // --- memory ---
    {"brk", {}, Allow(), "malloc"},
    {"mmap", ArgHasNone(2, PROT_EXEC), Allow(),
     "malloc, thread stacks, gRPC buffers; never executable (no code loading after lockdown)"},
    {"mprotect", ArgHasNone(2, PROT_EXEC), Allow(),
     "glibc guard pages and malloc arenas; never makes memory executable"},
    {"munmap", {}, Allow(), "free"},
    {"mremap", {}, Allow(), "realloc of large blocks"},
    {"madvise",
     ArgIn(2, {MADV_NORMAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE, MADV_DONTFORK, MADV_DONTDUMP,
               MADV_WIPEONFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE}),
     Allow(),
     "malloc trimming and stack release; MADV_DODUMP/DOFORK/KEEPONFORK (which would undo the "
     "arena's protections) are not in the list"},
    // --- threads ---
    {"clone", ArgHasAll(0, CLONE_THREAD), Allow(), "threads only (gRPC pollers, executor); no fork"},
    {"clone3", {}, Errno(ENOSYS),
     "flags live in memory, so seccomp cannot check them: ENOSYS makes glibc fall back to clone"},
    {"futex", {}, Allow(), "mutexes and condition variables"},
    {"set_robust_list", {}, Allow(), "new threads (glibc)"},
    {"rseq", {}, Allow(), "new threads (glibc 2.35+ registers rseq)"},
    {"set_tid_address", {}, Allow(), "new threads"},
    {"gettid", {}, Allow(), "logging, gRPC thread ids"},
    {"sched_yield", {}, Allow(), "spin locks (absl, gRPC)"},
    {"sched_getaffinity", {}, Allow(), "gRPC sizes its thread pools by CPU count"},
    {"sched_getparam", {}, Allow(), "pthread attribute read-back when gRPC threads are created/joined (read-only)"},
    {"sched_getscheduler", {}, Allow(), "pthread attribute read-back (read-only)"},
    {"exit", {}, Allow(), "thread exit"},
    {"exit_group", {}, Allow(), "process exit"},
    // --- signals ---
    {"rt_sigaction", {}, Allow(), "signal handlers"},
    {"rt_sigprocmask", {}, Allow(), "thread creation blocks signals"},
    {"rt_sigreturn", {}, Allow(), "return from a signal handler"},
    {"sigaltstack", {}, Allow(), "absl failure signal handler"},
    {"tgkill", ArgIsSelfPid(0), Allow(), "abort()/raise() on itself only"},
    {"kill", ArgIsPeerPid(0), Allow(), "kill its own worker on timeout; no other process"},
    {"wait4", {}, Allow(), "reap the worker"},
    {"waitid", {}, Allow(), "reap the worker"},
    // --- time ---
    {"clock_gettime", {}, Allow(), "timers (vDSO fallback)"},
    {"clock_getres", {}, Allow(), "timers"},
    {"clock_nanosleep", {}, Allow(), "backoff sleeps"},
    {"nanosleep", {}, Allow(), "backoff sleeps"},
    {"gettimeofday", {}, Allow(), "timestamps (vDSO fallback)"},
    // --- files (read only) ---
    {"openat", ArgHasNone(2, O_ACCMODE | O_CREAT | O_TRUNC | kOTmpfileBit), Allow(),
     "read-only opens: CA bundle, resolv.conf, /proc/self/status for attestation; "
     "no O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_TMPFILE"},
    {"read", {}, Allow(), "sockets, socketpair, files"},
    {"write", {}, Allow(), "sockets, socketpair, eventfd, stderr"},
    {"readv", {}, Allow(), "sockets"},
    {"writev", {}, Allow(), "sockets, stderr"},
    {"pread64", {}, Allow(), "files opened read-only"},
    {"close", {}, Allow(), "fds"},
    {"fstat", {}, Allow(), "stdio, file sizes"},
    {"newfstatat", {}, Allow(), "stat of config and cert files"},
    {"statx", {}, Allow(), "stat (newer glibc)"},
    {"lseek", {}, Allow(), "files"},
    {"fcntl", {}, Allow(), "O_NONBLOCK and FD_CLOEXEC on sockets"},
    {"dup", {}, Allow(), "gRPC and stdio"},
    {"ioctl", ArgIn(1, {FIONREAD, FIONBIO, TCGETS}), Allow(),
     "FIONREAD/FIONBIO on sockets, TCGETS from isatty(); no other request"},
    // --- event loop ---
    {"epoll_create1", {}, Allow(), "gRPC poller"},
    {"epoll_ctl", {}, Allow(), "gRPC poller"},
    {"epoll_wait", {}, Allow(), "gRPC poller"},
    {"epoll_pwait", {}, Allow(), "gRPC poller"},
    {"eventfd2", {}, Allow(), "gRPC wakeup fd"},
    {"pipe2", {}, Allow(), "gRPC wakeup fd fallback"},
    {"poll", {}, Allow(), "socketpair waits, c-ares"},
    {"ppoll", {}, Allow(), "socketpair waits"},
    // --- sockets ---
    {"socket", ArgIn(0, {AF_UNIX, AF_INET, AF_INET6}), Allow(),
     "TCP to the server, DNS (c-ares), Unix sockets; no raw/packet/netlink"},
    {"connect", {}, Allow(), "to the server"},
    {"bind", {}, Allow(),
     "gRPC probes IPv6 loopback by binding [::1]:0 once; listen/accept stay forbidden"},
    {"getsockopt", {}, Allow(), "SO_ERROR after connect"},
    {"setsockopt", {}, Allow(), "TCP_NODELAY, keepalive"},
    {"getsockname", {}, Allow(), "gRPC endpoint names"},
    {"getpeername", {}, Allow(), "gRPC endpoint names"},
    {"sendmsg", {}, Allow(), "gRPC writes, socketpair protocol (SCM_RIGHTS)"},
    {"recvmsg", {}, Allow(), "gRPC reads, socketpair protocol"},
    {"sendto", {}, Allow(), "DNS"},
    {"recvfrom", {}, Allow(), "DNS"},
    {"shutdown", {}, Allow(), "closing connections"},
    // --- misc ---
    {"getrandom", {}, Allow(), "X25519 keys, TLS, gRPC"},
    {"getpid", {}, Allow(), "logging, tgkill"},
    {"getppid", {}, Allow(), "parent checks"},
    {"getuid", {}, Allow(), "logging"},
    {"geteuid", {}, Allow(), "logging"},
    {"getgid", {}, Allow(), "logging"},
    {"getegid", {}, Allow(), "logging"},
    {"uname", {}, Allow(), "gRPC user agent, OpenSSL"},
    {"sysinfo", {}, Allow(), "OpenSSL/gRPC read memory totals when creating the TLS context (read-only)"},
    {"prlimit64", ArgEq(2, 0), Allow(), "getrlimit only: the new-limit pointer must be NULL"},
    {"prctl",
     ArgIn(0, {PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP,
               PR_CAPBSET_READ, PR_SET_VMA}),
     Allow(),
     "thread names (gRPC), attestation read-backs, glibc's PR_SET_VMA; never SET_DUMPABLE, "
     "SET_SECCOMP or capability changes"},
    {"restart_syscall", {}, Allow(), "kernel-internal restarts"},
    // --- explicitly denied (documentation; the default would kill anyway) ---
    {"execve", {}, KillProcess(), "the broker never runs programs after lockdown"},
    {"execveat", {}, KillProcess(), "the broker never runs programs after lockdown"},
    {"fork", {}, KillProcess(), "no new processes after lockdown"},
    {"vfork", {}, KillProcess(), "no new processes after lockdown"},
    {"ptrace", {}, KillProcess(), "no debugging of anything"},
    {"process_vm_readv", {}, KillProcess(), "no access to other processes' memory"},
    {"process_vm_writev", {}, KillProcess(), "no access to other processes' memory"},
};
// clang-format on

}  // namespace

const Policy& BrokerPolicy() {
  static const Policy kPolicy{
      "broker", KillProcess(), kBrokerRules,
      "strict allowlist for the gRPC client, the socketpair protocol and the locked arena"};
  return kPolicy;
}

}  // namespace vigo::sandbox
