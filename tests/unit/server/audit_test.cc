// The hash-chained audit log: append, list, verify, and tamper detection of
// every stored column.
#include "server/audit.h"

#include <sqlite3.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "server/db.h"
#include "server/service/audit_writer.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

using ::testing::HasSubstr;
using vigo::testing::TempDir;

AuditEvent Ev(std::string event, std::string actor) {
  AuditEvent e;
  e.event = std::move(event);
  e.actor = std::move(actor);
  return e;
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = tmp_.path() / "db" / "vigo.db";
    auto db = Database::Create(path_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(db).value();
    log_ = std::make_unique<AuditLog>(db_.get());
  }
  void AppendN(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(log_->Append({.event = "secret.set",
                                .actor = "uid:0",
                                .envoy = i % 2 ? "web-1" : "",
                                .paths = {"app/p" + std::to_string(i), "x"},
                                .outcome = "ok",
                                .detail = "d" + std::to_string(i)})
                      .ok());
    }
  }
  // Runs one SQL statement on the database file from outside (an attacker
  // with file access).
  void Tamper(const std::string& sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    ASSERT_EQ(sqlite3_changes(raw), 1) << sql;
    sqlite3_close(raw);
  }
  void ExecRaw(const std::string& sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_close(raw);
  }
  int64_t WriterRecords() {
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

TEST_F(AuditTest, AppendListVerify) {
  AppendN(5);
  auto recs = log_->List();
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 5u);
  EXPECT_EQ((*recs)[0].seq, 1);
  EXPECT_EQ((*recs)[0].prev_hash, std::string(64, '0'));
  for (size_t i = 1; i < recs->size(); ++i) {
    EXPECT_EQ((*recs)[i].seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ((*recs)[i].prev_hash, (*recs)[i - 1].hash);
    EXPECT_EQ((*recs)[i].hash.size(), 64u);
  }
  EXPECT_THAT((*recs)[2].event.paths, ::testing::ElementsAre("app/p2", "x"));
  EXPECT_EQ((*recs)[1].event.envoy, "web-1");
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->records, 5);
  auto page = log_->List(/*after_seq=*/2, /*limit=*/2);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].seq, 3);
}

TEST_F(AuditTest, EmptyLogVerifies) {
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->records, 0);
}

// Changing any one column of record 3 (of 5) is detected and names record 3.
TEST_F(AuditTest, TamperingWithEachColumnIsDetectedAndNamed) {
  const std::vector<std::string> updates = {
      "UPDATE audit SET time_ms = time_ms + 1 WHERE seq = 3",
      "UPDATE audit SET event = 'secret.reveal' WHERE seq = 3",
      "UPDATE audit SET actor = 'uid:1' WHERE seq = 3",
      "UPDATE audit SET envoy = 'evil' WHERE seq = 3",
      "UPDATE audit SET paths = '[\"app/p9\",\"x\"]' WHERE seq = 3",
      "UPDATE audit SET outcome = 'denied' WHERE seq = 3",
      "UPDATE audit SET detail = 'd9' WHERE seq = 3",
      "UPDATE audit SET prev_hash = substr(prev_hash, 1, 63) || (CASE WHEN substr(prev_hash, 64) = "
      "'f' THEN '0' ELSE 'f' END) WHERE seq = 3",
      "UPDATE audit SET hash = (CASE WHEN substr(hash, 1, 1) = 'f' THEN '0' ELSE 'f' END) || "
      "substr(hash, 2) WHERE seq = 3",
      "UPDATE audit SET seq = 33 WHERE seq = 3",
  };
  for (const std::string& sql : updates) {
    TempDir t;
    path_ = t.path() / "vigo.db";
    auto db = Database::Create(path_);
    ASSERT_TRUE(db.ok());
    db_ = std::move(db).value();
    log_ = std::make_unique<AuditLog>(db_.get());
    AppendN(5);
    Tamper(sql);
    auto v = log_->Verify();
    ASSERT_TRUE(v.ok()) << sql;
    EXPECT_FALSE(v->ok) << sql;
    ASSERT_TRUE(v->first_bad_seq.has_value()) << sql;
    // Renumbering 3 → 33 is first seen where 3 should be.
    EXPECT_EQ(*v->first_bad_seq, sql.find("seq = 33") != std::string::npos ? 4 : 3) << sql;
    EXPECT_FALSE(v->problem.empty());
  }
}

TEST_F(AuditTest, DeletedMiddleRecordIsDetected) {
  AppendN(4);
  Tamper("DELETE FROM audit WHERE seq = 2");
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_EQ(*v->first_bad_seq, 3);
  EXPECT_THAT(v->problem, HasSubstr("sequence gap"));
}

TEST_F(AuditTest, ConcurrentAppendersKeepOneChain) {
  // Two connections (as vigocli and vigosrv would have) appending at once.
  auto db2 = Database::Create(path_);
  ASSERT_TRUE(db2.ok());
  AuditLog log2(db2->get());
  std::thread t1([&] {
    for (int i = 0; i < 25; ++i) EXPECT_TRUE(log_->Append(Ev("a", "1")).ok());
  });
  std::thread t2([&] {
    for (int i = 0; i < 25; ++i) EXPECT_TRUE(log2.Append(Ev("b", "2")).ok());
  });
  t1.join();
  t2.join();
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
  EXPECT_EQ(v->records, 50);
}

TEST_F(AuditTest, JsonHasContractFields) {
  ASSERT_TRUE(log_->Append({.event = "secret.resolve.denied",
                            .actor = "envoy:web-1",
                            .envoy = "web-1",
                            .paths = {"a/\"b"},
                            .outcome = "denied",
                            .detail = "not in bundle"})
                  .ok());
  auto recs = log_->List();
  std::string json = AuditRecordJson((*recs)[0]);
  rapidjson::Document d;
  d.Parse(json.c_str());
  ASSERT_FALSE(d.HasParseError()) << json;
  for (const char* f :
       {"seq", "time", "event", "actor", "envoy", "paths", "outcome", "prev_hash", "hash"}) {
    EXPECT_TRUE(d.HasMember(f)) << f;
  }
  EXPECT_EQ(d["seq"].GetInt64(), 1);
  EXPECT_STREQ(d["event"].GetString(), "secret.resolve.denied");
  EXPECT_STREQ(d["paths"][0].GetString(), "a/\"b");
  EXPECT_EQ(std::string(d["time"].GetString()).back(), 'Z');
}

TEST_F(AuditTest, AppendBatchChainsEveryRecordInOrder) {
  AppendN(2);
  std::vector<AuditEvent> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(Ev("secret.resolve", "envoy:e" + std::to_string(i)));
  ASSERT_TRUE(log_->AppendBatch(batch).ok());
  auto recs = log_->List();
  ASSERT_TRUE(recs.ok()) << recs.status();
  ASSERT_EQ(recs->size(), 7u);
  for (size_t i = 0; i < recs->size(); ++i) {
    EXPECT_EQ((*recs)[i].seq, static_cast<int64_t>(i + 1));
    if (i > 0) {
      EXPECT_EQ((*recs)[i].prev_hash, (*recs)[i - 1].hash) << i;
    }
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*recs)[2 + i].event.actor, "envoy:e" + std::to_string(i));
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
  EXPECT_EQ(v->records, 7);
}

TEST_F(AuditTest, AFailedBatchWritesNothing) {
  AppendN(1);
  // A trigger stands in for any failure inside the transaction (disk full,
  // I/O error): the second record of the batch cannot be inserted.
  ExecRaw(
      "CREATE TRIGGER boom BEFORE INSERT ON audit WHEN NEW.event = 'boom' "
      "BEGIN SELECT RAISE(ABORT, 'refused'); END");
  std::vector<AuditEvent> batch = {Ev("secret.resolve", "envoy:a"), Ev("boom", "envoy:b"),
                                   Ev("secret.resolve", "envoy:c")};
  EXPECT_FALSE(log_->AppendBatch(batch).ok());
  auto recs = log_->List();
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 1u);
  // The log keeps working after the rollback.
  ASSERT_TRUE(log_->Append(Ev("secret.resolve", "envoy:d")).ok());
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << v->problem;
  EXPECT_EQ(v->records, 2);
}

// AuditWriter (server/service/audit_writer.h): group commit of audit
// records, failure propagation to every waiter of a failed batch, draining on
// destruction. Records() counts the verified chain.
TEST_F(AuditTest, WriterConcurrentSubmittersAllCommitOnOneChain) {
  ASSERT_TRUE(log_->Append(Ev("config.reload", "server")).ok());  // creates the table
  service::AuditWriter writer(log_.get());
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
  EXPECT_EQ(WriterRecords(), 1 + 8 * 25);
}

TEST_F(AuditTest, WriterEventsQueuedWhileTheDatabaseIsBusyShareACommit) {
  ASSERT_TRUE(log_->Append(Ev("config.reload", "server")).ok());  // creates the table
  service::AuditWriter writer(log_.get());
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
  EXPECT_EQ(WriterRecords(), 11);
}

TEST_F(AuditTest, WriterAFailedCommitIsReportedToItsWaiterAndTheWriterGoesOn) {
  ASSERT_TRUE(log_->Append(Ev("config.reload", "server")).ok());  // creates the table
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TRIGGER boom BEFORE INSERT ON audit WHEN NEW.event = 'boom' "
                         "BEGIN SELECT RAISE(ABORT, 'refused'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  service::AuditWriter writer(log_.get());
  EXPECT_FALSE(writer.Append(Ev("boom", "envoy:x")).ok());
  EXPECT_TRUE(writer.Append(Ev("secret.resolve", "envoy:y")).ok());
  EXPECT_EQ(WriterRecords(), 2);
}

TEST_F(AuditTest, WriterDestructionWritesEverythingAlreadySubmitted) {
  ASSERT_TRUE(log_->Append(Ev("config.reload", "server")).ok());  // creates the table
  std::vector<std::future<absl::Status>> done;
  {
    service::AuditWriter writer(log_.get());
    for (int i = 0; i < 20; ++i) done.push_back(writer.Submit(Ev("secret.resolve", "envoy:z")));
  }
  for (auto& f : done) EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(WriterRecords(), 21);
}

}  // namespace
}  // namespace vigo::server
