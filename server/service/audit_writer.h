// Group-committing writer for the server's audit log.
//
//   AuditWriter w(&audit_log);                      // starts one thread
//   std::future<absl::Status> done = w.Submit(ev);  // returns at once
//   ... other work (reading and sealing values) ...
//   if (!done.get().ok()) { /* nothing may be released */ }
//
// Every Submit is answered exactly once. The thread takes everything queued,
// appends it with AuditLog::AppendBatch (one transaction, one commit) and
// then fulfils each future with that commit's status, so concurrent calls
// share one fsync. A future resolves OK only after its record is committed
// (durable to the level of `database.synchronous`). On failure every event of
// the batch gets the error and none is written (the transaction rolls back).
//
// SECURITY: callers that release something "after auditing" must wait on the
// future and act on its status; Submit alone proves nothing. Events carry no
// values (see AuditEvent).
//
// Thread safety: Submit/Append may be called from any thread. The destructor
// drains the queue (each pending event is still written) and joins.
#ifndef VIGO_SERVER_SERVICE_AUDIT_WRITER_H_
#define VIGO_SERVER_SERVICE_AUDIT_WRITER_H_

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "server/audit.h"

namespace vigo::server::service {

class AuditWriter {
 public:
  // Borrows `log`, which must outlive the writer and be used by no one else.
  explicit AuditWriter(AuditLog* log);
  ~AuditWriter();
  AuditWriter(const AuditWriter&) = delete;
  AuditWriter& operator=(const AuditWriter&) = delete;

  std::future<absl::Status> Submit(AuditEvent event);
  // Submit and wait.
  absl::Status Append(AuditEvent event) { return Submit(std::move(event)).get(); }

  // Largest batch committed so far (for tests and benchmarks).
  size_t max_batch() const;

 private:
  struct Pending {
    AuditEvent event;
    std::promise<absl::Status> done;
  };
  void Loop();

  AuditLog* log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // under mu_
  bool stop_ = false;          // under mu_
  size_t max_batch_ = 0;       // under mu_
  std::thread thread_;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_AUDIT_WRITER_H_
