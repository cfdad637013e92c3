// The stacks compiler: .vgo tree → per-envoy PolicyBundles with markers, and
// the entitlement set of each envoy. CONTRACT §3, §4; the language is
// documented in docs/config/vgo.md.
//
//   LoadReport report;
//   VIGO_ASSIGN_OR_RETURN(std::shared_ptr<const Stacks> stacks,
//                         Stacks::Load(cfg.StacksDir(), *backend, &report));
//   VIGO_ASSIGN_OR_RETURN(CompiledBundle b, stacks->Compile("web-1", /*secrets_epoch=*/7));
//   b.bundle.secret_refs() == b.entitlement   // one function derives both
//
// Loading parses every file, checks every rule of envoys.vgo against the
// crates, roles and environments it names (a trial compile per rule), checks
// every referenced path with SecretBackend::Exists, and collects ALL errors it
// can find, each naming file:line (and the key). A Stacks is returned only
// when there is no error.
//
// SECURITY: loading calls only SecretBackend::Exists, never Get: no object
// reachable from a Stacks ever holds a value. Literal marker text in input is
// a load error. References are refused where a value would reach argv, an
// environment, a path, an owner, group, mode or name — directly or through a
// var that holds a reference. The entitlement set of a bundle is computed by
// scanning every string of the built bundle for markers (EntitlementOf), so it
// cannot drift from what the bundle actually contains.
//
// Thread safety: a loaded Stacks is immutable; Compile may be called from any
// number of threads at once.
#ifndef VIGO_SERVER_STACKS_H_
#define VIGO_SERVER_STACKS_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ipc/agent_ipc.h"
#include "common/window_index.h"
#include "server/backend.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::server {

// The largest bundle the server sends (CheckIn) and the broker passes on to
// the worker: the broker→worker frame limit less room for the frame's own
// fields. A rule whose bundle can exceed it is a load error naming the rule
// and the size (#13.9); Compile refuses a larger one as a second wall.
inline constexpr size_t kMaxBundleBytes = ipc::kMaxBundleBytes - 64 * 1024;

namespace stacks_internal {
struct Model;
}  // namespace stacks_internal

struct LoadError {
  std::string file;  // relative to the stacks dir, e.g. "roles.vgo"
  int line = 0;      // 1-based; 0 when unknown
  std::string key;   // the YAML key, when relevant
  std::string message;
  // "stacks/roles.vgo:12: key 'x': message" ("stacks/roles.vgo: message"
  // when the line is unknown; no "key" part when there is no key).
  std::string ToString() const;
};

struct LoadReport {
  std::vector<LoadError> errors;  // every error found, not just the first; sorted by file, line
  size_t files = 0;
  size_t envoy_rules = 0;
  size_t configcrates = 0;
  size_t references = 0;  // distinct secret paths referenced
};

struct LoadOptions {
  // The bundles' policy_version. 0 = the next value of a process-wide
  // counter (1, 2, ...) bumped by every successful load.
  uint64_t policy_version = 0;
};

struct CompiledBundle {
  v1::PolicyBundle bundle;            // digest filled in
  std::set<std::string> entitlement;  // == bundle.secret_refs()
};

// One rule of envoys.vgo, for operators (who-needs, config validate).
struct EnvoyRuleInfo {
  std::string match;  // the glob as written
  std::string file;   // "envoys.vgo"
  int line = 0;
  std::vector<std::string> configcrates;  // in apply order, roles' crates first
  std::set<std::string> references;       // paths whose markers any matching envoy's bundle holds
};

class Stacks {
 public:
  // Loads and validates every .vgo file under `stacks_dir`. On any error,
  // returns INVALID_ARGUMENT whose message lists the errors, and fills
  // report->errors (report may be null).
  static absl::StatusOr<std::shared_ptr<const Stacks>> Load(const std::filesystem::path& stacks_dir,
                                                            SecretBackend& backend,
                                                            LoadReport* report);
  static absl::StatusOr<std::shared_ptr<const Stacks>> Load(const std::filesystem::path& stacks_dir,
                                                            SecretBackend& backend,
                                                            LoadReport* report,
                                                            const LoadOptions& options);

  // Same, from in-memory files keyed by their path relative to the stacks dir
  // ("envoys.vgo", "configcrates/webapp.vgo"). Used by tests and benchmarks.
  static absl::StatusOr<std::shared_ptr<const Stacks>> LoadFiles(
      const std::map<std::string, std::string>& files, SecretBackend& backend, LoadReport* report,
      const LoadOptions& options = {});

  // The bundle for `envoy_name` (first matching rule). NOT_FOUND when no rule
  // matches; INVALID_ARGUMENT for a name that is not a valid envoy name
  // (vocab/envoy_name.h: [A-Za-z0-9._-], 1–64 bytes, no marker text). `policy_version` is this
  // Stacks' load generation. `redaction_window` (server.yaml
  // leak_scan.window) goes into the bundle only when it is not the default
  // (12), so a default fleet's bundle digests stay as they were.
  absl::StatusOr<CompiledBundle> Compile(std::string_view envoy_name, uint64_t secrets_epoch,
                                         size_t redaction_window = kDefaultRedactionWindow) const;

  // The rule of envoys.vgo that `envoy_name` matches (first match wins), or
  // NOT_FOUND.
  absl::StatusOr<EnvoyRuleInfo> RuleFor(std::string_view envoy_name) const;

  // Every rule of envoys.vgo, in file order.
  const std::vector<EnvoyRuleInfo>& Rules() const;

  // Every secret path referenced anywhere in the loaded config, sorted.
  const std::set<std::string>& AllReferences() const;

  uint64_t policy_version() const;

  virtual ~Stacks();

 protected:
  explicit Stacks(std::unique_ptr<const stacks_internal::Model> model);

 private:
  std::unique_ptr<const stacks_internal::Model> model_;
};

// The paths of every marker in every string field of `bundle` (resources and
// vars; secret_refs and digest are not scanned). INTERNAL when a string holds
// a malformed marker. This is the one definition of an envoy's entitlement.
absl::StatusOr<std::set<std::string>> EntitlementOf(const v1::PolicyBundle& bundle);

// Lower-case hex SHA-256 over the deterministic serialization of `bundle`
// with its digest field cleared.
std::string BundleDigest(const v1::PolicyBundle& bundle);

// True when `name` matches the glob `pattern` ('*' any run, '?' one byte).
bool EnvoyGlobMatch(std::string_view pattern, std::string_view name);

}  // namespace vigo::server

#endif  // VIGO_SERVER_STACKS_H_
