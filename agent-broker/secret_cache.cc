#include "agent-broker/secret_cache.h"

namespace vigo::broker {

void SecretCache::Reset(uint64_t epoch) {
  if (epoch != epoch_) values_.clear();  // SecretBuffer destructors zero the bytes
  epoch_ = epoch;
}

void SecretCache::Put(uint64_t epoch, std::string ref, sandbox::SecretBuffer value) {
  if (epoch != epoch_) return;  // `value` is zeroed when it goes out of scope
  values_[std::move(ref)] = std::move(value);
}

void SecretCache::MergeFrom(SecretCache& other) {
  if (other.epoch_ == epoch_) {
    for (auto& [ref, value] : other.values_) values_[ref] = std::move(value);
  }
  other.values_.clear();  // moved-from buffers are empty; the rest are zeroed here
}

const sandbox::SecretBuffer* SecretCache::Find(uint64_t epoch, std::string_view ref) const {
  if (epoch != epoch_) return nullptr;
  auto it = values_.find(ref);
  return it == values_.end() ? nullptr : &it->second;
}

}  // namespace vigo::broker
