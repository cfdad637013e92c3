// Internal model of a loaded .vgo tree (server/stacks.h). Not a public API:
// only server/stacks/*.cc include it.
//
// Every string that came from input has already been through the reference
// pass: references are markers, literal marker text was refused. Template
// expressions are pre-parsed into pieces. Nothing here ever holds a value.
#ifndef VIGO_SERVER_STACKS_MODEL_H_
#define VIGO_SERVER_STACKS_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/stacks.h"

namespace vigo::server::stacks_internal {

struct Loc {
  std::string file;  // relative to the stacks dir
  int line = 0;
};

enum class PieceKind { kLiteral, kVar, kEnvoyName, kSecretFile };

struct Piece {
  PieceKind kind = PieceKind::kLiteral;
  std::string text;  // literal text (markers included) or var name
};

// Where a field's value may hold a reference (CONTRACT §3).
enum class RefPlacement {
  kRefuse,    // command, environment, paths, owner, group, mode, names
  kWhole,     // stdin, secret_file, vars: the whole value is one reference
  kEmbedded,  // file content: references anywhere in the text
};

// A string field after the reference pass and template parsing.
struct Text {
  bool present = false;
  std::string key;  // YAML key for error messages ("content", "command[1]")
  Loc loc;
  RefPlacement placement = RefPlacement::kRefuse;
  std::vector<Piece> pieces;
  std::vector<std::string> refs;  // paths of the markers in the literal pieces
};

struct VarDef {
  std::string value;  // markers for references; never a value
  bool has_ref = false;
  std::string ref_path;  // when has_ref
  Loc loc;
};

// An exec resource's `confine:` (CONTRACT §8, docs/config/vgo.md). Absent: unconfined.
struct Confine {
  bool present = false;
  Loc loc;
  bool has_writable = false;   // `writable:` given (an empty list: no writes)
  std::vector<Text> writable;  // key "confine.writable[i]"; paths, no references
  bool network = true;         // `network: false`: AF_UNIX sockets only
};

struct ResourceSpec {
  std::string name;
  std::string type;  // file | directory | exec
  std::string crate;
  Loc loc;
  std::string state = "present";
  Text target_path, mode, owner, group, content, stdin_text, secret_file, creates, cwd;
  std::vector<Text> command;
  std::vector<std::pair<std::string, Text>> environment;
  uint32_t timeout_seconds = 0;
  std::vector<std::pair<std::string, Loc>> depends_on;
  Confine confine;
};

struct NameRef {
  std::string name;
  Loc loc;
};

struct Crate {
  std::string name;
  Loc loc;
  std::map<std::string, VarDef> defaults;
  std::vector<size_t> resources;  // indexes into Model::resources, file order
};

struct Role {
  std::string name;
  Loc loc;
  std::vector<NameRef> crates;
};

struct Environment {
  std::string name;
  Loc loc;
  std::map<std::string, VarDef> vars;
};

struct Rule {
  std::string match;
  Loc loc;
  bool has_glob = false;
  NameRef environment;  // name empty = none
  std::vector<NameRef> roles;
  std::vector<NameRef> crates;
  std::map<std::string, VarDef> vars;

  // Resolved after parsing.
  std::vector<std::string> crate_order;  // deduplicated, roles' crates first
  std::map<std::string, VarDef> scope;   // merged vars (precedence applied)
  std::vector<size_t> order;             // resource indexes in apply order
  std::set<std::string> references;      // from the trial compile
};

struct Model {
  std::vector<ResourceSpec> resources;
  std::map<std::string, size_t> resource_by_name;
  std::map<std::string, Crate> crates;
  std::map<std::string, Role> roles;
  std::map<std::string, Environment> environments;
  std::vector<Rule> rules;
  std::unordered_map<std::string, size_t> exact_rules;  // first rule with that literal name
  std::vector<size_t> glob_rules;                       // rules with '*' or '?', in order
  std::set<std::string> all_references;
  std::vector<EnvoyRuleInfo> rule_infos;
  uint64_t policy_version = 0;
};

// Collects load errors; caps the count so hostile input cannot make the
// error list itself the problem.
class ErrorSink {
 public:
  static constexpr size_t kMaxErrors = 1000;
  void Add(const Loc& loc, std::string_view key, std::string message);
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  std::vector<LoadError> Take();

 private:
  std::vector<LoadError> errors_;
  bool truncated_ = false;
};

// Template parsing: `{{ .Vars.NAME }}`, `{{ .Envoy.Name }}`, `{{ .SecretFile }}`
// with optional spaces inside the braces. `{{` followed (after spaces) by
// anything but '.' or '-' is literal text, so files that carry other template
// languages pass through. Errors are returned as messages (no value text).
struct TemplateOptions {
  bool allow_secret_file = false;  // exec command only
  bool allow_envoy_name = true;
};
absl::Status ParseTemplate(std::string_view text, const TemplateOptions& opts,
                           std::vector<Piece>* pieces);
// True when `text` holds something ParseTemplate would treat as an expression.
bool HasTemplateExpression(std::string_view text);

inline constexpr std::string_view kSecretFilePlaceholder = "{{ .SecretFile }}";

// Builds the bundle of `rule` for `envoy_name` (resources, vars; no
// secret_refs/digest). Placement and unknown-var problems go to `sink`
// (attributed to the field's file:line). Returns false when any was found.
// With `out` null it only checks (the load-time trial, which skips building
// strings it does not need); `refs`, when set, receives the paths of the
// markers the bundle holds, computed from the parsed pieces. `max_bytes`,
// when set, receives an upper bound of the serialized, finalized bundle of
// ANY envoy this rule matches (envoy-name pieces counted at the longest valid
// name; every field with its largest tag and length prefix), so the load can
// refuse a rule whose bundle no agent could receive without rendering it.
bool BuildBundle(const Model& model, const Rule& rule, std::string_view envoy_name, ErrorSink* sink,
                 v1::PolicyBundle* out, std::set<std::string>* refs = nullptr,
                 size_t* max_bytes = nullptr);

// Fills secret_refs and digest from the built bundle; returns the entitlement.
absl::StatusOr<std::set<std::string>> FinalizeBundle(v1::PolicyBundle* bundle);

// Why `path` is not usable as target_path/creates/cwd/confine.writable, or ""
// when it is: it must be absolute and hold no '.' or '..' component.
std::string PathProblem(std::string_view path);
// One spelling per path for duplicate detection: repeated and trailing '/'
// removed (call after PathProblem accepted it).
std::string NormalizedPath(std::string_view path);
// True when every piece of `t` is literal text; `out` receives the text.
bool LiteralText(const Text& t, std::string* out);

// A var name: [A-Za-z_][A-Za-z0-9_]*, 1–128 bytes. Shared by the loader
// (vars keys) and the template engine ({{ .Vars.NAME }}) so both accept the
// same names.
inline constexpr size_t kMaxIdentifierLen = 128;
bool IsIdentifier(std::string_view s);

}  // namespace vigo::server::stacks_internal

#endif  // VIGO_SERVER_STACKS_MODEL_H_
