// The broker's value cache, keyed by (secrets epoch, ref).
//
//   cache.Reset(bundle.secrets_epoch());          // zeroes entries of any other epoch
//   std::vector<std::string> need = cache.Missing(epoch, bundle.secret_refs());
//   ... ResolveSecrets(need) ... cache.Put(epoch, ref, std::move(value));
//   const sandbox::SecretBuffer* v = cache.Find(epoch, "webapp/db_pw");
//
// Entries are zeroed when the epoch changes (Reset), when the bundle no longer
// needs them (RetainOnly), on Clear (FAILED_PRECONDITION from the server, a
// refused check-in, exit) and on destruction. Failures are never cached.
// Thread safety: not synchronized. The broker uses one cache per thread when
// it resolves in parallel and merges them on one thread (MergeFrom).
#ifndef VIGO_AGENT_BROKER_SECRET_CACHE_H_
#define VIGO_AGENT_BROKER_SECRET_CACHE_H_

#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/secret_buffer.h"

namespace vigo::broker {

class SecretCache {
 public:
  uint64_t epoch() const { return epoch_; }
  size_t size() const { return values_.size(); }

  // Switches to `epoch`; when it differs from the current one, every entry is
  // zeroed and dropped.
  void Reset(uint64_t epoch);
  // Zeroes and drops every entry (epoch kept).
  void Clear() { values_.clear(); }
  // Zeroes and drops every entry whose ref is not in `refs` (a new bundle of
  // the same epoch that no longer needs some values).
  template <typename Container>
  void RetainOnly(const Container& refs) {
    std::set<std::string_view> keep(refs.begin(), refs.end());
    for (auto it = values_.begin(); it != values_.end();) {
      it = keep.count(it->first) != 0 ? std::next(it) : values_.erase(it);
    }
  }

  // Stores a value for `epoch`. Ignored (value zeroed) when `epoch` is not the
  // cache's epoch.
  void Put(uint64_t epoch, std::string ref, sandbox::SecretBuffer value);
  // Moves every entry of `other` (same epoch only; otherwise they are zeroed)
  // into this cache; `other` is left empty.
  void MergeFrom(SecretCache& other);
  // nullptr when absent or for another epoch.
  const sandbox::SecretBuffer* Find(uint64_t epoch, std::string_view ref) const;

  // The refs of `refs` with no entry for `epoch` (deduplicated, in order).
  template <typename Container>
  std::vector<std::string> Missing(uint64_t epoch, const Container& refs) const {
    std::vector<std::string> out;
    std::set<std::string, std::less<>> seen;
    for (const auto& r : refs) {
      if (Find(epoch, r) != nullptr || !seen.emplace(r).second) continue;
      out.emplace_back(r);
    }
    return out;
  }

 private:
  uint64_t epoch_ = 0;
  std::map<std::string, sandbox::SecretBuffer, std::less<>> values_;
};

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_SECRET_CACHE_H_
