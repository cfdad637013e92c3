// Fuzzes the broker <-> worker decoder (common/ipc/agent_ipc.h): header
// decoding, the resolve and resolve-batch payload decoders, kValues framing,
// the phase table, and Channel::Receive
// on arbitrary packets written into a real SOCK_SEQPACKET socketpair.
//
// Input layout: byte 0 = number of packets (low 3 bits) and direction (bit 3);
// then packets, each a 2-byte little-endian length followed by that many bytes.
// The same bytes also drive the decoders and the phase table directly.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/ipc/agent_ipc.h"

using vigo::ipc::Direction;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // Pure decoders.
  (void)vigo::ipc::DecodeHeader(in, Direction::kToBroker);
  (void)vigo::ipc::DecodeHeader(in, Direction::kToWorker);
  (void)vigo::ipc::DecodeResolveBatch(in.size() > 8 ? in.subspan(8) : in);
  if (auto framed = vigo::sandbox::SecretBuffer::CopyFrom(in); framed.ok()) {
    (void)vigo::ipc::DecodeValues(*framed, size > 0 ? data[0] : 0);
  }
  vigo::ipc::PhaseTable table;
  for (uint8_t b : in) {
    Direction d = (b & 0x80) ? Direction::kToWorker : Direction::kToBroker;
    (void)table.Observe(d, static_cast<vigo::ipc::MsgType>(b & 0x7f));
  }
  if (size < 1) return 0;

  // Real channel.
  auto sp = vigo::ipc::CreateSocketPair();
  if (!sp.ok()) return 0;
  Direction dir = (data[0] & 0x08) ? Direction::kToWorker : Direction::kToBroker;
  int packets = data[0] & 0x07;
  size_t off = 1;
  for (int i = 0; i < packets && off + 2 <= size; ++i) {
    size_t len = data[off] | (size_t{data[off + 1]} << 8);
    off += 2;
    if (len > size - off) len = size - off;
    if (::send(sp->worker.get(), data + off, len, MSG_DONTWAIT) < 0) break;
    off += len;
  }
  sp->worker.reset();  // EOF after the queued packets: Receive never blocks
  vigo::ipc::Channel ch(std::move(sp->broker));
  for (int i = 0; i < 8; ++i) {
    auto m = ch.Receive(dir);
    if (!m.ok()) break;
  }
  return 0;
}
