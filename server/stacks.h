// The stacks compiler: .vgo tree → per-envoy PolicyBundles with markers, and
// the entitlement set of each envoy. CONTRACT §3, §4.
//
//   LoadReport report;
//   VIGO_ASSIGN_OR_RETURN(std::shared_ptr<const Stacks> stacks,
//                         Stacks::Load(cfg.StacksDir(), *backend, &report));
//   VIGO_ASSIGN_OR_RETURN(CompiledBundle b, stacks->Compile("web-1", /*secrets_epoch=*/7));
//   b.bundle.secret_refs() == b.entitlement   // one function derives both
//
// SECURITY: loading calls only SecretBackend::Exists, never Get: no object
// reachable from a Stacks ever holds a value. Literal marker text in input is
// a load error. References are refused where a value would reach argv, an
// environment, a path, an owner, group, mode or name.
//
// Thread safety: a loaded Stacks is immutable and may be shared.
#ifndef VIGO_SERVER_STACKS_H_
#define VIGO_SERVER_STACKS_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::server {

struct LoadError {
  std::string file;   // relative to the stacks dir
  int line = 0;       // 1-based; 0 when unknown
  std::string key;    // the YAML key, when relevant
  std::string message;
  std::string ToString() const;  // "stacks/roles.vgo:12: key 'x': message"
};

struct LoadReport {
  std::vector<LoadError> errors;  // every error found, not just the first
  size_t files = 0;
  size_t envoy_rules = 0;
  size_t configcrates = 0;
  size_t references = 0;
};

struct CompiledBundle {
  v1::PolicyBundle bundle;          // digest filled in
  std::set<std::string> entitlement;  // == bundle.secret_refs()
};

class Stacks {
 public:
  // Loads and validates every .vgo file under `stacks_dir`. On any error,
  // returns INVALID_ARGUMENT whose message lists the errors, and fills
  // report->errors (report may be null).
  static absl::StatusOr<std::shared_ptr<const Stacks>> Load(const std::filesystem::path& stacks_dir,
                                                            SecretBackend& backend,
                                                            LoadReport* report);

  // The bundle for `envoy_name` (first matching rule). NOT_FOUND when no rule
  // matches. `policy_version` is this Stacks' load generation.
  absl::StatusOr<CompiledBundle> Compile(std::string_view envoy_name,
                                         uint64_t secrets_epoch) const;

  // Every secret path referenced anywhere in the loaded config, sorted.
  const std::set<std::string>& AllReferences() const;

  uint64_t policy_version() const;

  virtual ~Stacks() = default;

 protected:
  Stacks() = default;
};

}  // namespace vigo::server

#endif  // VIGO_SERVER_STACKS_H_
