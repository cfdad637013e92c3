// Batched resolves over the broker ↔ worker protocol (common/ipc/agent_ipc.h):
// the kResolveBatch decoder, kValues framing, the phase table's pairing of a
// batch with its answer, and the worker's IpcValueSource asking for many refs
// per round trip.
#include <sys/socket.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent-worker/worker_session.h"
#include "common/ipc/agent_ipc.h"
#include "common/strings.h"
#include "gtest/gtest.h"

namespace vigo::ipc {
namespace {

using D = Direction;
using T = MsgType;

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }
std::span<const uint8_t> Span(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(IpcBatch, DecodeResolveBatchRoundTrip) {
  auto refs = DecodeResolveBatch(Bytes("app/a\napp/b\nother/c"));
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_EQ(*refs, (std::vector<std::string>{"app/a", "app/b", "other/c"}));
  auto one = DecodeResolveBatch(Bytes("app/a"));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  auto enc = EncodeResolveBatch({"x/1", "x/2"});
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(*enc, "x/1\nx/2");
}

TEST(IpcBatch, DecodeResolveBatchRefusesMalformedLists) {
  for (const std::string& bad : std::vector<std::string>{
           "", "\n", "a\n", "\na", "a\n\nb", "a\na", "a\n../b", "a\nb c", std::string("a\nb\0c", 5),
           "a\r\nb"}) {
    EXPECT_FALSE(DecodeResolveBatch(Bytes(bad)).ok()) << bad;
  }
  std::vector<std::string> many;
  for (size_t i = 0; i <= kMaxRefsPerBatch; ++i) many.push_back(StrCat("r/", i));
  EXPECT_FALSE(EncodeResolveBatch(many).ok());
  many.pop_back();
  auto enc = EncodeResolveBatch(many);
  ASSERT_TRUE(enc.ok());
  EXPECT_TRUE(DecodeResolveBatch(Span(*enc)).ok());
  std::string over = *enc + "\nr/extra";
  EXPECT_FALSE(DecodeResolveBatch(Span(over)).ok());
  EXPECT_FALSE(EncodeResolveBatch({"a", "a"}).ok());
  EXPECT_FALSE(EncodeResolveBatch({}).ok());
}

TEST(IpcBatch, ValuesThatFitKeepsOneMessageUnderTheCap) {
  EXPECT_EQ(ValuesThatFit(std::vector<size_t>{}), 0u);
  EXPECT_EQ(ValuesThatFit(std::vector<size_t>{10, 20, 30}), 3u);
  // Two 1 MiB values do not fit one 2 MiB message with their length prefixes.
  EXPECT_EQ(ValuesThatFit(std::vector<size_t>{kMaxValueBytes, kMaxValueBytes, 1}), 1u);
  EXPECT_EQ(ValuesThatFit(std::vector<size_t>{kMaxValueBytes, 100}), 2u);
  const size_t half = kMaxValuesBytes / 2 - kValueFrameBytes;
  EXPECT_EQ(ValuesThatFit(std::vector<size_t>{half, half, 0}), 2u);
}

TEST(IpcBatch, ValuesFramingRoundTripsInLockedMemory) {
  auto a = *sandbox::SecretBuffer::CopyFrom(Span("alpha"));
  sandbox::SecretBuffer empty;
  auto c = *sandbox::SecretBuffer::CopyFrom(Span(std::string(70000, 'c')));
  std::vector<const sandbox::SecretBuffer*> in = {&a, &empty, &c};
  auto framed = EncodeValues(in);
  ASSERT_TRUE(framed.ok()) << framed.status();
  EXPECT_EQ(framed->size(), 3 * kValueFrameBytes + 5 + 70000);
  auto out = DecodeValues(*framed, 3);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 3u);
  EXPECT_TRUE((*out)[0] == a);
  EXPECT_TRUE((*out)[1].empty());
  EXPECT_TRUE((*out)[2] == c);
  // More values than were asked for.
  EXPECT_FALSE(DecodeValues(*framed, 2).ok());
  EXPECT_FALSE(EncodeValues(std::vector<const sandbox::SecretBuffer*>{}).ok());
}

TEST(IpcBatch, DecodeValuesRefusesBadFraming) {
  auto make = [](std::vector<uint8_t> bytes) {
    return *sandbox::SecretBuffer::CopyFrom(bytes);
  };
  EXPECT_FALSE(DecodeValues(make({}), 4).ok());                       // no value
  EXPECT_FALSE(DecodeValues(make({3, 0, 0}), 4).ok());                // truncated length
  EXPECT_FALSE(DecodeValues(make({5, 0, 0, 0, 'a', 'b'}), 4).ok());   // runs past the end
  EXPECT_FALSE(DecodeValues(make({1, 0, 0, 0, 'a', 9}), 4).ok());     // trailing garbage
  EXPECT_FALSE(DecodeValues(make({0xff, 0xff, 0xff, 0x7f}), 4).ok()); // huge length
  auto ok = DecodeValues(make({1, 0, 0, 0, 'a', 0, 0, 0, 0}), 4);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 2u);
}

TEST(IpcBatch, HeaderCapsAndDirections) {
  uint8_t buf[kHeaderSize];
  EncodeHeader(Header{T::kResolveBatch, static_cast<uint32_t>(kMaxResolveBatchBytes)}, buf);
  EXPECT_TRUE(DecodeHeader(buf, D::kToBroker).ok());
  EXPECT_FALSE(DecodeHeader(buf, D::kToWorker).ok());  // a broker never sends a batch request
  EncodeHeader(Header{T::kResolveBatch, static_cast<uint32_t>(kMaxResolveBatchBytes + 1)}, buf);
  EXPECT_FALSE(DecodeHeader(buf, D::kToBroker).ok());
  EncodeHeader(Header{T::kValues, static_cast<uint32_t>(kMaxValuesBytes)}, buf);
  EXPECT_TRUE(DecodeHeader(buf, D::kToWorker).ok());
  EXPECT_FALSE(DecodeHeader(buf, D::kToBroker).ok());  // a worker never sends values
  EncodeHeader(Header{T::kValues, static_cast<uint32_t>(kMaxValuesBytes + 1)}, buf);
  EXPECT_FALSE(DecodeHeader(buf, D::kToWorker).ok());
}

TEST(IpcBatch, PhaseTablePairsABatchWithItsAnswer) {
  PhaseTable t;
  ASSERT_TRUE(t.Observe(D::kToBroker, T::kHello).ok());
  ASSERT_TRUE(t.Observe(D::kToWorker, T::kBundle).ok());
  EXPECT_FALSE(t.Observe(D::kToWorker, T::kValues).ok());  // nothing asked
  ASSERT_TRUE(t.Observe(D::kToBroker, T::kResolveBatch).ok());
  EXPECT_FALSE(t.Observe(D::kToBroker, T::kResolveBatch).ok());  // two outstanding
  EXPECT_FALSE(t.Observe(D::kToBroker, T::kReport).ok());
  ASSERT_TRUE(t.Observe(D::kToWorker, T::kValues).ok());
  EXPECT_FALSE(t.Observe(D::kToWorker, T::kValues).ok());  // one answer per batch
  ASSERT_TRUE(t.Observe(D::kToBroker, T::kResolveBatch).ok());
  ASSERT_TRUE(t.Observe(D::kToWorker, T::kValues).ok());
  ASSERT_TRUE(t.Observe(D::kToBroker, T::kReport).ok());
  EXPECT_FALSE(t.Observe(D::kToBroker, T::kResolveBatch).ok());  // after the report
}

TEST(IpcBatch, ValuesMessageLandsInASecretBuffer) {
  auto sp = CreateSocketPair();
  ASSERT_TRUE(sp.ok());
  Channel broker(std::move(sp->broker)), worker(std::move(sp->worker));
  auto a = *sandbox::SecretBuffer::CopyFrom(Span("v1"));
  std::vector<const sandbox::SecretBuffer*> in = {&a};
  auto framed = *EncodeValues(in);
  ASSERT_TRUE(broker.Send(T::kValues, framed.Reveal()).ok());
  auto m = worker.Receive(D::kToWorker);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type, T::kValues);
  EXPECT_TRUE(m->payload.empty());
  EXPECT_TRUE(m->value == framed);
}

// A fake broker answering batches from a map, recording what it was asked.
struct FakeBroker {
  std::map<std::string, std::string> values;
  std::vector<std::vector<std::string>> batches;
  size_t max_per_answer = kMaxRefsPerBatch;  // answer only a prefix of this size
  void Serve(Channel& ch, size_t requests) {
    for (size_t i = 0; i < requests; ++i) {
      auto m = ch.Receive(D::kToBroker);
      ASSERT_TRUE(m.ok()) << m.status();
      ASSERT_EQ(m->type, T::kResolveBatch);
      auto refs = DecodeResolveBatch(m->payload);
      ASSERT_TRUE(refs.ok()) << refs.status();
      batches.push_back(*refs);
      std::vector<sandbox::SecretBuffer> bufs;
      for (size_t k = 0; k < refs->size() && k < max_per_answer; ++k) {
        bufs.push_back(*sandbox::SecretBuffer::CopyFrom(Span(values.at((*refs)[k]))));
      }
      std::vector<const sandbox::SecretBuffer*> ptrs;
      for (const auto& b : bufs) ptrs.push_back(&b);
      auto framed = EncodeValues(ptrs);
      ASSERT_TRUE(framed.ok());
      ASSERT_TRUE(ch.Send(T::kValues, framed->Reveal()).ok());
    }
  }
};

TEST(IpcValueSourceBatch, OneRoundTripPerBatchOfRefs) {
  auto sp = CreateSocketPair();
  ASSERT_TRUE(sp.ok());
  Channel broker(std::move(sp->broker)), worker(std::move(sp->worker));
  FakeBroker fake;
  std::set<std::string> allowed;
  for (int i = 0; i < 300; ++i) {
    std::string ref = StrCat("app/s", i);
    fake.values[ref] = StrCat("value-", i);
    allowed.insert(ref);
  }
  std::thread t([&] { fake.Serve(broker, 2); });
  PhaseTable phases;
  ASSERT_TRUE(phases.Observe(D::kToBroker, T::kHello).ok());
  ASSERT_TRUE(phases.Observe(D::kToWorker, T::kBundle).ok());
  worker::IpcValueSource src(worker, phases, allowed);
  // Not in the bundle: refused without asking the broker.
  EXPECT_TRUE(absl::IsPermissionDenied(src.Get("app/other").status()));
  for (int i = 299; i >= 0; --i) {
    std::string ref = StrCat("app/s", i);
    auto v = src.Get(ref);
    ASSERT_TRUE(v.ok()) << ref << ": " << v.status();
    EXPECT_TRUE(sandbox::ConstantTimeEquals((*v)->Reveal(), Span(StrCat("value-", i)))) << ref;
  }
  t.join();
  ASSERT_EQ(fake.batches.size(), 2u);  // 300 refs: 256 + 44
  EXPECT_EQ(fake.batches[0].size(), kMaxRefsPerBatch);
  EXPECT_EQ(fake.batches[0][0], "app/s299");  // the ref that missed comes first
  EXPECT_EQ(fake.batches[1].size(), 300 - kMaxRefsPerBatch);
  std::set<std::string> asked;
  for (const auto& b : fake.batches) asked.insert(b.begin(), b.end());
  EXPECT_EQ(asked, allowed);  // each ref asked for once, nothing outside the bundle
  EXPECT_EQ(src.Resolved().size(), 300u);
  src.Clear();
  EXPECT_TRUE(src.Resolved().empty());
  EXPECT_TRUE(src.broken().ok());
}

TEST(IpcValueSourceBatch, APartialAnswerIsCompletedByALaterBatch) {
  auto sp = CreateSocketPair();
  ASSERT_TRUE(sp.ok());
  Channel broker(std::move(sp->broker)), worker(std::move(sp->worker));
  FakeBroker fake;
  fake.max_per_answer = 2;
  std::set<std::string> allowed = {"a/1", "a/2", "a/3"};
  for (const auto& r : allowed) fake.values[r] = "v" + r;
  std::thread t([&] { fake.Serve(broker, 2); });
  PhaseTable phases;
  ASSERT_TRUE(phases.Observe(D::kToBroker, T::kHello).ok());
  ASSERT_TRUE(phases.Observe(D::kToWorker, T::kBundle).ok());
  worker::IpcValueSource src(worker, phases, allowed);
  for (const char* r : {"a/2", "a/1", "a/3"}) {
    auto v = src.Get(r);
    ASSERT_TRUE(v.ok()) << r << ": " << v.status();
    EXPECT_TRUE(sandbox::ConstantTimeEquals((*v)->Reveal(), Span(std::string("v") + r)));
  }
  t.join();
  ASSERT_EQ(fake.batches.size(), 2u);
  EXPECT_EQ(fake.batches[0], (std::vector<std::string>{"a/2", "a/1", "a/3"}));
  EXPECT_EQ(fake.batches[1], (std::vector<std::string>{"a/3"}));
}

}  // namespace
}  // namespace vigo::ipc
