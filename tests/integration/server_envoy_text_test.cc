// Issue 15.2: text an envoy chooses (a denied ref, an attestation string)
// reaches the audit chain, the server log and the database only when it
// passes the leak scan or is a known name; else as length + keyed fingerprint.
// A hostile envoy sends its own (path-shaped) value as a ref and as a skipped
// lockdown step; the value must be in none of the sinks.
#include "common/log.h"
#include "common/seal.h"
#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

// Path-shaped: valid secret path grammar, so only the scan can catch it.
constexpr char kPathShaped[] = "Tok3n.Q8vZ-path_shaped-value";
constexpr char kDbValue[] = "db-value-4c1e9a7f2b";

v1::AttestationReport GoodReport(const std::string& process) {
  v1::AttestationReport r;
  r.set_process(process);
  r.set_seccomp_mode(2);
  r.set_seccomp_filters(1);
  r.set_no_new_privs(true);
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

std::string AllAudit(ServerFixture& fx) {
  std::string out;
  for (const auto& r : fx.AuditRecords()) {
    StrAppend(&out, r.event.event, " | ", r.event.outcome, " | ");
    for (const auto& p : r.event.paths) StrAppend(&out, p, ",");
    StrAppend(&out, " | ", r.event.detail, "\n");
  }
  return out;
}

TEST(ServerEnvoyTextTest, ValueSentAsDeniedRefOrSkippedStepIsInNoAuditLogOrDatabase) {
  TempDir logs;
  const auto log_path = logs.path() / "server.log";
  ASSERT_TRUE(SetLogFile(log_path.string()).ok());
  SetLogLevel(LogLevel::kTrace);
  ServerFixtureOptions o;
  o.stacks = TwoEnvoyStacks();
  o.secrets = {{"a/db", kDbValue}, {"a/token", kPathShaped}, {"b/key", "b-key-value-77aa01"}};
  o.require_hardening = "strict";
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-a"));

  // Strict check-in whose worker claims to have skipped a step named by the value.
  v1::AttestationReport worker = GoodReport("worker");
  worker.add_skipped_steps(kPathShaped);
  worker.add_skipped_steps("seccomp");
  v1::AttestationReport broker = GoodReport("broker");
  broker.set_arena_backing(kDbValue);
  auto refused = [&](const v1::AttestationReport& b, const v1::AttestationReport& w) {
    grpc::ClientContext ctx;
    v1::CheckInRequest req;
    *req.add_attestation() = b;
    *req.add_attestation() = w;
    req.set_agent_version(kPathShaped);
    v1::CheckInResponse resp;
    grpc::Status st = stub->CheckIn(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    return st.error_message();
  };
  // A capability mask is hex, so it passes as sent (CheckStrict reads it);
  // 16 hex digits can be 8 bytes of a value: the refusal must not repeat it.
  constexpr char kHexMask[] = "6b3751703270a7f1";
  v1::AttestationReport greedy = GoodReport("broker");
  greedy.set_cap_eff(kHexMask);
  const std::string why = refused(GoodReport("broker"), worker) + "\n" +
                          refused(broker, GoodReport("worker")) + "\n" +
                          refused(greedy, GoodReport("worker"));
  EXPECT_NE(why.find("cap_eff=<text, 16 bytes, fp="), std::string::npos) << why;
  EXPECT_EQ(why.find(kHexMask), std::string::npos) << why;
  // The refusal still says what failed: the known step by name, the rest by length.
  EXPECT_NE(why.find("skipped step seccomp"), std::string::npos) << why;
  EXPECT_NE(why.find("skipped step <text, 28 bytes, fp="), std::string::npos) << why;
  EXPECT_NE(why.find("arena_backing='<text, 19 bytes, fp="), std::string::npos) << why;
  EXPECT_EQ(why.find(kPathShaped), std::string::npos) << why;
  EXPECT_EQ(why.find(kDbValue), std::string::npos) << why;

  uint64_t epoch = 0;
  {
    grpc::ClientContext ctx;
    v1::CheckInRequest req;
    *req.add_attestation() = GoodReport("broker");
    *req.add_attestation() = GoodReport("worker");
    v1::CheckInResponse resp;
    ASSERT_TRUE(stub->CheckIn(&ctx, req, &resp).ok());
    epoch = resp.bundle().secrets_epoch();
  }
  // Denied: the envoy's own value as a ref, an invalid path, and a real path
  // it is not entitled to (the only one that may be named).
  {
    auto key = RecipientKey::Generate();
    ASSERT_TRUE(key.ok());
    grpc::ClientContext ctx;
    v1::ResolveSecretsRequest req;
    req.add_refs(kPathShaped);
    req.add_refs(StrCat("x ", kDbValue));
    req.add_refs("b/key");
    req.set_secrets_epoch(epoch);
    req.set_recipient_key(key->public_key());
    v1::ResolveSecretsResponse resp;
    EXPECT_EQ(stub->ResolveSecrets(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  const std::string audit = AllAudit(fx);
  // Positive controls: the record is there, names the clean path, counts the rest.
  EXPECT_NE(audit.find("secret.resolve.denied | denied | <invalid path, 21 bytes>,b/key,"),
            std::string::npos)
      << audit;
  EXPECT_NE(audit.find("denied=3 named=1 invalid=1 withheld=1 <text, 28 bytes, fp="),
            std::string::npos)
      << audit;
  EXPECT_EQ(audit.find(kPathShaped), std::string::npos) << audit;
  EXPECT_EQ(audit.find(kDbValue), std::string::npos) << audit;

  fx.server().Shutdown();
  ASSERT_TRUE(SetLogFile("").ok());
  SetLogLevel(LogLevel::kInfo);
  const std::string log = ReadAllFile(log_path);
  EXPECT_NE(log.find("resolve denied"), std::string::npos);
  EXPECT_NE(log.find("checkin refused: hardening"), std::string::npos);
  EXPECT_EQ(log.find(kHexMask), std::string::npos) << log;
  const std::vector<std::string> values = {kPathShaped, kDbValue};
  ASSERT_FALSE(FindCanariesIn(StrCat("x", kPathShaped), "control", values).empty());
  EXPECT_TRUE(FindCanaries(logs.path(), values).empty()) << log;
  // The data root: db/vigo.db and its WAL, run/, ...
  auto found = FindCanaries(fx.root(), values);
  EXPECT_TRUE(found.empty()) << (found.empty() ? "" : found.front());
}

}  // namespace
}  // namespace vigo::testing
