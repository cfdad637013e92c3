// SecretBuffer and the locked arena.
//
// The arena is process-wide and configured once, so tests that need a
// particular backing (mlock, a tiny capacity) run in a fresh re-executed copy
// of this binary via a "threadsafe" death test: the child starts with no
// arena, configures it, checks, and reports through its exit code and stderr.
#include "sandbox/secret_buffer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {
namespace {

using ::testing::HasSubstr;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

SecretBuffer MakeOrDie(std::string_view s) {
  absl::StatusOr<SecretBuffer> b = SecretBuffer::CopyFrom(Bytes(s));
  if (!b.ok()) {
    ADD_FAILURE() << b.status();
    return SecretBuffer();
  }
  return std::move(*b);
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// The VmFlags line of the /proc/self/smaps entry that contains `addr`, or ""
// when no mapping contains it.
std::string VmFlagsFor(uintptr_t addr, std::string* name = nullptr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    uintptr_t lo = 0, hi = 0;
    // Header lines look like "7f..-7f.. rw-s 00000000 00:01 123  /path".
    char perms[8] = {0};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 && line[0] != 'V') {
      inside = addr >= lo && addr < hi;
      if (inside && name != nullptr) {
        size_t slash = line.find('/');
        *name = slash == std::string::npos ? "" : line.substr(slash);
      }
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

// Clears CAP_IPC_LOCK from this process's effective and permitted sets.
bool DropIpcLockForTest() {
  cap_t caps = cap_get_proc();
  if (caps == nullptr) return false;
  cap_value_t v[] = {CAP_IPC_LOCK};
  bool ok = cap_set_flag(caps, CAP_EFFECTIVE, 1, v, CAP_CLEAR) == 0 &&
            cap_set_flag(caps, CAP_PERMITTED, 1, v, CAP_CLEAR) == 0 && cap_set_proc(caps) == 0;
  cap_free(caps);
  return ok;
}

bool MappedInSelf(uintptr_t addr) {
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) return true;
  }
  return false;
}

// Runs `body` in a fresh copy of this binary (no arena yet) and expects exit 0.
#define EXPECT_IN_FRESH_PROCESS(...)                                         \
  do {                                                                       \
    GTEST_FLAG_SET(death_test_style, "threadsafe");                          \
    EXPECT_EXIT(([&] { __VA_ARGS__; }()), ::testing::ExitedWithCode(0), ""); \
  } while (0)

#define CHILD_CHECK(cond, msg)                                          \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "child check failed: %s: %s\n", #cond, msg); \
      std::_Exit(1);                                                    \
    }                                                                   \
  } while (0)

TEST(SecretBufferTest, DefaultIsEmpty) {
  SecretBuffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.Reveal().empty());
}

TEST(SecretBufferTest, CreateZeroIsEmptyAndOk) {
  absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(0);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->empty());
}

TEST(SecretBufferTest, CreateIsZeroFilled) {
  // Dirty a block, free it, and check a new block in the same place is zero.
  {
    absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(1000);
    ASSERT_TRUE(b.ok());
    std::memset(b->RevealMutable().data(), 0xAB, 1000);
  }
  absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(1000);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1000u);
  EXPECT_TRUE(AllZero(b->Reveal().data(), 1000));
}

TEST(SecretBufferTest, CopyFromHoldsBytesInArena) {
  SecretBuffer b = MakeOrDie("hunter2");
  ASSERT_EQ(b.size(), 7u);
  EXPECT_EQ(std::memcmp(b.Reveal().data(), "hunter2", 7), 0);
  ArenaInfo info = GetArenaInfo();
  ASSERT_TRUE(info.initialized);
  uintptr_t p = reinterpret_cast<uintptr_t>(b.Reveal().data());
  EXPECT_GE(p, info.base);
  EXPECT_LT(p + b.size(), info.base + info.length);
  EXPECT_GE(info.in_use_bytes, 7u);
}

TEST(SecretBufferTest, MoveTransfersAndEmptiesSource) {
  SecretBuffer a = MakeOrDie("top secret");
  const uint8_t* data = a.Reveal().data();
  SecretBuffer b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from contract
  EXPECT_EQ(a.Reveal().data(), nullptr);
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(b.Reveal().data(), data);  // no copy
  SecretBuffer c = MakeOrDie("other");
  c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(std::memcmp(c.Reveal().data(), "top secret", 10), 0);
}

TEST(SecretBufferTest, DestructionZeroesAndReturnsMemory) {
  const size_t before = GetArenaInfo().in_use_bytes;
  const uint8_t* data = nullptr;
  size_t size = 0;
  {
    SecretBuffer b = MakeOrDie("canary-value-0123456789");
    data = b.Reveal().data();
    size = b.size();
    EXPECT_GT(GetArenaInfo().in_use_bytes, before);
  }
  EXPECT_EQ(GetArenaInfo().in_use_bytes, before);
  // The arena pages stay mapped, so reading the old location is defined here.
  EXPECT_TRUE(AllZero(data, size));
}

TEST(SecretBufferTest, ClearZeroes) {
  SecretBuffer b = MakeOrDie("abcdef");
  const uint8_t* data = b.Reveal().data();
  b.Clear();
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(AllZero(data, 6));
}

TEST(SecretBufferTest, EqualityIsByteEquality) {
  EXPECT_TRUE(MakeOrDie("abc") == MakeOrDie("abc"));
  EXPECT_FALSE(MakeOrDie("abc") == MakeOrDie("abd"));
  EXPECT_FALSE(MakeOrDie("abc") == MakeOrDie("abcd"));
  EXPECT_FALSE(MakeOrDie("abc") == SecretBuffer());
  EXPECT_TRUE(SecretBuffer() == SecretBuffer());
  EXPECT_TRUE(ConstantTimeEquals(Bytes("xyz"), Bytes("xyz")));
  EXPECT_FALSE(ConstantTimeEquals(Bytes("xyz"), Bytes("xyZ")));
  EXPECT_FALSE(ConstantTimeEquals(Bytes("xyz"), Bytes("xy")));
}

TEST(SecretBufferTest, CloneIsIndependent) {
  SecretBuffer a = MakeOrDie("clone me");
  absl::StatusOr<SecretBuffer> b = a.Clone();
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(a == *b);
  EXPECT_NE(a.Reveal().data(), b->Reveal().data());
  b->RevealMutable()[0] = 'C';
  EXPECT_FALSE(a == *b);
  EXPECT_EQ(a.Reveal()[0], 'c');
}

TEST(SecretBufferTest, ResizeGrowPreservesAndZeroesOldStorage) {
  SecretBuffer b = MakeOrDie("0123456789");
  const uint8_t* old = b.Reveal().data();
  ASSERT_TRUE(b.Resize(5000).ok());
  EXPECT_EQ(b.size(), 5000u);
  EXPECT_EQ(std::memcmp(b.Reveal().data(), "0123456789", 10), 0);
  EXPECT_TRUE(AllZero(b.Reveal().data() + 10, 4990));
  EXPECT_NE(b.Reveal().data(), old);
  EXPECT_TRUE(AllZero(old, 10));  // old storage wiped
}

TEST(SecretBufferTest, ResizeShrinkWipesTailAndRegrowIsZero) {
  SecretBuffer b = MakeOrDie("abcdefgh");
  const uint8_t* p = b.Reveal().data();
  ASSERT_TRUE(b.Resize(3).ok());
  EXPECT_EQ(b.size(), 3u);
  EXPECT_EQ(std::memcmp(b.Reveal().data(), "abc", 3), 0);
  EXPECT_TRUE(AllZero(p + 3, 5));
  ASSERT_TRUE(b.Resize(8).ok());
  EXPECT_EQ(std::memcmp(b.Reveal().data(), "abc\0\0\0\0\0", 8), 0);
  ASSERT_TRUE(b.Resize(0).ok());
  EXPECT_TRUE(b.empty());
}

TEST(SecretBufferTest, ExceedingCapacityIsResourceExhausted) {
  ArenaInfo info = GetArenaInfo();
  ASSERT_TRUE(info.initialized || InitArena().ok());
  info = GetArenaInfo();
  absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(info.length + 1);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("secret arena full: need " + std::to_string(info.length + 1) + " bytes"));
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr(" of " + std::to_string(info.length) + " in use"));
}

TEST(SecretBufferTest, FullArenaThenFreeAndCoalesce) {
  // Fill a small arena with 64-byte blocks, fail, free two neighbours, and
  // check a 128-byte block fits again (coalescing works).
  EXPECT_IN_FRESH_PROCESS({
    ArenaOptions o;
    o.capacity_bytes = 4096;
    CHILD_CHECK(ConfigureArena(o).ok(), "configure");
    std::vector<SecretBuffer> blocks;
    while (true) {
      absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(64);
      if (!b.ok()) {
        CHILD_CHECK(b.status().code() == absl::StatusCode::kResourceExhausted, "code");
        CHILD_CHECK(std::string(b.status().message()) ==
                        "secret arena full: need 64 bytes, 4096 of 4096 in use",
                    std::string(b.status().message()).c_str());
        break;
      }
      blocks.push_back(std::move(*b));
    }
    CHILD_CHECK(blocks.size() == 64, "64 blocks of 64 bytes");
    blocks[10].Clear();
    CHILD_CHECK(!SecretBuffer::Create(128).ok(), "fragmented: 128 must not fit");
    blocks[11].Clear();
    CHILD_CHECK(SecretBuffer::Create(128).ok(), "coalesced 128 fits");
    blocks.clear();
    CHILD_CHECK(GetArenaInfo().in_use_bytes == 0, "all returned");
    CHILD_CHECK(SecretBuffer::Create(4096).ok(), "whole arena after full coalesce");
    std::_Exit(0);
  });
}

TEST(SecretBufferTest, FreeingForeignMemoryAborts) {
  // A SecretBuffer whose internals point outside the arena (only reachable
  // through memory corruption) must stop the process, not corrupt the
  // free list. Forge one by overwriting a buffer's representation.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(([] {
                 static uint8_t outside[128];
                 SecretBuffer b = MakeOrDie("x");
                 struct Rep {
                   uint8_t* data;
                   size_t size;
                   size_t capacity;
                 };
                 static_assert(sizeof(Rep) == sizeof(SecretBuffer));
                 Rep forged{outside, 1, 64};
                 std::memcpy(static_cast<void*>(&b), &forged, sizeof(forged));
               }()),
               "does not own");
}

TEST(SecretBufferTest, ConfigureAfterInitFails) {
  ASSERT_TRUE(InitArena().ok());
  absl::Status st = ConfigureArena(ArenaOptions{});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("already initialized"));
}

TEST(SecretBufferTest, ConfigureRejectsZeroCapacity) {
  EXPECT_IN_FRESH_PROCESS({
    ArenaOptions o;
    o.capacity_bytes = 0;
    CHILD_CHECK(ConfigureArena(o).code() == absl::StatusCode::kInvalidArgument, "zero capacity");
    std::_Exit(0);
  });
}

TEST(SecretBufferTest, PrintToRedacts) {
  SecretBuffer b = MakeOrDie("do-not-print-me");
  std::string printed = ::testing::PrintToString(b);
  EXPECT_EQ(printed, "<redacted>");
  EXPECT_THAT(printed, ::testing::Not(HasSubstr("do-not-print-me")));
}

TEST(SecretBufferTest, ConcurrentAllocationsAreSafe) {
  const size_t before = GetArenaInfo().in_use_bytes;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 500; ++i) {
        std::string v(static_cast<size_t>(1 + (i * 7 + t) % 300), static_cast<char>('a' + t));
        absl::StatusOr<SecretBuffer> b = SecretBuffer::CopyFrom(Bytes(v));
        if (!b.ok() || std::memcmp(b->Reveal().data(), v.data(), v.size()) != 0) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(GetArenaInfo().in_use_bytes, before);
}

// --- backings ---------------------------------------------------------------

TEST(SecretArenaTest, DefaultBackingIsMemfdSecretOnThisKernel) {
  ASSERT_TRUE(InitArena().ok());
  ArenaInfo info = GetArenaInfo();
  if (info.backing != "memfd_secret") {
    GTEST_SKIP() << "memfd_secret unavailable (" << info.memfd_secret_error << "); arena uses "
                 << info.backing;
  }
  EXPECT_TRUE(info.locked);
  EXPECT_TRUE(info.dontdump);
  EXPECT_GE(info.length, kDefaultArenaCapacity);
}

TEST(SecretArenaTest, MemfdSecretPagesAreAbsentFromDirectMap) {
  SecretBuffer b = MakeOrDie("secretmem-canary");
  ArenaInfo info = GetArenaInfo();
  if (info.backing != "memfd_secret") {
    GTEST_SKIP() << "memfd_secret unavailable (" << info.memfd_secret_error << ")";
  }
  std::string name;
  std::string flags = VmFlagsFor(info.base, &name);
  EXPECT_THAT(name, HasSubstr("secretmem"));
  EXPECT_THAT(flags, HasSubstr(" lo"));
  EXPECT_THAT(flags, HasSubstr(" dd"));
  EXPECT_THAT(flags, HasSubstr(" dc"));  // MADV_DONTFORK

  // The kernel refuses to read secretmem pages through /proc/self/mem (they
  // are not in its direct map); an ordinary heap page reads fine.
  UniqueFd mem(::open("/proc/self/mem", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(mem) << std::strerror(errno);
  char out[16];
  errno = 0;
  ssize_t n = ::pread(mem.get(), out, sizeof(out),
                      static_cast<off_t>(reinterpret_cast<uintptr_t>(b.Reveal().data())));
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EIO);
  std::string ordinary = "ordinary heap bytes";
  n = ::pread(mem.get(), out, sizeof(out),
              static_cast<off_t>(reinterpret_cast<uintptr_t>(ordinary.data())));
  EXPECT_EQ(n, static_cast<ssize_t>(sizeof(out)));
}

TEST(SecretArenaTest, MlockBackingIsLockedAndNotDumpable) {
  EXPECT_IN_FRESH_PROCESS({
    ArenaOptions o;
    o.prefer_memfd_secret = false;
    o.capacity_bytes = 1 << 20;
    CHILD_CHECK(ConfigureArena(o).ok(), "configure");
    absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(100);
    CHILD_CHECK(b.ok(), std::string(b.status().message()).c_str());
    ArenaInfo info = GetArenaInfo();
    CHILD_CHECK(info.backing == "mlock", info.backing.c_str());
    CHILD_CHECK(info.locked && info.dontdump, "flags");
    std::string flags = VmFlagsFor(info.base);
    CHILD_CHECK(flags.find(" lo") != std::string::npos, flags.c_str());
    CHILD_CHECK(flags.find(" dd") != std::string::npos, flags.c_str());
    CHILD_CHECK(flags.find(" dc") != std::string::npos, flags.c_str());
    // The last usable byte is in the same locked mapping.
    CHILD_CHECK(VmFlagsFor(info.base + info.length - 1) == flags, "whole range");
    std::_Exit(0);
  });
}

TEST(SecretArenaTest, GuardPagesSurroundTheArena) {
  ASSERT_TRUE(InitArena().ok());
  ArenaInfo info = GetArenaInfo();
  const long page = ::sysconf(_SC_PAGESIZE);
  // The guard pages are mapped PROT_NONE: present in maps, with no rights.
  auto perms_at = [](uintptr_t addr) {
    std::ifstream in("/proc/self/maps");
    std::string line;
    while (std::getline(in, line)) {
      uintptr_t lo = 0, hi = 0;
      char perms[8] = {0};
      if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 && addr >= lo &&
          addr < hi) {
        return std::string(perms);
      }
    }
    return std::string();
  };
  EXPECT_EQ(perms_at(info.base - 1), "---p");
  EXPECT_EQ(perms_at(info.base + info.length), "---p");
  EXPECT_EQ(perms_at(info.base - static_cast<uintptr_t>(page)), "---p");
  EXPECT_THAT(perms_at(info.base), HasSubstr("rw"));
  EXPECT_DEATH(
      {
        volatile const uint8_t* p = reinterpret_cast<const uint8_t*>(info.base + info.length);
        (void)*p;
      },
      "");
}

TEST(SecretArenaTest, MlockFailureRefusesUnlessInsecureOptOut) {
  // Without CAP_IPC_LOCK and with RLIMIT_MEMLOCK below the arena size, mlock
  // fails; the default policy refuses, the opt-out runs "unlocked".
  EXPECT_IN_FRESH_PROCESS({
    struct rlimit rl = {4096, 4096};
    CHILD_CHECK(::setrlimit(RLIMIT_MEMLOCK, &rl) == 0, "setrlimit");
    // Drop CAP_IPC_LOCK (root ignores RLIMIT_MEMLOCK otherwise).
    CHILD_CHECK(DropIpcLockForTest(), "drop CAP_IPC_LOCK");
    ArenaOptions o;
    o.prefer_memfd_secret = false;
    o.capacity_bytes = 1 << 20;
    CHILD_CHECK(ConfigureArena(o).ok(), "configure");
    absl::StatusOr<SecretBuffer> b = SecretBuffer::Create(10);
    CHILD_CHECK(!b.ok(), "must refuse");
    CHILD_CHECK(b.status().code() == absl::StatusCode::kFailedPrecondition,
                std::string(b.status().message()).c_str());
    CHILD_CHECK(std::string(b.status().message()).find("insecure-allow-unlocked-memory") !=
                    std::string::npos,
                "message names the opt-out");
    CHILD_CHECK(!GetArenaInfo().initialized, "failed init leaves arena uninitialized");
    o.insecure_allow_unlocked = true;
    CHILD_CHECK(ConfigureArena(o).ok(), "reconfigure after failure");
    b = SecretBuffer::Create(10);
    CHILD_CHECK(b.ok(), "opt-out works");
    ArenaInfo info = GetArenaInfo();
    CHILD_CHECK(info.backing == "unlocked" && !info.locked, info.backing.c_str());
    std::_Exit(0);
  });
}

TEST(SecretArenaTest, ForkedChildDoesNotSeeTheArena) {
  SecretBuffer b = MakeOrDie("parent-only");
  const uintptr_t addr = reinterpret_cast<uintptr_t>(b.Reveal().data());
  ASSERT_TRUE(MappedInSelf(addr));
  // 1. The range is not mapped in the child at all.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) std::_Exit(MappedInSelf(addr) ? 1 : 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "arena range is mapped in a forked child";
  // 2. Touching it in the child is a SIGSEGV (default handler: sanitizers
  //    must not turn it into an exit code).
  pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGSEGV, SIG_DFL);
    volatile const uint8_t* p = reinterpret_cast<const uint8_t*>(addr);
    std::_Exit(*p == 'p' ? 10 : 11);
  }
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
}

// A forked child's part of the arena (ReserveChildArena): whatever the child
// writes there, wherever in its part, is zeroed by WipeChildArena, which
// asks the child nothing. For memfd_secret only the touched pages are
// zeroed; for the mlock backing (every page resident) all of the part.
void ChildLeavesBytesAndParentWipes(bool memfd_secret) {
  ArenaOptions o;
  o.prefer_memfd_secret = memfd_secret;
  o.capacity_bytes = 4 << 20;
  CHILD_CHECK(ConfigureArena(o).ok(), "configure");
  CHILD_CHECK(ReserveChildArena(2 << 20).ok(), "reserve");
  CHILD_CHECK(!memfd_secret || GetArenaInfo().backing == "memfd_secret", "memfd_secret backing");
  SecretBuffer mine = SecretBuffer::CopyFrom(
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("parent"), 6))
                          .value();
  int pipefd[2];
  CHILD_CHECK(::pipe(pipefd) == 0, "pipe");
  CHILD_CHECK(SetArenaInheritedByFork(true).ok(), "inherit");
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!BecomeChildArena().ok()) std::_Exit(3);
    auto b = SecretBuffer::Create(64);
    if (!b.ok()) std::_Exit(4);
    uint8_t* p = const_cast<uint8_t*>(b->Reveal().data());
    std::memcpy(p, "child-secret", 12);
    // Far beyond what it allocated, still inside its part: what a hostile
    // applier would leave while claiming it used 64 bytes.
    std::memcpy(p + (1 << 20) + 100, "hidden-secret", 13);
    uintptr_t at = reinterpret_cast<uintptr_t>(p);
    if (::write(pipefd[1], &at, sizeof at) != sizeof at) std::_Exit(5);
    std::_Exit(0);
  }
  CHILD_CHECK(pid > 0, "fork");
  CHILD_CHECK(SetArenaInheritedByFork(false).ok(), "not inherited");
  uintptr_t at = 0;
  CHILD_CHECK(::read(pipefd[0], &at, sizeof at) == sizeof at, "child address");
  int status = 0;
  CHILD_CHECK(::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child ran");
  const uint8_t* p = reinterpret_cast<const uint8_t*>(at);
  CHILD_CHECK(std::memcmp(p, "child-secret", 12) == 0, "the child's bytes are shared");
  CHILD_CHECK(std::memcmp(p + (1 << 20) + 100, "hidden-secret", 13) == 0, "shared far write");
  const size_t wiped = WipeChildArena();
  for (size_t i = 0; i < 13; ++i) {
    CHILD_CHECK(p[i] == 0 && p[(1 << 20) + 100 + i] == 0, "a byte the child left survived");
  }
  CHILD_CHECK(mine.Reveal()[0] == 'p', "the parent's own buffer is untouched");
  if (memfd_secret) {
    CHILD_CHECK(wiped <= 4 * static_cast<size_t>(::sysconf(_SC_PAGESIZE)), "touched pages only");
  } else {
    CHILD_CHECK(wiped == size_t{2} << 20, "all of the part");
  }
  std::_Exit(0);
}

bool MemfdSecretWorks() {
#ifdef SYS_memfd_secret
  const int fd = static_cast<int>(::syscall(SYS_memfd_secret, 0));
  if (fd < 0) return false;
  ::close(fd);
  return true;
#else
  return false;
#endif
}

TEST(SecretArenaTest, ChildPartIsWipedWhateverTheChildWroteMemfdSecret) {
  if (!MemfdSecretWorks()) GTEST_SKIP() << "no memfd_secret on this kernel (CI has it)";
  EXPECT_IN_FRESH_PROCESS(ChildLeavesBytesAndParentWipes(true));
}

// #14 review: the child (the applier) reads the parent's values in place;
// it must not be able to rewrite them (the worker scrubs command output
// with those copies). Its view of the parent's part is read-only.
void ChildCannotWriteTheParentsPart() {
  ArenaOptions o;
  o.capacity_bytes = 4 << 20;
  CHILD_CHECK(ConfigureArena(o).ok(), "configure");
  CHILD_CHECK(ReserveChildArena(2 << 20).ok(), "reserve");
  SecretBuffer mine = SecretBuffer::CopyFrom(
                          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("parent"), 6))
                          .value();
  CHILD_CHECK(SetArenaInheritedByFork(true).ok(), "inherit");
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!BecomeChildArena().ok()) std::_Exit(3);
    if (mine.Reveal()[0] != 'p') std::_Exit(4);  // still readable in place
    std::memcpy(const_cast<uint8_t*>(mine.Reveal().data()), "CHILD!", 6);
    std::_Exit(0);
  }
  CHILD_CHECK(pid > 0, "fork");
  CHILD_CHECK(SetArenaInheritedByFork(false).ok(), "not inherited");
  int status = 0;
  CHILD_CHECK(::waitpid(pid, &status, 0) == pid, "wait");
  CHILD_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the child's write faulted");
  CHILD_CHECK(std::memcmp(mine.Reveal().data(), "parent", 6) == 0, "the parent's value is intact");
  std::_Exit(0);
}

TEST(SecretArenaTest, ChildCannotWriteTheParentsPart) {
  EXPECT_IN_FRESH_PROCESS(ChildCannotWriteTheParentsPart());
}

TEST(SecretArenaTest, ChildPartIsWipedWhateverTheChildWroteMlock) {
  EXPECT_IN_FRESH_PROCESS(ChildLeavesBytesAndParentWipes(false));
}

}  // namespace
}  // namespace vigo::sandbox
