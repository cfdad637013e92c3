#include "sandbox/secret_buffer.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {
namespace {

// Every allocation is rounded up to this many bytes (one cache line), which
// keeps the free list short and stops two secrets sharing a cache line.
constexpr size_t kGranule = 64;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// The process-wide arena. Pages are reserved once and never returned to the
// kernel; the free list records [offset, length) runs of zeroed free bytes,
// keyed by offset and coalesced on free.
class Arena {
 public:
  absl::Status Configure(const ArenaOptions& options) {
    std::lock_guard<std::mutex> lock(mu_);
    if (initialized_) {
      return absl::FailedPreconditionError(
          "secret arena is already initialized; ConfigureArena must run before the first "
          "secret allocation");
    }
    if (options.capacity_bytes == 0) {
      return absl::InvalidArgumentError("secret arena capacity must be greater than 0");
    }
    options_ = options;
    return absl::OkStatus();
  }

  absl::Status Init() {
    std::lock_guard<std::mutex> lock(mu_);
    return InitLocked();
  }

  // Returns a zeroed run of `*len` bytes (rounded up to kGranule; the rounded
  // size is written back to *len).
  absl::StatusOr<uint8_t*> Allocate(size_t* len) {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status init = InitLocked();
    if (!init.ok()) return init;
    const size_t need = RoundUp(*len, kGranule);
    if (need < *len || need > length_ - in_use_) return FullError(*len);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < need) continue;
      const size_t offset = it->first;
      const size_t run = it->second;
      free_.erase(it);
      if (run > need) free_.emplace(offset + need, run - need);
      in_use_ += need;
      *len = need;
      return base_ + offset;
    }
    // Enough bytes in total, but fragmented.
    return FullError(*len);
  }

  // `p` must come from Allocate with the same (rounded) `len`, and its bytes
  // must already be zero.
  void Free(uint8_t* p, size_t len) {
    std::lock_guard<std::mutex> lock(mu_);
    // A pointer from outside the arena, a misaligned run or a double free
    // means memory corruption; continuing could hand a secret's bytes to a
    // second owner.
    if (!initialized_ || p < base_ || p + len > base_ + length_ || (p - base_) % kGranule != 0 ||
        len % kGranule != 0 || len > in_use_) {
      std::fputs("vigo: secret arena free of a block it does not own; aborting\n", stderr);
      std::abort();
    }
    size_t offset = static_cast<size_t>(p - base_);
    size_t run = len;
    in_use_ -= len;
    auto next = free_.lower_bound(offset);
    const bool overlaps_next = next != free_.end() && next->first < offset + run;
    const bool overlaps_prev =
        next != free_.begin() && std::prev(next)->first + std::prev(next)->second > offset;
    if (overlaps_next || overlaps_prev) {
      std::fputs("vigo: secret arena double free; aborting\n", stderr);
      std::abort();
    }
    if (next != free_.end() && next->first == offset + run) {
      run += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {
        prev->second += run;
        return;
      }
    }
    free_.emplace(offset, run);
  }

  ArenaInfo Info() {
    std::lock_guard<std::mutex> lock(mu_);
    ArenaInfo info;
    info.initialized = initialized_;
    info.backing = backing_;
    info.capacity_bytes = initialized_ ? length_ : options_.capacity_bytes;
    info.in_use_bytes = in_use_;
    info.locked = locked_;
    info.dontdump = dontdump_;
    info.base = reinterpret_cast<uintptr_t>(base_);
    info.length = length_;
    info.memfd_secret_error = memfd_secret_error_;
    return info;
  }

 private:
  absl::Status FullError(size_t need) const {
    return absl::ResourceExhaustedError(
        StrCat("secret arena full: need ", need, " bytes, ", in_use_, " of ", length_, " in use"));
  }

  // Maps the arena. Called with mu_ held. A failure leaves the arena
  // uninitialized, so a later ConfigureArena (e.g. with the insecure opt-out)
  // and retry is possible.
  absl::Status InitLocked() {
    if (initialized_) return absl::OkStatus();
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t length = RoundUp(options_.capacity_bytes, page);
    const size_t total = length + 2 * page;

    // Reserve guard + arena + guard as PROT_NONE, then map the usable middle
    // over it with MAP_FIXED; the two guard pages stay PROT_NONE so a linear
    // overrun out of (or into) the arena faults instead of reading neighbours.
    void* reservation =
        ::mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reservation == MAP_FAILED) return ErrnoStatus(errno, "mmap", "secret arena reservation");
    uint8_t* const start = static_cast<uint8_t*>(reservation);
    uint8_t* const base = start + page;

    std::string backing;
    bool locked = false;
    bool dontdump = false;
    absl::Status memfd_status = absl::OkStatus();
    if (options_.prefer_memfd_secret) {
      memfd_status = MapMemfdSecret(base, length);
      if (memfd_status.ok()) {
        backing = "memfd_secret";
        locked = true;    // secretmem pages are unevictable and VM_LOCKED
        dontdump = true;  // and VM_DONTDUMP
      }
    }
    if (backing.empty()) {
      // Shared (shmem), not private: a child forked to apply a bundle
      // (ForkChildArena below) writes into pages this process locked, never
      // into copy-on-write copies the kernel could swap out.
      void* p = ::mmap(base, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
                       -1, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::munmap(reservation, total);
        return ErrnoStatus(err, "mmap", "secret arena");
      }
      // The raw syscall, not mlock(3): sanitizer runtimes intercept mlock()
      // and turn it into a silent no-op that returns 0, which would make an
      // ASan build report pages as locked that are not.
      if (::syscall(SYS_mlock, base, length) == 0) {
        locked = true;
        backing = "mlock";
      } else {
        const int err = errno;
        if (!options_.insecure_allow_unlocked) {
          ::munmap(reservation, total);
          return absl::FailedPreconditionError(
              StrCat("cannot lock ", length, " bytes of secret memory (mlock: ", std::strerror(err),
                     "); raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK, or pass "
                     "--insecure-allow-unlocked-memory to run without locked memory"));
        }
        backing = "unlocked";
      }
      if (::madvise(base, length, MADV_DONTDUMP) == 0) {
        dontdump = true;
      } else if (!options_.insecure_allow_unlocked) {
        const int err = errno;
        ::munmap(reservation, total);
        return ErrnoStatus(err, "madvise(MADV_DONTDUMP)", "secret arena");
      }
    }
    // Not inherited by fork()ed children, whatever the backing: a child
    // touching the range gets SIGSEGV. The guard pages get it too so the whole
    // reservation vanishes from the child.
    if (::madvise(reservation, total, MADV_DONTFORK) != 0) {
      const int err = errno;
      ::munmap(reservation, total);
      return ErrnoStatus(err, "madvise(MADV_DONTFORK)", "secret arena");
    }

    base_ = base;
    length_ = length;
    backing_ = std::move(backing);
    locked_ = locked;
    dontdump_ = dontdump;
    memfd_secret_error_ = memfd_status.ok() ? "" : std::string(memfd_status.message());
    free_.clear();
    free_.emplace(0, length);
    in_use_ = 0;
    reservation_ = start;
    reservation_length_ = total;
    initialized_ = true;
    return absl::OkStatus();
  }

 public:
  absl::Status ReserveTop(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status st = InitLocked(); !st.ok()) return st;
    const size_t need = RoundUp(bytes, kGranule);
    if (child_length_ != 0) return absl::FailedPreconditionError("child arena already reserved");
    if (need == 0 || need >= length_) {
      return absl::InvalidArgumentError(
          StrCat("child arena of ", bytes, " bytes does not fit in ", length_));
    }
    // The top run must still be free (nothing allocated there yet).
    const size_t offset = length_ - need;
    auto it = free_.upper_bound(offset);
    if (it == free_.begin()) return absl::FailedPreconditionError("arena top is in use");
    --it;
    if (it->first > offset || it->first + it->second != length_) {
      return absl::FailedPreconditionError("arena top is in use");
    }
    const size_t head = offset - it->first;
    const size_t start = it->first;
    free_.erase(it);
    if (head > 0) free_.emplace(start, head);
    length_ = offset;  // this process allocates below the child part only
    child_offset_ = offset;
    child_length_ = need;
    return absl::OkStatus();
  }

  absl::Status SetInheritable(bool inheritable) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!initialized_) return absl::FailedPreconditionError("secret arena is not initialized");
    if (::madvise(reservation_, reservation_length_, inheritable ? MADV_DOFORK : MADV_DONTFORK) !=
        0) {
      return ErrnoStatus(errno, inheritable ? "madvise(MADV_DOFORK)" : "madvise(MADV_DONTFORK)",
                         "secret arena");
    }
    return absl::OkStatus();
  }

  absl::Status BecomeChild() {
    std::lock_guard<std::mutex> lock(mu_);
    if (child_length_ == 0) return absl::FailedPreconditionError("no child arena reserved");
    // The parent's part is read-only here: the child reads the values in
    // place, and a bug (or an attacker) in it must not rewrite the copies
    // the parent goes on using (the applier's seccomp layer refuses to make
    // memory writable again).
    if (child_offset_ > 0 && ::mprotect(base_, child_offset_, PROT_READ) != 0) {
      return ErrnoStatus(errno, "mprotect(PROT_READ)", "the parent's part of the secret arena");
    }
    // Blocks of the parent (below child_offset_) stay readable here; they are
    // never freed in the child (it ends with _exit), and Free aborts on them.
    base_ += child_offset_;
    length_ = child_length_;
    free_.clear();
    free_.emplace(0, length_);
    in_use_ = 0;
    child_offset_ = 0;
    child_length_ = 0;
    return absl::OkStatus();
  }

  // Zeroes every byte of the child's part any process may have written: the
  // pages mincore reports resident (a page of a fresh memfd_secret or shmem
  // mapping is not until someone touches it; a wiped page stays resident, so
  // the cost is what the busiest run ever touched), all of it when mincore
  // cannot tell or the pages could be in swap (unlocked backing). The
  // child's own account of what it used is never asked: a hostile child
  // would understate it.
  size_t WipeChild() {
    std::lock_guard<std::mutex> lock(mu_);
    if (child_length_ == 0) return 0;
    uint8_t* const part = base_ + child_offset_;
    if (!locked_) {
      SecureZero(part, child_length_);
      return child_length_;
    }
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t first = reinterpret_cast<uintptr_t>(part) / page * page;
    const uintptr_t end = reinterpret_cast<uintptr_t>(part) + child_length_;
    std::vector<unsigned char> resident((end - first + page - 1) / page);
    if (::mincore(reinterpret_cast<void*>(first), end - first, resident.data()) != 0) {
      SecureZero(part, child_length_);
      return child_length_;
    }
    size_t wiped = 0;
    for (size_t i = 0; i < resident.size(); ++i) {
      if ((resident[i] & 1) == 0) continue;
      const uintptr_t from =
          std::max<uintptr_t>(first + i * page, reinterpret_cast<uintptr_t>(part));
      const uintptr_t to = std::min<uintptr_t>(first + (i + 1) * page, end);
      SecureZero(reinterpret_cast<void*>(from), to - from);
      wiped += to - from;
    }
    return wiped;
  }

 private:
  // Maps a memfd_secret file over [base, base+length). On failure nothing is
  // mapped there (the PROT_NONE reservation is still in place).
  static absl::Status MapMemfdSecret(uint8_t* base, size_t length) {
#ifdef __NR_memfd_secret
    UniqueFd fd(static_cast<int>(::syscall(__NR_memfd_secret, O_CLOEXEC)));
    if (!fd) return ErrnoStatus(errno, "memfd_secret");
    if (::ftruncate(fd.get(), static_cast<off_t>(length)) != 0) {
      return ErrnoStatus(errno, "ftruncate", "memfd_secret");
    }
    void* p = ::mmap(base, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd.get(), 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      // MAP_FIXED may have replaced part of the reservation; restore it.
      ::mmap(base, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
             0);
      return ErrnoStatus(err, "mmap", "memfd_secret");
    }
    // The mapping keeps the file alive; the fd closes here.
    return absl::OkStatus();
#else
    (void)base;
    (void)length;
    return absl::UnimplementedError("memfd_secret is not known to this build");
#endif
  }

  std::mutex mu_;
  ArenaOptions options_;
  bool initialized_ = false;
  uint8_t* base_ = nullptr;
  size_t length_ = 0;
  std::string backing_;
  bool locked_ = false;
  bool dontdump_ = false;
  std::string memfd_secret_error_;
  size_t in_use_ = 0;
  std::map<size_t, size_t> free_;  // offset -> length
  uint8_t* reservation_ = nullptr;  // guard + arena + guard
  size_t reservation_length_ = 0;
  size_t child_offset_ = 0;  // the part reserved for a forked child (ReserveTop)
  size_t child_length_ = 0;
};

// Leaked on purpose: SecretBuffers with static storage duration may be
// destroyed after any function-local static would be.
Arena& GlobalArena() {
  static Arena* const arena = new Arena();
  return *arena;
}

}  // namespace

absl::Status ConfigureArena(const ArenaOptions& options) {
  return GlobalArena().Configure(options);
}

absl::Status InitArena() { return GlobalArena().Init(); }

ArenaInfo GetArenaInfo() { return GlobalArena().Info(); }

absl::Status ReserveChildArena(size_t bytes) { return GlobalArena().ReserveTop(bytes); }

absl::Status SetArenaInheritedByFork(bool inherited) {
  return GlobalArena().SetInheritable(inherited);
}

absl::Status BecomeChildArena() { return GlobalArena().BecomeChild(); }

size_t WipeChildArena() { return GlobalArena().WipeChild(); }

void SecureZero(void* data, size_t len) {
  if (data == nullptr || len == 0) return;
  ::explicit_bzero(data, len);
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  // Accumulate differences through a volatile so the compiler cannot turn the
  // loop into an early-exit memcmp.
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = diff | static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

absl::StatusOr<SecretBuffer> SecretBuffer::Create(size_t len) {
  SecretBuffer out;
  if (len == 0) return out;
  size_t capacity = len;
  absl::StatusOr<uint8_t*> p = GlobalArena().Allocate(&capacity);
  if (!p.ok()) return p.status();
  // Free arena bytes are zero already (fresh pages, or wiped on release); the
  // explicit clear keeps Create's contract independent of that invariant.
  std::memset(*p, 0, capacity);
  out.data_ = *p;
  out.size_ = len;
  out.capacity_ = capacity;
  return out;
}

absl::StatusOr<SecretBuffer> SecretBuffer::CopyFrom(std::span<const uint8_t> bytes) {
  absl::StatusOr<SecretBuffer> out = Create(bytes.size());
  if (!out.ok()) return out.status();
  if (!bytes.empty()) std::memcpy(out->data_, bytes.data(), bytes.size());
  return out;
}

SecretBuffer::SecretBuffer(SecretBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

SecretBuffer::~SecretBuffer() { Clear(); }

void SecretBuffer::Clear() {
  if (data_ != nullptr) {
    SecureZero(data_, capacity_);
    GlobalArena().Free(data_, capacity_);
  }
  data_ = nullptr;
  size_ = 0;
  capacity_ = 0;
}

absl::StatusOr<SecretBuffer> SecretBuffer::Clone() const { return CopyFrom(Reveal()); }

absl::Status SecretBuffer::Resize(size_t new_len) {
  if (new_len == size_) return absl::OkStatus();
  if (new_len == 0) {
    Clear();
    return absl::OkStatus();
  }
  if (new_len <= capacity_) {
    if (new_len < size_) {
      SecureZero(data_ + new_len, size_ - new_len);
    } else {
      std::memset(data_ + size_, 0, new_len - size_);
    }
    size_ = new_len;
    return absl::OkStatus();
  }
  absl::StatusOr<SecretBuffer> bigger = Create(new_len);
  if (!bigger.ok()) return bigger.status();
  if (size_ > 0) std::memcpy(bigger->data_, data_, size_);
  *this = std::move(*bigger);  // zeroes and releases the old storage
  return absl::OkStatus();
}

bool SecretBuffer::ConstantTimeEquals(const SecretBuffer& other) const {
  return sandbox::ConstantTimeEquals(Reveal(), other.Reveal());
}

}  // namespace vigo::sandbox
