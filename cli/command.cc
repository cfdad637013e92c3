#include "cli/command.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "common/exit_codes.h"
#include "common/strings.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace vigo::cli {
namespace {

void PrintLine(std::string_view cmd, std::string_view message) {
  std::fprintf(stderr, "vigocli %.*s: %.*s\n", static_cast<int>(cmd.size()), cmd.data(),
               static_cast<int>(message.size()), message.data());
}

// Debian's Abseil has its own string_view.
std::string_view MessageOf(const absl::Status& st) {
  return std::string_view(st.message().data(), st.message().size());
}

}  // namespace

int DispatchVerbs(std::string_view group, std::span<const Verb> verbs, const CliContext& ctx,
                  const std::vector<std::string>& args) {
  const int g = static_cast<int>(group.size());
  auto usage = [&](std::FILE* out) {
    std::fprintf(out, "usage: vigocli %.*s VERB ...\n\nverbs:\n", g, group.data());
    for (const Verb& v : verbs) std::fprintf(out, "  %-9s %s\n", v.name, v.summary);
    std::fprintf(out, "\nvigocli %.*s VERB --help shows a verb's flags.\n", g, group.data());
  };
  if (args.empty()) {
    usage(stderr);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    usage(stdout);
    return kExitOk;
  }
  for (const Verb& v : verbs) {
    if (args[0] == v.name) {
      return v.run(ctx, std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  // The verb is not repeated: a group's first argument may be a value typed
  // in the wrong place.
  std::fprintf(stderr, "vigocli %.*s: unknown verb (%zu bytes; see vigocli %.*s --help)\n", g,
               group.data(), args[0].size(), g, group.data());
  return kExitUsage;
}

int Fail(std::string_view cmd, const absl::Status& st) {
  PrintLine(cmd, MessageOf(st));
  return ExitCodeFor(st);
}

int Fail(std::string_view cmd, std::string_view message) {
  PrintLine(cmd, message);
  return kExitError;
}

int Usage(std::string_view cmd, std::string_view message) {
  PrintLine(cmd, message);
  return kExitUsage;
}

int ParseVerb(const ArgSpec& spec, const std::vector<std::string>& args, std::string_view cmd,
              ParsedArgs* out) {
  auto a = ParseArgs(spec, args);
  if (!a.ok()) {
    PrintLine(cmd, MessageOf(a.status()));
    std::fprintf(stderr, "see `vigocli %.*s --help`\n", static_cast<int>(cmd.size()), cmd.data());
    return kExitUsage;
  }
  if (a->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  *out = std::move(a).value();
  return -1;
}

absl::StatusOr<OpenedStore> OpenStore(const CliContext& ctx) {
  OpenedStore o;
  if (absl::Status st = RequireDataRoot(ctx.root); !st.ok()) return st;
  auto cfg = server::LoadServerConfig(ctx.root);
  if (!cfg.ok()) return cfg.status();
  o.cfg = *cfg;
  auto db = OpenExistingDatabase(o.cfg);
  if (!db.ok()) return db.status();
  o.db = std::move(*db);
  o.store = std::make_unique<server::service::ServerStore>(o.db.get());
  if (absl::Status st = o.store->Init(); !st.ok()) return st;
  return o;
}

std::string JsonString(std::string_view s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(sb.GetString(), sb.GetSize());
}

std::string IsoTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Actor() { return StrCat("uid:", static_cast<int64_t>(::geteuid())); }

}  // namespace vigo::cli
