#include "transport/bootstrap/wire.h"

#include <cstring>

#include "common/error.h"

namespace conveyor::transport::wire {
namespace {

void put_le(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

std::vector<uint8_t> encode_frame(MsgType type, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + payload.size());
  put_le(out, kMagic, 4);
  put_le(out, static_cast<uint32_t>(type), 4);
  put_le(out, payload.size(), 8);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::optional<Frame> FrameDecoder::next(uint64_t max_payload) {
  size_t avail = buffer_.size() - offset_;
  if (avail < kHeaderBytes) {
    // Check the magic as soon as 4 bytes are here, so garbage is refused early.
    if (avail >= 4 && get_le(buffer_.data() + offset_, 4) != kMagic)
      throw Error(ErrorKind::kRuntime, "bootstrap: bad frame magic (not a conveyor peer)");
    return std::nullopt;
  }
  const uint8_t* h = buffer_.data() + offset_;
  if (get_le(h, 4) != kMagic)
    throw Error(ErrorKind::kRuntime, "bootstrap: bad frame magic (not a conveyor peer)");
  uint32_t type = static_cast<uint32_t>(get_le(h + 4, 4));
  if (type < static_cast<uint32_t>(MsgType::kHello) || type > static_cast<uint32_t>(MsgType::kLast))
    throw Error(ErrorKind::kRuntime, fmt::format("bootstrap: unknown message type {}", type));
  uint64_t length = get_le(h + 8, 8);
  if (length > max_payload)
    throw Error(ErrorKind::kRuntime,
                fmt::format("bootstrap: message of {} bytes exceeds the limit of {} bytes", length,
                            max_payload));
  if (avail - kHeaderBytes < length) return std::nullopt;
  Frame f{static_cast<MsgType>(type),
          std::vector<uint8_t>(h + kHeaderBytes, h + kHeaderBytes + length)};
  offset_ += kHeaderBytes + length;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ > (1u << 20)) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    offset_ = 0;
  }
  return f;
}

ByteWriter& ByteWriter::u32(uint32_t v) {
  put_le(buf_, v, 4);
  return *this;
}
ByteWriter& ByteWriter::u64(uint64_t v) {
  put_le(buf_, v, 8);
  return *this;
}
ByteWriter& ByteWriter::bytes(std::span<const uint8_t> b) {
  u64(b.size());
  buf_.insert(buf_.end(), b.begin(), b.end());
  return *this;
}

void ByteReader::need(size_t n) const {
  if (b_.size() - pos_ < n)
    throw Error(ErrorKind::kRuntime, "bootstrap: truncated or malformed message");
}
uint32_t ByteReader::u32() {
  need(4);
  auto v = static_cast<uint32_t>(get_le(b_.data() + pos_, 4));
  pos_ += 4;
  return v;
}
uint64_t ByteReader::u64() {
  need(8);
  auto v = get_le(b_.data() + pos_, 8);
  pos_ += 8;
  return v;
}
std::vector<uint8_t> ByteReader::bytes() {
  uint64_t n = u64();
  need(n);
  std::vector<uint8_t> out(b_.begin() + static_cast<std::ptrdiff_t>(pos_),
                           b_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
  pos_ += n;
  return out;
}
std::string ByteReader::str() {
  auto b = bytes();
  return std::string(b.begin(), b.end());
}

std::vector<uint8_t> encode_hello(const Hello& hello) {
  ByteWriter w;
  w.u32(hello.version)
      .i32(hello.rank)
      .i32(hello.world_size)
      .str(hello.job_token)
      .str(hello.fingerprint)
      .bytes(hello.ucx_address)
      .str(hello.host)
      .i32(hello.pid);
  return std::move(w.buffer());
}

Hello decode_hello(std::span<const uint8_t> payload) {
  ByteReader rd(payload);
  Hello h;
  h.version = rd.u32();
  h.rank = rd.i32();
  h.world_size = rd.i32();
  if (h.version != kVersion) return h;  // the rest is laid out as that version says
  h.job_token = rd.str();
  h.fingerprint = rd.str();
  h.ucx_address = rd.bytes();
  h.host = rd.str();
  h.pid = rd.i32();
  if (!rd.at_end()) throw Error(ErrorKind::kRuntime, "bootstrap: a hello with bytes left over");
  return h;
}

}  // namespace conveyor::transport::wire
