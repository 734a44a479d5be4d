#include "train/data_identity.h"

#include <xxhash.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "data/dataset.h"

namespace conveyor::pipeline {

namespace fs = std::filesystem;

nlohmann::json data_identity(const std::string& path) {
  constexpr size_t kEdge = 64 * 1024;  // bytes hashed at each end of every file
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  const auto files = data::Dataset::input_files(path);
  uint64_t total = 0;
  std::vector<char> buffer;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::error_code ec;
    const uint64_t size = fs::file_size(file, ec);
    if (!in || ec) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("cannot read data file {}: {}", file.string(),
                              ec ? ec.message() : "open failed"),
                  "check that it exists and is readable");
    }
    const std::string name = file.filename().string();
    XXH3_64bits_update(state.get(), name.data(), name.size() + 1);  // with its NUL
    XXH3_64bits_update(state.get(), &size, sizeof size);
    // The head, and the tail where the file is longer than the head.
    for (const uint64_t offset :
         {uint64_t(0), size > kEdge ? std::max(kEdge, size - kEdge) : size}) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kEdge, size - offset));
      if (n == 0) continue;
      buffer.resize(n);
      in.seekg(static_cast<std::streamoff>(offset));
      in.read(buffer.data(), static_cast<std::streamsize>(n));
      if (!in) {
        throw Error(ErrorKind::kRuntime, fmt::format("reading data file {} failed", file.string()),
                    "was the file changed while conveyor read it?");
      }
      XXH3_64bits_update(state.get(), buffer.data(), n);
    }
    total += size;
  }
  return {{"files", files.size()},
          {"bytes", total},
          {"xxh3", fmt::format("{:016x}", XXH3_64bits_digest(state.get()))}};
}

// "3 files, 20480 bytes, xxh3 0123456789abcdef"
std::string identity_text(const nlohmann::json& id) {
  if (!id.is_object()) return fmt::format("unrecognised identity {}", id.dump());
  return fmt::format("{} file(s), {} bytes, xxh3 {}", id.value("files", int64_t(-1)),
                     id.value("bytes", int64_t(-1)), id.value("xxh3", std::string("?")));
}

bool same_identity(const nlohmann::json& a, const nlohmann::json& b) {
  for (const char* key : {"files", "bytes", "xxh3"}) {
    if (!a.is_object() || !b.is_object() || !a.contains(key) || !b.contains(key) ||
        a[key] != b[key]) {
      return false;
    }
  }
  return true;
}

}  // namespace conveyor::pipeline
