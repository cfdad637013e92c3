// An in-memory SecretBackend for tests. Header-only on purpose: tests/support
// links only vigo_common and vigo_sandbox, and SecretBackend is an interface
// declared in server/backend.h, so this needs no vigo_server symbol.
//
//   vigo::testing::FakeBackend backend;
//   backend.Put("webapp/db_pw", "hunter2-canary");
//   auto stacks = Stacks::Load(dir, backend, &report);
//   EXPECT_EQ(backend.get_calls(), 0);   // the loader must never read a value
//
// Values are kept in SecretBuffers (the test-side copy of a canary lives in
// whatever the test holds; the fake itself never copies one to a std::string).
// Thread-safe.
#ifndef VIGO_TESTS_SUPPORT_FAKE_BACKEND_H_
#define VIGO_TESTS_SUPPORT_FAKE_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/strings.h"
#include "sandbox/secret_buffer.h"
#include "server/backend.h"

namespace vigo::testing {

class FakeBackend : public server::SecretBackend {
 public:
  // Stores `value` at `path` (bumps its version).
  void Put(std::string_view path, std::string_view value) {
    std::span<const uint8_t> bytes(
        static_cast<const uint8_t*>(static_cast<const void*>(value.data())), value.size());
    absl::StatusOr<sandbox::SecretBuffer> buf = sandbox::SecretBuffer::CopyFrom(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = entries_[std::string(path)];
    if (buf.ok()) e.value = std::move(*buf);
    ++e.version;
  }
  void Remove(std::string_view path) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.erase(std::string(path));
  }
  // While set, every call fails UNAVAILABLE.
  void SetUnavailable(bool unavailable) { unavailable_ = unavailable; }

  int get_calls() const { return get_calls_; }
  int exists_calls() const { return exists_calls_; }

  std::string_view Name() const override { return "fake"; }
  absl::Status CheckHealth() override {
    if (unavailable_) return absl::UnavailableError("fake backend is down");
    return absl::OkStatus();
  }
  absl::StatusOr<bool> Exists(std::string_view path) override {
    ++exists_calls_;
    if (unavailable_) return absl::UnavailableError("fake backend is down");
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.count(std::string(path)) > 0;
  }
  absl::StatusOr<sandbox::SecretBuffer> Get(std::string_view path) override {
    ++get_calls_;
    if (unavailable_) return absl::UnavailableError("fake backend is down");
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(std::string(path));
    if (it == entries_.end()) {
      return absl::NotFoundError(StrCat("secret '", path, "' not found"));
    }
    return it->second.value.Clone();
  }
  absl::StatusOr<uint64_t> Version(std::string_view path) override {
    if (unavailable_) return absl::UnavailableError("fake backend is down");
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(std::string(path));
    if (it == entries_.end()) {
      return absl::NotFoundError(StrCat("secret '", path, "' not found"));
    }
    return it->second.version;
  }
  absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) override {
    if (unavailable_) return absl::UnavailableError("fake backend is down");
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [path, e] : entries_) {
      if (path.compare(0, prefix.size(), prefix) == 0) out.push_back(path);
    }
    return out;
  }

 private:
  struct Entry {
    sandbox::SecretBuffer value;
    uint64_t version = 0;
  };
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::atomic<bool> unavailable_{false};
  std::atomic<int> get_calls_{0};
  std::atomic<int> exists_calls_{0};
};

}  // namespace vigo::testing

#endif  // VIGO_TESTS_SUPPORT_FAKE_BACKEND_H_
