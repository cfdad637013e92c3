#include "vocab/ids.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "vocab/hex.h"

namespace vigo::vocab {

absl::StatusOr<std::string> RandomHexId(size_t bytes) {
  uint8_t buf[64];
  if (bytes == 0 || bytes > sizeof(buf)) {
    return absl::InvalidArgumentError("RandomHexId: 1 to 64 bytes");
  }
  if (RAND_bytes(buf, static_cast<int>(bytes)) != 1) {
    return absl::InternalError("the random generator failed (RAND_bytes)");
  }
  return Hex(std::span<const uint8_t>(buf, bytes));
}

std::string NewRunId() {
  uint8_t b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    static std::atomic<uint32_t> counter{0};
    const uint64_t ms = static_cast<uint64_t>(NowUnixMs());
    const uint32_t pid = static_cast<uint32_t>(::getpid());
    const uint32_t n = counter.fetch_add(1);
    std::memcpy(b, &ms, 8);
    std::memcpy(b + 8, &pid, 4);
    std::memcpy(b + 12, &n, 4);
  }
  return Hex(std::span<const uint8_t>(b, sizeof(b)));
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace vigo::vocab
