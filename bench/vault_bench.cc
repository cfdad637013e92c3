// Local vault benchmarks (plain harness; prints ratios against a floor
// measured in the same run):
//   1. LocalBackend::Get vs raw AES-256-GCM decryption of the same file bytes
//      (the floor: what any encrypted-at-rest vault must pay), per value size.
//   2. LocalBackend::Rotate wall time for 1k and 10k secrets (durable: one
//      fsync'ed temp file + rename + directory fsync per secret).
//
//   bench/vault_bench [--quick]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sandbox/secret_buffer.h"
#include "server/vault/local_backend.h"
#include "server/vault/secret_file.h"
#include "server/vault/vault_crypto.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using vigo::sandbox::SecretBuffer;
namespace vault = vigo::server::vault;

void Die(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "vault_bench: %s: %s\n", what, std::string(st.message()).c_str());
  std::exit(1);
}

struct TempRoot {
  fs::path path;
  TempRoot() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/vigo-bench-XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs `fn` repeatedly for about `budget`; returns seconds per call.
template <typename Fn>
double TimePerOp(Fn&& fn, std::chrono::milliseconds budget) {
  for (int i = 0; i < 3; ++i) fn();  // warm up
  size_t n = 0;
  auto start = Clock::now();
  auto deadline = start + budget;
  while (Clock::now() < deadline) {
    for (int i = 0; i < 8; ++i) fn();
    n += 8;
  }
  return std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(n);
}

void BenchGet(bool quick) {
  std::printf("## Get vs raw AES-256-GCM decrypt (same file bytes, same run)\n\n");
  std::printf("| value size | raw decrypt | LocalBackend::Get | Get / raw |\n");
  std::printf("| ---: | ---: | ---: | ---: |\n");
  auto budget = std::chrono::milliseconds(quick ? 150 : 800);
  for (size_t size : {size_t{32}, size_t{4096}, size_t{65536}, vault::kMaxValueBytes}) {
    TempRoot root;
    fs::path dir = root.path / "secrets";
    if (auto st = vault::CreateMasterKey(dir); !st.ok()) Die("init", st);
    auto backend = vigo::server::LocalBackend::Open(dir);
    if (!backend.ok()) Die("open", backend.status());
    auto value = SecretBuffer::Create(size);
    if (!value.ok()) Die("alloc", value.status());
    (void)vault::RandomBytes(value->RevealMutable());
    if (auto v = (*backend)->Set("bench/value", *value); !v.ok()) Die("set", v.status());
    // The floor: decrypt the very bytes on disk with the same key and AAD,
    // into a preallocated locked buffer.
    std::ifstream in(dir / "bench/value", std::ios::binary);
    std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    auto dirh = vault::SecureDir::Open(dir, false);
    auto key = vault::LoadKeyFile(*dirh, vault::kMasterKeyFile);
    if (!key.ok()) Die("key", key.status());
    auto out = SecretBuffer::Create(size);
    std::vector<uint8_t> aad(file.begin(), file.begin() + vault::kSecretHeaderLen);
    const uint8_t sep[6] = {0, 'p', 'a', 't', 'h', 0};
    aad.insert(aad.end(), sep, sep + 6);
    std::string path = "bench/value";
    aad.insert(aad.end(), path.begin(), path.end());
    std::span<const uint8_t> f(file);
    double raw = TimePerOp(
        [&] {
          auto st = vault::AesGcmOpen(
              key->Reveal(), f.subspan(24, 12), aad, f.subspan(vault::kSecretHeaderLen, size),
              std::span<const uint8_t, 16>(file.data() + vault::kSecretHeaderLen + size, 16),
              out->RevealMutable());
          if (!st.ok()) Die("raw decrypt", st);
        },
        budget);
    double get = TimePerOp(
        [&] {
          auto v = (*backend)->Get("bench/value");
          if (!v.ok()) Die("get", v.status());
        },
        budget);
    auto fmt = [&](double secs) {
      char buf[64];
      double mbps = static_cast<double>(size) / secs / 1e6;
      std::snprintf(buf, sizeof(buf), "%.1f µs (%.0f MB/s)", secs * 1e6, mbps);
      return std::string(buf);
    };
    std::printf("| %zu B | %s | %s | %.2f× |\n", size, fmt(raw).c_str(), fmt(get).c_str(),
                get / raw);
    std::fflush(stdout);
  }
  std::printf("\n");
}

void BenchRotate(bool quick) {
  std::printf("## Rotate (durable: fsync per file + directory)\n\n");
  std::printf("| secrets | rotate wall time | per secret |\n| ---: | ---: | ---: |\n");
  std::vector<size_t> counts = quick ? std::vector<size_t>{200} : std::vector<size_t>{1000, 10000};
  for (size_t n : counts) {
    TempRoot root;
    fs::path dir = root.path / "secrets";
    if (auto st = vault::CreateMasterKey(dir); !st.ok()) Die("init", st);
    auto dirh = vault::SecureDir::Open(dir, false);
    auto key = vault::LoadKeyFile(*dirh, vault::kMasterKeyFile);
    auto value = SecretBuffer::Create(48);
    (void)vault::RandomBytes(value->RevealMutable());
    // Populate without per-file fsync (setup only; not what is measured).
    for (size_t i = 0; i < n; ++i) {
      std::string path = "app" + std::to_string(i % 50) + "/secret_" + std::to_string(i);
      auto file = vault::EncryptSecretFile(key->Reveal(), path, 1, *value);
      if (!file.ok()) Die("encrypt", file.status());
      fs::create_directories(dir / ("app" + std::to_string(i % 50)));
      std::ofstream out(dir / path, std::ios::binary);
      out.write(static_cast<const char*>(static_cast<const void*>(file->data())),
                static_cast<std::streamsize>(file->size()));
    }
    auto backend = vigo::server::LocalBackend::Open(dir);
    if (!backend.ok()) Die("open", backend.status());
    auto start = Clock::now();
    auto r = (*backend)->Rotate();
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (!r.ok()) Die("rotate", r.status());
    if (r->reencrypted != n) Die("rotate count", absl::InternalError("wrong count"));
    std::printf("| %zu | %.2f s | %.2f ms |\n", n, secs, secs * 1e3 / static_cast<double>(n));
    std::fflush(stdout);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  BenchGet(quick);
  BenchRotate(quick);
  return 0;
}
