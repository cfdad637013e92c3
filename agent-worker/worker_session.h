// The worker's side of the broker protocol (common/ipc/agent_ipc.h): say
// hello, then for every bundle the broker sends: apply it, resolving values
// in batches over the socketpair, wipe every value, report, wait for done.
//
//   ipc::Channel ch(sandbox::UniqueFd(ipc::kWorkerSocketFd));
//   WorkerSession session(std::move(ch), ApplyOptions{.apply_root = root});
//   absl::Status s = session.Run(hello_report);   // returns when the broker hangs up
//
// SECURITY: the worker asks only for refs in the current bundle's secret_refs
// (the broker re-checks anyway). Every value buffer is zeroed before the
// report is sent. Any protocol error from the broker ends the session.
#ifndef VIGO_AGENT_WORKER_WORKER_SESSION_H_
#define VIGO_AGENT_WORKER_WORKER_SESSION_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent-worker/applier.h"
#include "agent-worker/apply.h"
#include "common/ipc/agent_ipc.h"
#include "vigo/v1/bundle.pb.h"
#include "vigo/v1/worker_ipc.pb.h"

namespace vigo::worker {

// A ValueSource that asks the broker and caches the answers for the current
// run only. A miss asks for that ref and up to kMaxRefsPerBatch - 1 other
// not-yet-fetched refs of the bundle in one kResolveBatch → kValues round trip.
class IpcValueSource : public ValueSource {
 public:
  IpcValueSource(ipc::Channel& channel, ipc::PhaseTable& phases, std::set<std::string> allowed)
      : channel_(channel), phases_(phases), allowed_(std::move(allowed)) {}
  absl::StatusOr<const sandbox::SecretBuffer*> Get(std::string_view path) override;
  std::vector<const sandbox::SecretBuffer*> Resolved() const override;
  void Clear() override { cache_.clear(); }
  // The first channel/protocol failure, if any (the session then ends).
  const absl::Status& broken() const { return broken_; }

 private:
  ipc::Channel& channel_;
  ipc::PhaseTable& phases_;
  std::set<std::string> allowed_;
  std::map<std::string, sandbox::SecretBuffer, std::less<>> cache_;
  absl::Status broken_;
};

// The kReport message for one run: `results` copied into a WorkerReport
// (proto/vigo/v1/worker_ipc.proto). Every text is made valid UTF-8
// (common/utf8_text.h ValidUtf8Text; exec output already is, see
// ScrubOutputAsText) and each message is cut to ipc::kMaxResultMessageBytes
// at a character boundary, so the broker's checks hold for any content.
v1::WorkerReport BuildWorkerReport(std::vector<v1::ResourceResult> results, int64_t started_unix_ms,
                                   int64_t finished_unix_ms);

class WorkerSession {
 public:
  // Each bundle is applied by a forked applier (agent-worker/applier.h)
  // configured by `applier`; this process runs its exec resources with
  // `applier.apply`.
  WorkerSession(ipc::Channel channel, ApplierSpec applier)
      : channel_(std::move(channel)), applier_(applier), engine_(applier.apply) {}

  // Sends kHello with `hello` (serialized AttestationReport), then serves runs
  // until the broker closes the socket (OK) or a protocol/channel error.
  absl::Status Run(const std::string& hello);

 private:
  absl::Status RunOne(const std::vector<uint8_t>& bundle_bytes);

  ipc::Channel channel_;
  ipc::PhaseTable phases_;
  ApplierSpec applier_;
  ApplyEngine engine_;  // the launcher's: exec resources only
};

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_WORKER_SESSION_H_
