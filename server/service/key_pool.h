// Server X25519 keys generated ahead of their single use.
//
//   EphemeralKeyPool pool(16);          // starts one background thread
//   VIGO_ASSIGN_OR_RETURN(EphemeralKey k, pool.Take());
//   Sealer::Create(recipient, std::move(k), call_id);
//
// Key generation (one X25519 scalar multiplication, ~55 µs here) moves off
// the ResolveSecrets path: Take() hands out a key generated earlier by the
// refill thread, or generates one inline when the pool is empty (a burst), so
// Take never blocks on the thread. Each key is handed out once and never kept
// by the pool afterwards: forward secrecy per call is unchanged.
//
// SECURITY: up to `capacity` unused private keys sit in OpenSSL's heap (as the
// one key of an in-flight call always did); a reader of server memory could
// open responses sealed with them later, but such a reader could read the
// values themselves. OpenSSL cleanses each key when it is freed.
//
// Thread safety: Take may be called from any thread. The destructor stops the
// thread and frees the unused keys.
#ifndef VIGO_SERVER_SERVICE_KEY_POOL_H_
#define VIGO_SERVER_SERVICE_KEY_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/seal.h"

namespace vigo::server::service {

class EphemeralKeyPool {
 public:
  explicit EphemeralKeyPool(size_t capacity);
  ~EphemeralKeyPool();
  EphemeralKeyPool(const EphemeralKeyPool&) = delete;
  EphemeralKeyPool& operator=(const EphemeralKeyPool&) = delete;

  absl::StatusOr<EphemeralKey> Take();

  // Keys ready now (for tests).
  size_t ready() const;

 private:
  void Loop();

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<EphemeralKey> keys_;  // under mu_
  bool stop_ = false;               // under mu_
  std::thread thread_;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_KEY_POOL_H_
