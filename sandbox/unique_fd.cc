#include "sandbox/unique_fd.h"

#include <unistd.h>

namespace vigo::sandbox {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

}  // namespace vigo::sandbox
