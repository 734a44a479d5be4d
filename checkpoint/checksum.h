// Checksums of checkpoint datasets: XXH3-64 of the dataset's raw bytes as stored in the file
// (little-endian), written as 16 lower-case hex digits in manifest.json.
#pragma once

#include <xxhash.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace conveyor::checkpoint {

// The file stores little-endian data; hashing the in-memory buffer equals hashing the file
// bytes only on a little-endian host.
static_assert(std::endian::native == std::endian::little,
              "checkpoint checksums assume a little-endian host");

inline uint64_t xxh3(const void* data, size_t bytes) {
  return XXH3_64bits(data, bytes);
}

// "0123456789abcdef" form used in JSON (JSON numbers lose precision above 2^53 in many readers).
std::string checksum_hex(uint64_t value);
// Inverse of checksum_hex; nullopt unless the text is exactly 16 hex digits.
std::optional<uint64_t> parse_checksum_hex(const std::string& text);

}  // namespace conveyor::checkpoint
