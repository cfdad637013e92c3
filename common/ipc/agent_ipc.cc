#include "common/ipc/agent_ipc.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"

namespace vigo::ipc {
namespace {

bool KnownType(uint8_t t) { return t >= 1 && t <= 8; }

absl::Status SendPacket(int fd, const struct iovec* iov, int iovcnt) {
  struct msghdr msg = {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      return absl::UnavailableError("ipc: peer closed");
    }
    return sandbox::ErrnoStatus(errno, "ipc sendmsg");
  }
}

// Receives one packet into `iov`; the packet must be exactly `expected` bytes.
absl::Status RecvPacket(int fd, struct iovec* iov, int iovcnt, size_t expected) {
  struct msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  for (;;) {
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) return absl::UnavailableError("ipc: peer closed");
      return sandbox::ErrnoStatus(errno, "ipc recvmsg");
    }
    if (n == 0) return absl::UnavailableError("ipc: peer closed");
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      return absl::InvalidArgumentError("ipc: packet larger than announced");
    }
    if (static_cast<size_t>(n) != expected) {
      return absl::InvalidArgumentError(StrCat("ipc: packet of ", static_cast<uint64_t>(n),
                                               " bytes, expected ", static_cast<uint64_t>(expected)));
    }
    return absl::OkStatus();
  }
}

}  // namespace

std::string_view MsgTypeName(MsgType type) {
  switch (type) {
    case MsgType::kHello: return "hello";
    case MsgType::kBundle:
      return "bundle";
    case MsgType::kReport: return "report";
    case MsgType::kDone: return "done";
    case MsgType::kResolveBatch: return "resolve-batch";
    case MsgType::kValues: return "values";
  }
  return "unknown";
}

size_t MaxPayload(Direction dir, MsgType type) {
  if (dir == Direction::kToBroker) {
    switch (type) {
      case MsgType::kHello:
        return kMaxHelloBytes;
      case MsgType::kResolveBatch: return kMaxResolveBatchBytes;
      case MsgType::kReport: return kMaxReportBytes;
      default: return 0;
    }
  }
  switch (type) {
    case MsgType::kBundle:
      return kMaxBundleBytes;
    case MsgType::kValues: return kMaxValuesBytes;
    case MsgType::kDone: return 0;
    default: return 0;
  }
}

namespace {
bool Allowed(Direction dir, MsgType type) {
  if (dir == Direction::kToBroker) {
    return type == MsgType::kHello || type == MsgType::kResolveBatch || type == MsgType::kReport;
  }
  return type == MsgType::kBundle || type == MsgType::kValues || type == MsgType::kDone;
}
}  // namespace

absl::StatusOr<Header> DecodeHeader(std::span<const uint8_t> bytes, Direction dir) {
  if (bytes.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        StrCat("ipc: header of ", static_cast<uint64_t>(bytes.size()), " bytes, need 8"));
  }
  if (bytes[0] != kMagic) return absl::InvalidArgumentError("ipc: bad magic");
  if (!KnownType(bytes[1])) {
    return absl::InvalidArgumentError(StrCat("ipc: unknown message type ", int{bytes[1]}));
  }
  if (bytes[2] != 0 || bytes[3] != 0) {
    return absl::InvalidArgumentError("ipc: reserved header bytes are not zero");
  }
  Header h;
  h.type = static_cast<MsgType>(bytes[1]);
  if (!Allowed(dir, h.type)) {
    return absl::InvalidArgumentError(
        StrCat("ipc: message '", MsgTypeName(h.type), "' may not travel in this direction"));
  }
  h.length = static_cast<uint32_t>(bytes[4]) | (static_cast<uint32_t>(bytes[5]) << 8) |
             (static_cast<uint32_t>(bytes[6]) << 16) | (static_cast<uint32_t>(bytes[7]) << 24);
  if (h.length > MaxPayload(dir, h.type)) {
    return absl::InvalidArgumentError(StrCat("ipc: message '", MsgTypeName(h.type), "' of ",
                                             uint64_t{h.length}, " bytes exceeds the cap of ",
                                             static_cast<uint64_t>(MaxPayload(dir, h.type))));
  }
  return h;
}

void EncodeHeader(const Header& h, uint8_t out[kHeaderSize]) {
  out[0] = kMagic;
  out[1] = static_cast<uint8_t>(h.type);
  out[2] = 0;
  out[3] = 0;
  out[4] = static_cast<uint8_t>(h.length);
  out[5] = static_cast<uint8_t>(h.length >> 8);
  out[6] = static_cast<uint8_t>(h.length >> 16);
  out[7] = static_cast<uint8_t>(h.length >> 24);
}

absl::StatusOr<std::vector<std::string>> DecodeResolveBatch(std::span<const uint8_t> payload) {
  if (payload.size() > kMaxResolveBatchBytes) {
    return absl::InvalidArgumentError("ipc: resolve batch too long");
  }
  std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  std::vector<std::string> refs;
  size_t start = 0;
  for (;;) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (refs.size() == kMaxRefsPerBatch) {
      return absl::InvalidArgumentError(
          StrCat("ipc: resolve batch has more than ", static_cast<uint64_t>(kMaxRefsPerBatch),
                 " entries"));
    }
    std::string_view ref = text.substr(start, end - start);
    absl::Status s = ValidateSecretPath(ref);
    if (!s.ok()) {
      return absl::InvalidArgumentError(StrCat("ipc: resolve batch entry ",
                                               static_cast<uint64_t>(refs.size()), ": ",
                                               std::string(s.message())));
    }
    refs.emplace_back(ref);
    if (end == text.size()) break;
    start = end + 1;
  }
  std::vector<std::string_view> sorted(refs.begin(), refs.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError("ipc: resolve batch names a secret twice");
  }
  return refs;
}

absl::StatusOr<std::string> EncodeResolveBatch(const std::vector<std::string>& refs) {
  std::string out;
  for (const std::string& r : refs) StrAppend(&out, out.empty() ? "" : "\n", r);
  // The encoder refuses what the decoder would: both ends agree on the rules.
  VIGO_RETURN_IF_ERROR(DecodeResolveBatch(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()), out.size()))
                           .status());
  return out;
}

size_t ValuesThatFit(std::span<const size_t> value_sizes) {
  size_t total = 0, n = 0;
  for (size_t len : value_sizes) {
    if (len > kMaxValuesBytes - kValueFrameBytes ||
        total + kValueFrameBytes + len > kMaxValuesBytes) {
      break;
    }
    total += kValueFrameBytes + len;
    ++n;
  }
  return (n == 0 && !value_sizes.empty()) ? 1 : n;
}

absl::StatusOr<sandbox::SecretBuffer> EncodeValues(
    std::span<const sandbox::SecretBuffer* const> values) {
  if (values.empty()) return absl::InvalidArgumentError("ipc: no values to send");
  size_t total = 0;
  for (const sandbox::SecretBuffer* v : values) {
    if (v->size() > kMaxValueBytes) return absl::InvalidArgumentError("ipc: value too large");
    total += kValueFrameBytes + v->size();
  }
  if (total > kMaxValuesBytes) return absl::InvalidArgumentError("ipc: values message too large");
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(total));
  std::span<uint8_t> dst = out.RevealMutable();
  size_t off = 0;
  for (const sandbox::SecretBuffer* v : values) {
    const uint32_t len = static_cast<uint32_t>(v->size());
    for (size_t i = 0; i < kValueFrameBytes; ++i) dst[off + i] = static_cast<uint8_t>(len >> (8 * i));
    off += kValueFrameBytes;
    if (len > 0) std::memcpy(dst.data() + off, v->Reveal().data(), len);
    off += len;
  }
  return out;
}

absl::StatusOr<std::vector<sandbox::SecretBuffer>> DecodeValues(
    const sandbox::SecretBuffer& payload, size_t max_count) {
  std::span<const uint8_t> in = payload.Reveal();
  std::vector<sandbox::SecretBuffer> out;
  size_t off = 0;
  while (off < in.size()) {
    if (out.size() == max_count) {
      return absl::InvalidArgumentError(StrCat("ipc: more values than the ",
                                               static_cast<uint64_t>(max_count), " asked for"));
    }
    if (in.size() - off < kValueFrameBytes) {
      return absl::InvalidArgumentError("ipc: truncated value length");
    }
    uint32_t len = 0;
    for (size_t i = 0; i < kValueFrameBytes; ++i) len |= static_cast<uint32_t>(in[off + i]) << (8 * i);
    off += kValueFrameBytes;
    if (len > kMaxValueBytes || len > in.size() - off) {
      return absl::InvalidArgumentError(
          StrCat("ipc: value ", static_cast<uint64_t>(out.size()), " runs past the message"));
    }
    VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v, sandbox::SecretBuffer::CopyFrom(in.subspan(off, len)));
    out.push_back(std::move(v));
    off += len;
  }
  if (out.empty()) return absl::InvalidArgumentError("ipc: values message carries no value");
  return out;
}

absl::Status PhaseTable::Observe(Direction dir, MsgType type) {
  auto refuse = [&]() {
    static constexpr const char* kNames[] = {"await-hello", "idle", "applying", "reported"};
    return absl::FailedPreconditionError(StrCat("ipc: message '", MsgTypeName(type),
                                                "' not allowed in phase ",
                                                kNames[static_cast<int>(phase_)]));
  };
  if (!Allowed(dir, type)) return refuse();
  switch (phase_) {
    case Phase::kAwaitHello:
      if (type != MsgType::kHello) return refuse();
      phase_ = Phase::kIdle;
      return absl::OkStatus();
    case Phase::kIdle:
      if (type != MsgType::kBundle) return refuse();
      phase_ = Phase::kApplying;
      outstanding_ = Outstanding::kNone;
      return absl::OkStatus();
    case Phase::kApplying:
      if (type == MsgType::kResolveBatch && outstanding_ == Outstanding::kNone) {
        outstanding_ = Outstanding::kResolveBatch;
        return absl::OkStatus();
      }
      if (type == MsgType::kValues && outstanding_ == Outstanding::kResolveBatch) {
        outstanding_ = Outstanding::kNone;
        return absl::OkStatus();
      }
      if (type == MsgType::kReport && outstanding_ == Outstanding::kNone) {
        phase_ = Phase::kReported;
        return absl::OkStatus();
      }
      return refuse();
    case Phase::kReported:
      if (type != MsgType::kDone) return refuse();
      phase_ = Phase::kIdle;
      return absl::OkStatus();
  }
  return refuse();
}

absl::Status Channel::Send(MsgType type, std::string_view payload) {
  return Send(type, std::span<const uint8_t>(
                        reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
}

absl::Status Channel::Send(MsgType type, std::span<const uint8_t> payload) {
  if (!fd_) return absl::FailedPreconditionError("ipc: channel closed");
  if (payload.size() > UINT32_MAX) return absl::InvalidArgumentError("ipc: message too large");
  uint8_t hdr[kHeaderSize];
  EncodeHeader(Header{type, static_cast<uint32_t>(payload.size())}, hdr);
  size_t first = std::min(payload.size(), kPacketPayload);
  struct iovec iov[2];
  iov[0].iov_base = hdr;
  iov[0].iov_len = kHeaderSize;
  iov[1].iov_base = const_cast<uint8_t*>(payload.data());
  iov[1].iov_len = first;
  VIGO_RETURN_IF_ERROR(SendPacket(fd_.get(), iov, first > 0 ? 2 : 1));
  size_t off = first;
  while (off < payload.size()) {
    size_t n = std::min(payload.size() - off, kPacketPayload);
    struct iovec c;
    c.iov_base = const_cast<uint8_t*>(payload.data() + off);
    c.iov_len = n;
    VIGO_RETURN_IF_ERROR(SendPacket(fd_.get(), &c, 1));
    off += n;
  }
  return absl::OkStatus();
}

absl::Status Channel::ReceiveRest(const Header& h, std::span<uint8_t> dest) {
  size_t off = std::min<size_t>(h.length, kPacketPayload);
  while (off < h.length) {
    size_t n = std::min<size_t>(h.length - off, kPacketPayload);
    struct iovec c;
    c.iov_base = dest.data() + off;
    c.iov_len = n;
    VIGO_RETURN_IF_ERROR(RecvPacket(fd_.get(), &c, 1, n));
    off += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<Message> Channel::Receive(Direction dir) {
  if (!fd_) return absl::FailedPreconditionError("ipc: channel closed");
  // The first packet (header + up to one packet of payload) lands in a locked
  // scratch buffer: one recvmsg, no peek. Its payload bytes are copied to the
  // right-sized destination and wiped from the scratch.
  if (scratch_.empty()) {
    VIGO_ASSIGN_OR_RETURN(scratch_, sandbox::SecretBuffer::Create(kHeaderSize + kPacketPayload));
  }
  std::span<uint8_t> scratch = scratch_.RevealMutable();
  struct iovec iov;
  iov.iov_base = scratch.data();
  iov.iov_len = scratch.size();
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n;
  do {
    n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return absl::UnavailableError("ipc: peer closed");
    return sandbox::ErrnoStatus(errno, "ipc recvmsg");
  }
  if (n == 0) return absl::UnavailableError("ipc: peer closed");
  const size_t got = static_cast<size_t>(n);
  struct Wipe {
    std::span<uint8_t> s;
    size_t n;
    ~Wipe() { sandbox::SecureZero(s.data(), n); }
  } wipe{scratch, got};
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return absl::InvalidArgumentError("ipc: packet larger than the largest legal packet");
  }
  VIGO_ASSIGN_OR_RETURN(Header h, DecodeHeader(scratch.first(got), dir));
  const size_t first = std::min<size_t>(h.length, kPacketPayload);
  if (got != kHeaderSize + first) {
    return absl::InvalidArgumentError(StrCat("ipc: packet of ", static_cast<uint64_t>(got),
                                             " bytes, expected ",
                                             static_cast<uint64_t>(kHeaderSize + first)));
  }
  Message m;
  m.type = h.type;
  std::span<uint8_t> dest;
  if (h.type == MsgType::kValues) {
    VIGO_ASSIGN_OR_RETURN(m.value, sandbox::SecretBuffer::Create(h.length));
    dest = m.value.RevealMutable();
  } else {
    m.payload.resize(h.length);
    dest = std::span<uint8_t>(m.payload.data(), m.payload.size());
  }
  if (first > 0) std::memcpy(dest.data(), scratch.data() + kHeaderSize, first);
  absl::Status s = ReceiveRest(h, dest);
  if (!s.ok()) {
    m.value.Clear();
    return s;
  }
  return m;
}

absl::StatusOr<SocketPair> CreateSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return sandbox::ErrnoStatus(errno, "socketpair");
  }
  SocketPair sp;
  sp.broker = sandbox::UniqueFd(fds[0]);
  sp.worker = sandbox::UniqueFd(fds[1]);
  return sp;
}

absl::Status CheckSeqPacketSocket(int fd) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return sandbox::ErrnoStatus(errno, "getsockopt SO_TYPE", StrCat("fd ", fd));
  }
  if (type != SOCK_SEQPACKET) {
    return absl::FailedPreconditionError(StrCat("fd ", fd, " is not a SOCK_SEQPACKET socket"));
  }
  int domain = 0;
  len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
    return absl::FailedPreconditionError(StrCat("fd ", fd, " is not an AF_UNIX socket"));
  }
  return absl::OkStatus();
}

}  // namespace vigo::ipc
