#include "cli/secret_input.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::cli {

using sandbox::SecretBuffer;

absl::Status WriteAllFd(int fd, std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sandbox::ErrnoStatus(errno, "write", "stdout");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- input

absl::StatusOr<SecretBuffer> ReadAllSecret(int fd, size_t limit, std::string_view what) {
  VIGO_ASSIGN_OR_RETURN(SecretBuffer buf, SecretBuffer::Create(std::min<size_t>(4096, limit + 1)));
  size_t used = 0;
  while (true) {
    if (used == buf.size()) {
      if (buf.size() > limit) {
        return absl::InvalidArgumentError(
            StrCat(what, " is larger than the limit of ", limit, " bytes"));
      }
      VIGO_RETURN_IF_ERROR(buf.Resize(std::min(buf.size() * 2, limit + 1)));
    }
    std::span<uint8_t> w = buf.RevealMutable();
    ssize_t n = ::read(fd, w.data() + used, w.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sandbox::ErrnoStatus(errno, "read", what);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > limit) {
    return absl::InvalidArgumentError(
        StrCat(what, " is larger than the limit of ", limit, " bytes"));
  }
  VIGO_RETURN_IF_ERROR(buf.Resize(used));
  return buf;
}

absl::Status DropOneTrailingNewline(SecretBuffer* buf) {
  std::span<const uint8_t> b = buf->Reveal();
  if (!b.empty() && b.back() == '\n') return buf->Resize(b.size() - 1);
  return absl::OkStatus();
}

absl::StatusOr<SecretBuffer> ReadFileSecret(const std::string& file, size_t limit,
                                            std::string_view what) {
  sandbox::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sandbox::ErrnoStatus(errno, StrCat("open ", what, " file"), file);
  return ReadAllSecret(fd.get(), limit, StrCat(what, " file ", file));
}

namespace {

// The signal that interrupted a no-echo prompt (0: none).
volatile sig_atomic_t g_prompt_signal = 0;
void OnPromptSignal(int sig) { g_prompt_signal = sig; }

// Signals that would otherwise end or stop the process with echo still off.
constexpr int kPromptSignals[] = {SIGINT,  SIGTERM, SIGQUIT, SIGHUP, SIGALRM,
                                  SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};

}  // namespace

// Reads one line from the controlling terminal with echo off. On a signal
// (Ctrl-C, Ctrl-Z, kill) the terminal settings are restored first, the typed
// bytes wiped, and then the signal is re-raised with its previous disposition
// (OpenSSH readpassphrase(3) does the same).
absl::StatusOr<SecretBuffer> PromptNoEcho(std::string_view prompt, size_t limit) {
  sandbox::UniqueFd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!tty) return absl::FailedPreconditionError("no terminal to prompt on; use a file or stdin");
  termios old{};
  if (::tcgetattr(tty.get(), &old) != 0) {
    return absl::FailedPreconditionError("cannot read terminal settings");
  }
  g_prompt_signal = 0;
  struct sigaction on_signal {};
  on_signal.sa_handler = OnPromptSignal;
  sigemptyset(&on_signal.sa_mask);
  on_signal.sa_flags = 0;  // no SA_RESTART: read() returns EINTR
  struct sigaction saved[std::size(kPromptSignals)] = {};
  for (size_t i = 0; i < std::size(kPromptSignals); ++i) {
    ::sigaction(kPromptSignals[i], &on_signal, &saved[i]);
    // A signal the caller ignores (nohup: SIGHUP) stays ignored.
    if (saved[i].sa_handler == SIG_IGN) ::sigaction(kPromptSignals[i], &saved[i], nullptr);
  }
  // The prompt signals stay blocked except inside ppoll(), which unblocks
  // them atomically while it waits: a signal can never land between the
  // flag check and the wait (and leave the prompt waiting for a keystroke).
  sigset_t prompt_set, outside;
  sigemptyset(&prompt_set);
  for (int sig : kPromptSignals) sigaddset(&prompt_set, sig);
  ::sigprocmask(SIG_BLOCK, &prompt_set, &outside);
  auto restore_handlers = [&] {
    for (size_t i = 0; i < std::size(kPromptSignals); ++i) {
      ::sigaction(kPromptSignals[i], &saved[i], nullptr);
    }
    ::sigprocmask(SIG_SETMASK, &outside, nullptr);
  };
  termios noecho = old;
  noecho.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  noecho.c_lflag |= ECHONL;
  if (::tcsetattr(tty.get(), TCSAFLUSH, &noecho) != 0) {
    restore_handlers();
    return absl::FailedPreconditionError("cannot turn terminal echo off");
  }
  if (::write(tty.get(), prompt.data(), prompt.size()) < 0) {
    // The prompt is cosmetic; reading still works.
  }
  absl::StatusOr<SecretBuffer> out = SecretBuffer::Create(limit);
  size_t used = 0;
  absl::Status st;
  if (out.ok()) {
    std::span<uint8_t> w = out->RevealMutable();
    while (g_prompt_signal == 0) {
      struct pollfd p = {tty.get(), POLLIN, 0};
      if (::ppoll(&p, 1, nullptr, &outside) < 0) {
        if (errno == EINTR) continue;  // the loop condition sees a caught signal
        break;
      }
      uint8_t c = 0;
      ssize_t n = ::read(tty.get(), &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || c == '\n') break;
      if (used == w.size()) {
        st = absl::InvalidArgumentError(StrCat("input is longer than ", limit, " bytes"));
        break;
      }
      w[used++] = c;
      c = 0;
    }
  }
  ::tcsetattr(tty.get(), TCSAFLUSH, &old);
  if (g_prompt_signal != 0 && ::write(tty.get(), "\n", 1) < 0) {
    // Cosmetic: end the prompt line after an interruption.
  }
  restore_handlers();
  if (const int sig = g_prompt_signal; sig != 0) {
    out = absl::CancelledError("interrupted");  // wipes what was typed
    ::raise(sig);  // the previous disposition: usually ends or stops the process
    return absl::CancelledError(StrCat("prompt interrupted by signal ", sig));
  }
  if (!out.ok()) return out.status();
  VIGO_RETURN_IF_ERROR(st);
  VIGO_RETURN_IF_ERROR(out->Resize(used));
  return out;
}

absl::StatusOr<SecretBuffer> ReadPassphrase(const ParsedArgs& a, bool confirm) {
  absl::StatusOr<SecretBuffer> pass;
  if (a.Has("passphrase-file")) {
    pass = ReadFileSecret(*a.Get("passphrase-file"), kMaxPassphraseBytes, "passphrase");
    if (pass.ok()) VIGO_RETURN_IF_ERROR(DropOneTrailingNewline(&*pass));
  } else if (!::isatty(STDIN_FILENO)) {
    pass = ReadAllSecret(STDIN_FILENO, kMaxPassphraseBytes, "passphrase on stdin");
    if (pass.ok()) VIGO_RETURN_IF_ERROR(DropOneTrailingNewline(&*pass));
  } else {
    pass = PromptNoEcho("Passphrase: ", kMaxPassphraseBytes);
    if (pass.ok() && confirm) {
      VIGO_ASSIGN_OR_RETURN(SecretBuffer again,
                            PromptNoEcho("Repeat passphrase: ", kMaxPassphraseBytes));
      if (!again.ConstantTimeEquals(*pass)) {
        return absl::InvalidArgumentError("the two passphrases differ");
      }
    }
  }
  if (pass.ok() && pass->empty()) return absl::InvalidArgumentError("the passphrase is empty");
  return pass;
}

}  // namespace vigo::cli
