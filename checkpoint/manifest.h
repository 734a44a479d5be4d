// What a committed checkpoint step contains: the per-shard records each rank writes next to
// its shard (stage_NNNNN.json) and the manifest.json the committer builds from them.
// Format and field meanings: docs/CHECKPOINT_FORMAT.md. A shard is numbered by the rank that
// wrote it: the format's "stage" keys (kept for compatibility) hold what the code calls
// `shard`, which equals the pipeline stage only with one replica.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace conveyor::checkpoint {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatName = "conveyor-checkpoint";

// Dataset groups inside a shard (HDF5 paths without the leading and trailing '/').
inline constexpr const char* kParams = "params";
inline constexpr const char* kExpAvg = "optim/exp_avg";
inline constexpr const char* kExpAvgSq = "optim/exp_avg_sq";
// The datasets of a shard's training state (HDF5 paths).
inline constexpr const char* kStateJson = "/state/json";
inline constexpr const char* kStateStep = "/state/step";

struct DatasetInfo {
  std::vector<int64_t> shape;  // empty for a scalar
  std::string dtype;           // "float32", "int64", "string"
  uint64_t xxh3 = 0;           // of the raw bytes as stored
};

// One rank's shard, as recorded by write_shard() and copied into the manifest.
struct ShardInfo {
  int64_t step = 0;
  int shard = 0;                                // JSON "stage": the writing rank
  int num_shards = 0;                           // JSON "num_stages": the world size
  std::string file;                             // name inside the step directory, "stage_00000.h5"
  uint64_t bytes = 0;                           // file size
  std::map<std::string, DatasetInfo> datasets;  // HDF5 path ("/params/wte.weight") -> info
  std::vector<std::string> params;              // parameter names, in the order written
};

struct ParamLocation {
  int shard = 0;            // JSON "stage": the main copy, the lowest shard holding the parameter
  std::string file;         // that shard's file
  std::vector<int> shards;  // JSON "stages": every shard holding a copy (tied embeddings: those
                            // of the first and the last stage)
  std::vector<int64_t> shape;
};

struct Manifest {
  int format_version = kFormatVersion;
  int64_t step = 0;
  int num_shards = 0;             // JSON "num_stages"
  nlohmann::json config;          // the run's configuration, as given to commit_step()
  std::string fingerprint;        // model/config fingerprint, as given to commit_step()
  std::vector<ShardInfo> shards;  // index == shard; authoritative
  std::map<std::string, ParamLocation> params;  // derived from shards
  std::vector<int> layer_shards;                // JSON "layer_stages": layer index -> shard, from
                                                // "layers.NNN.*" names (-1: none)
};

nlohmann::json to_json(const ShardInfo& shard);
// Throws Error(kUsage) naming `source` when a field is missing or has the wrong type.
ShardInfo shard_from_json(const nlohmann::json& j, const std::string& source);

nlohmann::json to_json(const Manifest& manifest);
// Builds params and layer_shards from shards. Throws Error(kUsage) naming `source` when the
// manifest is malformed or inconsistent (a parameter with different shapes in two shards).
Manifest manifest_from_json(const nlohmann::json& j, const std::string& source);
// Fills params and layer_shards from shards (used by the committer and the reader).
void index_params(Manifest& manifest, const std::string& source);

// Reads <step_dir>/manifest.json. Throws Error(kUsage) with the path when it is missing,
// not JSON, or malformed.
Manifest read_manifest(const std::filesystem::path& step_dir);

// Product of dims (1 for a scalar).
size_t element_count(const std::vector<int64_t>& shape);

}  // namespace conveyor::checkpoint
