// SecretBuffer: the only home for plaintext secret values in Vigo.
//
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer value, backend.Get("webapp/db_pw"));
//   std::span<const uint8_t> bytes = value.Reveal();   // greppable: every read says Reveal
//   ...
//   // `value` is zeroed and its pages returned to the arena when it goes out of scope.
//
// Memory comes from one process-wide locked arena:
//   1. memfd_secret(2) where the kernel offers it (pages removed from the kernel's
//      direct map; invisible to /proc/<pid>/mem, never swapped, never dumped), else
//   2. mmap + mlock + MADV_DONTDUMP + MADV_DONTFORK, with PROT_NONE guard pages
//      before and after the arena.
// In both cases the arena is not inherited by fork()ed children, except the
// one child the owner asks for (ReserveChildArena below).
//
// Locking failure policy: by default the arena refuses to exist when its pages
// cannot be locked (Create() then fails with FAILED_PRECONDITION). An operator
// may opt out with ArenaOptions::insecure_allow_unlocked = true (CLI flag
// --insecure-allow-unlocked-memory); the attestation report then says so.
//
// Thread safety: SecretBuffer objects are not synchronized (like std::vector);
// the arena allocator itself is thread-safe.
//
// SECURITY: there is deliberately no operator<<, no conversion to std::string
// or std::string_view, and no copy constructor. googletest prints "<redacted>".
#ifndef VIGO_SANDBOX_SECRET_BUFFER_H_
#define VIGO_SANDBOX_SECRET_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigo::sandbox {

inline constexpr size_t kDefaultArenaCapacity = size_t{16} << 20;  // 16 MiB

struct ArenaOptions {
  // Total bytes of locked memory reserved for secrets in this process.
  size_t capacity_bytes = kDefaultArenaCapacity;
  // Try memfd_secret first. Tests may turn it off to exercise the mlock path.
  bool prefer_memfd_secret = true;
  // WARNING: lets the arena run on pages that could not be locked. Only for
  // environments without mlock; it is reported in attestation.
  bool insecure_allow_unlocked = false;
};

// Sets the arena options. Must be called before the first allocation;
// afterwards it returns FAILED_PRECONDITION. Optional: defaults apply otherwise.
absl::Status ConfigureArena(const ArenaOptions& options);

// Forces arena creation now (e.g. before dropping CAP_IPC_LOCK in lockdown).
absl::Status InitArena();

struct ArenaInfo {
  bool initialized = false;
  std::string backing;  // "memfd_secret" | "mlock" | "unlocked"
  size_t capacity_bytes = 0;
  size_t in_use_bytes = 0;
  bool locked = false;    // mlock succeeded (or memfd_secret, locked by definition)
  bool dontdump = false;  // MADV_DONTDUMP applied (or memfd_secret)
  uintptr_t base = 0;     // first usable byte (for /proc/self/smaps checks)
  size_t length = 0;      // usable bytes, excluding guard pages
  // Why memfd_secret was not used when it was preferred (e.g. "memfd_secret:
  // Function not implemented"); empty when it was used or not tried.
  std::string memfd_secret_error;
};
ArenaInfo GetArenaInfo();

// A part of the arena for one forked child at a time (the worker's per-bundle
// applier, agent-worker/applier.h), so parent and child never allocate the
// same bytes of the shared mapping:
//
//   ReserveChildArena(8 << 20);           // once, right after InitArena
//   SetArenaInheritedByFork(true);        // the next fork sees the arena...
//   pid_t pid = fork();
//   if (pid == 0) { BecomeChildArena(); ...; _exit(0); }   // allocates only in its part
//   SetArenaInheritedByFork(false);       // ...no other fork (exec commands) does
//   waitpid(pid, ...); WipeChildArena();   // the child's leftovers, zeroed
//
// The child reads the parent's buffers (the values of the bundle) in place
// and must never free one: it ends with _exit, and Free of a parent block
// aborts. ReserveChildArena takes the top `bytes` from this process's
// capacity; FAILED_PRECONDITION when they are in use or already reserved.
absl::Status ReserveChildArena(size_t bytes);
absl::Status SetArenaInheritedByFork(bool inherited);
absl::Status BecomeChildArena();
// Zeroes what the child may have left in its part, decided by this process
// alone (never by the child's word): every page of the part that is
// resident, all of it when the backing is not locked or mincore fails.
// Returns the bytes zeroed. Wiping only touched pages matters: zeroing all
// of it would fault in every page of a fresh memfd_secret part (each a page
// allocation and a direct-map change) on every run.
size_t WipeChildArena();

// Zeroes memory in a way the compiler may not elide.
void SecureZero(void* data, size_t len);

// Compares in time that depends only on the lengths.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

class SecretBuffer {
 public:
  // Maximum size of a single buffer (a vault value is at most 1 MiB; bodies
  // from HTTP backends may be larger, up to the arena capacity).
  SecretBuffer() = default;  // empty, owns nothing

  // A zero-filled buffer of `len` bytes. RESOURCE_EXHAUSTED when the arena is
  // full ("secret arena full: need N bytes, M of C in use"),
  // FAILED_PRECONDITION when the arena cannot be locked (see policy above).
  static absl::StatusOr<SecretBuffer> Create(size_t len);

  // Copies `bytes` into a new buffer. The caller still owns (and must wipe)
  // the source.
  static absl::StatusOr<SecretBuffer> CopyFrom(std::span<const uint8_t> bytes);

  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  // Moves leave `other` empty; its old bytes now belong to *this (no copy).
  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;
  // Zeroes and returns the memory to the arena.
  ~SecretBuffer();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // SECURITY: the only ways to read or write the bytes. Keep the span's
  // lifetime shorter than the buffer's and never copy it into a std::string.
  std::span<const uint8_t> Reveal() const { return {data_, size_}; }
  std::span<uint8_t> RevealMutable() { return {data_, size_}; }

  // A new buffer with the same bytes.
  absl::StatusOr<SecretBuffer> Clone() const;

  // Changes the size, preserving the first min(old, new) bytes. New bytes are
  // zero. Old storage is zeroed before it is released.
  absl::Status Resize(size_t new_len);

  // Zeroes and releases; the buffer becomes empty.
  void Clear();

  bool ConstantTimeEquals(const SecretBuffer& other) const;
  friend bool operator==(const SecretBuffer& a, const SecretBuffer& b) {
    return a.ConstantTimeEquals(b);
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;  // bytes reserved in the arena for data_
};

// googletest printer: values never reach test logs.
inline void PrintTo(const SecretBuffer&, std::ostream* os) { *os << "<redacted>"; }
std::ostream& operator<<(std::ostream&, const SecretBuffer&) = delete;

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_SECRET_BUFFER_H_
