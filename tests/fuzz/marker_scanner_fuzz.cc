// Fuzzes the marker and reference scanners on arbitrary bytes. Beyond "does
// not crash", it checks the scanners' own contracts on every input:
//  - every marker FindMarkers reports is exactly MarkerFor(path) at its offset,
//    in increasing, non-overlapping order, with a valid path;
//  - every embedded reference is "secret:<valid path>" at its offset;
//  - ReplaceReferencesWithMarkers succeeds exactly when FindReferences does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/secret_ref.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto markers = vigo::FindMarkers(text);
  if (markers.ok()) {
    size_t end = 0;
    for (const vigo::MarkerMatch& m : *markers) {
      Check(m.offset >= end);
      Check(m.offset + m.length <= text.size());
      Check(text.substr(m.offset, m.length) == vigo::MarkerFor(m.path));
      Check(vigo::ValidateSecretPath(m.path).ok());
      end = m.offset + m.length;
    }
    Check(markers->empty() == !vigo::ContainsMarkerText(text));
  } else {
    Check(vigo::ContainsMarkerText(text));
  }

  for (vigo::RefScan mode : {vigo::RefScan::kEmbedded, vigo::RefScan::kWholeValue}) {
    auto refs = vigo::FindReferences(text, mode);
    auto replaced = vigo::ReplaceReferencesWithMarkers(text, mode);
    Check(refs.ok() == replaced.ok());
    if (!refs.ok()) continue;
    size_t end = 0;
    for (const vigo::RefMatch& r : *refs) {
      Check(r.offset >= end);
      Check(r.offset + r.length <= text.size());
      Check(text.substr(r.offset, r.length) == std::string(vigo::kRefPrefix) + r.path);
      Check(vigo::ValidateSecretPath(r.path).ok());
      end = r.offset + r.length;
    }
    if (mode == vigo::RefScan::kWholeValue) Check(refs->size() <= 1);
  }
  (void)vigo::ValidateSecretPath(text);
  return 0;
}
