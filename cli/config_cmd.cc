// vigocli config validate / bundle show / who-needs (CONTRACT §6): the
// operator's view of the stacks compiler (server/stacks.h).
//
// All three load <root>/stacks against the configured backend exactly as
// vigosrv does (Exists only, never a value), so what they print is what the
// server would compile. Output holds markers and paths, never a value.
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "server/backend.h"
#include "server/db.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/stacks.h"
#include "vocab/envoy_name.h"

namespace vigo::cli {
namespace {

// Config, backend and stacks, loaded the way vigosrv loads them. Prints the
// load errors (every one, file:line) itself; returns null on failure with
// *exit_code set.
struct Loaded {
  server::ServerConfig config;
  std::unique_ptr<server::SecretBackend> backend;
  std::shared_ptr<const server::Stacks> stacks;
  server::LoadReport report;
};

std::unique_ptr<Loaded> LoadStacks(const CliContext& ctx, std::string_view cmd, bool json,
                                   int* exit_code) {
  auto loaded = std::make_unique<Loaded>();
  auto config = server::LoadServerConfig(ctx.root);
  if (!config.ok()) {
    *exit_code = Fail(cmd, config.status());
    return nullptr;
  }
  loaded->config = std::move(*config);
  auto backend = server::OpenBackend(loaded->config);
  if (!backend.ok()) {
    *exit_code = Fail(cmd, backend.status());
    return nullptr;
  }
  loaded->backend = std::move(*backend);
  auto stacks = server::Stacks::Load(loaded->config.StacksDir(), *loaded->backend, &loaded->report);
  if (!stacks.ok()) {
    if (json) {
      std::string out = "{\"ok\":false,\"errors\":[";
      for (size_t i = 0; i < loaded->report.errors.size(); ++i) {
        const server::LoadError& e = loaded->report.errors[i];
        StrAppend(&out, i ? "," : "", "{\"file\":", JsonString(e.file), ",\"line\":", e.line,
                  ",\"key\":", JsonString(e.key), ",\"message\":", JsonString(e.message),
                  ",\"text\":", JsonString(e.ToString()), "}");
      }
      StrAppend(&out, "]}\n");
      std::fputs(out.c_str(), stdout);
    }
    if (loaded->report.errors.empty()) {
      *exit_code = Fail(cmd, stacks.status());
      return nullptr;
    }
    for (const server::LoadError& e : loaded->report.errors) {
      std::fprintf(stderr, "%s\n", e.ToString().c_str());
    }
    std::fprintf(stderr, "vigocli %.*s: %zu error(s) in %s\n", static_cast<int>(cmd.size()),
                 cmd.data(), loaded->report.errors.size(),
                 loaded->config.StacksDir().string().c_str());
    *exit_code = kExitError;
    return nullptr;
  }
  loaded->stacks = std::move(*stacks);
  return loaded;
}

// The envoy registry (names with an active certificate in <root>/db/vigo.db)
// and the persisted secrets_epoch, when the database exists. Never creates it:
// these commands also work on a stacks tree with no server behind it.
struct Registry {
  bool present = false;
  std::vector<std::string> envoys;  // sorted, unique
  uint64_t epoch = 0;
};

absl::StatusOr<Registry> OpenRegistry(const server::ServerConfig& cfg) {
  Registry r;
  std::error_code ec;
  if (!std::filesystem::exists(cfg.DatabasePath(), ec)) return r;
  VIGO_ASSIGN_OR_RETURN(std::unique_ptr<server::Database> db,
                        server::Database::Open(cfg.DatabasePath()));
  server::service::ServerStore store(db.get());
  VIGO_RETURN_IF_ERROR(store.Init());
  VIGO_ASSIGN_OR_RETURN(std::vector<server::service::EnvoyCertRecord> certs,
                        store.ListEnvoyCerts());
  std::set<std::string> names;
  for (const auto& c : certs) {
    if (!c.revoked_at_ms.has_value() && vocab::ValidateEnvoyName(c.name).ok()) {
      names.insert(c.name);
    }
  }
  r.envoys.assign(names.begin(), names.end());
  VIGO_ASSIGN_OR_RETURN(r.epoch, store.LoadEpoch());
  r.present = true;
  return r;
}

const ArgSpec kConfigSpec{
    "vigocli config validate",
    "Load <root>/stacks against the configured secrets backend and print every error as "
    "stacks/FILE:LINE: message.\nExit 0 when the stacks load, 1 on any error.",
    {},
    0,
    0};

const ArgSpec kBundleSpec{
    "vigocli bundle show --envoy NAME [--epoch N] [--json]",
    "Print the bundle envoy NAME would receive (markers only, never a value): resources in "
    "apply order, the vars they use, and its entitlement (secret_refs).\nsecrets_epoch is "
    "--epoch, else the server's persisted epoch (db/vigo.db), else 0. Exit 4 when no rule in "
    "envoys.vgo matches NAME.",
    {{"envoy", true, "the envoy name (its certificate CN)"},
     {"epoch", true, "secrets_epoch to compile with (default 0)"}},
    0,
    0};

const ArgSpec kWhoNeedsSpec{
    "vigocli who-needs PATH [--envoy NAME]... [--json]",
    "Which envoys' bundles reference secret PATH: the blast radius of a rotation.\n"
    "Compiles the bundle of every envoy with an active certificate (db/vigo.db, when it "
    "exists) and of every --envoy NAME given (repeatable), and lists those whose bundle "
    "holds PATH's marker. Also lists the envoys.vgo rules whose bundles hold it (every envoy "
    "matching such a rule, unless an earlier rule catches it first), which covers envoys "
    "not issued yet.",
    {{"envoy", true, "an envoy name to check (repeatable)"}},
    1,
    1};

int ConfigValidate(const CliContext& ctx, const std::vector<std::string>& args) {
  ParsedArgs a;
  if (int rc = ParseVerb(kConfigSpec, args, "config validate", &a); rc >= 0) return rc;
  int code = kExitOk;
  auto loaded = LoadStacks(ctx, "config validate", ctx.json, &code);
  if (!loaded) return code;
  const server::LoadReport& r = loaded->report;
  if (ctx.json) {
    std::printf(
        "{\"ok\":true,\"files\":%zu,\"envoy_rules\":%zu,\"configcrates\":%zu,"
        "\"references\":%zu,\"backend\":%s}\n",
        r.files, r.envoy_rules, r.configcrates, r.references,
        JsonString(loaded->backend->Name()).c_str());
  } else {
    std::printf(
        "stacks OK: %zu files, %zu envoy rules, %zu configcrates, %zu secret references "
        "(all present in the %s backend)\n",
        r.files, r.envoy_rules, r.configcrates, r.references,
        std::string(loaded->backend->Name()).c_str());
  }
  return kExitOk;
}

int BundleShow(const CliContext& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  if (int rc = ParseVerb(kBundleSpec, args, "bundle show", &parsed); rc >= 0) return rc;
  const ParsedArgs* a = &parsed;
  if (!a->Has("envoy")) return Usage("bundle show", "--envoy NAME is required");
  std::string envoy = *a->Get("envoy");
  uint64_t epoch = 0;
  if (a->Has("epoch")) {
    std::string e = *a->Get("epoch");
    if (e.empty() || e.size() > 19 || e.find_first_not_of("0123456789") != std::string::npos) {
      return Usage("bundle show", "--epoch needs a non-negative integer");
    }
    epoch = std::stoull(e);
  }
  if (absl::Status st = vocab::ValidateEnvoyName(envoy); !st.ok()) {
    return Usage("bundle show", StrCat("--envoy: ", st.message()));
  }
  int code = kExitOk;
  auto loaded = LoadStacks(ctx, "bundle show", false, &code);
  if (!loaded) return code;
  if (!a->Has("epoch")) {
    auto registry = OpenRegistry(loaded->config);
    if (!registry.ok()) return Fail("bundle show", registry.status());
    epoch = registry->epoch;
  }
  auto compiled = loaded->stacks->Compile(envoy, epoch, loaded->config.leak_scan_window);
  if (!compiled.ok()) return Fail("bundle show", compiled.status());
  if (ctx.json) {
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    opts.preserve_proto_field_names = true;
    std::string out;
    auto st = google::protobuf::util::MessageToJsonString(compiled->bundle, &out, opts);
    if (!st.ok())
      return Fail("bundle show", absl::InternalError("cannot render the bundle as JSON"));
    std::fputs(out.c_str(), stdout);
    return kExitOk;
  }
  auto rule = loaded->stacks->RuleFor(envoy);
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.SetUseUtf8StringEscaping(true);
  printer.PrintToString(compiled->bundle, &text);
  if (rule.ok()) {
    std::printf("# envoy %s matches rule '%s' (stacks/%s:%d)\n", envoy.c_str(), rule->match.c_str(),
                rule->file.c_str(), rule->line);
  }
  std::printf("# markers only; the agent resolves the %zu secret_refs it is entitled to\n%s",
              compiled->entitlement.size(), text.c_str());
  return kExitOk;
}

constexpr Verb kConfigVerbs[] = {
    {"validate", ConfigValidate, "load the stacks against the backend; every error"}};
constexpr Verb kBundleVerbs[] = {
    {"show", BundleShow, "--envoy NAME: the bundle an envoy would receive"}};

}  // namespace

int RunConfig(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("config", kConfigVerbs, ctx, args);
}

int RunBundle(const CliContext& ctx, const std::vector<std::string>& args) {
  return DispatchVerbs("bundle", kBundleVerbs, ctx, args);
}

int RunWhoNeeds(const CliContext& ctx, const std::vector<std::string>& args) {
  ParsedArgs parsed;
  if (int rc = ParseVerb(kWhoNeedsSpec, args, "who-needs", &parsed); rc >= 0) return rc;
  const ParsedArgs* a = &parsed;
  std::vector<std::string> envoys = a->GetAll("envoy");
  const std::string& path = a->positional()[0];
  if (absl::Status st = ValidateSecretPath(path); !st.ok()) {
    return Usage("who-needs", StrCat("PATH: ", st.message()));
  }
  for (const std::string& e : envoys) {
    if (absl::Status st = vocab::ValidateEnvoyName(e); !st.ok()) {
      return Usage("who-needs", StrCat("--envoy '", e, "': ", st.message()));
    }
  }
  int code = kExitOk;
  auto loaded = LoadStacks(ctx, "who-needs", false, &code);
  if (!loaded) return code;
  auto registry = OpenRegistry(loaded->config);
  if (!registry.ok()) return Fail("who-needs", registry.status());
  {
    std::set<std::string> all(envoys.begin(), envoys.end());
    all.insert(registry->envoys.begin(), registry->envoys.end());
    envoys.assign(all.begin(), all.end());
  }

  std::vector<std::string> lines;
  std::vector<const server::EnvoyRuleInfo*> rules;
  for (const server::EnvoyRuleInfo& r : loaded->stacks->Rules()) {
    if (r.references.count(path)) rules.push_back(&r);
  }
  std::vector<std::string> needing;
  for (const std::string& e : envoys) {
    auto b = loaded->stacks->Compile(e, 0);
    if (absl::IsNotFound(b.status())) continue;  // no rule: no bundle, no references
    if (!b.ok()) return Fail("who-needs", b.status());
    if (b->entitlement.count(path)) needing.push_back(e);
  }
  if (ctx.json) {
    for (const std::string& e : needing) {
      auto r = loaded->stacks->RuleFor(e);
      std::printf("{\"kind\":\"envoy\",\"envoy\":%s,\"path\":%s,\"rule\":%s}\n",
                  JsonString(e).c_str(), JsonString(path).c_str(),
                  JsonString(r.ok() ? r->match : "").c_str());
    }
    for (const server::EnvoyRuleInfo* r : rules) {
      std::printf("{\"kind\":\"rule\",\"match\":%s,\"file\":%s,\"line\":%d,\"path\":%s}\n",
                  JsonString(r->match).c_str(), JsonString(r->file).c_str(), r->line,
                  JsonString(path).c_str());
    }
    return kExitOk;
  }
  if (!envoys.empty()) {
    std::printf("envoys whose bundle references %s (%zu checked%s):\n", path.c_str(), envoys.size(),
                registry->present ? ", issued envoys included" : "");
    for (const std::string& e : needing) std::printf("  %s\n", e.c_str());
    if (needing.empty()) std::printf("  (none of the %zu checked)\n", envoys.size());
  }
  std::printf("rules whose envoys' bundles reference %s:\n", path.c_str());
  for (const server::EnvoyRuleInfo* r : rules) {
    std::printf("  %-24s stacks/%s:%d\n", r->match.c_str(), r->file.c_str(), r->line);
  }
  if (rules.empty()) std::printf("  (none: no rule's bundle references it)\n");
  return kExitOk;
}

}  // namespace vigo::cli
