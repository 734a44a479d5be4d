#include "checkpoint/checksum.h"

#include <fmt/format.h>

namespace conveyor::checkpoint {

std::string checksum_hex(uint64_t value) {
  return fmt::format("{:016x}", value);
}

std::optional<uint64_t> parse_checksum_hex(const std::string& text) {
  if (text.size() != 16) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  return value;
}

}  // namespace conveyor::checkpoint
