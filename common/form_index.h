// FormBatch: many byte strings (the encoded "forms" of secret values) found
// in one pass over a text, instead of one search per form.
//
//   FormBatch batch;
//   batch.Add(std::move(form), /*tag=*/path_index);      // SecretBuffer forms
//   ...
//   VIGO_RETURN_IF_ERROR(batch.Search(view.Data(), [&](uint32_t tag, size_t a, size_t b) {
//     // occurrence of a form with `tag` at [a, b) of the searched bytes
//   }));
//   batch.Clear();                                         // wipes the forms
//
// Every occurrence of every form is reported, overlapping ones included.
// Forms of 4 bytes or more are indexed by a hash of their first 4 bytes
// (4096 buckets, chained), so a search costs one bucket lookup per position
// plus a memcmp per candidate; shorter forms are compared at every position.
// Callers bound a batch by bytes() (the scrubber and the leak scan flush at
// 1 MiB) so the locked memory a batch holds stays bounded.
//
// Failure: RESOURCE_EXHAUSTED when the locked arena cannot hold the index;
// callers fail closed.
//
// Thread safety: none; one batch per scan.
//
// SECURITY: the forms, and the index (bucket chains reveal 12 bits of a hash
// of each form's first bytes), live in SecretBuffers and are wiped by Clear()
// or destruction. Hits are reported by position and tag, never by content.
#ifndef VIGO_COMMON_FORM_INDEX_H_
#define VIGO_COMMON_FORM_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

class FormBatch {
 public:
  using OnHit = std::function<void(uint32_t tag, size_t begin, size_t end)>;

  // Empty forms are ignored.
  void Add(sandbox::SecretBuffer form, uint32_t tag);
  size_t bytes() const { return bytes_; }
  bool empty() const { return forms_.empty(); }

  absl::Status Search(std::span<const uint8_t> data, const OnHit& on_hit);
  void Clear();

 private:
  absl::Status BuildIndex();

  std::vector<sandbox::SecretBuffer> forms_;
  std::vector<uint32_t> tags_;
  size_t bytes_ = 0;
  bool indexed_ = false;
  std::optional<sandbox::SecretBuffer> heads_;  // kBuckets × uint32 form index
  std::optional<sandbox::SecretBuffer> next_;   // forms × uint32 chain
  std::vector<uint32_t> short_forms_;           // forms shorter than 4 bytes
};

}  // namespace vigo

#endif  // VIGO_COMMON_FORM_INDEX_H_
