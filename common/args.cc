#include "common/args.h"

#include <string_view>

#include "common/strings.h"

namespace vigo {

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  auto it = all_values_.find(name);
  if (it == all_values_.end()) return {};
  return it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(const ArgSpec& spec, const std::vector<std::string>& args) {
  ParsedArgs out;
  // How an error names args[i]: quoted, or by position and length only.
  auto arg = [&](size_t i, std::string_view quoted) {
    if (spec.echo_arguments) return StrCat("'", quoted, "'");
    return StrCat("(argument ", i + 1, ", ", args[i].size(), " bytes)");
  };
  size_t extra_at = 0;  // index in args of the first positional over the limit
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (flags_done || a.size() < 2 || a[0] != '-') {
      if (out.positional_.size() == spec.max_positional) extra_at = i;
      out.positional_.emplace_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      out.help_ = true;
      continue;
    }
    if (a.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(StrCat("unknown flag ", arg(i, a)));
    }
    std::string_view body = a.substr(2);
    std::string_view name = body;
    std::optional<std::string> inline_value;
    if (size_t eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      inline_value = std::string(body.substr(eq + 1));
    }
    const FlagSpec* flag = nullptr;
    for (const FlagSpec& f : spec.flags) {
      if (f.name == name) flag = &f;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(StrCat("unknown flag ", arg(i, StrCat("--", name))));
    }
    if (!flag->takes_value) {
      if (inline_value) {
        return absl::InvalidArgumentError(StrCat("flag '--", name, "' takes no value"));
      }
      out.values_[flag->name] = "";
      continue;
    }
    if (inline_value) {
      out.values_[flag->name] = *inline_value;
    } else if (i + 1 < args.size()) {
      out.values_[flag->name] = args[++i];
    } else {
      return absl::InvalidArgumentError(StrCat("flag '--", name, "' needs a value"));
    }
    out.all_values_[flag->name].push_back(out.values_[flag->name]);
  }
  if (!out.help_) {
    if (out.positional_.size() < spec.min_positional) {
      return absl::InvalidArgumentError(
          StrCat("missing argument; usage: ", spec.usage));
    }
    if (out.positional_.size() > spec.max_positional) {
      return absl::InvalidArgumentError(
          StrCat("unexpected argument ", arg(extra_at, out.positional_[spec.max_positional]),
                 "; usage: ", spec.usage));
    }
  }
  return out;
}

std::string HelpText(const ArgSpec& spec) {
  std::string out = StrCat("usage: ", spec.usage, "\n\n", spec.summary, "\n");
  if (!spec.flags.empty()) {
    StrAppend(&out, "\nflags:\n");
    for (const FlagSpec& f : spec.flags) {
      std::string left = StrCat("  --", f.name, f.takes_value ? " VALUE" : "");
      if (left.size() < 30) left.resize(30, ' ');
      StrAppend(&out, left, " ", f.help, "\n");
    }
  }
  StrAppend(&out, "  --help                       show this help\n");
  return out;
}

}  // namespace vigo
