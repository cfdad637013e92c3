// The .vgo loader: YAML files → stacks_internal::Model, with every error
// named by file:line. See server/stacks.h for the contract and
// docs/config/vgo.md for the language.
//
// Order of work (why): each scalar goes through the reference pass first
// (forged markers refused, references checked against the field's placement
// rule and replaced by markers), then template parsing, so a reference can
// never be produced or hidden by a template. Cross-file resolution (roles,
// crates, environments, depends_on) runs after every file is parsed, then one
// trial compile per envoy rule finds the errors that depend on the rule's
// vars (unknown var, a reference-holding var in a refused field). Last, each
// distinct path is checked with SecretBackend::Exists — never Get.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/exec_confine.h"
#include "common/log.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8_text.h"
#include "server/stacks.h"
#include "server/stacks/model.h"
#include "vocab/wire_limits.h"

namespace vigo::server {

namespace si = stacks_internal;

std::string LoadError::ToString() const {
  std::string out = file.empty() ? std::string("stacks") : StrCat("stacks/", file);
  if (line > 0) StrAppend(&out, ":", line);
  StrAppend(&out, ": ");
  if (!key.empty()) StrAppend(&out, "key '", key, "': ");
  StrAppend(&out, message);
  return out;
}

namespace stacks_internal {

void ErrorSink::Add(const Loc& loc, std::string_view key, std::string message) {
  if (errors_.size() >= kMaxErrors) {
    if (!truncated_) {
      truncated_ = true;
      errors_.push_back(
          LoadError{"", 0, "", StrCat("more than ", kMaxErrors, " errors; stopped reporting")});
    }
    return;
  }
  errors_.push_back(LoadError{loc.file, loc.line, std::string(key), std::move(message)});
}

std::vector<LoadError> ErrorSink::Take() {
  std::vector<LoadError> out = std::move(errors_);
  errors_.clear();
  std::stable_sort(out.begin(), out.end(), [](const LoadError& a, const LoadError& b) {
    if (a.file != b.file) return a.file < b.file;
    return a.line < b.line;
  });
  // The same problem found through several rules is reported once.
  std::set<std::string> seen;
  std::vector<LoadError> unique;
  for (LoadError& e : out) {
    if (seen.insert(e.ToString()).second) unique.push_back(std::move(e));
  }
  return unique;
}

}  // namespace stacks_internal

namespace {

using si::Loc;
using si::RefPlacement;
using si::Text;
using si::VarDef;

constexpr size_t kMaxFileBytes = size_t{16} << 20;
constexpr size_t kMaxNameLen = 128;
constexpr uint32_t kMaxTimeoutSeconds = 7 * 24 * 3600;

std::atomic<uint64_t> g_policy_generation{0};

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF included) or is NUL; npos when clean. Bundle
// strings are proto3 `string` fields, which a peer refuses to parse unless
// they are valid UTF-8, so bad bytes must stop the load, not the agent.
size_t FirstBadUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '\0') return i;
    size_t len = Utf8SequenceLength(s, i);  // 0: not a well-formed sequence
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string LocString(const Loc& loc) {
  if (loc.line > 0) return StrCat(loc.file, ":", loc.line);
  return loc.file;
}


bool IsNameChar(char c, std::string_view extra) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         extra.find(c) != std::string_view::npos;
}

bool AllNameChars(std::string_view s, std::string_view extra) {
  if (s.empty() || s.size() > kMaxNameLen) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return IsNameChar(c, extra); });
}

bool ValidMode(std::string_view mode) {
  if (mode.size() < 3 || mode.size() > 4) return false;
  return std::all_of(mode.begin(), mode.end(), [](char c) { return c >= '0' && c <= '7'; });
}

// Why a reference may not appear in a field (CONTRACT §3); quoted in errors
// so the operator learns the rule where it bites.
std::string_view WhyRefused(std::string_view key) {
  if (key.substr(0, 7) == "command") return "argv is visible to every process via /proc";
  if (key.substr(0, 11) == "environment")
    return "environment variables are inherited by children and readable via /proc";
  if (key == "target_path" || key == "creates" || key == "cwd" ||
      key.substr(0, 16) == "confine.writable")
    return "paths appear in logs, run results and directory listings";
  if (key == "owner" || key == "group" || key == "mode")
    return "ownership and modes are metadata shown in logs and run results";
  return "names appear in logs, run results and depends_on";
}

class Parser {
 public:
  Parser(si::Model* model, si::ErrorSink* sink) : model_(model), sink_(sink) {}

  void ParseFile(const std::string& rel, const std::string& bytes);
  void Resolve();
  void CheckReferences(SecretBackend& backend);

  bool saw_envoys() const { return saw_envoys_; }

 private:
  struct RefUse {
    std::string path;
    Loc loc;
    std::string key;
  };

  Loc At(const YAML::Node& n) const {
    int line = n.Mark().line;
    return Loc{file_, line >= 0 ? line + 1 : 0};
  }
  void Error(const Loc& loc, std::string_view key, std::string message) {
    sink_->Add(loc, key, std::move(message));
  }

  // Iterates a mapping; reports non-scalar, duplicate and unknown keys.
  void ForEachKey(
      const YAML::Node& map, std::string_view context,
      std::initializer_list<std::string_view> allowed,
      const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& fn);
  bool ExpectMap(const YAML::Node& n, std::string_view key, std::string_view what);
  bool ExpectSeq(const YAML::Node& n, std::string_view key);
  bool GetScalar(const YAML::Node& n, std::string_view key, std::string* out);
  bool GetName(const YAML::Node& n, std::string_view key, std::string_view what,
               std::string_view extra_chars, std::string* out);
  std::vector<si::NameRef> GetNameList(const YAML::Node& n, std::string_view key,
                                       std::string_view what);
  bool RefPass(const std::string& in, RefPlacement placement, std::string_view key, const Loc& loc,
               std::string* out);
  Text ParseText(const YAML::Node& n, std::string key, RefPlacement placement,
                 const si::TemplateOptions& opts);
  void ParseVars(const YAML::Node& n, std::string_view prefix, std::map<std::string, VarDef>* out);

  void ParseEnvoys(const YAML::Node& root);
  void ParseRoles(const YAML::Node& root);
  void ParseEnvironments(const YAML::Node& root);
  void ParseCrate(const YAML::Node& root);
  void ParseResource(const YAML::Node& n, const std::string& crate, si::Crate* c);
  void ParseConfine(const YAML::Node& n, si::Confine* out);

  void ResolveRule(si::Rule* rule);
  void ReportTrialErrors();
  void FindCycles();
  bool ScanRawMarkers(const std::string& bytes);

  si::Model* model_;
  si::ErrorSink* sink_;
  std::string file_;
  bool file_has_raw_marker_ = false;
  bool saw_envoys_ = false;
  bool has_cycles_ = false;
  std::vector<RefUse> refs_;
  struct TrialError {
    LoadError error;
    std::string first_rule;
    size_t more_rules = 0;
  };
  std::vector<TrialError> trial_errors_;               // in first-seen order
  std::map<std::string, size_t> trial_index_;          // error text -> index
  std::map<std::string, Loc> match_seen_;
};

bool Parser::ScanRawMarkers(const std::string& bytes) {
  bool found = false;
  size_t pos = 0;
  int reported = 0;
  while ((pos = bytes.find(kMarkerPrefix, pos)) != std::string::npos) {
    int line = 1 + static_cast<int>(
                       std::count(bytes.begin(), bytes.begin() + static_cast<long>(pos), '\n'));
    if (reported++ < 20) {
      Error(Loc{file_, line}, "",
            "literal marker text (__VIGO_SECRET__...) is not allowed in config input; write "
            "secret:<path> instead");
    }
    found = true;
    pos += kMarkerPrefix.size();
  }
  return found;
}

void Parser::ParseFile(const std::string& rel, const std::string& bytes) {
  file_ = rel;
  if (rel == "envoys.vgo") saw_envoys_ = true;
  if (size_t bad = FirstBadUtf8(bytes); bad != std::string_view::npos) {
    int line = 1 + static_cast<int>(
                       std::count(bytes.begin(), bytes.begin() + static_cast<long>(bad), '\n'));
    Error(Loc{file_, line}, "", "file is not valid UTF-8 text (or holds a NUL byte)");
    return;
  }
  file_has_raw_marker_ = ScanRawMarkers(bytes);
  Log(LogLevel::kTrace, "stacks.file", {{"file", rel}, {"bytes", bytes.size()}});
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(bytes);
  } catch (const YAML::Exception& e) {
    Error(Loc{file_, e.mark.line >= 0 ? e.mark.line + 1 : 0}, "",
          StrCat("malformed YAML: ", e.msg));
    return;
  }
  if (docs.size() > 1) {
    Error(Loc{file_, 0}, "", "a .vgo file holds one YAML document (found '---' separators)");
    return;
  }
  YAML::Node root = docs.empty() ? YAML::Node() : docs[0];
  try {
    if (rel == "envoys.vgo") {
      ParseEnvoys(root);
    } else if (rel == "roles.vgo") {
      ParseRoles(root);
    } else if (rel == "environments.vgo") {
      ParseEnvironments(root);
    } else if (rel.rfind("configcrates/", 0) == 0) {
      ParseCrate(root);
    } else {
      Error(Loc{file_, 0}, "",
            "unknown .vgo file (expected envoys.vgo, roles.vgo, environments.vgo or "
            "configcrates/*.vgo)");
    }
  } catch (const YAML::Exception& e) {
    Error(Loc{file_, e.mark.line >= 0 ? e.mark.line + 1 : 0}, "", StrCat("invalid YAML: ", e.msg));
  }
}

void Parser::ForEachKey(
    const YAML::Node& map, std::string_view context,
    std::initializer_list<std::string_view> allowed,
    const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& fn) {
  std::map<std::string, int> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    YAML::Node k = it->first;
    YAML::Node v = it->second;
    if (!k.IsScalar()) {
      Error(At(k), "", StrCat("keys in ", context, " must be strings"));
      continue;
    }
    const std::string& key = k.Scalar();
    if (FirstBadUtf8(key) != std::string_view::npos) {
      Error(At(k), "",
            StrCat("a key in ", context, " is not valid UTF-8 text (or holds a NUL byte)"));
      continue;
    }
    if (!file_has_raw_marker_ && ContainsMarkerText(key)) {
      Error(At(k), "", "literal marker text (__VIGO_SECRET__...) is not allowed in config input");
      continue;
    }
    auto [pos, inserted] = seen.emplace(key, At(k).line);
    if (!inserted) {
      Error(At(k), key, StrCat("duplicate key in ", context, " (first at line ", pos->second, ")"));
      continue;
    }
    if (allowed.size() > 0 &&
        std::find(allowed.begin(), allowed.end(), std::string_view(key)) == allowed.end()) {
      std::string list;
      for (std::string_view a : allowed) StrAppend(&list, list.empty() ? "" : ", ", a);
      Error(At(k), key, StrCat("unknown key in ", context, " (allowed: ", list, ")"));
      continue;
    }
    fn(key, k, v);
  }
}

bool Parser::ExpectMap(const YAML::Node& n, std::string_view key, std::string_view what) {
  if (n.IsMap()) return true;
  Error(At(n), key, StrCat("expected ", what));
  return false;
}

bool Parser::ExpectSeq(const YAML::Node& n, std::string_view key) {
  if (n.IsSequence()) return true;
  Error(At(n), key, "expected a list");
  return false;
}

bool Parser::GetScalar(const YAML::Node& n, std::string_view key, std::string* out) {
  if (n.IsNull()) {
    out->clear();
    return true;
  }
  if (!n.IsScalar()) {
    Error(At(n), key, "expected a string");
    return false;
  }
  *out = n.Scalar();
  // Escapes ("\ud800", "\0") can build bytes the file-level check cannot see.
  if (FirstBadUtf8(*out) != std::string_view::npos) {
    Error(At(n), key, "value is not valid UTF-8 text (or holds a NUL byte)");
    return false;
  }
  // Escapes ("\x5f") can build marker text the raw scan cannot see.
  if (!file_has_raw_marker_ && ContainsMarkerText(*out)) {
    Error(At(n), key, "literal marker text (__VIGO_SECRET__...) is not allowed in config input");
    return false;
  }
  return true;
}

bool Parser::GetName(const YAML::Node& n, std::string_view key, std::string_view what,
                     std::string_view extra_chars, std::string* out) {
  if (!GetScalar(n, key, out)) return false;
  auto refs = FindReferences(*out, RefScan::kEmbedded);
  if (!refs.ok() || !refs->empty()) {
    Error(At(n), key,
          StrCat("secret references are not allowed in ", what, " (", WhyRefused("name"), ")"));
    return false;
  }
  if (!AllNameChars(*out, extra_chars)) {
    Error(At(n), key,
          StrCat("invalid ", what, ": 1-", kMaxNameLen, " characters from [A-Za-z0-9", extra_chars,
                 "]"));
    return false;
  }
  return true;
}

std::vector<si::NameRef> Parser::GetNameList(const YAML::Node& n, std::string_view key,
                                             std::string_view what) {
  std::vector<si::NameRef> out;
  if (n.IsNull()) return out;
  if (!ExpectSeq(n, key)) return out;
  for (const YAML::Node& item : n) {
    std::string name;
    if (GetName(item, key, what, "._-", &name)) out.push_back(si::NameRef{name, At(item)});
  }
  return out;
}

bool Parser::RefPass(const std::string& in, RefPlacement placement, std::string_view key,
                     const Loc& loc, std::string* out) {
  auto refs = FindReferences(in, RefScan::kEmbedded);
  if (!refs.ok()) {
    Error(loc, key, StrCat("malformed secret reference: ", refs.status().message()));
    return false;
  }
  if (refs->empty()) {
    *out = in;
    return true;
  }
  switch (placement) {
    case RefPlacement::kRefuse:
      for (const RefMatch& m : *refs) {
        Error(loc, key,
              StrCat("secret reference 'secret:", m.path, "' is not allowed in '", key, "' (",
                     WhyRefused(key), ")"));
      }
      return false;
    case RefPlacement::kWhole: {
      const RefMatch& m = refs->front();
      if (refs->size() != 1 || m.offset != 0 || m.length != in.size()) {
        Error(loc, key,
              StrCat("a secret reference must be the whole value of '", key,
                     "' (only file content may embed references in longer text)"));
        return false;
      }
      refs_.push_back(RefUse{m.path, loc, std::string(key)});
      *out = MarkerFor(m.path);
      return true;
    }
    case RefPlacement::kEmbedded: {
      for (const RefMatch& m : *refs) refs_.push_back(RefUse{m.path, loc, std::string(key)});
      auto replaced = ReplaceReferencesWithMarkers(in, RefScan::kEmbedded);
      if (!replaced.ok()) {
        Error(loc, key, StrCat("malformed secret reference: ", replaced.status().message()));
        return false;
      }
      *out = std::move(*replaced);
      return true;
    }
  }
  return false;
}

Text Parser::ParseText(const YAML::Node& n, std::string key, RefPlacement placement,
                       const si::TemplateOptions& opts) {
  Text t;
  t.present = true;
  t.key = std::move(key);
  t.loc = At(n);
  t.placement = placement;
  std::string raw, processed;
  if (!GetScalar(n, t.key, &raw)) return t;
  size_t refs_before = refs_.size();
  if (!RefPass(raw, placement, t.key, t.loc, &processed)) return t;
  for (size_t i = refs_before; i < refs_.size(); ++i) t.refs.push_back(refs_[i].path);
  absl::Status st = si::ParseTemplate(processed, opts, &t.pieces);
  if (!st.ok()) Error(t.loc, t.key, std::string(st.message()));
  return t;
}

void Parser::ParseVars(const YAML::Node& n, std::string_view prefix,
                       std::map<std::string, VarDef>* out) {
  if (n.IsNull()) return;
  if (!ExpectMap(n, prefix, "a map of var names to strings")) return;
  ForEachKey(n, prefix, {}, [&](const std::string& name, const YAML::Node& k, const YAML::Node& v) {
    std::string key = StrCat(prefix, ".", name);
    if (!si::IsIdentifier(name)) {
      Error(At(k), key, "invalid var name: [A-Za-z_][A-Za-z0-9_]*");
      return;
    }
    std::string raw;
    if (!GetScalar(v, key, &raw)) return;
    VarDef def;
    def.loc = At(v);
    if (!RefPass(raw, RefPlacement::kWhole, key, def.loc, &def.value)) return;
    def.has_ref = def.value != raw;
    if (def.has_ref) def.ref_path = refs_.back().path;
    if (si::HasTemplateExpression(def.value)) {
      Error(def.loc, key, "var values are not templates (no '{{ .' inside a var)");
      return;
    }
    (*out)[name] = std::move(def);
  });
}

void Parser::ParseEnvoys(const YAML::Node& root) {
  if (root.IsNull()) return;
  if (!ExpectMap(root, "", "a map with the key 'envoys'")) return;
  ForEachKey(root, "envoys.vgo", {"envoys"},
             [&](const std::string&, const YAML::Node&, const YAML::Node& list) {
               if (list.IsNull()) return;
               if (!ExpectSeq(list, "envoys")) return;
               for (const YAML::Node& item : list) {
                 if (!ExpectMap(item, "envoys", "a rule (a map with 'match')")) continue;
                 si::Rule rule;
                 rule.loc = At(item);
                 bool has_match = false;
                 ForEachKey(
                     item, "an envoy rule",
                     {"match", "environment", "roles", "configcrates", "vars"},
                     [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                       if (key == "match") {
                         has_match = GetName(v, key, "match pattern", "._-*?", &rule.match);
                         if (has_match) rule.loc = At(v);
                       } else if (key == "environment") {
                         if (GetName(v, key, "environment name", "._-", &rule.environment.name)) {
                           rule.environment.loc = At(v);
                         }
                       } else if (key == "roles") {
                         rule.roles = GetNameList(v, key, "role name");
                       } else if (key == "configcrates") {
                         rule.crates = GetNameList(v, key, "configcrate name");
                       } else if (key == "vars") {
                         ParseVars(v, "vars", &rule.vars);
                       }
                     });
                 if (!has_match) {
                   Error(At(item), "match", "every envoy rule needs a 'match' pattern");
                   continue;
                 }
                 rule.has_glob = rule.match.find_first_of("*?") != std::string::npos;
                 auto [pos, inserted] = match_seen_.emplace(rule.match, rule.loc);
                 if (!inserted) {
                   Error(rule.loc, "match",
                         StrCat("duplicate match pattern '", rule.match, "' (first at ",
                                LocString(pos->second),
                                "); first match wins, so this rule can never apply"));
                   continue;
                 }
                 model_->rules.push_back(std::move(rule));
               }
             });
}

void Parser::ParseRoles(const YAML::Node& root) {
  if (root.IsNull()) return;
  if (!ExpectMap(root, "", "a map with the key 'roles'")) return;
  ForEachKey(root, "roles.vgo", {"roles"},
             [&](const std::string&, const YAML::Node&, const YAML::Node& map) {
               if (map.IsNull()) return;
               if (!ExpectMap(map, "roles", "a map of role names")) return;
               ForEachKey(
                   map, "roles", {},
                   [&](const std::string& name, const YAML::Node& k, const YAML::Node& body) {
                     si::Role role;
                     if (!GetName(k, "roles", "role name", "._-", &role.name)) return;
                     role.loc = At(k);
                     if (!body.IsNull() && ExpectMap(body, name, "a map with 'configcrates'")) {
                       ForEachKey(
                           body, StrCat("role '", name, "'"), {"configcrates"},
                           [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                             role.crates = GetNameList(v, key, "configcrate name");
                           });
                     }
                     model_->roles[name] = std::move(role);
                   });
             });
}

void Parser::ParseEnvironments(const YAML::Node& root) {
  if (root.IsNull()) return;
  if (!ExpectMap(root, "", "a map with the key 'env'")) return;
  ForEachKey(root, "environments.vgo", {"env"},
             [&](const std::string&, const YAML::Node&, const YAML::Node& map) {
               if (map.IsNull()) return;
               if (!ExpectMap(map, "env", "a map of environment names")) return;
               ForEachKey(
                   map, "env", {},
                   [&](const std::string& name, const YAML::Node& k, const YAML::Node& body) {
                     si::Environment env;
                     if (!GetName(k, "env", "environment name", "._-", &env.name)) return;
                     env.loc = At(k);
                     if (!body.IsNull() && ExpectMap(body, name, "a map with 'vars'")) {
                       ForEachKey(body, StrCat("environment '", name, "'"), {"vars"},
                                  [&](const std::string&, const YAML::Node&, const YAML::Node& v) {
                                    ParseVars(v, "vars", &env.vars);
                                  });
                     }
                     model_->environments[name] = std::move(env);
                   });
             });
}

void Parser::ParseCrate(const YAML::Node& root) {
  if (root.IsNull()) {
    Error(Loc{file_, 0}, "configcrate", "empty configcrate file (needs 'configcrate: NAME')");
    return;
  }
  if (!ExpectMap(root, "", "a map with the key 'configcrate'")) return;
  si::Crate crate;
  crate.loc = Loc{file_, 1};
  bool has_name = false;
  YAML::Node resources;
  ForEachKey(root, "a configcrate", {"configcrate", "vars", "resources"},
             [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
               if (key == "configcrate") {
                 has_name = GetName(v, key, "configcrate name", "._-", &crate.name);
                 crate.loc = At(v);
               } else if (key == "vars") {
                 ParseVars(v, "vars", &crate.defaults);
               } else {
                 resources = v;
               }
             });
  if (!has_name) {
    Error(crate.loc, "configcrate", "every configcrate file needs 'configcrate: NAME'");
    return;
  }
  auto existing = model_->crates.find(crate.name);
  if (existing != model_->crates.end()) {
    Error(crate.loc, "configcrate",
          StrCat("duplicate configcrate '", crate.name, "' (first at ",
                 LocString(existing->second.loc), ")"));
    return;
  }
  if (resources && !resources.IsNull() && ExpectSeq(resources, "resources")) {
    for (const YAML::Node& r : resources) ParseResource(r, crate.name, &crate);
  }
  model_->crates[crate.name] = std::move(crate);
}

void Parser::ParseResource(const YAML::Node& n, const std::string& crate_name, si::Crate* crate) {
  if (!ExpectMap(n, "resources", "a resource (a map with 'name' and 'type')")) return;
  si::ResourceSpec r;
  r.crate = crate_name;
  r.loc = At(n);
  // The type decides which keys are allowed, so read it first.
  for (auto it = n.begin(); it != n.end(); ++it) {
    YAML::Node k = it->first;
    YAML::Node v = it->second;
    if (k.IsScalar() && k.Scalar() == "type" && v.IsScalar()) r.type = v.Scalar();
  }
  std::initializer_list<std::string_view> file_keys = {
      "name", "type", "state", "depends_on", "target_path", "mode", "owner", "group", "content"};
  std::initializer_list<std::string_view> dir_keys = {"name",        "type", "state", "depends_on",
                                                      "target_path", "mode", "owner", "group"};
  std::initializer_list<std::string_view> exec_keys = {
      "name",  "type",        "state",   "depends_on", "command", "environment",
      "stdin", "secret_file", "creates", "cwd",        "timeout", "confine"};
  std::initializer_list<std::string_view> all_keys = {
      "name",        "type",    "state",   "depends_on", "target_path", "mode",
      "owner",       "group",   "content", "command",    "environment", "stdin",
      "secret_file", "creates", "cwd",     "timeout",    "confine"};
  std::initializer_list<std::string_view> allowed = all_keys;
  bool known_type = true;
  if (r.type == "file") {
    allowed = file_keys;
  } else if (r.type == "directory") {
    allowed = dir_keys;
  } else if (r.type == "exec") {
    allowed = exec_keys;
  } else {
    known_type = false;
  }
  std::string context =
      r.type.empty() || !known_type ? std::string("a resource") : StrCat("a ", r.type, " resource");
  const si::TemplateOptions plain{};
  const si::TemplateOptions no_envoy{.allow_secret_file = false, .allow_envoy_name = false};
  const si::TemplateOptions command_opts{.allow_secret_file = true, .allow_envoy_name = true};
  bool has_name = false, has_type = false;
  YAML::Node mode_node;
  ForEachKey(
      n, context, allowed, [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
        if (key == "name") {
          has_name = GetName(v, key, "resource name", "._@:/+-", &r.name);
          if (has_name) r.loc = At(v);
        } else if (key == "type") {
          has_type = true;
          std::string t;
          if (GetScalar(v, key, &t) && !known_type) {
            Error(At(v), key, "unknown resource type (file, directory, exec)");
          }
        } else if (key == "state") {
          std::string s;
          if (GetScalar(v, key, &s)) {
            if (s != "present" && s != "absent") {
              Error(At(v), key, "state must be 'present' or 'absent'");
            } else {
              r.state = s;
            }
          }
        } else if (key == "depends_on") {
          if (v.IsNull()) return;
          if (!ExpectSeq(v, key)) return;
          for (const YAML::Node& d : v) {
            std::string dep;
            if (GetName(d, key, "dependency name", "._@:/+-", &dep)) {
              r.depends_on.emplace_back(dep, At(d));
            }
          }
        } else if (key == "target_path") {
          r.target_path = ParseText(v, key, RefPlacement::kRefuse, plain);
        } else if (key == "mode") {
          mode_node = v;
          r.mode = ParseText(v, key, RefPlacement::kRefuse, no_envoy);
        } else if (key == "owner") {
          r.owner = ParseText(v, key, RefPlacement::kRefuse, plain);
        } else if (key == "group") {
          r.group = ParseText(v, key, RefPlacement::kRefuse, plain);
        } else if (key == "content") {
          r.content = ParseText(v, key, RefPlacement::kEmbedded, plain);
        } else if (key == "command") {
          if (!ExpectSeq(v, key)) return;
          size_t i = 0;
          for (const YAML::Node& arg : v) {
            r.command.push_back(
                ParseText(arg, StrCat("command[", i++, "]"), RefPlacement::kRefuse, command_opts));
          }
          if (r.command.empty()) Error(At(v), key, "command needs at least the program");
        } else if (key == "environment") {
          if (v.IsNull()) return;
          if (!ExpectMap(v, key, "a map of variable names to strings")) return;
          ForEachKey(v, "environment", {},
                     [&](const std::string& name, const YAML::Node& k, const YAML::Node& val) {
                       std::string ekey = StrCat("environment.", name);
                       auto refs = FindReferences(name, RefScan::kEmbedded);
                       if (!refs.ok() || !refs->empty()) {
                         Error(At(k), ekey,
                               StrCat("secret references are not allowed in 'environment' (",
                                      WhyRefused("environment"), ")"));
                         return;
                       }
                       if (!si::IsIdentifier(name)) {
                         Error(At(k), ekey,
                               "invalid environment variable name: [A-Za-z_][A-Za-z0-9_]*");
                         return;
                       }
                       r.environment.emplace_back(
                           name, ParseText(val, ekey, RefPlacement::kRefuse, plain));
                     });
        } else if (key == "stdin") {
          r.stdin_text = ParseText(v, key, RefPlacement::kWhole, plain);
        } else if (key == "secret_file") {
          r.secret_file = ParseText(v, key, RefPlacement::kWhole, no_envoy);
        } else if (key == "creates") {
          r.creates = ParseText(v, key, RefPlacement::kRefuse, plain);
        } else if (key == "cwd") {
          r.cwd = ParseText(v, key, RefPlacement::kRefuse, plain);
        } else if (key == "confine") {
          ParseConfine(v, &r.confine);
        } else if (key == "timeout") {
          std::string s;
          if (!GetScalar(v, key, &s)) return;
          bool digits = !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) {
            return c >= '0' && c <= '9';
          });
          uint64_t secs = digits ? std::stoull(s) : 0;
          if (!digits || secs > kMaxTimeoutSeconds) {
            Error(At(v), key,
                  StrCat("timeout must be whole seconds from 0 to ", kMaxTimeoutSeconds));
          } else {
            r.timeout_seconds = static_cast<uint32_t>(secs);
          }
        }
      });
  if (!has_type) {
    Error(r.loc, "type", "every resource needs a 'type' (file, directory, exec)");
    return;
  }
  if (!has_name) {
    Error(r.loc, "name", "every resource needs a 'name'");
    return;
  }
  if (!known_type) return;
  if ((r.type == "file" || r.type == "directory") && !r.target_path.present) {
    Error(r.loc, "target_path", StrCat("a ", r.type, " resource needs 'target_path'"));
  }
  if (r.type == "exec" && r.command.empty()) {
    Error(r.loc, "command", "an exec resource needs 'command'");
  }
  // A literal mode is checked here so unused crates are checked too; a
  // templated one is checked after rendering (BuildBundle).
  if (r.mode.present && r.mode.pieces.size() == 1 &&
      r.mode.pieces[0].kind == si::PieceKind::kLiteral && !ValidMode(r.mode.pieces[0].text)) {
    Error(r.mode.loc, "mode", "mode must be an octal string of 3 or 4 digits, e.g. \"0640\"");
  }
  bool uses_secret_file = false;
  for (const Text& arg : r.command) {
    for (const si::Piece& p : arg.pieces) uses_secret_file |= p.kind == si::PieceKind::kSecretFile;
  }
  if (uses_secret_file && !r.secret_file.present) {
    Error(r.loc, "command",
          "'{{ .SecretFile }}' in command needs 'secret_file: \"secret:<path>\"' on the resource");
  }
  if (r.secret_file.present && r.secret_file.pieces.size() == 1 &&
      r.secret_file.pieces[0].kind == si::PieceKind::kLiteral &&
      r.secret_file.pieces[0].text.rfind(kMarkerPrefix, 0) != 0) {
    Error(r.secret_file.loc, "secret_file", "secret_file must be a reference: \"secret:<path>\"");
  }
  auto existing = model_->resource_by_name.find(r.name);
  if (existing != model_->resource_by_name.end()) {
    Error(r.loc, "name",
          StrCat("duplicate resource name '", r.name, "' (first at ",
                 LocString(model_->resources[existing->second].loc),
                 "); resource names are unique across all configcrates"));
    return;
  }
  model_->resource_by_name[r.name] = model_->resources.size();
  crate->resources.push_back(model_->resources.size());
  model_->resources.push_back(std::move(r));
}

// `confine:` of an exec resource: a map of `writable` (a list of absolute
// paths) and `network` (a bool). Literal paths are checked here, so a crate
// no rule uses is checked too; templated ones after rendering (BuildBundle).
void Parser::ParseConfine(const YAML::Node& n, si::Confine* out) {
  out->present = true;
  out->loc = At(n);
  if (!ExpectMap(n, "confine", "a map with 'writable' and/or 'network'")) return;
  const si::TemplateOptions plain{};
  const size_t errors_before_map = sink_->size();
  ForEachKey(
      n, "confine", {"writable", "network"},
      [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
        const std::string full = StrCat("confine.", key);
        // A null value's mark is the next token: name the key's line.
        const Loc at = v.IsNull() ? At(k) : At(v);
        if (key == "writable") {
          out->has_writable = true;
          if (!v.IsSequence()) {
            Error(at, full, "expected a list");
            return;
          }
          if (v.size() > kMaxConfineWritable) {
            Error(
                at, full,
                StrCat("at most ", kMaxConfineWritable, " writable paths (found ", v.size(), ")"));
            return;
          }
          std::map<std::string, std::string> seen;  // normalized -> key
          size_t i = 0;
          for (const YAML::Node& item : v) {
            std::string ikey = StrCat(full, "[", i++, "]");
            if (!item.IsScalar() && !item.IsNull()) {
              Error(At(item), ikey, "expected a path (a string)");
              continue;
            }
            const size_t errors_before = sink_->size();
            Text t = ParseText(item, ikey, RefPlacement::kRefuse, plain);
            std::string literal;
            // A refused reference or a bad template is reported once.
            if (sink_->size() == errors_before && si::LiteralText(t, &literal)) {
              std::string problem = si::PathProblem(literal);
              if (!problem.empty()) {
                Error(t.loc, ikey, std::move(problem));
              } else if (auto [it, inserted] = seen.emplace(si::NormalizedPath(literal), ikey);
                         !inserted) {
                Error(t.loc, ikey,
                      StrCat("'", literal, "' is also listed as ", it->second,
                             "; list each writable path once"));
              }
            }
            out->writable.push_back(std::move(t));
          }
        } else {  // network
          std::string s;
          if (!v.IsScalar()) {
            Error(at, full, "network must be true or false");
            return;
          }
          if (!GetScalar(v, full, &s)) return;
          // A quoted "false" is a string, not the bool: refuse it
          // rather than guess.
          if (v.Tag() != "!" && (s == "true" || s == "false")) {
            out->network = s == "true";
          } else {
            Error(at, full, "network must be true or false");
          }
        }
      });
  // Only a confine without errors inside can be said to confine nothing.
  if (sink_->size() == errors_before_map && !out->has_writable && out->network) {
    Error(out->loc, "confine",
          "confine needs 'writable' or 'network: false'; as written it confines nothing");
  }
}

void Parser::FindCycles() {
  const auto& res = model_->resources;
  std::vector<int> color(res.size(), 0);  // 0 new, 1 on stack, 2 done
  std::vector<size_t> stack;
  std::set<std::set<size_t>> reported;
  std::function<void(size_t)> visit = [&](size_t i) {
    color[i] = 1;
    stack.push_back(i);
    for (const auto& [dep, loc] : res[i].depends_on) {
      auto it = model_->resource_by_name.find(dep);
      if (it == model_->resource_by_name.end()) continue;
      size_t j = it->second;
      if (color[j] == 1) {
        auto start = std::find(stack.begin(), stack.end(), j);
        std::set<size_t> members(start, stack.end());
        if (reported.insert(members).second) {
          std::string chain;
          for (auto s = start; s != stack.end(); ++s) StrAppend(&chain, res[*s].name, " -> ");
          StrAppend(&chain, res[j].name);
          Error(loc, "depends_on", StrCat("depends_on cycle: ", chain));
        }
        has_cycles_ = true;
      } else if (color[j] == 0) {
        visit(j);
      }
    }
    stack.pop_back();
    color[i] = 2;
  };
  for (size_t i = 0; i < res.size(); ++i) {
    if (color[i] == 0) visit(i);
  }
}

void Parser::Resolve() {
  // Dependencies that name no resource at all.
  for (const si::ResourceSpec& r : model_->resources) {
    for (const auto& [dep, loc] : r.depends_on) {
      if (!model_->resource_by_name.count(dep)) {
        Error(loc, "depends_on",
              StrCat("unknown dependency '", dep, "' of resource '", r.name, "'"));
      }
    }
  }
  FindCycles();
  for (const auto& [name, role] : model_->roles) {
    for (const si::NameRef& c : role.crates) {
      if (!model_->crates.count(c.name)) {
        Error(c.loc, "configcrates",
              StrCat("unknown configcrate '", c.name, "' in role '", name, "'"));
      }
    }
  }
  for (size_t i = 0; i < model_->rules.size(); ++i) {
    si::Rule& rule = model_->rules[i];
    ResolveRule(&rule);
    if (rule.has_glob) {
      model_->glob_rules.push_back(i);
    } else {
      model_->exact_rules.emplace(rule.match, i);
    }
    EnvoyRuleInfo info;
    info.match = rule.match;
    info.file = rule.loc.file;
    info.line = rule.loc.line;
    info.configcrates = rule.crate_order;
    info.references = rule.references;
    model_->rule_infos.push_back(std::move(info));
  }
  ReportTrialErrors();
}

void Parser::ResolveRule(si::Rule* rule) {
  const std::string who =
      StrCat("envoys matching '", rule->match, "' (", LocString(rule->loc), ")");
  std::set<std::string> crate_seen;
  auto add_crate = [&](const si::NameRef& c) {
    if (!model_->crates.count(c.name)) {
      Error(c.loc, "configcrates", StrCat("unknown configcrate '", c.name, "'"));
      return;
    }
    if (crate_seen.insert(c.name).second) rule->crate_order.push_back(c.name);
  };
  for (const si::NameRef& role_ref : rule->roles) {
    auto it = model_->roles.find(role_ref.name);
    if (it == model_->roles.end()) {
      Error(role_ref.loc, "roles", StrCat("unknown role '", role_ref.name, "'"));
      continue;
    }
    for (const si::NameRef& c : it->second.crates) {
      if (model_->crates.count(c.name) && crate_seen.insert(c.name).second) {
        rule->crate_order.push_back(c.name);
      }
    }
  }
  for (const si::NameRef& c : rule->crates) add_crate(c);

  // Vars: configcrate defaults < the rule's vars < the environment's vars.
  const si::Environment* env = nullptr;
  if (!rule->environment.name.empty()) {
    auto it = model_->environments.find(rule->environment.name);
    if (it == model_->environments.end()) {
      Error(rule->environment.loc, "environment",
            StrCat("unknown environment '", rule->environment.name, "'"));
    } else {
      env = &it->second;
    }
  }
  std::map<std::string, std::string> default_from;  // var -> crate that set it
  for (const std::string& cname : rule->crate_order) {
    for (const auto& [var, def] : model_->crates.at(cname).defaults) {
      auto [pos, inserted] = rule->scope.emplace(var, def);
      if (inserted) {
        default_from[var] = cname;
        continue;
      }
      bool overridden = rule->vars.count(var) || (env && env->vars.count(var));
      if (!overridden && pos->second.value != def.value) {
        Error(def.loc, StrCat("vars.", var),
              StrCat("var '", var, "' has a different default in configcrate '", default_from[var],
                     "' (", LocString(pos->second.loc), "); ", who,
                     " include both: set it in the rule's vars or the environment"));
      }
    }
  }
  for (const auto& [var, def] : rule->vars) rule->scope[var] = def;
  if (env) {
    for (const auto& [var, def] : env->vars) rule->scope[var] = def;
  }

  // Apply order: stable topological sort (Kahn's algorithm, lowest declared
  // position first among the ready ones).
  std::vector<size_t> members;
  for (const std::string& cname : rule->crate_order) {
    const auto& idx = model_->crates.at(cname).resources;
    members.insert(members.end(), idx.begin(), idx.end());
  }
  std::map<size_t, size_t> position;  // resource index -> declared position
  for (size_t p = 0; p < members.size(); ++p) position[members[p]] = p;
  std::vector<std::vector<size_t>> dependents(members.size());
  std::vector<size_t> indegree(members.size(), 0);
  bool deps_ok = true;
  for (size_t p = 0; p < members.size(); ++p) {
    const si::ResourceSpec& r = model_->resources[members[p]];
    for (const auto& [dep, loc] : r.depends_on) {
      auto it = model_->resource_by_name.find(dep);
      if (it == model_->resource_by_name.end()) continue;  // reported in Resolve
      auto pit = position.find(it->second);
      if (pit == position.end()) {
        Error(loc, "depends_on",
              StrCat("dependency '", dep, "' is in configcrate '",
                     model_->resources[it->second].crate, "', which ", who, " do not include"));
        deps_ok = false;
        continue;
      }
      dependents[pit->second].push_back(p);
      ++indegree[p];
    }
  }
  if (!has_cycles_ && deps_ok) {
    std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
    for (size_t p = 0; p < members.size(); ++p) {
      if (indegree[p] == 0) ready.push(p);
    }
    while (!ready.empty()) {
      size_t p = ready.top();
      ready.pop();
      rule->order.push_back(members[p]);
      for (size_t d : dependents[p]) {
        if (--indegree[d] == 0) ready.push(d);
      }
    }
  }

  // Trial compile: the errors that depend on this rule's vars, and the
  // rule's references. The envoy name cannot change either (it is validated
  // and cannot hold a reference; Compile re-checks the references against
  // EntitlementOf of every bundle it builds).
  si::ErrorSink trial;
  size_t max_bytes = 0;
  si::BuildBundle(*model_, *rule, "envoy", &trial, /*out=*/nullptr, &rule->references, &max_bytes);
  // A bundle no agent can receive would pass validate and reload and then
  // stop every envoy of the rule at check-in: refuse it here (#13.9).
  if (max_bytes > kMaxBundleBytes) {
    Error(rule->loc, "match",
          StrCat("the bundle of ", who, " can be up to ", max_bytes, " bytes, more than the ",
                 kMaxBundleBytes,
                 "-byte limit of one bundle; split these resources across rules or move large "
                 "content into secret_file or files the node fetches"));
  }
  // Likewise a bundle whose report the server would refuse: every run of it
  // would apply and then fail to report (vocab/wire_limits.h).
  if (members.size() > static_cast<size_t>(vocab::kMaxReportResults)) {
    Error(rule->loc, "match",
          StrCat("the bundle of ", who, " has ", members.size(), " resources, more than the ",
                 vocab::kMaxReportResults,
                 " one run can report; split these resources across rules"));
  }
  for (LoadError& e : trial.Take()) {
    std::string text = e.ToString();
    auto [it, inserted] = trial_index_.emplace(std::move(text), trial_errors_.size());
    if (inserted) trial_errors_.push_back(TrialError{std::move(e), who, 0});
    else ++trial_errors_[it->second].more_rules;
  }
}

// A problem in a configcrate shared by many rules is one problem: report it
// once, naming the first rule that hit it and how many others did.
void Parser::ReportTrialErrors() {
  for (TrialError& t : trial_errors_) {
    std::string where = t.first_rule;
    if (t.more_rules > 0) {
      StrAppend(&where, " and ", t.more_rules, t.more_rules == 1 ? " other rule" : " other rules");
    }
    Error(Loc{t.error.file, t.error.line}, t.error.key,
          StrCat(t.error.message, " [", where, "]"));
  }
  trial_errors_.clear();
  trial_index_.clear();
}

void Parser::CheckReferences(SecretBackend& backend) {
  std::map<std::string, std::vector<const RefUse*>> by_path;
  for (const RefUse& u : refs_) by_path[u.path].push_back(&u);
  for (const auto& [path, locs] : by_path) {
    model_->all_references.insert(path);
    Log(LogLevel::kTrace, "stacks.reference", {{"path", path}, {"uses", locs.size()}});
    absl::StatusOr<bool> exists = backend.Exists(path);
    if (!exists.ok()) {
      Error(locs.front()->loc, locs.front()->key,
            StrCat("cannot check secret '", path, "' in the ", backend.Name(),
                   " backend: ", exists.status().message()));
      if (absl::IsUnavailable(exists.status())) {
        Error(Loc{}, "", "secret backend unavailable; remaining references not checked");
        return;
      }
      continue;
    }
    if (!*exists) {
      for (const RefUse* u : locs) {
        Error(u->loc, u->key,
              StrCat("secret '", path, "' does not exist in the ", backend.Name(), " backend"));
      }
    }
  }
}

absl::StatusOr<std::shared_ptr<const Stacks>> Fail(std::vector<LoadError> errors,
                                                   LoadReport* report) {
  std::string msg = StrCat("stacks: ", errors.size(), " error(s)");
  size_t shown = 0;
  for (const LoadError& e : errors) {
    if (shown++ == 20) {
      StrAppend(&msg, "\n... and ", errors.size() - 20, " more");
      break;
    }
    StrAppend(&msg, "\n", e.ToString());
  }
  Log(LogLevel::kDebug, "stacks.load_failed", {{"errors", errors.size()}});
  if (report) report->errors = std::move(errors);
  return absl::InvalidArgumentError(msg);
}

}  // namespace

Stacks::Stacks(std::unique_ptr<const si::Model> model) : model_(std::move(model)) {}
Stacks::~Stacks() = default;

absl::StatusOr<std::shared_ptr<const Stacks>> Stacks::LoadFiles(
    const std::map<std::string, std::string>& files, SecretBackend& backend, LoadReport* report,
    const LoadOptions& options) {
  LoadReport local;
  LoadReport* rep = report ? report : &local;
  *rep = LoadReport{};
  auto model = std::make_unique<si::Model>();
  si::ErrorSink sink;
  Parser parser(model.get(), &sink);
  for (const auto& [rel, bytes] : files) {
    if (rel.size() < 4 || rel.substr(rel.size() - 4) != ".vgo") continue;
    ++rep->files;
    if (bytes.size() > kMaxFileBytes) {
      sink.Add(Loc{rel, 0}, "", StrCat("file is larger than ", kMaxFileBytes, " bytes"));
      continue;
    }
    parser.ParseFile(rel, bytes);
  }
  if (!parser.saw_envoys()) {
    sink.Add(Loc{"envoys.vgo", 0}, "", "missing: a stacks tree needs envoys.vgo");
  }
  parser.Resolve();
  parser.CheckReferences(backend);
  rep->envoy_rules = model->rules.size();
  rep->configcrates = model->crates.size();
  rep->references = model->all_references.size();
  if (!sink.empty()) return Fail(sink.Take(), rep);
  model->policy_version =
      options.policy_version != 0 ? options.policy_version : g_policy_generation.fetch_add(1) + 1;
  Log(LogLevel::kDebug, "stacks.loaded",
      {{"files", rep->files},
       {"envoy_rules", rep->envoy_rules},
       {"configcrates", rep->configcrates},
       {"references", rep->references},
       {"policy_version", model->policy_version}});
  return std::shared_ptr<const Stacks>(new Stacks(std::move(model)));
}

absl::StatusOr<std::shared_ptr<const Stacks>> Stacks::Load(const std::filesystem::path& stacks_dir,
                                                           SecretBackend& backend,
                                                           LoadReport* report) {
  return Load(stacks_dir, backend, report, LoadOptions{});
}

absl::StatusOr<std::shared_ptr<const Stacks>> Stacks::Load(const std::filesystem::path& stacks_dir,
                                                           SecretBackend& backend,
                                                           LoadReport* report,
                                                           const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(stacks_dir, ec)) {
    std::vector<LoadError> errors{
        LoadError{"", 0, "", StrCat("stacks directory ", stacks_dir.string(), " does not exist")}};
    return Fail(std::move(errors), report);
  }
  std::map<std::string, std::string> files;
  std::vector<LoadError> read_errors;
  fs::recursive_directory_iterator it(stacks_dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;  // editor files, .git
    }
    if (!it->is_regular_file(ec) || p.extension() != ".vgo") continue;
    // The iterator yields stacks_dir/<rel>; strip the prefix rather than
    // fs::relative, which canonicalizes every component with syscalls.
    std::string full = p.generic_string();
    std::string base = stacks_dir.generic_string();
    if (!base.empty() && base.back() != '/') base.push_back('/');
    std::string rel = full.rfind(base, 0) == 0 ? full.substr(base.size()) : name;
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      read_errors.push_back(LoadError{rel, 0, "", "cannot read file"});
      continue;
    }
    std::string bytes;
    char buf[65536];
    while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
      bytes.append(buf, static_cast<size_t>(in.gcount()));
      if (bytes.size() > kMaxFileBytes) break;
    }
    files[rel] = std::move(bytes);
  }
  if (ec) {
    read_errors.push_back(
        LoadError{"", 0, "", StrCat("cannot list the stacks directory: ", ec.message())});
  }
  if (!read_errors.empty()) return Fail(std::move(read_errors), report);
  return LoadFiles(files, backend, report, options);
}

}  // namespace vigo::server
