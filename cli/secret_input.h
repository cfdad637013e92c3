// How vigocli reads a secret (a value, a passphrase) and writes one: read(2)
// straight into a SecretBuffer, write(2) straight from one, no stdio buffer
// copies, never from argv (CONTRACT §6). Errors name what was being read
// (`what`: "value on stdin", "passphrase file F"), never its content.
//
//   VIGO_ASSIGN_OR_RETURN(SecretBuffer pass, ReadPassphrase(args, /*confirm=*/false));
//
// Thread safety: plain functions; PromptNoEcho installs process-wide signal
// handlers for the length of the prompt (vigocli is single-threaded).
#ifndef VIGO_CLI_SECRET_INPUT_H_
#define VIGO_CLI_SECRET_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/args.h"
#include "sandbox/secret_buffer.h"

namespace vigo::cli {

inline constexpr size_t kMaxPassphraseBytes = 4096;

// Writes all of `bytes` to `fd` (EINTR retried); errors name stdout.
absl::Status WriteAllFd(int fd, std::span<const uint8_t> bytes);

// Reads everything from `fd` into a SecretBuffer, refusing more than `limit`
// bytes (INVALID_ARGUMENT naming `what`, never content).
absl::StatusOr<sandbox::SecretBuffer> ReadAllSecret(int fd, size_t limit, std::string_view what);
// All of `file` (opened O_RDONLY), as ReadAllSecret.
absl::StatusOr<sandbox::SecretBuffer> ReadFileSecret(const std::string& file, size_t limit,
                                                     std::string_view what);
// Drops one trailing '\n' (what `echo` and editors add).
absl::Status DropOneTrailingNewline(sandbox::SecretBuffer* buf);

// Reads one line from the controlling terminal with echo off. On a signal
// (Ctrl-C, Ctrl-Z, kill) the terminal settings are restored first, the typed
// bytes wiped, and then the signal is re-raised with its previous
// disposition (OpenSSH readpassphrase(3) does the same). FAILED_PRECONDITION
// without a terminal.
absl::StatusOr<sandbox::SecretBuffer> PromptNoEcho(std::string_view prompt, size_t limit);

// The passphrase: --passphrase-file, else stdin when it is not a terminal,
// else a prompt (twice when `confirm`, refused when the two differ). An
// empty passphrase is INVALID_ARGUMENT.
absl::StatusOr<sandbox::SecretBuffer> ReadPassphrase(const ParsedArgs& a, bool confirm);

}  // namespace vigo::cli

#endif  // VIGO_CLI_SECRET_INPUT_H_
