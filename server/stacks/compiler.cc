// Compiling a loaded Model into one envoy's PolicyBundle, and the one
// function (EntitlementOf) that derives an envoy's entitlement from the
// bundle it will receive.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <string>
#include <string_view>

#include "common/log.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/window_index.h"
#include "server/stacks.h"
#include "server/stacks/model.h"
#include "vocab/envoy_name.h"
#include "vocab/hex.h"

namespace vigo::server {

namespace si = stacks_internal;

namespace {

bool ValidMode(std::string_view mode) {
  if (mode.size() < 3 || mode.size() > 4) return false;
  return std::all_of(mode.begin(), mode.end(), [](char c) { return c >= '0' && c <= '7'; });
}

// Occurrences of the marker prefix, overlapping ones included.
size_t CountMarkerPrefixes(std::string_view text) {
  size_t n = 0;
  for (size_t pos = text.find(kMarkerPrefix); pos != std::string_view::npos;
       pos = text.find(kMarkerPrefix, pos + 1)) {
    ++n;
  }
  return n;
}

std::string LocString(const si::Loc& loc) {
  return loc.line > 0 ? StrCat(loc.file, ":", loc.line) : loc.file;
}

// Scans every string field of `msg` (recursively) for markers. At the top
// level the bundle's own outputs (secret_refs, digest) are skipped.
absl::Status CollectMarkers(const google::protobuf::Message& msg, bool top,
                            std::set<std::string>* out) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor* d = msg.GetDescriptor();
  const google::protobuf::Reflection* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (top && (f->name() == "secret_refs" || f->name() == "digest")) continue;
    auto scan = [&](const std::string& s) -> absl::Status {
      auto markers = FindMarkers(s);
      if (!markers.ok()) {
        return absl::InternalError(
            StrCat("bundle field '", f->name(), "' holds a malformed marker"));
      }
      for (const MarkerMatch& m : *markers) out->insert(m.path);
      return absl::OkStatus();
    };
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(msg, f); ++j) {
          VIGO_RETURN_IF_ERROR(scan(r->GetRepeatedString(msg, f, j)));
        }
      } else {
        VIGO_RETURN_IF_ERROR(scan(r->GetString(msg, f)));
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(msg, f); ++j) {
          VIGO_RETURN_IF_ERROR(CollectMarkers(r->GetRepeatedMessage(msg, f, j), false, out));
        }
      } else if (r->HasField(msg, f)) {
        VIGO_RETURN_IF_ERROR(CollectMarkers(r->GetMessage(msg, f), false, out));
      }
    }
  }
  return absl::OkStatus();
}

std::string DigestOfSerialized(const v1::PolicyBundle& bundle) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream sos(&bytes);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    bundle.SerializeToCodedStream(&cos);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &md_len, EVP_sha256(), nullptr);
  return vocab::Hex(std::span<const uint8_t>(md, md_len));
}

const si::Rule* FindRule(const si::Model& model, std::string_view name) {
  size_t best = model.rules.size();
  auto it = model.exact_rules.find(std::string(name));
  if (it != model.exact_rules.end()) best = it->second;
  for (size_t g : model.glob_rules) {
    if (g >= best) break;
    if (EnvoyGlobMatch(model.rules[g].match, name)) {
      best = g;
      break;
    }
  }
  return best < model.rules.size() ? &model.rules[best] : nullptr;
}

}  // namespace

namespace stacks_internal {

// Why `path` is not usable as a path, or "" when it is (model.h). The
// agent applies absolute paths beneath its root; a relative path would depend
// on the agent's working directory and '..' would climb out of what the
// operator reviewed.
std::string PathProblem(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return StrCat("'", path, "' is not an absolute path (it must start with '/')");
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "." || part == "..") {
      return StrCat("'", path, "' holds a '", part,
                    "' component; write the path without '.' or '..'");
    }
    start = end + 1;
  }
  return "";
}

// One spelling per path for duplicate detection: repeated and trailing '/'
// removed (PathProblem already refused '.' and '..').
std::string NormalizedPath(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

bool LiteralText(const Text& t, std::string* out) {
  out->clear();
  for (const Piece& p : t.pieces) {
    if (p.kind != PieceKind::kLiteral) return false;
    out->append(p.text);
  }
  return true;
}

bool BuildBundle(const Model& model, const Rule& rule, std::string_view envoy_name, ErrorSink* sink,
                 v1::PolicyBundle* out, std::set<std::string>* refs, size_t* max_bytes) {
  if (out) out->set_envoy_name(std::string(envoy_name));
  std::set<std::string> used;
  bool ok = true;
  // Upper bound of the serialized bundle. Envoy-name pieces count as the
  // longest name vocab::ValidateEnvoyName accepts, so the bound holds for every
  // envoy the rule matches; Compile checks it against the real size. A
  // field's tag is at most 2 bytes; its length prefix is the varint of the
  // payload size. A resource's framing (tag + length) and its scalar fields
  // (timeout_seconds) fit in kResource.
  constexpr size_t kTag = 2;
  constexpr size_t kResource = 2 * 6 + 11;
  constexpr size_t kLongestEnvoyName = vocab::kMaxEnvoyNameBytes;
  auto varint = [](size_t n) {
    size_t len = 1;
    while (n >= 0x80) {
      n >>= 7;
      ++len;
    }
    return len;
  };
  auto field = [&](size_t payload) { return kTag + varint(payload) + payload; };
  size_t bound = field(kLongestEnvoyName) + 2 * (kTag + 10) /* epoch, policy version */ +
                 field(64) /* sha-256 hex digest */;
  auto count = [&](size_t payload) { bound += field(payload); };
  std::string scratch;  // the trial (out == nullptr) renders here when it must look
  // Renders `t` into `dst` (or `scratch` when dst is null and the text must
  // be looked at: `need_text`, or several pieces that could join into marker
  // text). Returns the rendered text, or null when nothing was rendered.
  auto render = [&](const Text& t, std::string* dst, bool need_text = false) -> const std::string* {
    const bool joined = t.pieces.size() > 1;
    std::string* s = dst ? dst : (need_text || joined ? &scratch : nullptr);
    if (s) s->clear();
    if (refs) refs->insert(t.refs.begin(), t.refs.end());
    size_t text_bytes = 0;      // this field's payload, for the bound
    size_t piece_prefixes = 0;  // marker prefixes inside single pieces
    auto append = [&](std::string_view piece) {
      if (!s) return;
      if (joined) piece_prefixes += CountMarkerPrefixes(piece);
      s->append(piece);
    };
    for (const Piece& p : t.pieces) {
      switch (p.kind) {
        case PieceKind::kLiteral:
          text_bytes += p.text.size();
          append(p.text);
          break;
        case PieceKind::kEnvoyName:
          text_bytes += kLongestEnvoyName;
          append(envoy_name);
          break;
        case PieceKind::kSecretFile:
          text_bytes += kSecretFilePlaceholder.size();
          append(kSecretFilePlaceholder);
          break;
        case PieceKind::kVar: {
          auto it = rule.scope.find(p.text);
          if (it == rule.scope.end()) {
            sink->Add(t.loc, t.key,
                      StrCat("unknown template name '.Vars.", p.text, "': no var '", p.text,
                             "' in the environment, the rule or the configcrate defaults"));
            ok = false;
            break;
          }
          if (it->second.has_ref && t.placement == RefPlacement::kRefuse) {
            sink->Add(t.loc, t.key,
                      StrCat("var '", p.text, "' holds a secret reference (set at ",
                             LocString(it->second.loc), ") and cannot be used in '", t.key, "'"));
            ok = false;
            break;
          }
          used.insert(p.text);
          if (refs && it->second.has_ref) refs->insert(it->second.ref_path);
          text_bytes += it->second.value.size();
          append(it->second.value);
          break;
        }
      }
    }
    count(text_bytes);
    // Markers come only from `secret:` references, each whole inside one
    // piece. Pieces that join into marker text (`{{ .Vars.a }}{{ .Vars.b }}`
    // spelling __VIGO_SECRET__...__END__) would forge a reference the load
    // never checked, in any field, including argv or a path.
    if (s && joined && CountMarkerPrefixes(*s) != piece_prefixes) {
      sink->Add(t.loc, t.key,
                "the template pieces of this value join into marker text (__VIGO_SECRET__...); "
                "a secret may only be named with \"secret:<path>\"");
      ok = false;
    }
    return s;
  };
  // target_path, creates and cwd after rendering: absolute, no '.' or '..'.
  auto check_path = [&](const Text& t, const std::string* rendered) {
    if (rendered == nullptr) return;
    std::string problem = PathProblem(*rendered);
    if (!problem.empty()) {
      sink->Add(t.loc, t.key, std::move(problem));
      ok = false;
    }
  };
  // Two resources of one bundle on the same target_path fail or flap on the
  // node; which one "wins" would depend on the apply order.
  std::map<std::string, const ResourceSpec*> writers;
  using Mut = std::string* (v1::Resource::*)();
  for (size_t idx : rule.order) {
    const ResourceSpec& r = model.resources[idx];
    v1::Resource* pr = out ? out->add_resources() : nullptr;
    auto dst = [pr](Mut mut) -> std::string* { return pr ? (pr->*mut)() : nullptr; };
    bound += kResource;
    count(r.name.size());
    count(r.type.size());
    count(r.crate.size());
    count(r.state.size());
    for (const auto& [dep, loc] : r.depends_on) count(dep.size());
    // An EnvVar's name; its framing (the value is counted by render).
    for (const auto& [name, value] : r.environment) bound += field(name.size()) + kTag + 5;
    if (pr) {
      pr->set_name(r.name);
      pr->set_type(r.type);
      pr->set_configcrate(r.crate);
      pr->set_state(r.state);
      pr->set_timeout_seconds(r.timeout_seconds);
    }
    if (r.target_path.present) {
      const std::string* path =
          render(r.target_path, dst(&v1::Resource::mutable_target_path), /*need_text=*/true);
      check_path(r.target_path, path);
      if (path != nullptr && PathProblem(*path).empty()) {
        auto [it, inserted] = writers.emplace(NormalizedPath(*path), &r);
        if (!inserted) {
          sink->Add(r.target_path.loc, r.target_path.key,
                    StrCat("target_path '", *path, "' is also the target of resource '",
                           it->second->name, "' (", LocString(it->second->target_path.loc),
                           "); two resources of one bundle may not manage the same path"));
          ok = false;
        }
      }
    }
    if (r.mode.present) {
      std::string mode;
      render(r.mode, &mode);
      if (!ValidMode(mode)) {
        sink->Add(r.mode.loc, "mode",
                  "mode must be an octal string of 3 or 4 digits, e.g. \"0640\"");
        ok = false;
      }
      if (pr) pr->set_mode(std::move(mode));
    }
    if (r.owner.present) render(r.owner, dst(&v1::Resource::mutable_owner));
    if (r.group.present) render(r.group, dst(&v1::Resource::mutable_group));
    if (r.content.present) render(r.content, dst(&v1::Resource::mutable_content));
    for (const Text& arg : r.command) render(arg, pr ? pr->add_command() : nullptr);
    for (const auto& [name, value] : r.environment) {
      v1::EnvVar* e = pr ? pr->add_environment() : nullptr;
      if (e) e->set_name(name);
      render(value, e ? e->mutable_value() : nullptr);
    }
    if (r.stdin_text.present) render(r.stdin_text, dst(&v1::Resource::mutable_stdin));
    if (r.secret_file.present) {
      std::string secret_file;
      render(r.secret_file, &secret_file);
      auto markers = FindMarkers(secret_file);
      if (!markers.ok() || markers->size() != 1 || (*markers)[0].offset != 0 ||
          (*markers)[0].length != secret_file.size()) {
        sink->Add(r.secret_file.loc, "secret_file",
                  "secret_file must be exactly one reference: \"secret:<path>\" or a var that "
                  "holds one");
        ok = false;
      }
      if (pr) pr->set_secret_file(std::move(secret_file));
    }
    if (r.creates.present) {
      check_path(r.creates,
                 render(r.creates, dst(&v1::Resource::mutable_creates), /*need_text=*/true));
    }
    if (r.cwd.present) {
      check_path(r.cwd, render(r.cwd, dst(&v1::Resource::mutable_cwd), /*need_text=*/true));
    }
    if (r.confine.present) {
      v1::ExecConfine* pc = pr ? pr->mutable_confine() : nullptr;
      bound += kTag + 5 + 2 * kTag;  // the message's framing and its two bools
      if (pc) {
        pc->set_restrict_writes(r.confine.has_writable);
        pc->set_deny_network(!r.confine.network);
      }
      // Literal paths were checked when the file was parsed (so unused
      // crates are checked too); templated ones only exist once rendered.
      std::map<std::string, const Text*> seen;
      for (const Text& w : r.confine.writable) {
        std::string literal;
        const bool is_literal = LiteralText(w, &literal);
        const std::string* path = render(w, pc ? pc->add_writable() : nullptr, /*need_text=*/true);
        if (!is_literal) check_path(w, path);
        if (path == nullptr || !PathProblem(*path).empty()) continue;
        auto [it, inserted] = seen.emplace(NormalizedPath(*path), &w);
        std::string other_literal;
        if (!inserted && !(is_literal && LiteralText(*it->second, &other_literal))) {
          sink->Add(w.loc, w.key,
                    StrCat("'", *path, "' is also listed as ", it->second->key,
                           "; list each writable path once"));
          ok = false;
        }
      }
    }
    if (pr) {
      for (const auto& [dep, loc] : r.depends_on) pr->add_depends_on(dep);
    }
  }
  for (const std::string& name : used) {
    const size_t var = field(name.size()) + field(rule.scope.at(name).value.size());
    bound += kTag + varint(var) + var;
  }
  if (refs) {
    for (const std::string& p : *refs) count(p.size());  // secret_refs
  }
  if (max_bytes) *max_bytes = bound;
  // Only the vars the resources use go into the bundle: a var holding a
  // reference that no resource uses must not entitle the envoy.
  if (out) {
    for (const std::string& name : used) {
      v1::Var* v = out->add_vars();
      v->set_name(name);
      v->set_value(rule.scope.at(name).value);
    }
  }
  return ok;
}

absl::StatusOr<std::set<std::string>> FinalizeBundle(v1::PolicyBundle* bundle) {
  VIGO_ASSIGN_OR_RETURN(std::set<std::string> refs, EntitlementOf(*bundle));
  bundle->clear_secret_refs();
  for (const std::string& p : refs) bundle->add_secret_refs(p);
  bundle->clear_digest();
  bundle->set_digest(DigestOfSerialized(*bundle));
  return refs;
}

}  // namespace stacks_internal

absl::StatusOr<std::set<std::string>> EntitlementOf(const v1::PolicyBundle& bundle) {
  std::set<std::string> out;
  VIGO_RETURN_IF_ERROR(CollectMarkers(bundle, true, &out));
  return out;
}

std::string BundleDigest(const v1::PolicyBundle& bundle) {
  if (bundle.digest().empty()) return DigestOfSerialized(bundle);
  v1::PolicyBundle copy = bundle;
  copy.clear_digest();
  return DigestOfSerialized(copy);
}

bool EnvoyGlobMatch(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::StatusOr<CompiledBundle> Stacks::Compile(std::string_view envoy_name, uint64_t secrets_epoch,
                                               size_t redaction_window) const {
  VIGO_RETURN_IF_ERROR(vocab::ValidateEnvoyName(envoy_name));
  const si::Rule* rule = FindRule(*model_, envoy_name);
  if (rule == nullptr) {
    return absl::NotFoundError(StrCat("no rule in envoys.vgo matches envoy '", envoy_name, "'"));
  }
  CompiledBundle out;
  si::ErrorSink sink;
  size_t bound = 0;
  std::set<std::string> bound_refs;  // so the bound counts secret_refs as the load's does
  if (!si::BuildBundle(*model_, *rule, envoy_name, &sink, &out.bundle, &bound_refs, &bound)) {
    // Load ran the same checks for this rule with a stand-in name; only text
    // glued to this envoy's name (a path it completes, marker text it
    // completes) can fail here. Refuse the bundle rather than send it.
    std::vector<LoadError> errors = sink.Take();
    return absl::InvalidArgumentError(StrCat("compiling the bundle of envoy '", envoy_name,
                                             "': ", errors.empty() ? "" : errors.front().ToString()));
  }
  out.bundle.set_secrets_epoch(secrets_epoch);
  out.bundle.set_policy_version(model_->policy_version);
  if (redaction_window != kDefaultRedactionWindow) {
    if (redaction_window < kMinRedactionWindow || redaction_window > kMaxRedactionWindow) {
      return absl::InvalidArgumentError(StrCat("redaction window ", redaction_window,
                                               " is outside ", kMinRedactionWindow, "..",
                                               kMaxRedactionWindow));
    }
    out.bundle.set_redaction_window(static_cast<uint32_t>(redaction_window));
  }
  VIGO_ASSIGN_OR_RETURN(out.entitlement, si::FinalizeBundle(&out.bundle));
  // The load bounded this rule's bundle (kMaxBundleBytes); this is the
  // second wall, so an error in the bound cannot send what no agent takes.
  const size_t n = out.bundle.ByteSizeLong();
  // The load's bound does not know the server's redaction window: its field
  // is at most 3 bytes (tag + a varint below 2^14).
  if (n > bound + (out.bundle.redaction_window() != 0 ? 3 : 0)) {
    // The load-time bound must never be below a real bundle: that would let
    // the load accept a rule no agent can receive.
    return absl::InternalError(StrCat("bundle of envoy '", envoy_name, "' is ", n,
                                      " bytes, above its computed bound ", bound));
  }
  if (n > kMaxBundleBytes) {
    return absl::FailedPreconditionError(StrCat("the bundle of envoy '", envoy_name, "' is ", n,
                                                " bytes, more than the ", kMaxBundleBytes,
                                                "-byte limit"));
  }
  // The envoy name is the one input the trial compile at load did not see.
  // It cannot legitimately add or remove a marker; if it did (text glued to
  // literal config text), refuse rather than entitle.
  if (out.entitlement != rule->references) {
    return absl::InvalidArgumentError(
        StrCat("envoy name '", envoy_name, "' changes the markers of its bundle; refused"));
  }
  Log(LogLevel::kTrace, "stacks.compiled",
      {{"envoy", std::string(envoy_name)},
       {"resources", out.bundle.resources_size()},
       {"refs", out.entitlement.size()},
       {"digest", out.bundle.digest()}});
  return out;
}

absl::StatusOr<EnvoyRuleInfo> Stacks::RuleFor(std::string_view envoy_name) const {
  VIGO_RETURN_IF_ERROR(vocab::ValidateEnvoyName(envoy_name));
  const si::Rule* rule = FindRule(*model_, envoy_name);
  if (rule == nullptr) {
    return absl::NotFoundError(StrCat("no rule in envoys.vgo matches envoy '", envoy_name, "'"));
  }
  return model_->rule_infos[static_cast<size_t>(rule - model_->rules.data())];
}

const std::vector<EnvoyRuleInfo>& Stacks::Rules() const { return model_->rule_infos; }

const std::set<std::string>& Stacks::AllReferences() const { return model_->all_references; }

uint64_t Stacks::policy_version() const { return model_->policy_version; }

}  // namespace vigo::server
