// What one envoy can make the server store, audit or send (issue 13.4, 13.5,
// 13.23): per-envoy rate limits and quotas, run retention, replies over the
// message limit, and the cause a deleted secret is reported with.
#include <chrono>
#include <string>
#include <vector>

#include "common/seal.h"
#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"
#include "vocab/ids.h"

namespace vigo::testing {
namespace {

constexpr char kDbCanary[] = "canary-db-limits-5d1e0b7a";

// web-a references five values, `big/1` .. `big/5`, in one file, plus a/db.
std::map<std::string, std::string> BigStacks() {
  std::map<std::string, std::string> s = TwoEnvoyStacks();
  s["environments.vgo"] =
      "env:\n"
      "  prod:\n"
      "    vars:\n"
      "      db_password: \"secret:a/db\"\n"
      "  stage:\n"
      "    vars:\n"
      "      key: \"secret:b/key\"\n";
  s["configcrates/app.vgo"] =
      "configcrate: app\n"
      "resources:\n"
      "  - name: app-config\n"
      "    type: file\n"
      "    target_path: /etc/app.conf\n"
      "    mode: \"0600\"\n"
      "    content: |\n"
      "      password: {{ .Vars.db_password }}\n"
      "      b1: secret:big/1\n"
      "      b2: secret:big/2\n"
      "      b3: secret:big/3\n"
      "      b4: secret:big/4\n"
      "      b5: secret:big/5\n";
  return s;
}

ServerFixtureOptions Opts(bool big = false) {
  ServerFixtureOptions o;
  o.stacks = big ? BigStacks() : TwoEnvoyStacks();
  o.secrets = {{"a/db", kDbCanary}, {"a/token", "canary-token-limits"}, {"b/key", "canary-k"}};
  if (big) {
    // Five values of 1 MiB - 64 bytes each: 5 MiB in all, over the 4 MiB reply.
    for (int i = 1; i <= 5; ++i) {
      o.secrets[StrCat("big/", i)] = std::string((1 << 20) - 64, static_cast<char>('a' + i));
    }
  }
  o.server_options.enable_watcher = false;
  return o;
}

v1::CheckInResponse CheckIn(v1::VigoAgent::Stub& stub) {
  grpc::ClientContext ctx;
  v1::CheckInRequest req;
  v1::CheckInResponse resp;
  grpc::Status st = stub.CheckIn(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp;
}

grpc::Status Resolve(v1::VigoAgent::Stub& stub, const std::vector<std::string>& refs,
                     uint64_t epoch, v1::ResolveSecretsResponse* resp = nullptr) {
  auto key = RecipientKey::Generate();
  EXPECT_TRUE(key.ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::ResolveSecretsRequest req;
  for (const auto& r : refs) req.add_refs(r);
  req.set_secrets_epoch(epoch);
  req.set_recipient_key(key->public_key());
  v1::ResolveSecretsResponse local;
  return stub.ResolveSecrets(&ctx, req, resp ? resp : &local);
}

grpc::Status Report(v1::VigoAgent::Stub& stub, const std::string& run_id,
                    const std::string& message = "ok") {
  grpc::ClientContext ctx;
  v1::ReportResultRequest req;
  req.set_run_id(run_id);
  req.set_outcome("ok");
  v1::ResourceResult* r = req.add_results();
  r->set_name("app-config");
  r->set_type("file");
  r->set_status("ok");
  r->set_action("none");
  r->set_message(message);
  v1::ReportResultResponse resp;
  return stub.ReportResult(&ctx, req, &resp);
}

std::vector<server::AuditRecord> Events(ServerFixture& fx, const std::string& event) {
  std::vector<server::AuditRecord> out;
  for (auto& r : fx.AuditRecords()) {
    if (r.event.event == event) out.push_back(r);
  }
  return out;
}

// 13.5: a reply over the message limit releases the prefix of the values
// that fits and defers the rest; the audit names only what was released.
// Before the fix the whole call failed RESOURCE_EXHAUSTED every time.
TEST(ServerReplyLimitTest, OversizedResolveReleasesThePrefixThatFitsAndAuditsOnlyThat) {
  ServerFixture fx(Opts(/*big=*/true));
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-a"));
  const uint64_t epoch = CheckIn(*stub).bundle().secrets_epoch();
  v1::ResolveSecretsResponse resp;
  grpc::Status st = Resolve(*stub, {"big/1", "big/2", "big/3", "big/4", "big/5"}, epoch, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  // Three values of 1 MiB fit the 4 MiB reply, not four.
  ASSERT_EQ(resp.values_size(), 3);
  EXPECT_EQ(resp.deferred(), 2u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(resp.values(i).ref(), StrCat("big/", i + 1));
  auto resolves = Events(fx, "secret.resolve");
  ASSERT_EQ(resolves.size(), 1u);
  EXPECT_EQ(resolves[0].event.outcome, "ok");
  EXPECT_EQ(resolves[0].event.paths, (std::vector<std::string>{"big/1", "big/2", "big/3"}));
  // The rest, asked again: released and audited once.
  st = Resolve(*stub, {"big/4", "big/5"}, epoch, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.values_size(), 2);
  EXPECT_EQ(resp.deferred(), 0u);
  resolves = Events(fx, "secret.resolve");
  ASSERT_EQ(resolves.size(), 2u);
  EXPECT_EQ(resolves[1].event.outcome, "ok");
  EXPECT_EQ(resolves[1].event.paths, (std::vector<std::string>{"big/4", "big/5"}));
}

// 13.5: a value that no reply can carry fails at once, naming its path, and
// is audited as releasing nothing.
TEST(ServerReplyLimitTest, ValueLargerThanAnyReplyFailsNamingItsPath) {
  ServerFixture fx(Opts());
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-a"));
  const uint64_t epoch = CheckIn(*stub).bundle().secrets_epoch();
  fx.backend().pad_values_to = size_t{5} << 20;
  v1::ResolveSecretsResponse resp;
  grpc::Status st = Resolve(*stub, {"a/db", "a/token"}, epoch, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("'a/db'"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("never be delivered"), std::string::npos) << st.error_message();
  EXPECT_EQ(resp.values_size(), 0);
  auto resolves = Events(fx, "secret.resolve");
  ASSERT_EQ(resolves.size(), 1u);
  EXPECT_EQ(resolves[0].event.outcome, "failed");
  EXPECT_NE(resolves[0].event.detail.find("released nothing"), std::string::npos);
}

// 13.23: the agent is told the real cause, not "a secret changed".
TEST(ServerReplyLimitTest, DeletedReferencedSecretIsNamedAsDeleted) {
  ServerFixture fx(Opts());
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-a"));
  const uint64_t epoch = CheckIn(*stub).bundle().secrets_epoch();
  auto vault = server::LocalBackend::Open(fx.cfg().SecretsDir());
  ASSERT_TRUE(vault.ok());
  ASSERT_TRUE((*vault)->Delete("a/token").ok());
  grpc::Status st = Resolve(*stub, {"a/db", "a/token"}, epoch);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("'a/token'"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("no longer exists"), std::string::npos) << st.error_message();
  EXPECT_EQ(st.error_message().find("changed since"), std::string::npos) << st.error_message();
}

EnvoyCreds IssueA(ServerFixture& fx) { return fx.IssueEnvoy("web-a"); }

// 13.4: a flood of reports is refused past the window's limit, audited once,
// and the database holds no more than the limit allowed.
TEST(ServerEnvoyLimitsTest, ReportFloodIsRefusedAndAuditedOncePerWindow) {
  ServerFixtureOptions o = Opts();
  o.server_options.limits.window = std::chrono::hours(1);  // one window for the whole test
  o.server_options.limits.reports = 5;
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(IssueA(fx));
  int ok = 0, exhausted = 0;
  for (int i = 0; i < 60; ++i) {
    grpc::Status st = Report(*stub, StrCat("run-", i));
    ok += st.ok();
    exhausted += st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(exhausted, 55);
  auto runs = fx.store().ListRuns("web-a", 0);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 5u);
  auto throttled = Events(fx, "envoy.throttled");
  ASSERT_EQ(throttled.size(), 1u);
  EXPECT_EQ(throttled[0].event.envoy, "web-a");
  EXPECT_NE(throttled[0].event.detail.find("ReportResult"), std::string::npos);
  // Another envoy is not affected by web-a's flood.
  auto other = fx.Stub(fx.IssueEnvoy("web-b"));
  EXPECT_TRUE(Report(*other, "run-b").ok());
}

TEST(ServerEnvoyLimitsTest, ReportBytesPerWindowAreLimited) {
  ServerFixtureOptions o = Opts();
  o.server_options.limits.window = std::chrono::hours(1);
  o.server_options.limits.report_bytes = 100 * 1024;
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(IssueA(fx));
  const std::string big(30 * 1024, 'x');
  int ok = 0;
  for (int i = 0; i < 10; ++i) ok += Report(*stub, StrCat("run-", i), big).ok();
  EXPECT_EQ(ok, 3);  // 3 x 30 KiB fit in 100 KiB, the 4th does not
  EXPECT_EQ(Events(fx, "envoy.throttled").size(), 1u);
}

// 13.4: denied resolves are audited one by one only up to the limit; the
// flood after that costs one record, so the audit log stays bounded.
TEST(ServerEnvoyLimitsTest, DeniedResolveFloodKeepsTheAuditBounded) {
  ServerFixtureOptions o = Opts();
  o.server_options.limits.window = std::chrono::hours(1);
  o.server_options.limits.denied_resolves = 3;
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(IssueA(fx));
  const uint64_t epoch = CheckIn(*stub).bundle().secrets_epoch();
  const size_t before = fx.AuditRecords().size();
  int denied = 0, exhausted = 0;
  for (int i = 0; i < 200; ++i) {
    grpc::Status st = Resolve(*stub, {"b/key"}, epoch);
    denied += st.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    exhausted += st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  EXPECT_EQ(denied, 3);
  EXPECT_EQ(exhausted, 197);
  EXPECT_EQ(fx.AuditRecords().size() - before, 4u);  // 3 denied + 1 throttled
  EXPECT_EQ(Events(fx, "secret.resolve.denied").size(), 3u);
  EXPECT_EQ(Events(fx, "envoy.throttled").size(), 1u);
  // Entitled resolves still work: only denied ones are limited.
  EXPECT_TRUE(Resolve(*stub, {"a/db"}, epoch).ok());
}

// 13.4: one envoy's stored runs stay within its quota; its oldest runs make
// room, other envoys' runs are untouched.
TEST(ServerEnvoyLimitsTest, StoredRunsStayWithinThePerEnvoyQuota) {
  ServerFixtureOptions o = Opts();
  o.server_options.limits.stored_run_bytes = 64 * 1024;
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto a = fx.Stub(IssueA(fx));
  auto b = fx.Stub(fx.IssueEnvoy("web-b"));
  ASSERT_TRUE(Report(*b, "b-run").ok());
  const std::string msg(10 * 1024, 'm');
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Report(*a, StrCat("a-run-", i), msg).ok()) << i;
  auto runs = fx.store().ListRuns("web-a", 0);
  ASSERT_TRUE(runs.ok());
  EXPECT_GE(runs->size(), 5u);
  EXPECT_LE(runs->size(), 6u);  // ~10 KiB each within 64 KiB
  EXPECT_TRUE(fx.store().GetRun("a-run-19").ok());  // the newest is kept
  EXPECT_FALSE(fx.store().GetRun("a-run-0").ok());  // the oldest made room
  EXPECT_TRUE(fx.store().GetRun("b-run").ok());
  // A single report over the quota is refused, not stored.
  EXPECT_EQ(Report(*a, "huge", std::string(70 * 1024, 'h')).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_FALSE(fx.store().GetRun("huge").ok());
}

// 13.4: the server prunes runs older than database.runs_retention, and only
// those.
TEST(ServerEnvoyLimitsTest, ServerPrunesRunsOlderThanTheRetention) {
  ServerFixtureOptions o = Opts();
  o.server_options.runs_prune_interval = std::chrono::milliseconds(0);  // every report
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  // Two stored runs: one received 40 days ago, one 2 days ago.
  const int64_t day = 24LL * 3600 * 1000;
  for (auto [id, age] : {std::pair<const char*, int64_t>{"old", 40 * day}, {"recent", 2 * day}}) {
    server::service::RunRecord r;
    r.id = id;
    r.envoy = "web-a";
    r.outcome = "ok";
    r.received_ms = vocab::NowUnixMs() - age;
    ASSERT_TRUE(fx.store().StoreRun(r, {}).ok());
  }
  auto stub = fx.Stub(IssueA(fx));
  ASSERT_TRUE(Report(*stub, "new").ok());
  EXPECT_FALSE(fx.store().GetRun("old").ok());
  EXPECT_TRUE(fx.store().GetRun("recent").ok());
  EXPECT_TRUE(fx.store().GetRun("new").ok());
}

}  // namespace
}  // namespace vigo::testing
