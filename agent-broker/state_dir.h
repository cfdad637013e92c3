// The agent's state directory (default /var/lib/vigo, mode 0700). It never
// holds a value:
//   bundle.json       the last bundle (PolicyBundle as JSON: markers only)
//   last_run.json     the last run: ids, digest, epoch, outcome, per-resource results
//   attestation.json  the broker's and worker's attestation reports
//   agent.lock        flock(2) held by the one agent using the dir; its pid
// Files are 0600. Without OpenForWriting they are written via temp file +
// rename + fsync. The locked-down broker may not create files (its seccomp
// filter allows read-only opens only), so the agent calls OpenForWriting
// before lockdown and later rewrites those fds in place, padding with spaces
// (JSON whitespace) when the new content is shorter; readers trim. A crash
// mid-write leaves an unparsable file, which is treated as absent.
#ifndef VIGO_AGENT_BROKER_STATE_DIR_H_
#define VIGO_AGENT_BROKER_STATE_DIR_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"
#include "vigo/v1/agent.pb.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::broker {

class StateDir {
 public:
  explicit StateDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& path() const { return dir_; }

  // Creates the directory (0700) when missing.
  absl::Status Ensure() const;
  // Takes the state dir for this process: an exclusive flock(2) on
  // `agent.lock` (created 0600), held until the process exits, with this
  // process's pid written into it. One agent per state dir: a second one
  // (a daemon plus an operator's `run --once`) would race the same state
  // files and apply root. When another process holds the lock this returns
  // FAILED_PRECONDITION at once naming the directory and the holder's pid;
  // it does not wait: the holder is usually a daemon that keeps the lock for
  // its whole life, so waiting would only delay the same answer. Call before
  // OpenForWriting (and before lockdown: it creates a file).
  absl::Status Lock();
  // Opens (creating, 0600) every state file for later in-place writes.
  absl::Status OpenForWriting();
  // The fds Lock and OpenForWriting hold (to keep across lockdown).
  std::vector<int> fds() const;

  // NOT_FOUND when there is no cached bundle.
  absl::StatusOr<v1::PolicyBundle> LoadBundle() const;
  absl::Status SaveBundle(const v1::PolicyBundle& bundle) const;

  absl::Status SaveLastRun(const v1::ReportResultRequest& run) const;
  absl::StatusOr<std::string> LoadLastRunJson() const;

  absl::Status SaveAttestation(const std::vector<v1::AttestationReport>& reports) const;
  absl::StatusOr<std::string> LoadAttestationJson() const;

 private:
  absl::Status WriteAtomic(const std::string& name, const std::string& data) const;
  absl::StatusOr<std::string> Read(const std::string& name) const;
  std::string dir_;
  std::map<std::string, std::shared_ptr<sandbox::UniqueFd>> fds_;
  // Shared by copies (Agent holds one): the lock lives as long as any copy.
  std::shared_ptr<sandbox::UniqueFd> lock_fd_;
};

// Message → one-line JSON (protobuf's JSON mapping).
std::string ToJson(const google::protobuf::Message& m);

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_STATE_DIR_H_
