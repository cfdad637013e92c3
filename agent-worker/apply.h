// The worker's apply engine: converges one PolicyBundle on this machine.
//
//   MapValueSource values;                          // or the IPC-backed source
//   ApplyOptions opts{.apply_root = "/tmp/stage"};
//   ApplyEngine engine(opts);
//   std::vector<v1::ResourceResult> results = engine.Apply(bundle, values);
//   values.Clear();                                 // wipe before reporting
//
// Resource semantics (CONTRACT §4, §7):
//  - file: content markers are substituted at write time into a SecretBuffer.
//    A changed file is written to an anonymous O_TMPFILE inode (fallback: a
//    0600 temp file in the target directory), chowned and chmodded before any
//    byte of content is written, made durable, linked/renamed over the target
//    and the directory fsynced: the target never exists with a wrong mode or
//    partial content. Durability is batched (one syncfs per file system for
//    up to 128 files, then their links, then one fsync per directory; flushed
//    before any exec or dependent and at the end, always before results are
//    returned; see FlushWrites in apply.cc for the argument). A file whose
//    data or directory cannot be made durable is reported failed. Unchanged
//    content (byte comparison in locked memory) means no write; only
//    owner/mode are fixed then.
//  - directory: created (parents 0755) and owner/mode converged.
//  - exec: argv without a shell, clean environment (PATH plus the declared
//    variables), stdin from a literal or a secret, secret_file as a 0600 file
//    substituted for {{ .SecretFile }} and removed afterwards, `creates`,
//    timeout killing the process group. Every command loads the exec-child
//    seccomp layer before execve (see exec_runner.h); if it cannot be
//    prepared or loaded the resource fails and the command does not run.
//    `confine:` (exec_confine.h) adds a Landlock write domain and/or the
//    no-network layer; when either cannot be built or loaded (no Landlock
//    on the kernel, a missing or symlinked writable path) the resource
//    fails and the command does not run.
//    Output is scrubbed of every value
//    (raw, hex, base64, URL-encoded) before it reaches a result message.
//  - depends_on: a dependent of a failed or blocked resource is "blocked".
//  - `apply_root` prefixes target_path, creates and cwd. Targets are resolved
//    below it from an fd of the root, never through a link (fs_ops.h): a
//    symlink on a target's path fails that resource naming the link.
//  - A target without owner/group is root's (uid 0, gid 0; a set-group-ID
//    parent's group), whatever uid the worker applies as.
//
// Results hold no values: secret-bearing content changes are described by
// keyed fingerprints (HMAC-SHA256 under a per-engine random key).
//
// Thread safety: one Apply at a time per engine.
#ifndef VIGO_AGENT_WORKER_APPLY_H_
#define VIGO_AGENT_WORKER_APPLY_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent-worker/fs_ops.h"
#include "sandbox/lockdown.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/unique_fd.h"
#include "vigo/v1/agent.pb.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::worker {

// Where values come from during an apply. Get returns a buffer borrowed until
// Clear(); implementations cache per run.
class ValueSource {
 public:
  virtual ~ValueSource() = default;
  virtual absl::StatusOr<const sandbox::SecretBuffer*> Get(std::string_view path) = 0;
  // Every value handed out so far (for scrubbing exec output).
  virtual std::vector<const sandbox::SecretBuffer*> Resolved() const = 0;
  // Zeroes and forgets every value.
  virtual void Clear() = 0;
};

// A ValueSource over an in-memory map (tests, benchmarks).
class MapValueSource : public ValueSource {
 public:
  absl::Status Put(std::string path, std::span<const uint8_t> value);
  absl::StatusOr<const sandbox::SecretBuffer*> Get(std::string_view path) override;
  std::vector<const sandbox::SecretBuffer*> Resolved() const override;
  void Clear() override { values_.clear(); }

 private:
  std::map<std::string, sandbox::SecretBuffer, std::less<>> values_;
};

struct ApplyOptions {
  std::string apply_root;  // "" = real paths
  uint32_t default_timeout_seconds = 300;
  // Directory for exec secret_file temp files ("" = <apply_root>/tmp if it
  // exists, else /tmp).
  std::string secret_file_dir;
  // Bytes of exec output kept (tail) for failure messages.
  size_t max_output_bytes = 64 * 1024;
  // The exec-child filter, compiled once (PrepareExecChildSeal). Null: the
  // engine compiles it at the first exec resource (a failure fails that
  // resource). vigo-worker compiles it before its own lockdown.
  std::shared_ptr<const sandbox::ExecChildSeal> exec_child_seal;
  // Set in the applier (agent-worker/applier.h): exec resources are not run
  // here but handed to this function (the worker runs them). `before` is the
  // result of every resource ahead of it, final (writes are flushed before a
  // command): the applier reports them first, so the worker can refuse a
  // command whose dependency did not converge.
  std::function<v1::ResourceResult(const v1::Resource&,
                                   const std::vector<v1::ResourceResult>& before)>
      exec_delegate;
  // A process a timed-out command's clean-up must not kill (the applier,
  // when the worker runs an exec for it). 0: none.
  pid_t spare_pid = 0;
};

// Wipes and removes exec secret_file dirs ("vigo-secret.*") in `dir` whose
// worker is gone (nobody holds the flock on their `lock` file): a worker
// killed mid-exec cannot clean up itself. Live workers' dirs are never
// touched; entries that are not real directories (a symlink planted with a
// matching name) are skipped, and nothing inside is followed. Returns how
// many were removed.
int SweepStaleSecretFiles(const std::string& dir);
// The same on an open directory (borrowed): the form the engine uses, with
// <apply-root>/tmp opened below the root without following a link.
int SweepStaleSecretFilesAt(int dir_fd);

class ApplyEngine {
 public:
  explicit ApplyEngine(ApplyOptions options);
  ~ApplyEngine();
  ApplyEngine(const ApplyEngine&) = delete;
  ApplyEngine& operator=(const ApplyEngine&) = delete;

  std::vector<v1::ResourceResult> Apply(const v1::PolicyBundle& bundle, ValueSource& values);

  // The launcher's side of agent-worker/applier.h: BeginExecs opens the
  // apply root and records the bundle's refs (for scrubbing), then RunExec
  // runs one exec resource of that bundle as Apply would.
  void BeginExecs(const v1::PolicyBundle& bundle);
  v1::ResourceResult RunExec(const v1::Resource& r, ValueSource& values) {
    return ApplyExec(r, values);
  }
  void set_spare_pid(pid_t pid) { options_.spare_pid = pid; }

  // "ok" | "changed" | "failed" for a list of results.
  static std::string Outcome(const std::vector<v1::ResourceResult>& results);

 private:
  v1::ResourceResult ApplyOne(const v1::Resource& r, ValueSource& values);
  v1::ResourceResult ApplyFile(const v1::Resource& r, ValueSource& values);
  v1::ResourceResult ApplyDirectory(const v1::Resource& r);
  v1::ResourceResult ApplyExec(const v1::Resource& r, ValueSource& values);
  absl::StatusOr<std::string> Rooted(std::string_view path, std::string_view what) const;
  // A target below the apply root (root_fd_), for the fd-relative fs_ops.
  absl::StatusOr<TargetPath> Target(std::string_view path, std::string_view what) const;
  std::string Fingerprint(std::span<const uint8_t> bytes) const;

  // Files whose content is written but not yet durable/visible; flushed
  // (one syncfs, then link/rename each) before an exec, before a dependent,
  // every kMaxPendingWrites files, and at the end of the apply.
  struct Pending;
  void FlushWrites(std::vector<v1::ResourceResult>* results,
                   std::set<std::string, std::less<>>* not_converged);
  std::vector<std::unique_ptr<Pending>> pending_;
  size_t current_index_ = 0;
  // The results of the Apply in progress (exec_delegate's `before`).
  const std::vector<v1::ResourceResult>* applied_ = nullptr;
  // The entitlement of the bundle being applied: exec output is scrubbed of
  // every one of these values, not only those resolved so far (a command may
  // print a file an earlier run wrote).
  std::vector<std::string> bundle_refs_;
  // The bundle's redaction window (0 = the default); the scrubber clamps it
  // to at least kMinRedactionWindow.
  size_t redaction_window_ = 0;
  // secret_file base dirs already swept of dead workers' leftovers.
  std::set<std::string> swept_dirs_;

  ApplyOptions options_;
  // The apply root ("/" when none), opened at the start of each Apply.
  sandbox::UniqueFd root_fd_;
  sandbox::SecretBuffer fingerprint_key_;
  // Directories that received a link or a new subdirectory; fsynced by
  // FlushWrites before results are returned.
  std::set<std::string> dirs_to_sync_;
};

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_APPLY_H_
