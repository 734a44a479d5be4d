#include "data/token_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "common/error.h"

namespace conveyor::data {

void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens) {
  CONVEYOR_REQUIRE(tokens.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                   "{}: {} tokens do not fit in a token file's int32 count", path, tokens.size());
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("cannot create token file {}: {}", path, std::strerror(errno)),
                "check that the folder exists and is writable");
  }
  int32_t header[kTokenFileHeaderInts] = {};
  header[0] = kTokenFileMagic;
  header[1] = kTokenFileVersion;
  header[2] = static_cast<int32_t>(tokens.size());
  bool ok = std::fwrite(header, sizeof(header), 1, file.get()) == 1;
  if (ok && !tokens.empty()) {
    ok = std::fwrite(tokens.data(), sizeof(uint16_t), tokens.size(), file.get()) == tokens.size();
  }
  // fclose flushes; its failure (e.g. disk full) must not pass silently.
  FILE* raw = file.release();
  const bool closed = std::fclose(raw) == 0;
  if (!ok || !closed) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("writing token file {} failed: {}", path, std::strerror(errno)),
                "check free disk space and permissions");
  }
}

}  // namespace conveyor::data
