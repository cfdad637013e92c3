// The broker serving batched resolves (kResolveBatch → kValues): values of
// entitled refs in request order, a prefix when they do not fit one message,
// and the end of the broker on any unentitled or malformed batch.
#include <sys/socket.h>

#include <thread>

#include "agent-broker/secret_cache.h"
#include "agent-broker/worker_link.h"
#include "gtest/gtest.h"

namespace vigo::broker {
namespace {

using ipc::Channel;
using ipc::Direction;
using ipc::MsgType;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class WorkerLinkBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto sp = ipc::CreateSocketPair();
    ASSERT_TRUE(sp.ok());
    broker_ = Channel(std::move(sp->broker));
    worker_ = Channel(std::move(sp->worker));
    bundle_.set_envoy_name("web-1");
    bundle_.set_secrets_epoch(7);
    bundle_.add_resources()->set_name("r1");
    cache_.Reset(7);
    for (const char* ref : {"app/a", "app/b", "app/c"}) {
      bundle_.add_secret_refs(ref);
      cache_.Put(7, ref, *sandbox::SecretBuffer::CopyFrom(Bytes(std::string("value-") + ref[4])));
    }
    ASSERT_TRUE(phases_.Observe(Direction::kToBroker, MsgType::kHello).ok());
  }

  void QueueBatch(std::string_view body) {
    std::vector<uint8_t> pkt(ipc::kHeaderSize);
    ipc::EncodeHeader(ipc::Header{MsgType::kResolveBatch, static_cast<uint32_t>(body.size())},
                      pkt.data());
    pkt.insert(pkt.end(), body.begin(), body.end());
    ASSERT_EQ(::send(worker_.fd(), pkt.data(), pkt.size(), 0), static_cast<ssize_t>(pkt.size()));
  }

  // The fake worker's end of a run: report, then expect kDone.
  void Finish() {
    v1::ReportResultRequest r;
    r.set_outcome("ok");
    ASSERT_TRUE(worker_.Send(MsgType::kReport, r.SerializeAsString()).ok());
    auto done = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->type, MsgType::kDone);
  }

  Channel broker_, worker_;
  ipc::PhaseTable phases_;
  v1::PolicyBundle bundle_;
  SecretCache cache_;
};

TEST_F(WorkerLinkBatchTest, ServesABatchInRequestOrder) {
  std::thread fake_worker([&] {
    auto b = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(worker_.Send(MsgType::kResolveBatch, std::string_view("app/c\napp/a\napp/b")).ok());
    auto v = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(v->type, MsgType::kValues);
    auto values = ipc::DecodeValues(v->value, 3);
    ASSERT_TRUE(values.ok()) << values.status();
    ASSERT_EQ(values->size(), 3u);
    EXPECT_TRUE(sandbox::ConstantTimeEquals((*values)[0].Reveal(), Bytes("value-c")));
    EXPECT_TRUE(sandbox::ConstantTimeEquals((*values)[1].Reveal(), Bytes("value-a")));
    EXPECT_TRUE(sandbox::ConstantTimeEquals((*values)[2].Reveal(), Bytes("value-b")));
    Finish();
  });
  auto report = ServeRun(broker_, phases_, bundle_, cache_);
  fake_worker.join();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(phases_.phase(), ipc::PhaseTable::Phase::kIdle);
}

TEST_F(WorkerLinkBatchTest, ValuesTooLargeForOneMessageComeAsAPrefix) {
  cache_.Put(7, "app/a", *sandbox::SecretBuffer::CopyFrom(std::vector<uint8_t>(ipc::kMaxValueBytes, 'a')));
  cache_.Put(7, "app/b", *sandbox::SecretBuffer::CopyFrom(std::vector<uint8_t>(ipc::kMaxValueBytes, 'b')));
  std::thread fake_worker([&] {
    auto b = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(worker_.Send(MsgType::kResolveBatch, std::string_view("app/a\napp/b\napp/c")).ok());
    auto v = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(v.ok()) << v.status();
    auto first = ipc::DecodeValues(v->value, 3);
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_EQ(first->size(), 1u);  // two 1 MiB values exceed kMaxValuesBytes
    EXPECT_EQ((*first)[0].size(), ipc::kMaxValueBytes);
    ASSERT_TRUE(worker_.Send(MsgType::kResolveBatch, std::string_view("app/b\napp/c")).ok());
    v = worker_.Receive(Direction::kToWorker);
    ASSERT_TRUE(v.ok()) << v.status();
    auto rest = ipc::DecodeValues(v->value, 2);
    ASSERT_TRUE(rest.ok()) << rest.status();
    ASSERT_EQ(rest->size(), 2u);
    EXPECT_EQ((*rest)[0].size(), ipc::kMaxValueBytes);
    EXPECT_TRUE(sandbox::ConstantTimeEquals((*rest)[1].Reveal(), Bytes("value-c")));
    Finish();
  });
  auto report = ServeRun(broker_, phases_, bundle_, cache_);
  fake_worker.join();
  ASSERT_TRUE(report.ok()) << report.status();
}

TEST_F(WorkerLinkBatchTest, OneUnentitledRefInABatchEndsTheBroker) {
  QueueBatch("app/a\napp/other\napp/b");
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkBatchTest, MalformedBatchEndsTheBroker) {
  QueueBatch("app/a\napp/a");  // duplicate
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkBatchTest, EmptyBatchEndsTheBroker) {
  QueueBatch("");
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

TEST_F(WorkerLinkBatchTest, OversizedBatchEndsTheBroker) {
  std::vector<uint8_t> pkt(ipc::kHeaderSize);
  ipc::EncodeHeader(
      ipc::Header{MsgType::kResolveBatch, static_cast<uint32_t>(ipc::kMaxResolveBatchBytes + 1)},
      pkt.data());
  ASSERT_EQ(::send(worker_.fd(), pkt.data(), pkt.size(), 0), static_cast<ssize_t>(pkt.size()));
  EXPECT_EXIT(ServeRun(broker_, phases_, bundle_, cache_).IgnoreError(),
              ::testing::ExitedWithCode(kProtocolViolationExit), "protocol violation");
}

}  // namespace
}  // namespace vigo::broker
