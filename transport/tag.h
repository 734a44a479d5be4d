// Packing of (source rank, Tag) into UCX's 64-bit tag.
//
// UCX matches tags per worker, not per endpoint, so the source rank is part of the tag.
// Layout, most significant bit first:
//   [ source rank : 14 | internal : 2 | caller's tag : 48 ]
// Internal traffic (endpoint warm-up) sets the internal bits, which a caller's tag never does.
#pragma once

#include <cstdint>

#include "transport/transport.h"

namespace conveyor::transport {

static_assert(kMaxRanks == 1 << (64 - 50), "a source rank is the top 14 bits of the tag");
inline constexpr uint64_t kInternalBits = uint64_t{3} << kTagBits;

inline uint64_t pack_tag(int source_rank, Tag tag) {
  return (static_cast<uint64_t>(source_rank) << 50) | tag;
}

inline int tag_source(uint64_t packed) {
  return static_cast<int>(packed >> 50);
}

inline Tag unpack_tag(uint64_t packed) {
  return packed & ((uint64_t{1} << 50) - 1);
}

}  // namespace conveyor::transport
