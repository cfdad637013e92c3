// The broker's side of the worker protocol: serving a run, and ending the
// broker on any unknown, oversized, out-of-phase or unentitled request.
#include "agent-broker/worker_link.h"

#include <sys/socket.h>

#include <thread>

#include "agent-broker/secret_cache.h"
#include "common/strings.h"
#include "gtest/gtest.h"

namespace vigo::broker {
namespace {

using ipc::Channel;
using ipc::Direction;
using ipc::MsgType;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class WorkerLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The secret arena is MADV_DONTFORK: a forked death-test child would not
    // have it. "threadsafe" re-executes the test binary for each death test.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto sp = ipc::CreateSocketPair();
    ASSERT_TRUE(sp.ok());
    broker_ = Channel(std::move(sp->broker));
    worker_ = Channel(std::move(sp->worker));
    bundle_.set_envoy_name("web-1");
    bundle_.set_secrets_epoch(7);
    bundle_.add_secret_refs("app/a");
    bundle_.add_secret_refs("app/b");
    bundle_.add_resources()->set_name("r1");
    cache_.Reset(7);
    cache_.Put(7, "app/a", *sandbox::SecretBuffer::CopyFrom(Bytes("value-a")));
    cache_.Put(7, "app/b", *sandbox::SecretBuffer::CopyFrom(Bytes("value-b")));
    // Both ends have seen the hello.
    ASSERT_TRUE(phases_.Observe(Direction::kToBroker, MsgType::kHello).ok());
  }

  // Queues raw bytes from the "worker" (they wait in the socket buffer).
  void QueueRaw(std::vector<uint8_t> pkt) {
    ASSERT_EQ(::send(worker_.fd(), pkt.data(), pkt.size(), 0), static_cast<ssize_t>(pkt.size()));
  }
  void QueueHeader(uint8_t type, uint32_t len, std::string_view body = "") {
    std::vector<uint8_t> pkt(ipc::kHeaderSize);
    ipc::EncodeHeader(ipc::Header{static_cast<MsgType>(type), len}, pkt.data());
    pkt[1] = type;
    pkt.insert(pkt.end(), body.begin(), body.end());
    QueueRaw(std::move(pkt));
  }

  Channel broker_, worker_;
  ipc::PhaseTable phases_;
  v1::PolicyBundle bundle_;
  SecretCache cache_;
};

TEST_F(WorkerLinkTest, ServesEntitledRefsAndReturnsReport) {
  std::thread fake_worker([&] {
    auto b = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->type, MsgType::kBundle);
    for (const char* ref : {"app/b", "app/a"}) {
      ASSERT_TRUE(
          worker_.Send(MsgType::kResolveBatch, *ipc::EncodeResolveBatch({std::string(ref)})).ok());
      auto v = worker_.Receive(Direction::kToWorker);
      ASSERT_TRUE(v.ok());
      ASSERT_EQ(v->type, MsgType::kValues);
      auto values = ipc::DecodeValues(v->value, 1);
      ASSERT_TRUE(values.ok() && values->size() == 1u);
      std::string expect = std::string("value-") + ref[4];
      EXPECT_TRUE(sandbox::ConstantTimeEquals((*values)[0].Reveal(), Bytes(expect)));
    }
    v1::ReportResultRequest r;
    r.set_outcome("changed");
    auto* res = r.add_results();
    res->set_name("r1");
    res->set_status("changed");
    res->set_action("created");
    ASSERT_TRUE(worker_.Send(MsgType::kReport, r.SerializeAsString()).ok());
    auto done = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->type, MsgType::kDone);
  });
  auto report = ServeRun(broker_, phases_, bundle_, cache_);
  fake_worker.join();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->outcome(), "changed");
  EXPECT_EQ(phases_.phase(), ipc::PhaseTable::Phase::kIdle);
}

TEST_F(WorkerLinkTest, WorkerDeathIsAFailedRunNotAHang) {
  std::thread fake_worker([&] {
    auto b = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(b.ok());
    worker_ = Channel();  // dies
  });
  auto report = ServeRun(broker_, phases_, bundle_, cache_);
  fake_worker.join();
  EXPECT_TRUE(absl::IsUnavailable(report.status())) << report.status();
}

TEST_F(WorkerLinkTest, UnentitledRefEndsTheBroker) {
  QueueHeader(7, 9, "app/other");
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkTest, UnknownMessageEndsTheBroker) {
  QueueHeader(42, 0);
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

// The one-value request (type 3) is gone: a worker that sends it, even for
// an entitled ref, ends the broker like any unknown message.
TEST_F(WorkerLinkTest, TheRemovedSingleResolveEndsTheBroker) {
  QueueHeader(3, 5, "app/a");
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkTest, OversizedMessageEndsTheBroker) {
  QueueHeader(7, ipc::kMaxResolveBatchBytes + 1, "app/a");
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkTest, OutOfPhaseMessageEndsTheBroker) {
  QueueHeader(1, 0);  // a second hello during a run
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkTest, MisdirectedMessageEndsTheBroker) {
  QueueHeader(8, 3, "abc");  // a worker may not send values
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkTest, MalformedReportEndsTheBroker) {
  v1::ReportResultRequest r;
  r.set_outcome("changed");
  auto* res = r.add_results();
  res->set_status("exfiltrated");
  res->set_action("none");
  std::string body = r.SerializeAsString();
  QueueHeader(5, static_cast<uint32_t>(body.size()), body);
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkTest, ReportTextThatIsNotUtf8IsEscapedNotAViolation) {
  // What a command printed (Latin-1, binary, a cut sequence) is content, not
  // a malformed message: the broker keeps running and forwards valid text.
  v1::WorkerReport r;
  r.set_outcome("changed");
  auto* res = r.add_results();
  res->set_name("r1\xff");
  res->set_type("exec");
  res->set_status("changed");
  res->set_action("updated");
  res->set_message("ran (exit 0); output: \xff\xfe caf\xe9 \xe2\x82");
  std::thread fake_worker([&] {
    auto b = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(worker_.Send(MsgType::kReport, r.SerializeAsString()).ok());
    auto done = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->type, MsgType::kDone);
  });
  auto report = ServeRun(broker_, phases_, bundle_, cache_);
  fake_worker.join();
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->results_size(), 1);
  EXPECT_EQ(report->results(0).message(), "ran (exit 0); output: \\xff\\xfe caf\\xe9 \\xe2\\x82");
  EXPECT_EQ(report->results(0).name(), "r1\\xff");
  // The forwarded report parses again (the server's side of the wire).
  v1::ReportResultRequest reparsed;
  EXPECT_TRUE(reparsed.ParseFromString(report->SerializeAsString()));
}

// Issue 14: the applier's summary reaches the forwarded report (and so the
// server and last_run.json), its domain bounded in count and size.
TEST(ApplierAttestationTest, WorkerReportsApplierSummaryIsForwardedBounded) {
  v1::PolicyBundle bundle;
  bundle.add_resources()->set_name("r1");
  v1::WorkerReport r;
  r.set_outcome("ok");
  v1::ApplierSummary* s = r.mutable_applier();
  s->set_landlock_abi(6);
  s->set_landlock_enforced(true);
  s->set_landlock_access("write_file,make_reg");
  s->add_landlock_domain("/etc/app");
  s->add_landlock_domain(std::string(kMaxApplierDomainBytes + 10, 'd'));
  for (int i = 0; i < kMaxApplierDomain + 5; ++i) s->add_landlock_domain(StrCat("/d", i));
  s->set_cap_eff("0000000000000000");
  s->set_setup_us(321);
  const std::string bytes = r.SerializeAsString();
  auto report = DecodeWorkerReport(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
      bundle);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(report->has_applier());
  const v1::ApplierAttestation& a = report->applier();
  EXPECT_EQ(a.landlock_abi(), 6);
  EXPECT_TRUE(a.enforced());
  EXPECT_EQ(a.rights(), "write_file,make_reg");
  EXPECT_EQ(a.cap_eff(), "0000000000000000");
  EXPECT_EQ(a.setup_us(), 321);
  ASSERT_EQ(a.domain_size(), kMaxApplierDomain);
  EXPECT_EQ(a.domain(0), "/etc/app");
  EXPECT_EQ(a.domain(1).size(), kMaxApplierDomainBytes);
  EXPECT_TRUE(a.domain_truncated());
  // A report without a summary (an older worker) forwards none.
  v1::WorkerReport bare;
  bare.set_outcome("ok");
  const std::string b2 = bare.SerializeAsString();
  auto r2 = DecodeWorkerReport(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b2.data()), b2.size()), bundle);
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2->has_applier());
}

// The applier's seccomp layer (no fork, no clone, no exec) as the worker
// reported it reaches the forwarded attestation unchanged, both ways: a
// strict server audits a run whose applier lacked it, so the broker must
// neither drop a true nor turn a false into a true.
TEST(ApplierAttestationTest, NoNewProcessIsForwardedAsReported) {
  v1::PolicyBundle bundle;
  bundle.add_resources()->set_name("r1");
  for (const bool no_new_process : {true, false}) {
    SCOPED_TRACE(no_new_process);
    v1::WorkerReport r;
    r.set_outcome("ok");
    v1::ApplierSummary* s = r.mutable_applier();
    s->set_landlock_abi(6);
    s->set_landlock_enforced(true);
    s->set_no_new_process(no_new_process);
    const std::string bytes = r.SerializeAsString();
    auto report = DecodeWorkerReport(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
        bundle);
    ASSERT_TRUE(report.ok()) << report.status();
    ASSERT_TRUE(report->has_applier());
    EXPECT_EQ(report->applier().no_new_process(), no_new_process);
    EXPECT_TRUE(report->applier().enforced());
  }
}

// Issue 15.4: an exec result's redaction count (the worker scrubbed what the
// command printed) is forwarded to the server; a result without one has 0.
TEST(ApplierAttestationTest, ExecRedactionCountIsForwarded) {
  v1::PolicyBundle bundle;
  bundle.add_resources()->set_name("e1");
  bundle.add_resources()->set_name("e2");
  v1::WorkerReport r;
  r.set_outcome("changed");
  for (uint32_t n : {4u, 0u}) {
    auto* res = r.add_results();
    res->set_name("e");
    res->set_type("exec");
    res->set_status("changed");
    res->set_action("updated");
    res->set_message("ran (exit 0); output: [REDACTED]");
    res->set_redactions(n);
  }
  const std::string bytes = r.SerializeAsString();
  auto report = DecodeWorkerReport(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
      bundle);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->results_size(), 2);
  EXPECT_EQ(report->results(0).redactions(), 4u);
  EXPECT_EQ(report->results(1).redactions(), 0u);
}

TEST_F(WorkerLinkTest, ReportThatDoesNotParseEndsTheBroker) {
  const std::string body = "\x0a\xff\xff\xff";  // field 1, length past the end
  QueueHeader(5, static_cast<uint32_t>(body.size()), body);
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST(SecretCacheTest, EpochChangeDropsEntries) {
  SecretCache c;
  c.Reset(1);
  c.Put(1, "a", *sandbox::SecretBuffer::CopyFrom(Bytes("x")));
  EXPECT_NE(c.Find(1, "a"), nullptr);
  EXPECT_EQ(c.Find(2, "a"), nullptr);
  c.Put(2, "b", *sandbox::SecretBuffer::CopyFrom(Bytes("y")));  // wrong epoch: ignored
  EXPECT_EQ(c.size(), 1u);
  c.Reset(1);
  EXPECT_EQ(c.size(), 1u);
  c.Reset(2);
  EXPECT_EQ(c.size(), 0u);
  std::vector<std::string> refs = {"a", "b", "a"};
  c.Put(2, "b", *sandbox::SecretBuffer::CopyFrom(Bytes("y")));
  EXPECT_EQ(c.Missing(2, refs), std::vector<std::string>{"a"});
  c.Clear();
  EXPECT_EQ(c.size(), 0u);
}

TEST(SecretCacheTest, RetainOnlyDropsRefsTheNewBundleNoLongerNeeds) {
  SecretCache c;
  c.Reset(3);
  for (const char* r : {"a", "b", "c"}) c.Put(3, r, *sandbox::SecretBuffer::CopyFrom(Bytes(r)));
  std::vector<std::string> still = {"c", "a", "z"};
  c.RetainOnly(still);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_NE(c.Find(3, "a"), nullptr);
  EXPECT_EQ(c.Find(3, "b"), nullptr);
  EXPECT_NE(c.Find(3, "c"), nullptr);
  c.RetainOnly(std::vector<std::string>{});
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace vigo::broker
