// A small, strict argv parser shared by the four binaries and their
// subcommands. Unknown flags and missing values are usage errors (exit 2).
//
//   ArgSpec spec{"vigocli secrets set PATH", "Store a secret value.",
//                {{"from-file", true, "read the value from FILE"}}};
//   VIGO_ASSIGN_OR_RETURN(ParsedArgs a, ParseArgs(spec, args));
//   if (a.Has("from-file")) ... a.Get("from-file") ... a.positional()[0]
//
// `--flag value` and `--flag=value` are accepted; "--" ends flags. "--help"
// and "-h" are always recognised (ParsedArgs::help()). A flag given twice
// keeps its last value for Get(); GetAll() returns every value in order (for
// repeatable flags such as `vigo --hide PATH`). With `echo_arguments` false
// an error says "argument 3 (17 bytes)" instead of quoting the argument.
#ifndef VIGO_COMMON_ARGS_H_
#define VIGO_COMMON_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vigo {

struct FlagSpec {
  std::string name;      // without leading dashes
  bool takes_value = false;
  std::string help;
};

struct ArgSpec {
  std::string usage;     // e.g. "vigocli secrets set PATH [--from-file F]"
  std::string summary;   // one line
  std::vector<FlagSpec> flags;
  size_t min_positional = 0;
  size_t max_positional = 0;
  // false: errors name a refused argument by position and length, never its
  // text (verbs that handle secrets: a value pasted on argv must not be
  // repeated on stderr).
  bool echo_arguments = true;
};

class ParsedArgs {
 public:
  bool help() const { return help_; }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  // Every value given for `name`, in command-line order (empty if none).
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const ArgSpec&, const std::vector<std::string>&);
  bool help_ = false;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_values_;
  std::vector<std::string> positional_;
};

// INVALID_ARGUMENT naming the bad flag or the positional count problem.
absl::StatusOr<ParsedArgs> ParseArgs(const ArgSpec& spec, const std::vector<std::string>& args);

// The --help text for `spec`.
std::string HelpText(const ArgSpec& spec);

inline constexpr const char* kVigoVersion = "0.1.0";

}  // namespace vigo

#endif  // VIGO_COMMON_ARGS_H_
