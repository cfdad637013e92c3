// UniqueFd: move-only owner of a file descriptor. A raw `int fd` elsewhere in
// Vigo is always a borrowed argument.
//
//   UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) return ErrnoStatus("open", path);
#ifndef VIGO_SANDBOX_UNIQUE_FD_H_
#define VIGO_SANDBOX_UNIQUE_FD_H_

#include <utility>

namespace vigo::sandbox {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes the owned fd (EINTR is not retried: on Linux the fd is gone).
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_UNIQUE_FD_H_
