// The one logger. Values can never be logged: a LogField cannot be built from
// a SecretBuffer (compile-time error), and callers pass paths and names only.
//
//   Log(LogLevel::kInfo, "checkin", {{"envoy", name}, {"digest", digest}});
//   // text: 2026-11-28T11:00:00.123Z INFO checkin envoy=web-1 digest=ab12...
//   // json: {"ts":"...","level":"info","msg":"checkin","envoy":"web-1",...}
//
// Thread-safe. Output goes to stderr unless SetLogFile() is called.
#ifndef VIGO_COMMON_LOG_H_
#define VIGO_COMMON_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError };

// Parses "trace|debug|info|warn|error".
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void SetLogJson(bool json);
// Appends to `path` (created 0600). Empty path = stderr.
absl::Status SetLogFile(const std::string& path);

class LogField {
 public:
  LogField(std::string_view key, std::string_view value) : key_(key), value_(value) {}
  LogField(std::string_view key, const std::string& value) : key_(key), value_(value) {}
  LogField(std::string_view key, const char* value) : key_(key), value_(value) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
  LogField(std::string_view key, T value) : key_(key), value_(std::to_string(value)) {}
  LogField(std::string_view key, const absl::Status& status)
      : key_(key), value_(status.ToString()) {}
  // SECURITY: secrets are not loggable.
  LogField(std::string_view key, const sandbox::SecretBuffer&) = delete;

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }

 private:
  std::string key_;
  std::string value_;
};

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

}  // namespace vigo

#endif  // VIGO_COMMON_LOG_H_
