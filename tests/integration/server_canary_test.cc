// No secret value ever appears in a serialized gRPC message (captured by a
// client interceptor on every request and response), in the server log at
// trace level, or anywhere under the data root (SQLite file, WAL, run/, ...).
#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/interceptor.h>

#include <mutex>

#include "common/log.h"
#include "common/seal.h"
#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

constexpr char kDbCanary[] = "CANARY-db-value-5e1f0a77b3c2";
constexpr char kTokenCanary[] = "CANARY-token-value-09d8c7b6a5";
constexpr char kKeyCanary[] = "CANARY-key-value-1122aabbccdd";
constexpr char kRotated[] = "CANARY-rotated-db-value-ffee0011";

struct Sink {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> blobs;  // (what, bytes)
  void Add(std::string what, std::string bytes) {
    std::lock_guard<std::mutex> lock(mu);
    blobs.emplace_back(std::move(what), std::move(bytes));
  }
};

class CaptureInterceptor : public grpc::experimental::Interceptor {
 public:
  CaptureInterceptor(grpc::experimental::ClientRpcInfo* info, std::shared_ptr<Sink> sink)
      : method_(info->method()), sink_(std::move(sink)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    using grpc::experimental::InterceptionHookPoints;
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      grpc::ByteBuffer* bb = m->GetSerializedSendMessage();
      if (bb != nullptr) {
        std::vector<grpc::Slice> slices;
        (void)bb->Dump(&slices);
        std::string bytes;
        for (const auto& s : slices) {
          bytes.append(static_cast<const char*>(static_cast<const void*>(s.begin())), s.size());
        }
        sink_->Add(StrCat(method_, " request"), std::move(bytes));
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      void* msg = m->GetRecvMessage();
      if (msg != nullptr) {
        sink_->Add(StrCat(method_, " response"),
                   static_cast<google::protobuf::Message*>(msg)->SerializeAsString());
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      grpc::Status* st = m->GetRecvStatus();
      if (st != nullptr) sink_->Add(StrCat(method_, " status"), st->error_message());
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = m->GetRecvInitialMetadata();
      if (md != nullptr) {
        std::string all;
        for (const auto& [k, v] : *md) StrAppend(&all, std::string(k.data(), k.size()), "=",
                                                  std::string(v.data(), v.size()), "\n");
        sink_->Add(StrCat(method_, " metadata"), all);
      }
    }
    m->Proceed();
  }

 private:
  std::string method_;
  std::shared_ptr<Sink> sink_;
};

class CaptureFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit CaptureFactory(std::shared_ptr<Sink> sink) : sink_(std::move(sink)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new CaptureInterceptor(info, sink_);
  }

 private:
  std::shared_ptr<Sink> sink_;
};

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> Capture(
    std::shared_ptr<Sink> sink) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> v;
  v.push_back(std::make_unique<CaptureFactory>(std::move(sink)));
  return v;
}

TEST(ServerCanaryTest, NoValueInAnyMessageLogOrDatabase) {
  TempDir logs;
  const auto log_path = logs.path() / "server.log";
  ASSERT_TRUE(SetLogFile(log_path.string()).ok());
  SetLogLevel(LogLevel::kTrace);

  ServerFixtureOptions o;
  o.stacks = TwoEnvoyStacks();
  o.secrets = {{"a/db", kDbCanary}, {"a/token", kTokenCanary}, {"b/key", kKeyCanary}};
  o.server_options.enable_watcher = true;
  o.server_options.debounce = std::chrono::milliseconds(50);
  ServerFixture fx(o);
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds a = fx.IssueEnvoy("web-a");
  EnvoyCreds b = fx.IssueEnvoy("web-b");
  auto sink = std::make_shared<Sink>();
  auto stub_a = v1::VigoAgent::NewStub(fx.Channel(a, Capture(sink)));
  auto stub_b = v1::VigoAgent::NewStub(fx.Channel(b, Capture(sink)));

  auto checkin = [](v1::VigoAgent::Stub& s, const std::string& known) {
    grpc::ClientContext ctx;
    v1::CheckInRequest req;
    req.set_known_digest(known);
    v1::CheckInResponse resp;
    EXPECT_TRUE(s.CheckIn(&ctx, req, &resp).ok());
    return resp;
  };
  int opened = 0;
  auto resolve = [&](v1::VigoAgent::Stub& s, const std::string& envoy,
                     std::vector<std::string> refs, uint64_t epoch) {
    auto key = RecipientKey::Generate();
    EXPECT_TRUE(key.ok());
    grpc::ClientContext ctx;
    v1::ResolveSecretsRequest req;
    for (const auto& r : refs) req.add_refs(r);
    req.set_secrets_epoch(epoch);
    req.set_recipient_key(key->public_key());
    v1::ResolveSecretsResponse resp;
    grpc::Status st = s.ResolveSecrets(&ctx, req, &resp);
    for (const auto& v : resp.values()) {
      SealContext sc{envoy, resp.secrets_epoch(), v.ref(), resp.call_id()};
      auto value = key->Open(resp.server_key(), sc, SealedBox{v.nonce(), v.ciphertext()});
      EXPECT_TRUE(value.ok()) << value.status();
      opened += value.ok();
    }
    return st;
  };

  v1::CheckInResponse ca = checkin(*stub_a, "");
  v1::CheckInResponse cb = checkin(*stub_b, "");
  ASSERT_TRUE(ca.has_bundle() && cb.has_bundle());
  EXPECT_TRUE(resolve(*stub_a, "web-a", {"a/db", "a/token"}, ca.bundle().secrets_epoch()).ok());
  EXPECT_TRUE(resolve(*stub_b, "web-b", {"b/key"}, cb.bundle().secrets_epoch()).ok());
  EXPECT_EQ(resolve(*stub_b, "web-b", {"a/db"}, cb.bundle().secrets_epoch()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(resolve(*stub_a, "web-a", {"a/db"}, 1).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  checkin(*stub_a, ca.bundle().digest());

  // Rotation through the vault: watcher reload, new epoch, resolve again.
  const uint64_t e1 = fx.server().epoch();
  fx.SetSecret("a/db", kRotated);
  for (int i = 0; i < 100 && fx.server().epoch() == e1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(fx.server().epoch(), e1);
  v1::CheckInResponse ca2 = checkin(*stub_a, ca.bundle().digest());
  ASSERT_TRUE(ca2.has_bundle());
  EXPECT_TRUE(resolve(*stub_a, "web-a", {"a/db"}, ca2.bundle().secrets_epoch()).ok());

  {
    grpc::ClientContext ctx;
    v1::ReportResultRequest req;
    req.set_run_id("canary-run");
    req.set_bundle_digest(ca2.bundle().digest());
    req.set_secrets_epoch(ca2.bundle().secrets_epoch());
    req.set_outcome("ok");
    auto* r = req.add_results();
    r->set_name("app-config");
    r->set_type("file");
    r->set_status("ok");
    r->set_action("none");
    r->set_message("unchanged");
    v1::ReportResultResponse resp;
    EXPECT_TRUE(stub_a->ReportResult(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(opened, 4);  // the test did see the values: the checks below can fail

  const std::vector<std::string> canaries = {kDbCanary, kTokenCanary, kKeyCanary, kRotated};
  // Control: the scanner does see a canary where there is one.
  ASSERT_FALSE(FindCanariesIn(StrCat("x", kTokenCanary, "y"), "control", canaries).empty());
  size_t requests = 0, responses = 0;
  {
    std::lock_guard<std::mutex> lock(sink->mu);
    for (const auto& [what, bytes] : sink->blobs) {
      requests += what.find("request") != std::string::npos;
      responses += what.find("response") != std::string::npos;
      EXPECT_TRUE(FindCanariesIn(bytes, what, canaries).empty()) << what;
    }
  }
  EXPECT_GE(requests, 10u);
  EXPECT_GE(responses, 7u);

  fx.server().Shutdown();
  ASSERT_TRUE(SetLogFile("").ok());
  SetLogLevel(LogLevel::kInfo);
  const std::string log = ReadAllFile(log_path);
  EXPECT_NE(log.find("trace"), std::string::npos);  // trace level really was on
  EXPECT_NE(log.find("resolve"), std::string::npos);
  EXPECT_TRUE(FindCanaries(logs.path(), canaries).empty());
  // The whole data root: db/vigo.db, its -wal/-shm, run/, stacks/, tls/, secrets/.
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::exists(fx.root() / "db" / "vigo.db", ec));
  auto found = FindCanaries(fx.root(), canaries);
  EXPECT_TRUE(found.empty()) << (found.empty() ? "" : found.front());
}

}  // namespace
}  // namespace vigo::testing
