// ServerStore (envoy certs, epoch, runs) and the report LeakScanner.
#include <cstring>

#include "gtest/gtest.h"
#include "server/db.h"
#include "server/service/leak_scan.h"
#include "server/service/store.h"
#include "tests/support/test_env.h"

namespace vigo::server::service {
namespace {

sandbox::SecretBuffer Buf(std::string_view s) {
  auto b = sandbox::SecretBuffer::Create(s.size());
  EXPECT_TRUE(b.ok());
  if (!s.empty()) std::memcpy(b->RevealMutable().data(), s.data(), s.size());
  return std::move(*b);
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Create(dir_.path() / "vigo.db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<ServerStore>(db_.get());
    ASSERT_TRUE(store_->Init().ok());
  }
  vigo::testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<ServerStore> store_;
};

TEST_F(StoreTest, EpochStartsAtOneAndOnlyIncreases) {
  auto e = store_->LoadEpoch();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, 1u);
  EXPECT_EQ(*store_->BumpEpoch(), 2u);
  EXPECT_EQ(*store_->BumpEpoch(), 3u);
  // Re-init (a restart) keeps it.
  ASSERT_TRUE(store_->Init().ok());
  EXPECT_EQ(*store_->LoadEpoch(), 3u);
}

TEST_F(StoreTest, EnvoyCertsRevocationAndLookup) {
  tls::CertInfo c1{"web-1", "AA01", std::string(64, 'a'), 0, 2000000000};
  tls::CertInfo c2{"web-1", "AA02", std::string(64, 'b'), 0, 2000000000};
  tls::CertInfo c3{"web-2", "AA03", std::string(64, 'c'), 0, 2000000000};
  ASSERT_TRUE(store_->RecordEnvoyCert("web-1", c1).ok());
  ASSERT_TRUE(store_->RecordEnvoyCert("web-1", c2).ok());
  ASSERT_TRUE(store_->RecordEnvoyCert("web-2", c3).ok());
  EXPECT_EQ(store_->RecordEnvoyCert("web-1", c1).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->LookupCert(c1.fingerprint_sha256)->state, CertState::kActive);
  EXPECT_EQ(store_->LookupCert(c1.fingerprint_sha256)->name, "web-1");
  EXPECT_EQ(store_->LookupCert(std::string(64, 'f'))->state, CertState::kUnknown);
  auto n = store_->RevokeEnvoy("web-1");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(store_->LookupCert(c1.fingerprint_sha256)->state, CertState::kRevoked);
  EXPECT_EQ(store_->LookupCert(c2.fingerprint_sha256)->state, CertState::kRevoked);
  EXPECT_EQ(store_->LookupCert(c3.fingerprint_sha256)->state, CertState::kActive);
  EXPECT_EQ(store_->RevokeEnvoy("web-1").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->TouchLastSeen(c3.fingerprint_sha256).ok());
  auto list = store_->ListEnvoyCerts();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_TRUE((*list)[0].revoked_at_ms.has_value());
  EXPECT_TRUE((*list)[2].last_seen_ms.has_value());
}

TEST_F(StoreTest, RunsStoreListShow) {
  RunRecord r{.id = "r1",
              .envoy = "web-1",
              .bundle_digest = "d",
              .secrets_epoch = 4,
              .started_ms = 1,
              .finished_ms = 2,
              .received_ms = 3,
              .outcome = "ok",
              .redacted = false,
              .results = {},
              .result_count = 0};
  std::vector<ResultRecord> res = {{"a", "file", "ok", "none", "m1"},
                                   {"b", "exec", "failed", "none", "m2"}};
  ASSERT_TRUE(store_->StoreRun(r, res).ok());
  // A retry from the same envoy is accepted and changes nothing.
  ASSERT_TRUE(store_->StoreRun(r, {}).ok());
  RunRecord other = r;
  other.envoy = "web-2";
  EXPECT_EQ(store_->StoreRun(other, {}).code(), absl::StatusCode::kAlreadyExists);
  RunRecord r2 = r;
  r2.id = "r2";
  r2.received_ms = 10;
  r2.envoy = "web-2";
  ASSERT_TRUE(store_->StoreRun(r2, {}).ok());
  auto all = store_->ListRuns("", 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "r2");  // newest first
  EXPECT_EQ((*all)[1].result_count, 2);
  EXPECT_EQ(store_->ListRuns("web-1", 0)->size(), 1u);
  EXPECT_EQ(store_->ListRuns("", 1)->size(), 1u);
  auto got = store_->GetRun("r1");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->results.size(), 2u);
  EXPECT_EQ(got->results[1].status, "failed");
  EXPECT_EQ(got->secrets_epoch, 4u);
  EXPECT_EQ(store_->GetRun("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(RunIdTest, Validation) {
  EXPECT_TRUE(ValidateRunId("2026-11-28T11.00_ab").ok());
  EXPECT_FALSE(ValidateRunId("").ok());
  EXPECT_FALSE(ValidateRunId("a b").ok());
  EXPECT_FALSE(ValidateRunId(std::string(65, 'a')).ok());
  EXPECT_EQ(NewRunId().size(), 32u);
  EXPECT_NE(NewRunId(), NewRunId());
}

TEST(LeakScannerTest, RedactsRawHexAndBase64Forms) {
  // hex("hunter22") = 68756e7465723232, base64 = aHVudGVyMjI
  const std::vector<std::string_view> texts = {
      "pw=hunter22 hex=68756E7465723232 b64=aHVudGVyMjI= ok", "nothing to see", "hunter22hunter22"};
  LeakScanner s(texts);
  ASSERT_TRUE(s.Scan("a/db", Buf("hunter22")).ok());
  ASSERT_TRUE(s.Finish().ok());
  EXPECT_EQ(s.Redacted(0), "pw=[redacted:a/db] hex=[redacted:a/db] b64=[redacted:a/db]= ok");
  EXPECT_EQ(s.leaked(), std::set<std::string>{"a/db"});
  EXPECT_EQ(s.Redacted(1), "nothing to see");
  // Adjacent and overlapping occurrences collapse into one marker each run.
  EXPECT_EQ(s.Redacted(2), "[redacted:a/db]");
}

TEST(LeakScannerTest, ShortValuesAreNotScanned) {
  const std::vector<std::string_view> texts = {"pin 123"};
  LeakScanner s(texts);
  ASSERT_TRUE(s.Scan("a/pin", Buf("123")).ok());
  ASSERT_TRUE(s.Finish().ok());
  EXPECT_EQ(s.forms_scanned(), 0u);
  EXPECT_EQ(s.Redacted(0), "pin 123");
  EXPECT_TRUE(s.leaked().empty());
}

TEST(LeakScannerTest, SeveralPathsLongestWins) {
  const std::vector<std::string_view> texts = {"1 xxabcdyy 2 abcd"};
  for (bool short_first : {true, false}) {
    LeakScanner s(texts);
    if (short_first) {
      ASSERT_TRUE(s.Scan("short", Buf("abcd")).ok());
    }
    ASSERT_TRUE(s.Scan("long", Buf("xxabcdyy")).ok());
    if (!short_first) {
      ASSERT_TRUE(s.Scan("short", Buf("abcd")).ok());
    }
    ASSERT_TRUE(s.Finish().ok());
    EXPECT_EQ(s.Redacted(0), "1 [redacted:long] 2 [redacted:short]") << short_first;
    EXPECT_EQ(s.leaked(), (std::set<std::string>{"long", "short"}));
  }
}

}  // namespace
}  // namespace vigo::server::service
