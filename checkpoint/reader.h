// Reading a committed checkpoint step by parameter name, whatever the number of ranks that
// wrote it (resharding): each parameter comes from the shard holding its main copy (the
// lowest shard that has it), and its checksum is verified as it is read.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"

namespace conveyor::checkpoint {

namespace h5 {
class Handle;  // checkpoint/hdf5_file.h, internal to checkpoint/
}

// Not thread-safe: use one reader per thread. Shards are opened on first use and stay open
// until the reader is destroyed.
class CheckpointReader {
 public:
  // Reads the manifest. Throws Error(kUsage) when it is missing or malformed.
  explicit CheckpointReader(const std::filesystem::path& step_dir);
  ~CheckpointReader();
  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;

  const Manifest& manifest() const { return manifest_; }
  const std::filesystem::path& dir() const { return dir_; }
  bool has(const std::string& param) const { return manifest_.params.count(param) != 0; }
  // Throws Error(kUsage) when the checkpoint has no such parameter.
  std::vector<int64_t> shape(const std::string& param) const;

  // Reads `group` (kParams, kExpAvg or kExpAvgSq) of `param` into out[0..count).
  // Throws Error(kUsage) naming shard and dataset when the parameter or group is absent, count
  // differs from the stored element count, or the data fails its checksum.
  void read(const std::string& group, const std::string& param, float* out, size_t count);

  // The /state/json object of shard 0 (checksum verified).
  nlohmann::json state();

 private:
  struct OpenFiles;  // the shards opened so far, by shard number (defined in reader.cc)

  const h5::Handle& open_shard(int shard);
  std::filesystem::path shard_path(int shard) const;

  std::filesystem::path dir_;
  Manifest manifest_;
  std::unique_ptr<OpenFiles> files_;
};

}  // namespace conveyor::checkpoint
