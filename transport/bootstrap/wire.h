// The bootstrap wire format: length-prefixed frames over TCP, and the byte codec for
// their payloads. Little-endian on the wire.
//
// Frame = magic "CNV1" (u32) | type (u32) | payload length (u64) | payload.
// Readers reject a wrong magic, an unknown type or a length over the limit before they
// allocate anything, so garbage or hostile bytes cost a closed connection, nothing more.
//
// Messages (client = every rank, service = rank 0's rendezvous service):
//   client -> service  kHello      version, rank, world_size, token, fingerprint, ucx address,
//   host, pid
//                      kHeartbeat  (empty)
//                      kCollective seq, op, root, payload
//                      kAbort      reason
//                      kBye        (empty): clean exit, do not report this rank as dead
//                      kRosterQuery (empty): who has joined? (a rank about to give up)
//   service -> client  kWelcome    world_size, ucx address of every rank
//                      kReject     error kind, reason (connection refused; closed after)
//                      kHeartbeat  (empty)
//                      kResult     seq, payload
//                      kFailure    rank, error kind, reason, cause, host, pid (the job is
//                                  over; cause, host and pid as in job_failure.h)
//                      kByeAck     (empty): the service has read this rank's kBye (the rank
//                                  may close: its goodbye cannot be lost to a reset)
//                      kRoster     world_size, count, then count x (rank, host, pid): the
//                                  ranks that have joined so far
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace conveyor::transport::wire {

inline constexpr uint32_t kMagic = 0x31564E43;  // "CNV1" as little-endian bytes
inline constexpr uint32_t kVersion = 2;
inline constexpr size_t kHeaderBytes = 16;
// Before a connection has presented the token it may send only a small hello: the token
// (CONVEYOR_JOB_TOKEN, at most kMaxJobTokenBytes, checked when a transport is created) and
// the rest (fingerprint, UCX worker address, host name, fixed fields), which fits in
// kMaxHelloRestBytes.
inline constexpr size_t kMaxJobTokenBytes = 4096;
inline constexpr size_t kMaxHelloRestBytes = 60 * 1024;
inline constexpr uint64_t kMaxHelloPayload = kMaxJobTokenBytes + kMaxHelloRestBytes;
// After: collectives carry a few KiB; broadcast is capped here.
inline constexpr uint64_t kMaxPayload = 256ull << 20;

enum class MsgType : uint32_t {
  kHello = 1,
  kWelcome,
  kReject,
  kHeartbeat,
  kCollective,
  kResult,
  kAbort,
  kFailure,
  kBye,
  kByeAck,
  kRosterQuery,
  kRoster,
  kLast = kRoster,  // readers refuse types above this
};

enum class CollectiveOp : uint32_t { kAllReduceSum = 1, kBarrier = 2, kBroadcast = 3 };

struct Frame {
  MsgType type;
  std::vector<uint8_t> payload;
};

std::vector<uint8_t> encode_frame(MsgType type, std::span<const uint8_t> payload);

// Incremental frame parser for non-blocking sockets. Throws conveyor::Error(kRuntime)
// on a bad magic, unknown type or oversized length; the connection must then be closed.
class FrameDecoder {
 public:
  void feed(const uint8_t* data, size_t n) { buffer_.insert(buffer_.end(), data, data + n); }
  std::optional<Frame> next(uint64_t max_payload);
  size_t buffered() const { return buffer_.size(); }

 private:
  std::vector<uint8_t> buffer_;
  size_t offset_ = 0;
};

class ByteWriter {
 public:
  ByteWriter& u32(uint32_t v);
  ByteWriter& i32(int32_t v) { return u32(static_cast<uint32_t>(v)); }
  ByteWriter& u64(uint64_t v);
  ByteWriter& bytes(std::span<const uint8_t> b);  // u64 length + bytes
  ByteWriter& str(const std::string& s) {
    return bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  std::vector<uint8_t>& buffer() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

// Reads what ByteWriter wrote; throws conveyor::Error(kRuntime) past the end.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> b) : b_(b) {}
  uint32_t u32();
  int32_t i32() { return static_cast<int32_t>(u32()); }
  uint64_t u64();
  std::vector<uint8_t> bytes();
  std::string str();
  bool at_end() const { return pos_ == b_.size(); }

 private:
  void need(size_t n) const;
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

// The first message of every rank. version, rank and world_size keep their places in every
// protocol version, so the service can name the rank of a mismatched version.
struct Hello {
  uint32_t version = kVersion;
  int32_t rank = -1;
  int32_t world_size = 0;
  std::string job_token;
  std::string fingerprint;
  std::vector<uint8_t> ucx_address;
  std::string host;  // as the peer sent it: untrusted, escape before logging (printable.h)
  int32_t pid = 0;
};

std::vector<uint8_t> encode_hello(const Hello& hello);
// Throws conveyor::Error(kRuntime) when the payload is short or has bytes left over.
Hello decode_hello(std::span<const uint8_t> payload);

}  // namespace conveyor::transport::wire
