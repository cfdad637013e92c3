#include "sandbox/open_beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace vigo::sandbox {

int OpenBeneath(int dirfd, const char* rel, int flags) {
  if ((flags & O_CREAT) != 0) {
    errno = EINVAL;
    return -1;
  }
  struct open_how how = {};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
  return fd < 0 ? -1 : static_cast<int>(fd);
}

}  // namespace vigo::sandbox
