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
//   kApplying    kResolve (many), kReport  kValue (exactly one per kResolve)
//   kReported    -                         kDone (once), back to kIdle
//
// Wire format. A logical message is one header packet followed by zero or more
// continuation packets:
//   header packet:       'V' type 0 0 len(u32, little endian) | first bytes
//   continuation packet: next bytes (no header)
// Every packet but the last carries exactly kPacketPayload payload bytes, so
// the receiver knows the exact size of each packet in advance and any other
// size (or a truncated datagram) is a protocol error. `len` is capped per type
// (MaxPayload); a value (kValue) is received straight into a SecretBuffer and
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

namespace vigo::ipc {

// The fd the worker finds its end of the socketpair on.
inline constexpr int kWorkerSocketFd = 3;

enum class MsgType : uint8_t {
  kHello = 1,    // worker → broker: serialized vigo.v1.AttestationReport (no values)
  kBundle = 2,   // broker → worker: serialized vigo.v1.PolicyBundle (markers only)
  kResolve = 3,  // worker → broker: one secret path (CONTRACT §3 grammar)
  kValue = 4,    // broker → worker: the value bytes, into a SecretBuffer
  kReport = 5,   // worker → broker: serialized vigo.v1.ReportResultRequest (no values)
  kDone = 6,     // broker → worker: run finished; empty payload
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
inline constexpr size_t kMaxResolveBytes = 256;  // kMaxSecretPathLen
inline constexpr size_t kMaxValueBytes = 1024 * 1024;  // the vault's value limit
inline constexpr size_t kMaxReportBytes = 4 * 1024 * 1024;

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

// Payload of kResolve: a valid secret path. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> DecodeResolve(std::span<const uint8_t> payload);

// The per-phase table. Both ends run one; a refused transition is a protocol
// violation.
class PhaseTable {
 public:
  enum class Phase { kAwaitHello, kIdle, kApplying, kReported };

  // Records a message travelling in `dir` (whether we sent or received it).
  // FAILED_PRECONDITION when `type` is not allowed in the current phase
  // (e.g. kValue with no kResolve outstanding, a second kHello).
  absl::Status Observe(Direction dir, MsgType type);
  Phase phase() const { return phase_; }

 private:
  Phase phase_ = Phase::kAwaitHello;
  bool resolve_outstanding_ = false;
};

struct Message {
  MsgType type = MsgType::kHello;
  std::vector<uint8_t> payload;  // every type but kValue
  sandbox::SecretBuffer value;   // kValue only
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
