// Packing of (source rank, Tag) into UCX's 64-bit tag.
//
// UCX matches tags per worker, not per endpoint, so the source rank is part of the tag.
// Layout, most significant bit first:
//   [ source rank : 14 | direction : 2 | chunk : 8 | microbatch : 16 | step : 24 ]
// The step keeps only its low 24 bits: messages 2^24 steps apart never coexist.
// Internal traffic (endpoint warm-up) uses direction 3, which Tag never carries.
#pragma once

#include <cstdint>

#include "common/error.h"
#include "transport/transport.h"

namespace conveyor::transport {

inline constexpr int kMaxRanks = 1 << 14;
inline constexpr uint8_t kInternalDirection = 3;

inline uint64_t pack_tag(int source_rank, const Tag& t) {
  return (static_cast<uint64_t>(source_rank) << 50) |
         (static_cast<uint64_t>(t.direction & 3) << 48) | (static_cast<uint64_t>(t.chunk) << 40) |
         (static_cast<uint64_t>(t.microbatch) << 24) | (static_cast<uint64_t>(t.step) & 0xFFFFFFu);
}

inline int tag_source(uint64_t packed) {
  return static_cast<int>(packed >> 50);
}

inline Tag unpack_tag(uint64_t packed) {
  Tag t;
  t.direction = static_cast<uint8_t>((packed >> 48) & 3);
  t.chunk = static_cast<uint8_t>((packed >> 40) & 0xFF);
  t.microbatch = static_cast<uint16_t>((packed >> 24) & 0xFFFF);
  t.step = static_cast<uint32_t>(packed & 0xFFFFFF);
  return t;
}

}  // namespace conveyor::transport
