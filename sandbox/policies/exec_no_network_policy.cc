// The no-network layer: stacked, on top of the exec-child layer, on the
// command of an exec resource with `confine: {network: false}` (loaded in the
// child between fork and execve, from BPF compiled before fork). socket() and
// socketpair() with any address family but AF_UNIX fail with EACCES, so a
// program prints "permission denied" rather than dying; local daemons on Unix
// sockets stay reachable (SECURITY.md says what that implies).
//
// Why this covers every family although the rule language has no "not equal"
// (seccomp_policy.h): the kernel reads the family as an int, so only the low
// 32 bits count, and each clause tests low bits only (upper halves cannot
// slip past). AF_UNIX is 1. Every even number (bit 0 clear) matches the
// first clause; every odd number but 1 below 4096 has one of bits 1..11 set
// and matches one of the others. What is left (odd numbers from 4097 up
// with bits 1..11 clear) is no address family (AF_MAX is 46): the kernel
// refuses them, and the worker filter, which allows socket() only for
// AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, kills them first. The
// worker filter stays the ceiling: a family it refuses (AF_PACKET, other
// netlink protocols, socketpair of anything but AF_UNIX) still ends the
// command with SIGSYS, because the kernel applies the most severe verdict.
// io_uring, which could open sockets without socket(), is killed by the
// hard-denial floor of the exec-child layer.
#include <errno.h>

#include "sandbox/policies/policy_util.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {
namespace {

// low32(arg0) != AF_UNIX (1), for every value that can be a family.
constexpr ArgRule NotUnixFamily() {
  ArgRule r = ArgHasNone(0, 1);  // even: AF_UNSPEC, AF_INET, AF_INET6, AF_NETLINK, ...
  for (int bit = 1; bit < kMaxClauses; ++bit) {
    const uint64_t both = 1ULL | (1ULL << bit);  // odd and not 1
    r.any_of[r.size].cmps[0] = {0, CmpOp::kMaskedEq, both, both, ValueSource::kLiteral};
    r.any_of[r.size].size = 1;
    ++r.size;
  }
  return r;
}

// clang-format off
constexpr SyscallRule kNoNetworkRules[] = {
    {"socket", NotUnixFamily(), Errno(EACCES),
     "confine network: false: only AF_UNIX sockets (IP, IPv6, netlink and every other family "
     "fail with EACCES)"},
    {"socketpair", NotUnixFamily(), Errno(EACCES),
     "confine network: false: only AF_UNIX pairs (the worker filter already kills the others)"},
};
// clang-format on

}  // namespace

const Policy& ExecNoNetworkPolicy() {
  static const Policy kPolicy{
      "exec_child_no_network", Allow(), kNoNetworkRules,
      "stacked on the exec-child layer for a command whose resource has confine network: false"};
  return kPolicy;
}

}  // namespace vigo::sandbox
