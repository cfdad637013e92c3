// The broker ↔ worker codec (common/ipc/agent_ipc.h): round trips, the
// bounds-checked decoder, the phase table.
#include "common/ipc/agent_ipc.h"

#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace vigo::ipc {
namespace {

using D = Direction;
using T = MsgType;

std::vector<uint8_t> Hdr(uint8_t magic, uint8_t type, uint32_t len, uint8_t r0 = 0) {
  return {magic, type, r0, 0, static_cast<uint8_t>(len), static_cast<uint8_t>(len >> 8),
          static_cast<uint8_t>(len >> 16), static_cast<uint8_t>(len >> 24)};
}

struct Pair {
  Channel broker;
  Channel worker;
};
Pair MakePair() {
  auto sp = CreateSocketPair();
  EXPECT_TRUE(sp.ok());
  return {Channel(std::move(sp->broker)), Channel(std::move(sp->worker))};
}

TEST(IpcCodec, HeaderRoundTrip) {
  uint8_t buf[kHeaderSize];
  EncodeHeader(Header{T::kResolveBatch, 42}, buf);
  auto h = DecodeHeader(buf, D::kToBroker);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->type, T::kResolveBatch);
  EXPECT_EQ(h->length, 42u);
}

TEST(IpcCodec, DecoderRejectsMalformedHeaders) {
  EXPECT_FALSE(DecodeHeader(std::vector<uint8_t>{'V', 7, 0}, D::kToBroker).ok());  // truncated
  EXPECT_FALSE(DecodeHeader(Hdr('X', 7, 1), D::kToBroker).ok());                   // magic
  EXPECT_FALSE(DecodeHeader(Hdr('V', 0, 1), D::kToBroker).ok());                  // unknown
  EXPECT_FALSE(DecodeHeader(Hdr('V', 9, 1), D::kToBroker).ok());
  EXPECT_FALSE(DecodeHeader(Hdr('V', 255, 1), D::kToWorker).ok());
  EXPECT_FALSE(DecodeHeader(Hdr('V', 7, 1, 1), D::kToBroker).ok());  // reserved
  // The removed one-value request and answer (3, 4) are unknown both ways.
  for (D dir : {D::kToBroker, D::kToWorker}) {
    EXPECT_FALSE(DecodeHeader(Hdr('V', 3, 5), dir).ok());
    EXPECT_FALSE(DecodeHeader(Hdr('V', 4, 5), dir).ok());
  }
  // Direction: a worker may not send values, a broker may not send a batch.
  EXPECT_FALSE(DecodeHeader(Hdr('V', 8, 1), D::kToBroker).ok());
  EXPECT_FALSE(DecodeHeader(Hdr('V', 7, 1), D::kToWorker).ok());
  // Caps.
  EXPECT_TRUE(DecodeHeader(Hdr('V', 7, kMaxResolveBatchBytes), D::kToBroker).ok());
  EXPECT_FALSE(DecodeHeader(Hdr('V', 7, kMaxResolveBatchBytes + 1), D::kToBroker).ok());
  EXPECT_TRUE(DecodeHeader(Hdr('V', 8, kMaxValuesBytes), D::kToWorker).ok());
  EXPECT_FALSE(DecodeHeader(Hdr('V', 8, kMaxValuesBytes + 1), D::kToWorker).ok());
  EXPECT_FALSE(DecodeHeader(Hdr('V', 6, 1), D::kToWorker).ok());  // done carries nothing
  EXPECT_FALSE(DecodeHeader(Hdr('V', 2, 0xffffffffu), D::kToWorker).ok());
}

TEST(IpcCodec, DecodeResolveBatchChecksGrammar) {
  auto ok = DecodeResolveBatch(std::vector<uint8_t>{'a', '/', 'b'});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, std::vector<std::string>{"a/b"});
  for (const std::string& bad : std::vector<std::string>{"", "../x", "a//b", "/a", "a b", std::string("a\0b", 3)}) {
    EXPECT_FALSE(DecodeResolveBatch(std::vector<uint8_t>(bad.begin(), bad.end())).ok()) << bad;
  }
}

TEST(IpcCodec, RoundTripSmallAndMultiPacket) {
  Pair p = MakePair();
  for (size_t len : {size_t{0}, size_t{1}, kPacketPayload - 1, kPacketPayload, kPacketPayload + 1,
                     3 * kPacketPayload + 17}) {
    std::string payload(len, '\0');
    for (size_t i = 0; i < len; ++i) payload[i] = static_cast<char>(i * 31 + 7);
    // Sender and receiver in one thread: multi-packet messages must fit the
    // socket buffer, which 3 packets of 48 KiB do.
    ASSERT_TRUE(p.broker.Send(T::kBundle, payload).ok());
    auto m = p.worker.Receive(D::kToWorker);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->type, T::kBundle);
    EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), payload) << len;
  }
}

TEST(IpcCodec, ValueGoesIntoSecretBufferUpToTheCap) {
  Pair p = MakePair();
  std::thread sender([&] {
    std::vector<uint8_t> v(kMaxValuesBytes);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i ^ (i >> 8));
    EXPECT_TRUE(p.broker.Send(T::kValues, v).ok());
  });
  auto m = p.worker.Receive(D::kToWorker);
  sender.join();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->payload.empty());
  ASSERT_EQ(m->value.size(), kMaxValuesBytes);
  auto b = m->value.Reveal();
  for (size_t i = 0; i < b.size(); i += 4099) EXPECT_EQ(b[i], static_cast<uint8_t>(i ^ (i >> 8)));
}

TEST(IpcCodec, ReceiveRejectsLiesAboutLength) {
  {
    // Header says 100 bytes, packet carries 50.
    Pair p = MakePair();
    std::vector<uint8_t> pkt = Hdr('V', 7, 100);
    pkt.resize(pkt.size() + 50, 'a');
    ASSERT_EQ(::send(p.worker.fd(), pkt.data(), pkt.size(), 0), static_cast<ssize_t>(pkt.size()));
    auto m = p.broker.Receive(D::kToBroker);
    EXPECT_FALSE(m.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << m.status();
  }
  {
    // Header says 3 bytes, packet carries 10.
    Pair p = MakePair();
    std::vector<uint8_t> pkt = Hdr('V', 7, 3);
    pkt.resize(pkt.size() + 10, 'a');
    ::send(p.worker.fd(), pkt.data(), pkt.size(), 0);
    EXPECT_TRUE(absl::IsInvalidArgument(p.broker.Receive(D::kToBroker).status()));
  }
  {
    // Oversized announcement is refused before any allocation.
    Pair p = MakePair();
    std::vector<uint8_t> pkt = Hdr('V', 5, kMaxReportBytes + 1);
    ::send(p.worker.fd(), pkt.data(), pkt.size(), 0);
    EXPECT_TRUE(absl::IsInvalidArgument(p.broker.Receive(D::kToBroker).status()));
  }
  {
    // A packet shorter than a header.
    Pair p = MakePair();
    uint8_t two[2] = {'V', 7};
    ::send(p.worker.fd(), two, 2, 0);
    EXPECT_TRUE(absl::IsInvalidArgument(p.broker.Receive(D::kToBroker).status()));
  }
}

TEST(IpcCodec, EofIsUnavailable) {
  Pair p = MakePair();
  p.worker = Channel();
  auto m = p.broker.Receive(D::kToBroker);
  EXPECT_TRUE(absl::IsUnavailable(m.status())) << m.status();
  EXPECT_TRUE(absl::IsUnavailable(p.broker.Send(T::kDone, "")));
}

TEST(IpcCodec, CheckSeqPacketSocket) {
  Pair p = MakePair();
  EXPECT_TRUE(CheckSeqPacketSocket(p.broker.fd()).ok());
  int s[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
  EXPECT_FALSE(CheckSeqPacketSocket(s[0]).ok());
  ::close(s[0]);
  ::close(s[1]);
  EXPECT_FALSE(CheckSeqPacketSocket(999).ok());
}

TEST(PhaseTable, FullRunTwice) {
  PhaseTable t;
  ASSERT_TRUE(t.Observe(D::kToBroker, T::kHello).ok());
  for (int run = 0; run < 2; ++run) {
    ASSERT_TRUE(t.Observe(D::kToWorker, T::kBundle).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(t.Observe(D::kToBroker, T::kResolveBatch).ok());
      ASSERT_TRUE(t.Observe(D::kToWorker, T::kValues).ok());
    }
    ASSERT_TRUE(t.Observe(D::kToBroker, T::kReport).ok());
    ASSERT_TRUE(t.Observe(D::kToWorker, T::kDone).ok());
    EXPECT_EQ(t.phase(), PhaseTable::Phase::kIdle);
  }
}

TEST(PhaseTable, OutOfPhaseRefused) {
  {
    PhaseTable t;
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kResolveBatch).ok());  // before hello
  }
  {
    PhaseTable t;
    ASSERT_TRUE(t.Observe(D::kToBroker, T::kHello).ok());
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kHello).ok());    // hello twice
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kResolveBatch).ok());  // no bundle yet
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kReport).ok());
  }
  {
    PhaseTable t;
    ASSERT_TRUE(t.Observe(D::kToBroker, T::kHello).ok());
    ASSERT_TRUE(t.Observe(D::kToWorker, T::kBundle).ok());
    EXPECT_FALSE(t.Observe(D::kToWorker, T::kValues).ok());  // no batch outstanding
    ASSERT_TRUE(t.Observe(D::kToBroker, T::kResolveBatch).ok());
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kResolveBatch).ok());  // two outstanding
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kReport).ok());   // report while waiting
    EXPECT_FALSE(t.Observe(D::kToWorker, T::kBundle).ok());
    EXPECT_FALSE(t.Observe(D::kToWorker, T::kDone).ok());
    ASSERT_TRUE(t.Observe(D::kToWorker, T::kValues).ok());
    ASSERT_TRUE(t.Observe(D::kToBroker, T::kReport).ok());
    EXPECT_FALSE(t.Observe(D::kToBroker, T::kResolveBatch).ok());  // after report
  }
  {
    PhaseTable t;  // wrong direction for a known type
    EXPECT_FALSE(t.Observe(D::kToWorker, T::kHello).ok());
  }
}

}  // namespace
}  // namespace vigo::ipc
