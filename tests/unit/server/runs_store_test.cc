// ServerStore (envoy certs, epoch, runs) and the report LeakScanner.
#include <cstring>

#include "gtest/gtest.h"
#include "server/db.h"
#include "server/service/leak_scan.h"
#include "server/service/run_report.h"
#include "server/service/store.h"
#include "tests/support/test_env.h"
#include "vocab/ids.h"

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
              .result_count = 0,
              .applier = std::nullopt};
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

// Issue 14: the run's applier attestation is stored with it and read back.
TEST_F(StoreTest, RunsApplierAttestationRoundTrips) {
  RunRecord r;
  r.id = "ra";
  r.envoy = "web-1";
  r.bundle_digest = "d";
  r.outcome = "ok";
  ApplierRecord a;
  a.landlock_abi = 6;
  a.enforced = true;
  a.rights = "write_file,remove_dir";
  a.domain = {"/etc/app", "/var/lib/app"};
  a.domain_truncated = true;
  a.cap_eff = "0000000000000001";
  a.setup_us = 777;
  a.no_new_process = true;
  r.applier = a;
  ResultRecord exec{"register", "exec", "changed", "updated", "ran (exit 0)"};
  exec.redactions = 3;
  ASSERT_TRUE(store_->StoreRun(r, {exec, {"f", "file", "ok", "none", "m"}}).ok());
  RunRecord bare;
  bare.id = "rb";
  bare.envoy = "web-1";
  bare.bundle_digest = "d";
  bare.outcome = "ok";
  ASSERT_TRUE(store_->StoreRun(bare, {}).ok());
  auto got = store_->GetRun("ra");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->applier.has_value());
  EXPECT_EQ(got->applier->landlock_abi, 6);
  EXPECT_TRUE(got->applier->enforced);
  EXPECT_EQ(got->applier->rights, "write_file,remove_dir");
  EXPECT_TRUE(got->applier->no_new_process);
  EXPECT_EQ(got->applier->domain, (std::vector<std::string>{"/etc/app", "/var/lib/app"}));
  EXPECT_TRUE(got->applier->domain_truncated);
  EXPECT_EQ(got->applier->cap_eff, "0000000000000001");
  EXPECT_EQ(got->applier->setup_us, 777);
  ASSERT_EQ(got->results.size(), 2u);
  EXPECT_EQ(got->results[0].redactions, 3);  // issue 15.4: the count round-trips
  EXPECT_EQ(got->results[1].redactions, 0);
  auto none = store_->GetRun("rb");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->applier.has_value());
  // Pruning the run takes its applier row along (ON DELETE CASCADE).
  ASSERT_TRUE(store_->PruneRuns(1).ok());
  EXPECT_EQ(store_->GetRun("ra").status().code(), absl::StatusCode::kNotFound);
}

// A database written before run_appliers existed opens, keeps its runs (no
// applier) and stores new runs with one.
TEST(StoreMigrationTest, DatabaseWithoutRunAppliersOpensAndKeepsItsRuns) {
  vigo::testing::TempDir dir;
  {
    auto db = Database::Create(dir.path() / "vigo.db");
    ASSERT_TRUE(db.ok()) << db.status();
    // The schema as it was before the applier attestation (base f9af273).
    ASSERT_TRUE((*db)
                    ->Exec(R"sql(
CREATE TABLE runs(id TEXT PRIMARY KEY, envoy TEXT NOT NULL, bundle_digest TEXT NOT NULL,
  secrets_epoch INTEGER NOT NULL, started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL, outcome TEXT NOT NULL, redacted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE run_results(run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
  action TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY(run_id, idx));
INSERT INTO runs VALUES('old-1', 'web-1', 'd', 3, 1, 2, 5, 'changed', 0);
INSERT INTO run_results VALUES('old-1', 0, 'app', 'file', 'changed', 'updated', 'wrote');
)sql")
                    .ok());
  }
  auto db = Database::Open(dir.path() / "vigo.db");
  ASSERT_TRUE(db.ok()) << db.status();
  ServerStore store(db->get());
  ASSERT_TRUE(store.Init().ok());
  auto old = store.GetRun("old-1");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->outcome, "changed");
  ASSERT_EQ(old->results.size(), 1u);
  EXPECT_EQ(old->results[0].message, "wrote");
  EXPECT_EQ(old->results[0].redactions, 0);  // run_results gained the column (migration)
  EXPECT_FALSE(old->applier.has_value());
  RunRecord r;
  r.id = "new-1";
  r.envoy = "web-1";
  r.bundle_digest = "d";
  r.outcome = "ok";
  ApplierRecord a;
  a.landlock_abi = 4;
  a.enforced = true;
  a.domain = {"/srv"};
  r.applier = a;
  ResultRecord exec{"e", "exec", "changed", "updated", "ran"};
  exec.redactions = 2;
  ASSERT_TRUE(store.StoreRun(r, {exec}).ok());
  // Opening it again (the column exists now) changes nothing.
  ASSERT_TRUE(store.Init().ok());
  auto got = store.GetRun("new-1");
  ASSERT_TRUE(got.ok() && got->applier.has_value());
  EXPECT_EQ(got->applier->domain, std::vector<std::string>{"/srv"});
  ASSERT_EQ(got->results.size(), 1u);
  EXPECT_EQ(got->results[0].redactions, 2);
  EXPECT_EQ(store.ListRuns("", 0)->size(), 2u);
}

// A database whose run_appliers predates the applier's seccomp layer opens;
// its rows read no_new_process false (they were not confined so), new rows
// keep what they were given.
TEST(StoreMigrationTest, RunAppliersWithoutNoNewProcessGainsTheColumn) {
  vigo::testing::TempDir dir;
  {
    // The schema as it was before no_new_process (base fc544d8).
    auto db = Database::Create(dir.path() / "vigo.db");
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Exec(R"sql(
CREATE TABLE runs(id TEXT PRIMARY KEY, envoy TEXT NOT NULL, bundle_digest TEXT NOT NULL,
  secrets_epoch INTEGER NOT NULL, started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL, outcome TEXT NOT NULL, redacted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE run_appliers(run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  landlock_abi INTEGER NOT NULL, enforced INTEGER NOT NULL, rights TEXT NOT NULL,
  domain TEXT NOT NULL, domain_truncated INTEGER NOT NULL, cap_eff TEXT NOT NULL,
  setup_us INTEGER NOT NULL);
INSERT INTO runs VALUES('old-1', 'web-1', 'd', 3, 1, 2, 5, 'ok', 0);
INSERT INTO run_appliers VALUES('old-1', 7, 1, 'write_file', '/etc/app', 0, '0', 9);
)sql")
                    .ok());
  }
  auto db = Database::Open(dir.path() / "vigo.db");
  ASSERT_TRUE(db.ok()) << db.status();
  ServerStore store(db->get());
  ASSERT_TRUE(store.Init().ok());
  auto old = store.GetRun("old-1");
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_TRUE(old->applier.has_value());
  EXPECT_TRUE(old->applier->enforced);
  EXPECT_EQ(old->applier->domain, std::vector<std::string>{"/etc/app"});
  EXPECT_FALSE(old->applier->no_new_process);
  RunRecord r;
  r.id = "new-1";
  r.envoy = "web-1";
  r.bundle_digest = "d";
  r.outcome = "ok";
  ApplierRecord a;
  a.no_new_process = true;
  r.applier = a;
  ASSERT_TRUE(store.StoreRun(r, {}).ok());
  ASSERT_TRUE(store.Init().ok());  // again: the column exists, nothing changes
  auto got = store.GetRun("new-1");
  ASSERT_TRUE(got.ok() && got->applier.has_value());
  EXPECT_TRUE(got->applier->no_new_process);
}

TEST(RunIdTest, Validation) {
  EXPECT_TRUE(ValidateRunId("2026-11-28T11.00_ab").ok());
  EXPECT_FALSE(ValidateRunId("").ok());
  EXPECT_FALSE(ValidateRunId("a b").ok());
  EXPECT_FALSE(ValidateRunId(std::string(65, 'a')).ok());
  EXPECT_EQ(vocab::NewRunId().size(), 32u);
  EXPECT_NE(vocab::NewRunId(), vocab::NewRunId());
  EXPECT_TRUE(ValidateRunId(vocab::NewRunId()).ok());
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

namespace vigo::server::service {
namespace {

v1::ReportResultRequest ReportWithApplier() {
  v1::ReportResultRequest req;
  req.set_run_id("run hunter22");  // not a valid run id once redacted
  req.set_bundle_digest("d");
  req.set_outcome("ok");
  v1::ResourceResult* r = req.add_results();
  r->set_name("app");
  r->set_type("exec");
  r->set_status("changed");
  r->set_action("updated");
  r->set_message("printed hunter22\nand more");
  r->set_redactions(4);
  v1::ApplierAttestation* a = req.mutable_applier();
  a->set_landlock_abi(7);
  a->set_enforced(true);
  a->set_no_new_process(true);
  a->set_rights("write_file");
  for (int i = 0; i < 70; ++i) a->add_domain(i == 1 ? "/srv/a\nb" : "/etc/app");
  return req;
}

// The texts in scan order, and the stored run built from them: every text
// redacted, a domain cut at kMaxApplierDomain (truncated says so) with its
// newlines replaced, an invalid run id replaced, the counts kept.
TEST(RunReportTest, StoredReportIsBuiltFromTheScannedTexts) {
  const v1::ReportResultRequest req = ReportWithApplier();
  std::vector<std::string_view> texts = ReportTexts(req);
  ASSERT_EQ(texts.size(), 3 + 5 + 2 + kMaxApplierDomain);
  EXPECT_EQ(texts[7], "printed hunter22\nand more");
  EXPECT_EQ(texts[8], "write_file");
  LeakScanner scanner(texts);
  ASSERT_TRUE(scanner.Scan("a/db", Buf("hunter22")).ok());
  ASSERT_TRUE(scanner.Finish().ok());
  StoredReport stored = BuildStoredReport(req, "web-1", scanner, /*scan_complete=*/true);
  EXPECT_EQ(stored.run.id.find("redacted"), std::string::npos);  // a new id
  EXPECT_TRUE(ValidateRunId(stored.run.id).ok());
  EXPECT_EQ(stored.run.envoy, "web-1");
  ASSERT_EQ(stored.results.size(), 1u);
  EXPECT_EQ(stored.results[0].message, "printed [redacted:a/db]\nand more");
  EXPECT_EQ(stored.results[0].redactions, 4);
  ASSERT_TRUE(stored.run.applier.has_value());
  EXPECT_TRUE(stored.run.applier->no_new_process);
  EXPECT_EQ(stored.run.applier->domain.size(), kMaxApplierDomain);
  EXPECT_EQ(stored.run.applier->domain[1], "/srv/a b");
  EXPECT_TRUE(stored.run.applier->domain_truncated);
}

// Fail closed: when the scan did not cover every value, no envoy text is
// stored, whatever field; numbers are.
TEST(RunReportTest, AnIncompleteScanWithholdsEveryText) {
  const v1::ReportResultRequest req = ReportWithApplier();
  LeakScanner scanner(ReportTexts(req));
  ASSERT_TRUE(scanner.Finish().ok());
  StoredReport stored = BuildStoredReport(req, "web-1", scanner, /*scan_complete=*/false);
  EXPECT_EQ(stored.run.outcome, kWithheldText);
  EXPECT_EQ(stored.run.bundle_digest, kWithheldText);
  ASSERT_EQ(stored.results.size(), 1u);
  for (const std::string& t :
       {stored.results[0].name, stored.results[0].type, stored.results[0].status,
        stored.results[0].action, stored.results[0].message}) {
    EXPECT_EQ(t, kWithheldText);
  }
  EXPECT_EQ(stored.results[0].redactions, 4);
  ASSERT_TRUE(stored.run.applier.has_value());
  EXPECT_EQ(stored.run.applier->rights, kWithheldText);
  EXPECT_EQ(stored.run.applier->domain[0], kWithheldText);
  EXPECT_EQ(stored.run.applier->landlock_abi, 7);
}

}  // namespace
}  // namespace vigo::server::service
