#include "server/service/audit_writer.h"

#include <utility>
#include <vector>

namespace vigo::server::service {

AuditWriter::AuditWriter(AuditLog* log) : log_(log), thread_([this] { Loop(); }) {}

AuditWriter::~AuditWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::future<absl::Status> AuditWriter::Submit(AuditEvent event) {
  std::promise<absl::Status> done;
  std::future<absl::Status> result = done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) {
      done.set_value(absl::UnavailableError("audit writer is shutting down"));
      return result;
    }
    queue_.push_back({std::move(event), std::move(done)});
  }
  cv_.notify_one();
  return result;
}

size_t AuditWriter::max_batch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_batch_;
}

void AuditWriter::Loop() {
  while (true) {
    std::deque<Pending> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      batch.swap(queue_);
      if (batch.size() > max_batch_) max_batch_ = batch.size();
    }
    std::vector<AuditEvent> events;
    events.reserve(batch.size());
    for (Pending& p : batch) events.push_back(std::move(p.event));
    const absl::Status st = log_->AppendBatch(events);
    for (Pending& p : batch) p.done.set_value(st);
  }
}

}  // namespace vigo::server::service
