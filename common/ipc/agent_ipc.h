// The broker ↔ worker protocol over a SOCK_SEQPACKET socketpair.
//
//   // broker side
//   VIGO_ASSIGN_OR_RETURN(ipc::SocketPair sp, ipc::CreateSocketPair());
//   ipc::Channel ch(std::move(sp.broker));
//   ipc::PhaseTable phases;                       // starts in kAwaitHello
//   VIGO_ASSIGN_OR_RETURN(ipc::Message m, ch.Receive(ipc::Direction::kToBroker));
//   VIGO_RETURN_IF_ERROR(phases.Inbound(ipc::Direction::kToBroker, m.type));
//
// The request set is closed (MsgType) and phased:
//
//   phase        worker → broker           broker → worker
//   kAwaitHello  kHello (once)             -
//   kIdle        -                         kBundle (once per run)
//   kApplying    kResolveBatch (many),     kValues (exactly one per kResolveBatch)
//                kReport
//   kReported    -                         kDone (once), back to kIdle
//
// At most one kResolveBatch is outstanding at a time, and kValues answers it.
// Types 3 and 4 were a one-value request and its answer (kResolve, kValue):
// the worker only ever batched, so they were a second, unused way for a
// compromised worker to ask; they are gone, and a message of either type is
// unknown (the broker ends itself).
//
// Batches. kResolveBatch carries 1..kMaxRefsPerBatch distinct secret paths
// separated by '\n' (a byte the path grammar excludes). kValues answers with
// the values of the FIRST k of them, 1 <= k <= n, in request order, each as a
// 4-byte little-endian length followed by the bytes; the broker stops where
// the next value would push the message past kMaxValuesBytes (one value, at
// most kMaxValueBytes, always fits) and the worker asks again for the rest.
// The whole kValues payload is received into one SecretBuffer and split into
// per-value SecretBuffers (DecodeValues) inside locked memory. A batch is
// one round trip for up to 256 values instead of 256: under CPU contention
// each round trip costs a scheduler wake-up of the other process.
//
// Wire format. A logical message is one header packet followed by zero or more
// continuation packets:
//   header packet:       'V' type 0 0 len(u32, little endian) | first bytes
//   continuation packet: next bytes (no header)
// Every packet but the last carries exactly kPacketPayload payload bytes, so
// the receiver knows the exact size of each packet in advance and any other
// size (or a truncated datagram) is a protocol error. `len` is capped per type
// (MaxPayload); values (kValues) are received straight into a SecretBuffer and
// never touches a std::string or a protobuf message.
//
// SECURITY: the broker treats every failure of DecodeHeader / PhaseTable /
// the payload decoders on a worker message as fatal (OpenSSH monitor rule):
// the worker may be compromised and gets no second chance.
//
// Thread safety: a Channel is used by one thread at a time.
#ifndef VIGO_COMMON_IPC_AGENT_IPC_H_
#define VIGO_COMMON_IPC_AGENT_IPC_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/unique_fd.h"
#include "vocab/wire_limits.h"

namespace vigo::ipc {

// The fd the worker finds its end of the socketpair on.
inline constexpr int kWorkerSocketFd = 3;

enum class MsgType : uint8_t {
  kHello = 1,   // worker → broker: serialized vigo.v1.AttestationReport (no values)
  kBundle = 2,  // broker → worker: serialized vigo.v1.PolicyBundle (markers only)
  // 3 and 4: removed (kResolve, kValue); never reuse them.
  kReport = 5,        // worker → broker: serialized vigo.v1.WorkerReport (no values)
  kDone = 6,          // broker → worker: run finished; empty payload
  kResolveBatch = 7,  // worker → broker: 1..kMaxRefsPerBatch paths, '\n'-separated
  kValues = 8,        // broker → worker: values of a prefix of the batch, into a SecretBuffer
};
std::string_view MsgTypeName(MsgType type);

enum class Direction { kToBroker, kToWorker };

inline constexpr size_t kHeaderSize = 8;
inline constexpr uint8_t kMagic = 'V';
// Payload bytes per packet; well below the default unix socket send buffer
// (net.core.wmem_default), so a packet never fails with EMSGSIZE.
inline constexpr size_t kPacketPayload = 48 * 1024;

// Size caps per type.
inline constexpr size_t kMaxHelloBytes = 64 * 1024;
inline constexpr size_t kMaxBundleBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxResolveBytes = 256;  // one path of a batch (kMaxSecretPathLen)
inline constexpr size_t kMaxValueBytes = vocab::kMaxSecretValueBytes;  // every backend's
inline constexpr size_t kMaxReportBytes = 4 * 1024 * 1024;
// Caps on one result's text fields in kReport, after the worker made them
// valid UTF-8 (the worker cuts longer ones; a longer one from the worker is
// a violation).
inline constexpr size_t kMaxResultMessageBytes = 4096;
inline constexpr size_t kMaxResultNameBytes = 1024;
inline constexpr size_t kMaxResultTypeBytes = 64;
inline constexpr size_t kMaxRefsPerBatch = vocab::kMaxRefsPerCall;
inline constexpr size_t kMaxResolveBatchBytes = kMaxRefsPerBatch * (kMaxResolveBytes + 1);
// Framed values of one kValues message. Larger than one framed value of the
// largest size, so every kValues carries at least one value.
inline constexpr size_t kMaxValuesBytes = 2 * 1024 * 1024;
inline constexpr size_t kValueFrameBytes = 4;  // length prefix of each value in kValues

// The cap for `type`, or 0 when `type` may not travel in `dir`.
size_t MaxPayload(Direction dir, MsgType type);

struct Header {
  MsgType type = MsgType::kHello;
  uint32_t length = 0;
};

// Decodes and checks a header: magic, known type, type allowed in `dir`,
// reserved bytes zero, length within the cap. INVALID_ARGUMENT names the
// problem (never payload bytes). `bytes` may be longer than the header.
absl::StatusOr<Header> DecodeHeader(std::span<const uint8_t> bytes, Direction dir);
void EncodeHeader(const Header& h, uint8_t out[kHeaderSize]);

// Payload of kResolveBatch: 1..kMaxRefsPerBatch valid, distinct secret paths
// separated by single '\n' bytes (no leading, trailing or empty entries).
// INVALID_ARGUMENT otherwise (the message names the entry's index, never a value).
absl::StatusOr<std::vector<std::string>> DecodeResolveBatch(std::span<const uint8_t> payload);
// The inverse; INVALID_ARGUMENT if `refs` would not decode (count, grammar, duplicates).
absl::StatusOr<std::string> EncodeResolveBatch(const std::vector<std::string>& refs);

// How many of `value_sizes` (in order) one kValues message carries: the
// longest prefix whose framed size stays within kMaxValuesBytes, at least one
// when `value_sizes` is non-empty.
size_t ValuesThatFit(std::span<const size_t> value_sizes);

// Frames `values` (all of them; the caller chose them with ValuesThatFit) into
// one SecretBuffer for kValues. INVALID_ARGUMENT when that exceeds
// kMaxValuesBytes or `values` is empty; arena errors as SecretBuffer::Create.
absl::StatusOr<sandbox::SecretBuffer> EncodeValues(
    std::span<const sandbox::SecretBuffer* const> values);

// Splits a kValues payload into one SecretBuffer per value (copies within
// locked memory; the caller wipes `payload` by destroying it). INVALID_ARGUMENT
// when a length runs past the end, a value exceeds kMaxValueBytes, there are
// no values, or more than `max_count` (the refs that were asked for).
absl::StatusOr<std::vector<sandbox::SecretBuffer>> DecodeValues(
    const sandbox::SecretBuffer& payload, size_t max_count);

// The per-phase table. Both ends run one; a refused transition is a protocol
// violation.
class PhaseTable {
 public:
  enum class Phase { kAwaitHello, kIdle, kApplying, kReported };

  // Records a message travelling in `dir` (whether we sent or received it).
  // FAILED_PRECONDITION when `type` is not allowed in the current phase
  // (e.g. kValues with no kResolveBatch outstanding, a second kHello).
  absl::Status Observe(Direction dir, MsgType type);
  Phase phase() const { return phase_; }

 private:
  enum class Outstanding { kNone, kResolveBatch };
  Phase phase_ = Phase::kAwaitHello;
  Outstanding outstanding_ = Outstanding::kNone;
};

struct Message {
  MsgType type = MsgType::kHello;
  std::vector<uint8_t> payload;  // every type but kValues
  sandbox::SecretBuffer value;   // kValues only
};

class Channel {
 public:
  Channel() = default;
  explicit Channel(sandbox::UniqueFd fd) : fd_(std::move(fd)) {}

  // Sends one logical message. UNAVAILABLE when the peer is gone.
  absl::Status Send(MsgType type, std::span<const uint8_t> payload);
  absl::Status Send(MsgType type, std::string_view payload);

  // Receives the next message travelling in `dir` (the caller's inbound
  // direction). UNAVAILABLE "peer closed" on EOF; INVALID_ARGUMENT on any
  // malformed, oversized, truncated or misdirected message; RESOURCE_EXHAUSTED
  // when the value does not fit the arena.
  absl::StatusOr<Message> Receive(Direction dir);

  int fd() const { return fd_.get(); }
  sandbox::UniqueFd Release() { return std::move(fd_); }

 private:
  absl::Status ReceiveRest(const Header& h, std::span<uint8_t> dest);
  sandbox::UniqueFd fd_;
  sandbox::SecretBuffer scratch_;  // first packet of each message (locked)
};

struct SocketPair {
  sandbox::UniqueFd broker;
  sandbox::UniqueFd worker;
};
// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC).
absl::StatusOr<SocketPair> CreateSocketPair();

// OK when `fd` is an open AF_UNIX SOCK_SEQPACKET socket (the worker checks its
// inherited fd before trusting it).
absl::Status CheckSeqPacketSocket(int fd);

}  // namespace vigo::ipc

#endif  // VIGO_COMMON_IPC_AGENT_IPC_H_
