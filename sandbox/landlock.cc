#include "sandbox/landlock.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "sandbox/syscall_status.h"

// Debian 12's kernel headers stop at ABI 2; the rights below are fixed by
// the kernel ABI (include/uapi/linux/landlock.h) and only ever added to.
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

namespace vigo::sandbox {
namespace {

// Rights a rule on a non-directory may carry (others are EINVAL there).
constexpr uint64_t kFileRights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                                 LANDLOCK_ACCESS_FS_IOCTL_DEV;

constexpr struct {
  uint64_t bit;
  const char* name;
} kNames[] = {
    {LANDLOCK_ACCESS_FS_EXECUTE, "execute"},       {LANDLOCK_ACCESS_FS_WRITE_FILE, "write_file"},
    {LANDLOCK_ACCESS_FS_READ_FILE, "read_file"},   {LANDLOCK_ACCESS_FS_READ_DIR, "read_dir"},
    {LANDLOCK_ACCESS_FS_REMOVE_DIR, "remove_dir"}, {LANDLOCK_ACCESS_FS_REMOVE_FILE, "remove_file"},
    {LANDLOCK_ACCESS_FS_MAKE_CHAR, "make_char"},   {LANDLOCK_ACCESS_FS_MAKE_DIR, "make_dir"},
    {LANDLOCK_ACCESS_FS_MAKE_REG, "make_reg"},     {LANDLOCK_ACCESS_FS_MAKE_SOCK, "make_sock"},
    {LANDLOCK_ACCESS_FS_MAKE_FIFO, "make_fifo"},   {LANDLOCK_ACCESS_FS_MAKE_BLOCK, "make_block"},
    {LANDLOCK_ACCESS_FS_MAKE_SYM, "make_sym"},     {LANDLOCK_ACCESS_FS_REFER, "refer"},
    {LANDLOCK_ACCESS_FS_TRUNCATE, "truncate"},     {LANDLOCK_ACCESS_FS_IOCTL_DEV, "ioctl_dev"},
};

int QueryAbi() {
  long v = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v < 0 ? 0 : static_cast<int>(v);
}

}  // namespace

int LandlockAbi() {
  static const int abi = QueryAbi();
  return abi;
}

uint64_t LandlockWriteAccess(int abi) {
  if (abi < 1) return 0;
  uint64_t a = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
               LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
               LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
               LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
               LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
  if (abi >= 2) a |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) a |= LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi >= 5) a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  return a;
}

std::string LandlockAccessNames(uint64_t access) {
  std::string out;
  for (const auto& n : kNames) {
    if ((access & n.bit) != 0) absl::StrAppend(&out, out.empty() ? "" : ",", n.name);
  }
  return out;
}

absl::StatusOr<LandlockRuleset> LandlockRuleset::ForWrites() {
  const int abi = LandlockAbi();
  if (abi < 1) {
    return absl::FailedPreconditionError(
        "this kernel has no Landlock (landlock_create_ruleset: not supported or disabled)");
  }
  struct landlock_ruleset_attr attr = {};
  attr.handled_access_fs = LandlockWriteAccess(abi);
  long fd = ::syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
  if (fd < 0) return ErrnoStatus(errno, "landlock_create_ruleset");
  return LandlockRuleset(UniqueFd(static_cast<int>(fd)), abi, attr.handled_access_fs);
}

absl::Status LandlockRuleset::AllowWritesBeneath(int fd, std::string_view what) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat", what);
  struct landlock_path_beneath_attr rule = {};
  rule.allowed_access = S_ISDIR(st.st_mode) ? handled_ : (handled_ & kFileRights);
  rule.parent_fd = fd;
  if (::syscall(SYS_landlock_add_rule, fd_.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
    return ErrnoStatus(errno, "landlock_add_rule", what);
  }
  allowed_.emplace_back(what);
  return absl::OkStatus();
}

absl::Status LandlockRuleset::AllowWritesBeneathPath(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open", path);
  return AllowWritesBeneath(fd.get(), path);
}

absl::Status LandlockRuleset::RestrictSelf() const {
  if (int err = LandlockRestrictSelfAsyncSignalSafe(fd_.get()); err != 0) {
    return ErrnoStatus(err, "landlock_restrict_self");
  }
  return absl::OkStatus();
}

int LandlockRestrictSelfAsyncSignalSafe(int ruleset_fd) {
  if (::syscall(SYS_landlock_restrict_self, ruleset_fd, 0) != 0) return errno;
  return 0;
}

}  // namespace vigo::sandbox
