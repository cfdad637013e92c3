// Properties of the stacks compiler over random stacks: random crates, roles,
// environments, envoy rules and vars, with references to secrets whose
// values are random high-entropy canaries held by a fake backend.
//  (a) no canary appears in any bundle's serialized bytes, in the loader's
//      trace-level log, or in any error message (and Get is never called);
//  (b) each envoy's entitlement equals the set of markers found by scanning
//      its serialized bundle, and equals an independent oracle computed from
//      the generated model;
//  (c) an envoy whose rule references no secret has an empty entitlement.
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/secret_ref.h"
#include "gtest/gtest.h"
// rapidcheck's gtest glue needs gtest declared first.
#include <rapidcheck/gtest.h>  // NOLINT(build/include_order)

#include "server/stacks.h"
#include "tests/support/fake_backend.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

constexpr int kVars = 4;
constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

std::string Canary() {
  std::string s;
  for (int i = 0; i < 32; ++i) s.push_back(kAlnum[*rc::gen::inRange<int>(0, 62)]);
  return s;
}

// A var value: a literal or a reference (index into the secret pool).
struct Value {
  bool is_ref = false;
  int secret = 0;
  std::string literal;
};

struct Model {
  std::vector<std::string> paths;  // secret pool (all present unless `missing`)
  bool add_missing = false;        // one reference to a path the backend lacks
  std::vector<Value> defaults;     // per var, shared by every crate
  struct Resource {
    std::string yaml;
    std::set<int> refs;  // direct references (pool indexes)
    std::set<int> vars;  // vars used by templates
  };
  std::vector<std::vector<Resource>> crates;
  std::vector<std::map<int, Value>> envs;
  std::vector<std::vector<int>> roles;
  struct Rule {
    int env = -1;
    std::vector<int> roles, crates;
    std::map<int, Value> vars;
  };
  std::vector<Rule> rules;
};

Value GenValue(int nsecrets) {
  Value v;
  v.is_ref = *rc::gen::inRange(0, 3) == 0;
  v.secret = *rc::gen::inRange(0, nsecrets);
  v.literal = "lit" + std::to_string(*rc::gen::inRange(0, 1000));
  return v;
}

std::string Yaml(const Model& m, const Value& v) {
  return v.is_ref ? "\"secret:" + m.paths[static_cast<size_t>(v.secret)] + "\""
                  : "\"" + v.literal + "\"";
}

std::string VarsYaml(const Model& m, const std::map<int, Value>& vars, const std::string& indent) {
  if (vars.empty()) return indent + "vars: {}\n";
  std::string out = indent + "vars:\n";
  for (const auto& [k, v] : vars)
    out += indent + "  v" + std::to_string(k) + ": " + Yaml(m, v) + "\n";
  return out;
}

Model GenModel() {
  Model m;
  int nsecrets = *rc::gen::inRange(1, 7);
  for (int i = 0; i < nsecrets; ++i) {
    m.paths.push_back("team" + std::to_string(i % 3) + "/app-" + std::to_string(i) + "/key.v" +
                      std::to_string(i));
  }
  m.add_missing = *rc::gen::inRange(0, 6) == 0;
  for (int k = 0; k < kVars; ++k) m.defaults.push_back(GenValue(nsecrets));
  int ncrates = *rc::gen::inRange(1, 5);
  for (int c = 0; c < ncrates; ++c) {
    std::vector<Model::Resource> resources;
    int nres = *rc::gen::inRange(0, 5);
    for (int r = 0; r < nres; ++r) {
      Model::Resource res;
      std::string name = "c" + std::to_string(c) + "-r" + std::to_string(r);
      int type = *rc::gen::inRange(0, 3);
      res.yaml = "  - name: " + name + "\n";
      if (type == 0) {
        std::string content;
        int parts = *rc::gen::inRange(1, 5);
        for (int p = 0; p < parts; ++p) {
          switch (*rc::gen::inRange(0, 4)) {
            case 0:
              content += " word" + std::to_string(p);
              break;
            case 1: {
              int s = *rc::gen::inRange(0, nsecrets);
              content += " pw=secret:" + m.paths[static_cast<size_t>(s)];
              res.refs.insert(s);
              break;
            }
            case 2: {
              int k = *rc::gen::inRange(0, kVars);
              content += " {{ .Vars.v" + std::to_string(k) + " }}";
              res.vars.insert(k);
              break;
            }
            default:
              content += " host={{.Envoy.Name}}";
          }
        }
        res.yaml += "    type: file\n    target_path: \"/etc/" + name +
                    "/{{ .Envoy.Name }}\"\n"
                    "    mode: \"0640\"\n    content: \"" +
                    content + "\"\n";
      } else if (type == 1) {
        res.yaml += "    type: directory\n    target_path: /var/lib/" + name + "\n";
      } else {
        res.yaml += "    type: exec\n";
        bool secret_file = *rc::gen::inRange(0, 3) == 0;
        res.yaml += secret_file ? "    command: [\"/bin/true\", \"{{ .SecretFile }}\"]\n"
                                : "    command: [\"/bin/true\", \"" + name + "\"]\n";
        if (secret_file) {
          int s = *rc::gen::inRange(0, nsecrets);
          res.yaml += "    secret_file: \"secret:" + m.paths[static_cast<size_t>(s)] + "\"\n";
          res.refs.insert(s);
        }
        switch (*rc::gen::inRange(0, 4)) {
          case 0: {
            int s = *rc::gen::inRange(0, nsecrets);
            res.yaml += "    stdin: \"secret:" + m.paths[static_cast<size_t>(s)] + "\"\n";
            res.refs.insert(s);
            break;
          }
          case 1: {
            int k = *rc::gen::inRange(0, kVars);
            res.yaml += "    stdin: \"{{ .Vars.v" + std::to_string(k) + " }}\"\n";
            res.vars.insert(k);
            break;
          }
          case 2:
            res.yaml += "    stdin: \"literal input\"\n";
            break;
          default:
            break;
        }
      }
      if (r > 0 && *rc::gen::inRange(0, 2) == 0) {
        res.yaml += "    depends_on: [c" + std::to_string(c) + "-r" + std::to_string(r - 1) + "]\n";
      }
      resources.push_back(std::move(res));
    }
    m.crates.push_back(std::move(resources));
  }
  auto gen_vars = [&]() {
    std::map<int, Value> vars;
    for (int k = 0; k < kVars; ++k) {
      if (*rc::gen::inRange(0, 3) == 0) vars[k] = GenValue(nsecrets);
    }
    return vars;
  };
  int nenvs = *rc::gen::inRange(0, 3);
  for (int e = 0; e < nenvs; ++e) m.envs.push_back(gen_vars());
  int nroles = *rc::gen::inRange(0, 3);
  for (int r = 0; r < nroles; ++r) {
    std::vector<int> crates;
    for (int c = 0; c < ncrates; ++c) {
      if (*rc::gen::inRange(0, 2) == 0) crates.push_back(c);
    }
    m.roles.push_back(crates);
  }
  int nrules = *rc::gen::inRange(1, 6);
  for (int i = 0; i < nrules; ++i) {
    Model::Rule rule;
    rule.env = nenvs > 0 ? *rc::gen::inRange(-1, nenvs) : -1;
    for (int r = 0; r < nroles; ++r) {
      if (*rc::gen::inRange(0, 2) == 0) rule.roles.push_back(r);
    }
    for (int c = 0; c < ncrates; ++c) {
      if (*rc::gen::inRange(0, 3) == 0) rule.crates.push_back(c);
    }
    rule.vars = gen_vars();
    m.rules.push_back(rule);
  }
  return m;
}

std::map<std::string, std::string> Render(const Model& m) {
  std::map<std::string, std::string> files;
  std::string envoys = "envoys:\n";
  for (size_t i = 0; i < m.rules.size(); ++i) {
    const Model::Rule& r = m.rules[i];
    envoys += "  - match: host" + std::to_string(i) + "\n";
    if (r.env >= 0) envoys += "    environment: e" + std::to_string(r.env) + "\n";
    envoys += "    roles: [";
    for (size_t j = 0; j < r.roles.size(); ++j)
      envoys += (j ? ", r" : "r") + std::to_string(r.roles[j]);
    envoys += "]\n    configcrates: [";
    for (size_t j = 0; j < r.crates.size(); ++j)
      envoys += (j ? ", c" : "c") + std::to_string(r.crates[j]);
    envoys += "]\n" + VarsYaml(m, r.vars, "    ");
  }
  if (m.add_missing) {
    envoys += "  - match: hostmissing\n    vars:\n      v0: \"secret:missing/not-there\"\n";
  }
  files["envoys.vgo"] = envoys;
  std::string roles = "roles:\n";
  for (size_t r = 0; r < m.roles.size(); ++r) {
    roles += "  r" + std::to_string(r) + ":\n    configcrates: [";
    for (size_t j = 0; j < m.roles[r].size(); ++j) {
      roles += (j ? ", c" : "c") + std::to_string(m.roles[r][j]);
    }
    roles += "]\n";
  }
  files["roles.vgo"] = m.roles.empty() ? "roles: {}\n" : roles;
  std::string envs = "env:\n";
  for (size_t e = 0; e < m.envs.size(); ++e) {
    envs += "  e" + std::to_string(e) + ":\n" + VarsYaml(m, m.envs[e], "    ");
  }
  files["environments.vgo"] = m.envs.empty() ? "env: {}\n" : envs;
  std::map<int, Value> defaults;
  for (int k = 0; k < kVars; ++k) defaults[k] = m.defaults[static_cast<size_t>(k)];
  for (size_t c = 0; c < m.crates.size(); ++c) {
    std::string crate = "configcrate: c" + std::to_string(c) + "\n" + VarsYaml(m, defaults, "");
    crate += m.crates[c].empty() ? "resources: []\n" : "resources:\n";
    for (const Model::Resource& r : m.crates[c]) crate += r.yaml;
    files["configcrates/c" + std::to_string(c) + ".vgo"] = crate;
  }
  return files;
}

// Independent oracle: the paths rule `i`'s bundle must reference.
std::set<std::string> Expected(const Model& m, size_t i) {
  const Model::Rule& rule = m.rules[i];
  std::vector<int> crates;
  std::set<int> seen;
  for (int r : rule.roles) {
    for (int c : m.roles[static_cast<size_t>(r)]) {
      if (seen.insert(c).second) crates.push_back(c);
    }
  }
  for (int c : rule.crates) {
    if (seen.insert(c).second) crates.push_back(c);
  }
  auto value_of = [&](int k) {
    if (rule.env >= 0) {
      const auto& ev = m.envs[static_cast<size_t>(rule.env)];
      if (ev.count(k)) return ev.at(k);
    }
    if (rule.vars.count(k)) return rule.vars.at(k);
    return m.defaults[static_cast<size_t>(k)];
  };
  std::set<std::string> out;
  for (int c : crates) {
    for (const Model::Resource& r : m.crates[static_cast<size_t>(c)]) {
      for (int s : r.refs) out.insert(m.paths[static_cast<size_t>(s)]);
      for (int k : r.vars) {
        Value v = value_of(k);
        if (v.is_ref) out.insert(m.paths[static_cast<size_t>(v.secret)]);
      }
    }
  }
  return out;
}

class TraceLog {
 public:
  TraceLog() : path_(dir_.path() / "trace.log") {
    EXPECT_TRUE(SetLogFile(path_.string()).ok());
    SetLogLevel(LogLevel::kTrace);
  }
  ~TraceLog() {
    SetLogLevel(LogLevel::kInfo);
    (void)SetLogFile("");
  }
  std::string Read() const { return testing::ReadFileOrEmpty(path_); }

 private:
  testing::TempDir dir_;
  std::filesystem::path path_;
};

RC_GTEST_PROP(StacksProperty, NoValueLeaksAndEntitlementIsExactlyTheMarkers, ()) {
  TraceLog log;
  Model m = GenModel();
  testing::FakeBackend backend;
  std::vector<std::string> canaries;
  for (const std::string& p : m.paths) {
    canaries.push_back(Canary());
    backend.Put(p, canaries.back());
  }
  LoadReport report;
  auto stacks = Stacks::LoadFiles(Render(m), backend, &report);
  RC_ASSERT(backend.get_calls() == 0);
  std::string seen_text;
  if (!stacks.ok()) {
    // Only the deliberately missing reference may fail the load.
    RC_ASSERT(m.add_missing);
    bool named = false;
    for (const LoadError& e : report.errors) {
      seen_text += e.ToString() + "\n";
      named |= e.ToString().find("missing/not-there") != std::string::npos;
    }
    RC_ASSERT(named);
    seen_text += std::string(stacks.status().message());
  } else {
    RC_ASSERT(!m.add_missing);
    for (size_t i = 0; i < m.rules.size(); ++i) {
      std::string envoy = "host" + std::to_string(i);
      auto b = (*stacks)->Compile(envoy, 3);
      RC_ASSERT(b.ok());
      std::string bytes = b->bundle.SerializeAsString();
      seen_text += bytes;
      // (b) entitlement == markers found by scanning the serialized bundle.
      auto markers = FindMarkers(bytes);
      RC_ASSERT(markers.ok());
      std::set<std::string> scanned;
      for (const MarkerMatch& mm : *markers) scanned.insert(mm.path);
      RC_ASSERT(b->entitlement == scanned);
      std::set<std::string> refs(b->bundle.secret_refs().begin(), b->bundle.secret_refs().end());
      RC_ASSERT(refs == b->entitlement);
      // ... and equals the oracle; (c) no reference in the rule -> empty set.
      std::set<std::string> expected = Expected(m, i);
      RC_ASSERT(b->entitlement == expected);
      if (expected.empty()) RC_ASSERT(b->bundle.secret_refs_size() == 0);
    }
  }
  seen_text += log.Read();
  // (a) no canary, in any encoding or 8-byte piece, anywhere we looked.
  std::vector<std::string> hits =
      testing::FindCanariesIn(seen_text, "bundles+errors+log", canaries);
  RC_ASSERT(hits.empty());
  RC_ASSERT(backend.get_calls() == 0);
}

TEST(StacksProperty, TraceLogActuallyCapturesLoaderOutput) {
  // Guards the property above against checking an empty log.
  TraceLog log;
  testing::FakeBackend backend;
  backend.Put("a/b", "v");
  auto stacks = Stacks::LoadFiles(
      {{"envoys.vgo", "envoys:\n  - match: x\n    vars: {p: \"secret:a/b\"}\n"}}, backend, nullptr);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  std::string text = log.Read();
  EXPECT_NE(text.find("stacks.reference"), std::string::npos) << text;
  EXPECT_NE(text.find("a/b"), std::string::npos);
}

}  // namespace
}  // namespace vigo::server
