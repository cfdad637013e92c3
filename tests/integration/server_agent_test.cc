// VigoAgent over real mTLS on 127.0.0.1:0 with a real local vault.
#include <sqlite3.h>

#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "common/seal.h"
#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

constexpr char kDbCanary[] = "canary-db-8f3a1c29e0d74b55";
constexpr char kTokenCanary[] = "canary-token-41d0c7aa93be";
constexpr char kKeyCanary[] = "canary-key-6b2e90ff0c1d";

ServerFixtureOptions Opts() {
  ServerFixtureOptions o;
  o.stacks = TwoEnvoyStacks();
  o.secrets = {{"a/db", kDbCanary}, {"a/token", kTokenCanary}, {"b/key", kKeyCanary}};
  o.server_options.enable_watcher = false;
  return o;
}

v1::CheckInResponse CheckIn(v1::VigoAgent::Stub& stub, const std::string& known = "",
                            grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  v1::CheckInRequest req;
  req.set_known_digest(known);
  v1::CheckInResponse resp;
  grpc::Status st = stub.CheckIn(&ctx, req, &resp);
  if (status)
    *status = st;
  else
    EXPECT_TRUE(st.ok()) << st.error_message();
  return resp;
}

struct Resolved {
  grpc::Status status;
  v1::ResolveSecretsResponse resp;
};

Resolved Resolve(v1::VigoAgent::Stub& stub, const std::vector<std::string>& refs, uint64_t epoch,
                 const RecipientKey& key) {
  grpc::ClientContext ctx;
  v1::ResolveSecretsRequest req;
  for (const auto& r : refs) req.add_refs(r);
  req.set_secrets_epoch(epoch);
  req.set_recipient_key(key.public_key());
  Resolved out;
  out.status = stub.ResolveSecrets(&ctx, req, &out.resp);
  return out;
}

absl::StatusOr<sandbox::SecretBuffer> Open(const RecipientKey& key, const std::string& envoy,
                                           const v1::ResolveSecretsResponse& resp,
                                           const v1::SealedValue& v) {
  SealContext ctx{envoy, resp.secrets_epoch(), v.ref(), resp.call_id()};
  return key.Open(resp.server_key(), ctx, SealedBox{v.nonce(), v.ciphertext()});
}

class ServerAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fx_ = std::make_unique<ServerFixture>(Opts());
    ASSERT_TRUE(fx_->ok()) << fx_->error();
    a_ = fx_->IssueEnvoy("web-a");
    b_ = fx_->IssueEnvoy("web-b");
    ASSERT_TRUE(fx_->ok()) << fx_->error();
  }
  std::unique_ptr<ServerFixture> fx_;
  EnvoyCreds a_, b_;
};

TEST_F(ServerAgentTest, EnvoyGetsOwnBundleAndUnsealsOwnRefs) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  ASSERT_TRUE(ci.has_bundle());
  const v1::PolicyBundle& b = ci.bundle();
  EXPECT_EQ(b.envoy_name(), "web-a");
  EXPECT_EQ(b.secrets_epoch(), fx_->server().epoch());
  std::vector<std::string> refs(b.secret_refs().begin(), b.secret_refs().end());
  EXPECT_EQ(refs, (std::vector<std::string>{"a/db", "a/token"}));
  std::string serialized = b.SerializeAsString();
  EXPECT_EQ(serialized.find(kDbCanary), std::string::npos);
  EXPECT_NE(serialized.find("__VIGO_SECRET__a/db__END__"), std::string::npos);

  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  Resolved r = Resolve(*stub, refs, b.secrets_epoch(), *key);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.resp.values_size(), 2);
  EXPECT_EQ(r.resp.secrets_epoch(), b.secrets_epoch());
  EXPECT_EQ(r.resp.server_key().size(), 32u);
  std::map<std::string, std::string> want = {{"a/db", kDbCanary}, {"a/token", kTokenCanary}};
  for (const auto& v : r.resp.values()) {
    auto opened = Open(*key, "web-a", r.resp, v);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_TRUE(BufEquals(*opened, want[v.ref()])) << v.ref();
  }
  EXPECT_EQ(fx_->CountAudit("secret.resolve"), 1);
}

TEST_F(ServerAgentTest, NoChangeWhenDigestKnown) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse first = CheckIn(*stub);
  ASSERT_TRUE(first.has_bundle());
  v1::CheckInResponse second = CheckIn(*stub, first.bundle().digest());
  ASSERT_TRUE(second.has_no_change());
  EXPECT_EQ(second.no_change().digest(), first.bundle().digest());
  EXPECT_EQ(second.no_change().secrets_epoch(), first.bundle().secrets_epoch());
  v1::CheckInResponse third = CheckIn(*stub, "0000");
  EXPECT_TRUE(third.has_bundle());
  // Last seen is recorded.
  auto certs = fx_->store().ListEnvoyCerts();
  ASSERT_TRUE(certs.ok());
  bool seen = false;
  for (const auto& c : *certs) seen |= (c.name == "web-a" && c.last_seen_ms.has_value());
  EXPECT_TRUE(seen);
}

TEST_F(ServerAgentTest, OtherEnvoysRefIsDeniedAndAuditedOnce) {
  auto stub_b = fx_->Stub(b_);
  v1::CheckInResponse ci = CheckIn(*stub_b);
  ASSERT_TRUE(ci.has_bundle());
  EXPECT_EQ(ci.bundle().envoy_name(), "web-b");
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  const int before = fx_->CountAudit("secret.resolve.denied");
  Resolved r = Resolve(*stub_b, {"a/db"}, ci.bundle().secrets_epoch(), *key);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(r.resp.values_size(), 0);
  auto records = fx_->AuditRecords();
  int denied = 0;
  for (const auto& rec : records) {
    if (rec.event.event != "secret.resolve.denied") continue;
    ++denied;
    EXPECT_EQ(rec.event.envoy, "web-b");
    EXPECT_EQ(rec.event.paths, std::vector<std::string>{"a/db"});
    EXPECT_EQ(rec.event.outcome, "denied");
  }
  EXPECT_EQ(denied, before + 1);
  EXPECT_EQ(fx_->CountAudit("secret.resolve"), 0);

  // A mix of own and foreign refs: the whole call fails, nothing sealed.
  Resolved mixed = Resolve(*stub_b, {"b/key", "a/token"}, ci.bundle().secrets_epoch(), *key);
  EXPECT_EQ(mixed.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(mixed.resp.values_size(), 0);

  // "Does not exist" gets exactly the same answer as "not entitled".
  Resolved missing = Resolve(*stub_b, {"no/such"}, ci.bundle().secrets_epoch(), *key);
  EXPECT_EQ(missing.status.error_code(), r.status.error_code());
  EXPECT_EQ(missing.status.error_message(), r.status.error_message());

  // Entitlement comes before the epoch check.
  Resolved stale_foreign = Resolve(*stub_b, {"a/db"}, 999999, *key);
  EXPECT_EQ(stale_foreign.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(fx_->CountAudit("secret.resolve.denied"), before + 4);
}

TEST_F(ServerAgentTest, StaleEpochIsFailedPrecondition) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  ASSERT_TRUE(ci.has_bundle());
  const uint64_t old_epoch = ci.bundle().secrets_epoch();
  auto reloaded = fx_->server().Reload("test");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(*reloaded, old_epoch + 1);
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  Resolved r = Resolve(*stub, {"a/db"}, old_epoch, *key);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(r.resp.values_size(), 0);
  // Checking in again gives the new epoch (and a new digest), which works.
  v1::CheckInResponse again = CheckIn(*stub, ci.bundle().digest());
  ASSERT_TRUE(again.has_bundle());
  EXPECT_EQ(again.bundle().secrets_epoch(), old_epoch + 1);
  Resolved ok = Resolve(*stub, {"a/db"}, again.bundle().secrets_epoch(), *key);
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST_F(ServerAgentTest, RevokedCertificateIsRefusedOnTheSameConnection) {
  auto stub = fx_->Stub(a_);
  grpc::Status st;
  CheckIn(*stub, "", &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto n = fx_->store().RevokeEnvoy("web-a");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  // Same channel, same TLS connection: the check is per call.
  CheckIn(*stub, "", &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  Resolved r = Resolve(*stub, {"a/db"}, fx_->server().epoch(), *key);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(r.resp.values_size(), 0);
  // web-b is unaffected.
  auto stub_b = fx_->Stub(b_);
  CheckIn(*stub_b, "", &st);
  EXPECT_TRUE(st.ok());
  // A fresh certificate for web-a works again.
  EnvoyCreds a2 = fx_->IssueEnvoy("web-a");
  auto stub2 = fx_->Stub(a2);
  CheckIn(*stub2, "", &st);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(ServerAgentTest, UnrecordedOrForeignCertificatesAreRefused) {
  // Signed by the CA but never recorded (e.g. a stolen CA key would need the db too).
  EnvoyCreds ghost = fx_->IssueEnvoy("web-a", /*record=*/false);
  auto stub = fx_->Stub(ghost);
  grpc::Status st;
  CheckIn(*stub, "", &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // A certificate from another CA fails the TLS handshake.
  TempDir other;
  server::tls::CaFiles ca{other.path() / "ca.pem", other.path() / "ca.key"};
  ASSERT_TRUE(server::tls::CreateCa(ca, "Other CA").ok());
  ASSERT_TRUE(server::tls::IssueClientCert(ca, other.path() / "cert.pem", other.path() / "key.pem",
                                           "web-a", std::chrono::hours(1))
                  .ok());
  EnvoyCreds foreign{"web-a",
                     other.path(),
                     a_.ca_pem,
                     ReadAllFile(other.path() / "cert.pem"),
                     ReadAllFile(other.path() / "key.pem"),
                     {}};
  auto stub_f = fx_->Stub(foreign);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::CheckInRequest req;
  v1::CheckInResponse resp;
  st = stub_f->CheckIn(&ctx, req, &resp);
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(resp.has_bundle());

  // No client certificate at all: handshake refused.
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = a_.ca_pem;
  auto anon = v1::VigoAgent::NewStub(grpc::CreateChannel(fx_->target(), grpc::SslCredentials(o)));
  grpc::ClientContext actx;
  actx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  st = anon->CheckIn(&actx, req, &resp);
  EXPECT_FALSE(st.ok());
}

TEST_F(ServerAgentTest, TamperedSealedValueFailsToOpen) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  Resolved r = Resolve(*stub, {"a/db"}, ci.bundle().secrets_epoch(), *key);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.resp.values_size(), 1);
  v1::SealedValue v = r.resp.values(0);
  ASSERT_TRUE(Open(*key, "web-a", r.resp, v).ok());
  v1::SealedValue t = v;
  (*t.mutable_ciphertext())[0] ^= 0x20;
  EXPECT_EQ(Open(*key, "web-a", r.resp, t).status().code(), absl::StatusCode::kDataLoss);
  // Opened as if for another envoy, epoch or ref: fails too.
  EXPECT_EQ(Open(*key, "web-b", r.resp, v).status().code(), absl::StatusCode::kDataLoss);
  v1::ResolveSecretsResponse other_epoch = r.resp;
  other_epoch.set_secrets_epoch(r.resp.secrets_epoch() + 1);
  EXPECT_EQ(Open(*key, "web-a", other_epoch, v).status().code(), absl::StatusCode::kDataLoss);
  v1::SealedValue renamed = v;
  renamed.set_ref("a/token");
  EXPECT_EQ(Open(*key, "web-a", r.resp, renamed).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ServerAgentTest, BackendUnavailableIsUnavailable) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  fx_->backend().unavailable = true;
  Resolved r = Resolve(*stub, {"a/db"}, ci.bundle().secrets_epoch(), *key);
  fx_->backend().unavailable = false;
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(r.resp.values_size(), 0);
  // The values are read before the "ok" record is queued: a read failure
  // leaves exactly one record, "failed", saying nothing was released.
  std::vector<server::AuditRecord> resolves;
  for (const auto& rec : fx_->AuditRecords()) {
    if (rec.event.event == "secret.resolve") resolves.push_back(rec);
  }
  ASSERT_EQ(resolves.size(), 1u);
  EXPECT_EQ(resolves[0].event.outcome, "failed");
  EXPECT_NE(resolves[0].event.detail.find("released nothing"), std::string::npos)
      << resolves[0].event.detail;
  EXPECT_NE(resolves[0].event.detail.find("call="), std::string::npos) << resolves[0].event.detail;
}

TEST_F(ServerAgentTest, NoValueLeavesWhenTheAuditRecordCannotBeCommitted) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  auto key = RecipientKey::Generate();
  ASSERT_TRUE(key.ok());
  // The audit table refuses successful resolve records (as a full disk or an
  // I/O error would fail the commit).
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(fx_->cfg().DatabasePath().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TRIGGER no_resolve BEFORE INSERT ON audit "
                         "WHEN NEW.event = 'secret.resolve' AND NEW.outcome = 'ok' "
                         "BEGIN SELECT RAISE(ABORT, 'disk full'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  Resolved r = Resolve(*stub, {"a/db", "a/token"}, ci.bundle().secrets_epoch(), *key);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INTERNAL) << r.status.error_message();
  EXPECT_EQ(r.resp.values_size(), 0);
  EXPECT_TRUE(r.resp.server_key().empty());
  EXPECT_EQ(fx_->CountAudit("secret.resolve"), 0);
  // Once the log accepts records again, the same call succeeds.
  ASSERT_EQ(sqlite3_exec(raw, "DROP TRIGGER no_resolve", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  r = Resolve(*stub, {"a/db", "a/token"}, ci.bundle().secrets_epoch(), *key);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.resp.values_size(), 2);
  EXPECT_EQ(fx_->CountAudit("secret.resolve"), 1);
}

TEST_F(ServerAgentTest, SlicesAndLinesOfAValueInAReportAreRedacted) {
  // Issue 15: a hostile exec prints line 2 of a multi-line value (for an EC
  // PEM key that line is the private scalar), a 40-byte middle slice in hex,
  // and the first 40 and last 30 bytes; a 7-byte fragment is left alone.
  std::string pem = "-----BEGIN EC PRIVATE KEY-----\n";
  const std::string line2 = "MHcCAQEEIBv0s3kWq9Lr7XcN2yPz8fHj6Td4Qm1aUo5VgKe0RbYioAoGCCqGSM49";
  pem += line2 + "\nAwEHoUQDQgAE4n8ZrW2kTq7VdLh3Jx9mC5pBsYe1Nf0GuAa6Hc2Ok\n";
  pem += "-----END EC PRIVATE KEY-----\n";
  fx_->SetSecret("a/db", pem);
  std::string mid_hex;
  for (unsigned char c : pem.substr(40, 40)) {
    static const char* d = "0123456789abcdef";
    mid_hex.push_back(d[c >> 4]);
    mid_hex.push_back(d[c & 0xf]);
  }
  const std::string head = pem.substr(0, 40), tail = pem.substr(pem.size() - 30);
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  grpc::ClientContext ctx;
  v1::ReportResultRequest req;
  req.set_run_id("run-slices");
  req.set_bundle_digest(ci.bundle().digest());
  req.set_secrets_epoch(ci.bundle().secrets_epoch());
  req.set_outcome("failed");
  const std::vector<std::string> printed = {
      "key line: " + line2 + " (done)", "dump " + mid_hex + " end", "head=" + head + "|",
      "tail=" + tail + "|", "short: " + line2.substr(9, 7) + " ok"};
  for (const std::string& m : printed) {
    auto* r = req.add_results();
    r->set_name("hostile");
    r->set_type("exec");
    r->set_status("failed");
    r->set_action("none");
    r->set_message(m);
  }
  v1::ReportResultResponse resp;
  grpc::Status st = stub->ReportResult(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto run = fx_->store().GetRun("run-slices");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->results.size(), printed.size());
  EXPECT_TRUE(run->redacted);
  const std::vector<std::string> secrets = {line2, mid_hex, head.substr(0, 12), tail.substr(0, 12),
                                            line2.substr(20, 12)};
  for (size_t i = 0; i + 1 < run->results.size(); ++i) {
    const std::string& m = run->results[i].message;
    EXPECT_NE(m.find("[redacted:a/db]"), std::string::npos) << m;
    for (const std::string& s : secrets) EXPECT_EQ(m.find(s), std::string::npos) << i << ": " << m;
  }
  // Positive control: a fragment shorter than the window stays.
  EXPECT_EQ(run->results.back().message, printed.back());
  EXPECT_GE(fx_->CountAudit("secret.leak.detected"), 2);
}

TEST_F(ServerAgentTest, ReportIsStoredAndLeakedValuesAreRedacted) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  grpc::ClientContext ctx;
  v1::ReportResultRequest req;
  req.set_run_id("run-1");
  req.set_bundle_digest(ci.bundle().digest());
  req.set_secrets_epoch(ci.bundle().secrets_epoch());
  req.set_outcome("changed");
  auto* r1 = req.add_results();
  r1->set_name("app-config");
  r1->set_type("file");
  r1->set_status("changed");
  r1->set_action("updated");
  r1->set_message("wrote 1 file");
  auto* r2 = req.add_results();
  r2->set_name("register");
  r2->set_type("exec");
  r2->set_status("failed");
  r2->set_action("none");
  // A buggy agent pastes the value (raw and hex) into a message.
  std::string hex;
  for (unsigned char c : std::string(kDbCanary)) {
    static const char* d = "0123456789abcdef";
    hex.push_back(d[c >> 4]);
    hex.push_back(d[c & 0xf]);
  }
  r2->set_message(StrCat("stderr: bad password ", kDbCanary, " / ", hex, " / ", kKeyCanary));
  v1::ReportResultResponse resp;
  grpc::Status st = stub->ReportResult(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.run_id(), "run-1");
  auto run = fx_->store().GetRun("run-1");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->envoy, "web-a");
  EXPECT_EQ(run->outcome, "changed");
  EXPECT_TRUE(run->redacted);
  ASSERT_EQ(run->results.size(), 2u);
  EXPECT_EQ(run->results[0].message, "wrote 1 file");
  const std::string& m = run->results[1].message;
  EXPECT_EQ(m.find(kDbCanary), std::string::npos) << m;
  EXPECT_EQ(m.find(hex), std::string::npos) << m;
  EXPECT_NE(m.find("[redacted:a/db]"), std::string::npos) << m;
  // web-a is not entitled to b/key: the server does not even look for it
  // (and so cannot tell web-a anything about it).
  EXPECT_NE(m.find(kKeyCanary), std::string::npos);
  auto records = fx_->AuditRecords();
  // One record per (path, form): the value was printed raw and in hex.
  std::vector<std::string> details;
  for (const auto& rec : records) {
    if (rec.event.event == "secret.leak.detected") {
      details.push_back(rec.event.detail);
      EXPECT_EQ(rec.event.envoy, "web-a");
      EXPECT_EQ(rec.event.paths, std::vector<std::string>{"a/db"});
      EXPECT_EQ(rec.event.outcome, "redacted");
    }
  }
  ASSERT_EQ(details.size(), 2u);
  EXPECT_NE(details[0].find("run=run-1 form=hex runs=1"), std::string::npos) << details[0];
  EXPECT_NE(details[1].find("run=run-1 form=raw runs=1"), std::string::npos) << details[1];
  // Listing by envoy.
  auto runs_a = fx_->store().ListRuns("web-a", 0);
  auto runs_b = fx_->store().ListRuns("web-b", 0);
  ASSERT_TRUE(runs_a.ok() && runs_b.ok());
  EXPECT_EQ(runs_a->size(), 1u);
  EXPECT_EQ(runs_b->size(), 0u);
}

// When the leak scan cannot load the envoy's values (backend down), no text
// the agent supplied is stored unscanned: every field is withheld, whichever
// one carries the value.
TEST_F(ServerAgentTest, ReportWhileBackendIsDownWithholdsEveryText) {
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  fx_->backend().unavailable = true;
  grpc::ClientContext ctx;
  v1::ReportResultRequest req;
  req.set_run_id("run-down");
  req.set_bundle_digest(ci.bundle().digest());
  req.set_secrets_epoch(ci.bundle().secrets_epoch());
  req.set_outcome("failed");
  auto* r = req.add_results();
  r->set_name(StrCat("register ", kDbCanary));
  r->set_type("exec");
  r->set_status(StrCat("failed ", kDbCanary));
  r->set_action("none");
  r->set_message(StrCat("stderr: bad password ", kDbCanary));
  v1::ReportResultResponse resp;
  grpc::Status st = stub->ReportResult(&ctx, req, &resp);
  fx_->backend().unavailable = false;
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(resp.run_id(), "run-down");  // the agent's run id is a text too
  auto run = fx_->store().GetRun(resp.run_id());
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->results.size(), 1u);
  const auto& res = run->results[0];
  for (const std::string& text : {res.name, res.type, res.status, res.action, res.message,
                                  run->outcome, run->bundle_digest}) {
    EXPECT_EQ(text.find(kDbCanary), std::string::npos) << text;
    EXPECT_NE(text.find("withheld"), std::string::npos) << text;
  }
}

TEST_F(ServerAgentTest, EpochSurvivesRestartAndOnlyIncreases) {
  const uint64_t e1 = fx_->server().epoch();
  auto e2 = fx_->server().Reload("test");
  ASSERT_TRUE(e2.ok());
  auto persisted = fx_->store().LoadEpoch();
  ASSERT_TRUE(persisted.ok());
  EXPECT_EQ(*persisted, *e2);
  EXPECT_GT(*e2, e1);
  // A second server on the same root starts above it.
  server::service::ServerOptions so;
  so.enable_watcher = false;
  so.enable_admin = false;
  auto second = server::service::VigoServer::Create(fx_->cfg(), nullptr, so);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT((*second)->epoch(), *e2);
}

TEST_F(ServerAgentTest, FailedReloadKeepsLastGoodConfig) {
  const uint64_t e1 = fx_->server().epoch();
  WriteFileOrDie(fx_->root() / "stacks" / "roles.vgo", "roles: [not, a, map\n", 0640);
  auto r = fx_->server().Reload("test");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("roles.vgo"), std::string::npos) << r.status();
  EXPECT_EQ(fx_->server().epoch(), e1);
  auto stub = fx_->Stub(a_);
  v1::CheckInResponse ci = CheckIn(*stub);
  EXPECT_TRUE(ci.has_bundle());
  bool failed_audited = false;
  for (const auto& rec : fx_->AuditRecords()) {
    failed_audited |= rec.event.event == "config.reload" && rec.event.outcome == "failed";
  }
  EXPECT_TRUE(failed_audited);
}

v1::AttestationReport GoodReport(const std::string& process) {
  v1::AttestationReport r;
  r.set_process(process);
  r.set_seccomp_mode(2);
  r.set_seccomp_filters(1);
  r.set_no_new_privs(true);
  r.set_dumpable(false);
  r.set_arena_locked(true);
  r.set_arena_dontdump(true);
  r.set_arena_backing("mlock");
  r.set_cap_eff("0000000000000000");
  if (process == "worker") {
    r.set_landlock_abi(7);
    r.set_applier_landlock(true);
  }
  return r;
}

TEST(ServerHardeningTest, StrictRefusesWeakenedAgents) {
  ServerFixtureOptions o = Opts();
  o.require_hardening = "strict";
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-a"));
  auto call = [&](const std::vector<v1::AttestationReport>& reports) {
    grpc::ClientContext ctx;
    v1::CheckInRequest req;
    for (const auto& r : reports) *req.add_attestation() = r;
    v1::CheckInResponse resp;
    grpc::Status st = stub->CheckIn(&ctx, req, &resp);
    EXPECT_EQ(st.ok(), resp.has_bundle());
    return st.error_code();
  };
  EXPECT_EQ(call({}), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(call({GoodReport("broker")}), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(call({GoodReport("broker"), GoodReport("worker")}), grpc::StatusCode::OK);
  v1::AttestationReport skipped = GoodReport("worker");
  skipped.add_skipped_steps("seccomp");
  EXPECT_EQ(call({GoodReport("broker"), skipped}), grpc::StatusCode::FAILED_PRECONDITION);
  v1::AttestationReport dumpable = GoodReport("worker");
  dumpable.set_dumpable(true);
  EXPECT_EQ(call({GoodReport("broker"), dumpable}), grpc::StatusCode::FAILED_PRECONDITION);
  v1::AttestationReport no_filter = GoodReport("broker");
  no_filter.set_seccomp_mode(0);
  EXPECT_EQ(call({no_filter, GoodReport("worker")}), grpc::StatusCode::FAILED_PRECONDITION);
}

// Issue 14: under strict hardening, a run whose applier was not Landlock-
// confined although the check-in attested Landlock, or had not loaded its
// no-fork/no-exec seccomp layer, or whose report carries no applier
// attestation at all (an older agent, or an envoy that left the field out to
// dodge this audit), is stored, logged as an error and audited
// (agent.hardening.run_unconfined); a confined run is not, and without
// strict nothing is audited. The applier's domain paths are leak-scanned
// like every other report text.
TEST(ServerHardeningTest, StrictAuditsARunWhoseApplierWasUnconfined) {
  for (const std::string mode : {"strict", "none"}) {
    SCOPED_TRACE(mode);
    ServerFixtureOptions o = Opts();
    o.require_hardening = mode;
    ServerFixture fx(o);
    ASSERT_TRUE(fx.ok()) << fx.error();
    auto stub = fx.Stub(fx.IssueEnvoy("web-a"));
    v1::CheckInResponse ci;
    {
      grpc::ClientContext ctx;
      v1::CheckInRequest req;
      *req.add_attestation() = GoodReport("broker");
      *req.add_attestation() = GoodReport("worker");  // landlock_abi 7
      ASSERT_TRUE(stub->CheckIn(&ctx, req, &ci).ok());
    }
    auto send = [&](v1::VigoAgent::Stub& to, const std::string& run_id,
                    const std::optional<v1::ApplierAttestation>& applier) {
      grpc::ClientContext ctx;
      v1::ReportResultRequest req;
      req.set_run_id(run_id);
      req.set_bundle_digest(ci.bundle().digest());
      req.set_secrets_epoch(ci.bundle().secrets_epoch());
      req.set_outcome("ok");
      if (applier) *req.mutable_applier() = *applier;
      v1::ReportResultResponse resp;
      grpc::Status st = to.ReportResult(&ctx, req, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
    };
    auto report = [&](const std::string& run_id, bool enforced, bool no_new_process = true) {
      v1::ApplierAttestation a;
      a.set_landlock_abi(enforced ? 7 : 0);
      a.set_enforced(enforced);
      a.set_no_new_process(no_new_process);
      a.add_domain("/etc/app");
      a.add_domain(StrCat("/srv/", kDbCanary));  // a path that holds a value
      send(*stub, run_id, a);
    };
    auto last_unconfined_detail = [&]() {
      std::string detail;
      for (const auto& rec : fx.AuditRecords()) {
        if (rec.event.event == "agent.hardening.run_unconfined") detail = rec.event.detail;
      }
      return detail;
    };
    report("confined-1", true);
    EXPECT_EQ(fx.CountAudit("agent.hardening.run_unconfined"), 0);
    report("unconfined-1", false);
    EXPECT_EQ(fx.CountAudit("agent.hardening.run_unconfined"), mode == "strict" ? 1 : 0);
    // Landlock enforced, but the applier could fork and exec.
    report("forking-1", true, false);
    EXPECT_EQ(fx.CountAudit("agent.hardening.run_unconfined"), mode == "strict" ? 2 : 0);
    auto forking = fx.store().GetRun("forking-1");
    ASSERT_TRUE(forking.ok()) << forking.status();
    ASSERT_TRUE(forking->applier.has_value());
    EXPECT_FALSE(forking->applier->no_new_process);
    EXPECT_TRUE(fx.store().GetRun("confined-1")->applier->no_new_process);
    auto run = fx.store().GetRun("unconfined-1");
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_TRUE(run->applier.has_value());
    EXPECT_FALSE(run->applier->enforced);
    ASSERT_EQ(run->applier->domain.size(), 2u);
    EXPECT_EQ(run->applier->domain[0], "/etc/app");
    EXPECT_EQ(run->applier->domain[1], "/srv/[redacted:a/db]");
    EXPECT_TRUE(run->redacted);
    // No applier attestation at all, from an envoy whose check-in had a
    // worker: its confinement is unknown, so it is audited like an
    // unconfined one (leaving the field out dodges nothing).
    send(*stub, "no-applier-1", std::nullopt);
    EXPECT_EQ(fx.CountAudit("agent.hardening.run_unconfined"), mode == "strict" ? 3 : 0);
    auto bare = fx.store().GetRun("no-applier-1");
    ASSERT_TRUE(bare.ok()) << bare.status();
    EXPECT_FALSE(bare->applier.has_value());
    if (mode == "strict") {
      const std::string detail = last_unconfined_detail();
      EXPECT_NE(detail.find("run=no-applier-1 "), std::string::npos) << detail;
      EXPECT_NE(detail.find("checkin_landlock_abi=7"), std::string::npos) << detail;
      EXPECT_NE(detail.find("applier=missing"), std::string::npos) << detail;
    }
    // Nor does reporting before any check-in this server remembers (after a
    // restart, say): a strict server let no check-in through without a worker.
    auto fresh = fx.Stub(fx.IssueEnvoy("web-b"));
    send(*fresh, "no-applier-2", std::nullopt);
    EXPECT_EQ(fx.CountAudit("agent.hardening.run_unconfined"), mode == "strict" ? 4 : 0);
    if (mode == "strict") {
      const std::string detail = last_unconfined_detail();
      EXPECT_NE(detail.find("run=no-applier-2 "), std::string::npos) << detail;
      EXPECT_NE(detail.find("checkin_landlock_abi=-1"), std::string::npos) << detail;
      EXPECT_NE(detail.find("applier=missing"), std::string::npos) << detail;
    }
  }
}

// Issue 13.19: the server runs the shared sandbox::CheckStrict, so a report
// whose capability drop failed (CapEff still full) or whose arena sits on
// unlocked memory is refused like any other weakened agent.
TEST(ServerHardeningTest, StrictRefusesAFailedCapabilityDropAndUnlockedArena) {
  ServerFixtureOptions o = Opts();
  o.require_hardening = "strict";
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-a"));
  auto call = [&](const v1::AttestationReport& broker, const v1::AttestationReport& worker,
                  std::string* message = nullptr) {
    grpc::ClientContext ctx;
    v1::CheckInRequest req;
    *req.add_attestation() = broker;
    *req.add_attestation() = worker;
    v1::CheckInResponse resp;
    grpc::Status st = stub->CheckIn(&ctx, req, &resp);
    EXPECT_EQ(st.ok(), resp.has_bundle());
    if (message) *message = st.error_message();
    return st.error_code();
  };
  ASSERT_EQ(call(GoodReport("broker"), GoodReport("worker")), grpc::StatusCode::OK);
  v1::AttestationReport caps = GoodReport("broker");
  caps.set_cap_eff("000001ffffffffff");  // the drop did not happen
  std::string why;
  EXPECT_EQ(call(caps, GoodReport("worker"), &why), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(why.find("cap_eff"), std::string::npos) << why;
  v1::AttestationReport worker_caps = GoodReport("worker");
  worker_caps.set_cap_eff("0000000000200000");  // CAP_SYS_ADMIN: never a worker capability
  EXPECT_EQ(call(GoodReport("broker"), worker_caps), grpc::StatusCode::FAILED_PRECONDITION);
  v1::AttestationReport no_caps = GoodReport("worker");
  no_caps.clear_cap_eff();  // an unreadable mask is no proof
  EXPECT_EQ(call(GoodReport("broker"), no_caps), grpc::StatusCode::FAILED_PRECONDITION);
  v1::AttestationReport unlocked = GoodReport("broker");
  unlocked.set_arena_backing("unlocked");
  EXPECT_EQ(call(unlocked, GoodReport("worker"), &why), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(why.find("arena_backing"), std::string::npos) << why;
}

TEST(ServerWatcherTest, RotationInTheVaultBumpsTheEpoch) {
  ServerFixtureOptions o = Opts();
  o.server_options.enable_watcher = true;
  o.server_options.debounce = std::chrono::milliseconds(100);
  o.server_options.poll_interval = std::chrono::milliseconds(60000);  // inotify only
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  const uint64_t e1 = fx.server().epoch();
  fx.SetSecret("a/db", "rotated-value-0d9c");
  // Generous: under a full parallel suite inotify + debounce + reload took
  // over 5 s (the loop ends as soon as the epoch moves).
  for (int i = 0; i < 400 && fx.server().epoch() == e1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(fx.server().epoch(), e1);
  // Writing a secret nobody references does not churn the epoch.
  const uint64_t e2 = fx.server().epoch();
  fx.SetSecret("unrelated/x", "whatever-1234");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(fx.server().epoch(), e2);
}

TEST(ServerWatcherTest, VersionPollDetectsRotation) {
  ServerFixtureOptions o = Opts();
  o.server_options.enable_watcher = true;
  o.server_options.poll_interval = std::chrono::milliseconds(200);
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  const uint64_t e1 = fx.server().epoch();
  fx.SetSecret("b/key", "rotated-key-77aa");
  // Generous: under a full parallel suite inotify + debounce + reload took
  // over 5 s (the loop ends as soon as the epoch moves).
  for (int i = 0; i < 400 && fx.server().epoch() == e1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(fx.server().epoch(), e1);
}

// A backend like isopass has no file watch: after one failed reload (backend
// down) only the version poll can notice that it is back and that a secret
// rotated meanwhile. The poll used to skip every check while the last reload
// had failed, so such a server never caught up until an operator reloaded.
TEST(ServerWatcherTest, VersionPollRecoversAfterAFailedReload) {
  ServerFixtureOptions o = Opts();
  o.server_options.enable_watcher = true;
  o.server_options.poll_interval = std::chrono::milliseconds(200);
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  fx.backend().unavailable = true;
  ASSERT_FALSE(fx.server().Reload("test: backend down").ok());
  const uint64_t e1 = fx.server().epoch();
  fx.SetSecret("b/key", "rotated-while-down-31c9");  // the file watch fires while still down
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(fx.server().epoch(), e1) << "a reload cannot succeed while the backend is down";
  fx.backend().unavailable = false;  // back, with no further file change: only the poll sees it
  // Generous: under a full parallel suite inotify + debounce + reload took
  // over 5 s (the loop ends as soon as the epoch moves).
  for (int i = 0; i < 400 && fx.server().epoch() == e1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(fx.server().epoch(), e1);
}

}  // namespace
}  // namespace vigo::testing
