#include "common/printable.h"

#include <fmt/format.h>

namespace conveyor {

std::string printable(std::string_view text, size_t max_bytes) {
  const std::string_view kept = text.substr(0, max_bytes);
  std::string out;
  out.reserve(kept.size());
  for (char ch : kept) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte >= 0x20 && byte <= 0x7e)
      out += ch;
    else
      out += fmt::format("\\x{:02x}", byte);
  }
  if (text.size() > kept.size())
    out += fmt::format("... ({} more bytes)", text.size() - kept.size());
  return out;
}

}  // namespace conveyor
