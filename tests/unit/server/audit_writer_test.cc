// AuditWriter: group commit of audit records, failure propagation to every
// waiter of a failed batch, and draining on destruction.
#include "server/service/audit_writer.h"

#include <sqlite3.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/db.h"
#include "tests/support/test_env.h"

namespace vigo::server::service {
namespace {

using vigo::testing::TempDir;

AuditEvent Ev(std::string event, std::string actor) {
  AuditEvent e;
  e.event = std::move(event);
  e.actor = std::move(actor);
  e.paths = {"app/db_password"};
  return e;
}

class AuditWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = tmp_.path() / "db" / "vigo.db";
    auto db = Database::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(db).value();
    log_ = std::make_unique<AuditLog>(db_.get());
    ASSERT_TRUE(log_->Append(Ev("config.reload", "server")).ok());  // creates the table
  }
  int64_t Records() {
    auto v = log_->Verify();
    EXPECT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(v->ok) << v->problem;
    return v->records;
  }
  TempDir tmp_;
  std::filesystem::path path_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditWriterTest, ConcurrentSubmittersAllCommitOnOneChain) {
  AuditWriter writer(log_.get());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        if (!writer.Append(Ev("secret.resolve", "envoy:e" + std::to_string(t))).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Records(), 1 + 8 * 25);
}

TEST_F(AuditWriterTest, EventsQueuedWhileTheDatabaseIsBusyShareACommit) {
  AuditWriter writer(log_.get());
  std::vector<std::future<absl::Status>> done;
  {
    // Hold the database as a slow commit would; everything submitted now
    // waits and is then written in at most two transactions.
    std::lock_guard<std::mutex> busy(db_->mu());
    for (int i = 0; i < 10; ++i) done.push_back(writer.Submit(Ev("secret.resolve", "envoy:x")));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& f : done) EXPECT_TRUE(f.get().ok());
  EXPECT_GE(writer.max_batch(), 5u);
  EXPECT_EQ(Records(), 11);
}

TEST_F(AuditWriterTest, AFailedCommitIsReportedToItsWaiterAndTheWriterGoesOn) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TRIGGER boom BEFORE INSERT ON audit WHEN NEW.event = 'boom' "
                         "BEGIN SELECT RAISE(ABORT, 'refused'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  AuditWriter writer(log_.get());
  EXPECT_FALSE(writer.Append(Ev("boom", "envoy:x")).ok());
  EXPECT_TRUE(writer.Append(Ev("secret.resolve", "envoy:y")).ok());
  EXPECT_EQ(Records(), 2);
}

TEST_F(AuditWriterTest, DestructionWritesEverythingAlreadySubmitted) {
  std::vector<std::future<absl::Status>> done;
  {
    AuditWriter writer(log_.get());
    for (int i = 0; i < 20; ++i) done.push_back(writer.Submit(Ev("secret.resolve", "envoy:z")));
  }
  for (auto& f : done) EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(Records(), 21);
}

}  // namespace
}  // namespace vigo::server::service
