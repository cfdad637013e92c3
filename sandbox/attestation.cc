#include "sandbox/attestation.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/strings.h"
#include "sandbox/capabilities.h"
#include "sandbox/landlock.h"
#include "sandbox/lockdown.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {
namespace {

absl::StatusOr<std::string> ReadProcFile(const char* path) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, "open", path);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Value of "Key:\t<value>" in a status-like file, trimmed; "" when absent.
std::string Field(const std::string& text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string_view v = line.substr(key.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v);
    }
    pos = eol + 1;
  }
  return "";
}

// VmFlags of the smaps entry whose range contains `addr` ("" if none).
std::string VmFlagsAt(const std::string& smaps, uintptr_t addr) {
  bool in_range = false;
  size_t pos = 0;
  while (pos < smaps.size()) {
    size_t eol = smaps.find('\n', pos);
    if (eol == std::string::npos) eol = smaps.size();
    std::string line = smaps.substr(pos, eol - pos);
    pos = eol + 1;
    size_t dash = line.find('-');
    size_t space = line.find(' ');
    if (dash != std::string::npos && space != std::string::npos && dash < space &&
        line.find(':') > space) {
      uintptr_t lo = std::strtoull(line.substr(0, dash).c_str(), nullptr, 16);
      uintptr_t hi = std::strtoull(line.substr(dash + 1, space - dash - 1).c_str(), nullptr, 16);
      in_range = addr >= lo && addr < hi;
      continue;
    }
    if (in_range && line.rfind("VmFlags:", 0) == 0) return " " + line.substr(8) + " ";
  }
  return "";
}

int ToInt(const std::string& s, int fallback) {
  if (s.empty()) return fallback;
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  return end == s.c_str() ? fallback : static_cast<int>(v);
}

}  // namespace

absl::StatusOr<AttestationReport> CollectAttestation() {
  AttestationReport r;
  LockdownResult last = LastLockdown();
  r.process = last.process;
  r.skipped_steps = last.skipped_steps;
  r.landlock_abi = LandlockAbi();
  r.applier_landlock = r.process == "worker" && r.landlock_abi >= 1 &&
                       std::find(r.skipped_steps.begin(), r.skipped_steps.end(),
                                 std::string(kStepLandlock)) == r.skipped_steps.end();

  auto status = ReadProcFile("/proc/self/status");
  if (!status.ok()) return status.status();
  r.seccomp_mode = ToInt(Field(*status, "Seccomp"), -1);
  r.seccomp_filters = ToInt(Field(*status, "Seccomp_filters"), -1);
  r.no_new_privs = Field(*status, "NoNewPrivs") == "1";
  r.cap_eff = Field(*status, "CapEff");
  r.cap_bnd = Field(*status, "CapBnd");
  std::string vmlck = Field(*status, "VmLck");  // "1234 kB"
  r.vm_lck_kb = std::strtoull(vmlck.c_str(), nullptr, 10);

  int dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (dumpable < 0) return ErrnoStatus(errno, "prctl(PR_GET_DUMPABLE)");
  r.dumpable = dumpable != 0;

  ArenaInfo arena = GetArenaInfo();
  r.arena_backing = arena.initialized ? arena.backing : "";
  if (arena.initialized && arena.length > 0) {
    auto smaps = ReadProcFile("/proc/self/smaps");
    if (!smaps.ok()) return smaps.status();
    // Every page of the arena must carry the flags: check first and last.
    std::string first = VmFlagsAt(*smaps, arena.base);
    std::string last_page = VmFlagsAt(*smaps, arena.base + arena.length - 1);
    r.arena_locked =
        first.find(" lo ") != std::string::npos && last_page.find(" lo ") != std::string::npos;
    r.arena_dontdump =
        first.find(" dd ") != std::string::npos && last_page.find(" dd ") != std::string::npos;
  }
  return r;
}

absl::StatusOr<uint64_t> AllowedCapabilityMask(std::string_view process) {
  if (process == "broker") return uint64_t{0};
  if (process == "worker") return CapabilityMask(kWorkerFileCapabilities);
  return absl::InvalidArgumentError(StrCat("attestation: unknown process '", process, "'"));
}

absl::Status CheckStrict(const AttestationReport& r) {
  std::string failures;
  auto fail = [&failures](const std::string& what) {
    if (!failures.empty()) failures += "; ";
    failures += what;
  };
  if (r.seccomp_mode != 2) fail(StrCat("seccomp_mode=", r.seccomp_mode, " (want 2)"));
  if (r.seccomp_filters < 1) fail(StrCat("seccomp_filters=", r.seccomp_filters, " (want >= 1)"));
  if (!r.no_new_privs) fail("no_new_privs=false");
  if (r.dumpable) fail("dumpable=true");
  if (!r.arena_locked) fail("arena_locked=false");
  if (!r.arena_dontdump) fail("arena_dontdump=false");
  if (r.arena_backing != "memfd_secret" && r.arena_backing != "mlock") {
    fail(StrCat("arena_backing='", r.arena_backing, "' (want memfd_secret or mlock)"));
  }
  for (const std::string& s : r.skipped_steps) fail(StrCat("skipped step ", s));
  if (r.process == "worker") {
    if (r.landlock_abi < 1) {
      fail(StrCat("landlock_abi=", r.landlock_abi, " (want >= 1: this kernel has no Landlock)"));
    } else if (!r.applier_landlock) {
      fail("applier_landlock=false");
    }
  }
  auto allowed = AllowedCapabilityMask(r.process);
  if (!allowed.ok()) {
    fail(std::string(allowed.status().message()));
  } else {
    char* end = nullptr;
    uint64_t eff = std::strtoull(r.cap_eff.c_str(), &end, 16);
    if (r.cap_eff.empty() || end == r.cap_eff.c_str() || *end != '\0') {
      fail(StrCat("cap_eff='", r.cap_eff, "' unreadable"));
    } else if ((eff & ~*allowed) != 0) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(*allowed));
      fail(StrCat("cap_eff=", r.cap_eff, " exceeds allowed ", buf));
    }
  }
  if (failures.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(StrCat("hardening below strict: ", failures));
}

}  // namespace vigo::sandbox
