#include "server/service/key_pool.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <utility>

namespace vigo::server::service {

EphemeralKeyPool::EphemeralKeyPool(size_t capacity)
    : capacity_(capacity), thread_([this] { Loop(); }) {}

EphemeralKeyPool::~EphemeralKeyPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<EphemeralKey> EphemeralKeyPool::Take() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!keys_.empty()) {
      EphemeralKey k = std::move(keys_.back());
      keys_.pop_back();
      cv_.notify_one();  // refill
      return k;
    }
  }
  cv_.notify_one();
  return EphemeralKey::Generate();
}

size_t EphemeralKeyPool::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

void EphemeralKeyPool::Loop() {
  // Refilling is background work: the lowest nice value (per thread on
  // Linux) keeps it from competing with the calls it serves, while it still
  // progresses on a busy machine (if the pool runs dry, Take() generates
  // inline). Best effort: on failure the thread keeps its priority.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || keys_.size() < capacity_; });
    if (stop_) return;
    lock.unlock();
    absl::StatusOr<EphemeralKey> k = EphemeralKey::Generate();
    lock.lock();
    if (!k.ok()) {
      // Take() falls back to inline generation, which reports the error to
      // the caller; do not spin on a broken RNG.
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
      continue;
    }
    keys_.push_back(std::move(*k));
  }
}

}  // namespace vigo::server::service
