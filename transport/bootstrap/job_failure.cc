#include "transport/bootstrap/job_failure.h"

#include <sys/socket.h>

#include "transport/bootstrap/wire.h"

namespace conveyor::transport {

namespace {
constexpr uint32_t kReportMagic = 0x31524643;  // "CFR1" as little-endian bytes
}

std::vector<uint8_t> encode_failure_report(const JobFailure& f) {
  wire::ByteWriter w;
  w.u32(kReportMagic)
      .i32(f.rank)
      .u32(static_cast<uint32_t>(f.kind))
      .u32(static_cast<uint32_t>(f.cause))
      .str(f.host)
      .i32(f.pid)
      .str(f.reason);
  return std::move(w.buffer());
}

std::optional<JobFailure> decode_failure_report(std::span<const uint8_t> bytes) {
  try {
    wire::ByteReader rd(bytes);
    if (rd.u32() != kReportMagic) return std::nullopt;
    JobFailure f;
    f.rank = rd.i32();
    uint32_t kind = rd.u32();
    uint32_t cause = rd.u32();
    f.host = rd.str();
    f.pid = rd.i32();
    f.reason = rd.str();
    if (!rd.at_end() || kind > static_cast<uint32_t>(ErrorKind::kPeerFailed) ||
        cause > static_cast<uint32_t>(FailureCause::kAborted))
      return std::nullopt;
    f.kind = static_cast<ErrorKind>(kind);
    f.cause = static_cast<FailureCause>(cause);
    return f;
  } catch (const Error&) {
    return std::nullopt;
  }
}

void send_failure_report(int fd, const JobFailure& f) noexcept {
  if (fd < 0) return;
  try {
    auto bytes = encode_failure_report(f);
    (void)::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  } catch (...) {
  }
}

}  // namespace conveyor::transport
