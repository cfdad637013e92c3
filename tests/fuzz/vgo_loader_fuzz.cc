// Fuzz target for the .vgo loader. The input is split on NUL bytes into up
// to five files — envoys.vgo, configcrates/a.vgo, roles.vgo,
// environments.vgo, configcrates/b.vgo — written to a temp dir and loaded
// with Stacks::Load against an in-memory backend; every envoy name the seeds
// use is then compiled. Any outcome but a crash (or sanitizer report) is fine;
// a successful load must give bundles whose entitlement matches their markers.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret_ref.h"
#include "server/stacks.h"
#include "tests/support/fake_backend.h"

namespace {

namespace fs = std::filesystem;

// Heap-allocated and never destroyed, so the atexit cleanup can still use it.
const fs::path& Dir() {
  static const fs::path* dir = [] {
    // tmpfs when there is one: 20000 smoke iterations rewrite these files.
    std::error_code ec;
    fs::path base = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                        ? fs::path("/dev/shm")
                        : fs::temp_directory_path();
    std::string tmpl = (base / "vigo-vgo-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    fs::create_directories(fs::path(tmpl) / "configcrates");
    std::atexit([] {
      std::error_code rm_ec;
      fs::remove_all(Dir(), rm_ec);
    });
    return new fs::path(tmpl);
  }();
  return *dir;
}

vigo::testing::FakeBackend& Backend() {
  static vigo::testing::FakeBackend* backend = [] {
    auto* b = new vigo::testing::FakeBackend();
    for (const char* p :
         {"a/b", "x", "webapp/prod/db_password", "db/backup_key", "db/prod/pg_password",
          "db/staging/pg_password", "tls/web/key", "web/htpasswd_hash"}) {
      b->Put(p, "fuzz-value");
    }
    return b;
  }();
  return *backend;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kFiles[] = {"envoys.vgo", "configcrates/a.vgo", "roles.vgo",
                                 "environments.vgo", "configcrates/b.vgo"};
  std::string_view input(static_cast<const char*>(static_cast<const void*>(data)), size);
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (parts.size() < 5) {
    size_t nul = input.find('\0', start);
    if (nul == std::string_view::npos || parts.size() == 4) {
      parts.push_back(input.substr(start));
      break;
    }
    parts.push_back(input.substr(start, nul - start));
    start = nul + 1;
  }
  const fs::path& dir = Dir();
  static std::string written[5];
  static bool present[5] = {false, false, false, false, false};
  for (size_t i = 0; i < 5; ++i) {
    fs::path p = dir / kFiles[i];
    if (i < parts.size()) {
      if (present[i] && written[i] == parts[i]) continue;  // unchanged since the last input
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out.write(parts[i].data(), static_cast<std::streamsize>(parts[i].size()));
      written[i] = std::string(parts[i]);
      present[i] = true;
    } else if (present[i]) {
      std::error_code ec;
      fs::remove(p, ec);
      present[i] = false;
    }
  }
  vigo::server::LoadReport report;
  auto stacks = vigo::server::Stacks::Load(dir, Backend(), &report);
  if (Backend().get_calls() != 0) std::abort();  // the loader must never read a value
  if (!stacks.ok()) {
    if (report.errors.empty()) std::abort();  // every failure is explained
    return 0;
  }
  for (const char* envoy : {"web-1", "web-01", "db-primary", "host0", "a", "mail-1"}) {
    auto b = (*stacks)->Compile(envoy, 1);
    if (!b.ok()) continue;
    auto scanned = vigo::server::EntitlementOf(b->bundle);
    if (!scanned.ok() || *scanned != b->entitlement) std::abort();
    if (static_cast<size_t>(b->bundle.secret_refs_size()) != b->entitlement.size()) std::abort();
  }
  return 0;
}
