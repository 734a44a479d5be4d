// Checking a committed checkpoint step against its manifest, and finding the newest good one.
// All functions are blocking and thread-safe (no shared state). Failures are Error(kUsage)
// whose message names the step directory, the shard file and, where it applies, the dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "checkpoint/manifest.h"

namespace conveyor::checkpoint {

enum class VerifyLevel {
  kStructure,  // manifest, every shard present with its size, opens as HDF5, datasets exist
               // with the manifest's shapes. Reads metadata only.
  kFull,       // kStructure, plus every dataset's bytes hash to its "xxh3" attribute and to the
               // manifest. Reads the whole checkpoint.
};

struct VerifyResult {
  int64_t step = 0;
  int shards = 0;
  size_t datasets = 0;
};

// Throws Error(kUsage) describing the first problem found.
VerifyResult verify(const std::filesystem::path& step_dir, VerifyLevel level = VerifyLevel::kFull);

// The newest committed step under root that passes verify(level): the step LATEST names
// first; if that fails (or LATEST is missing or garbled), older committed steps, newest first,
// each failure logged as a warning. nullopt when there is none (or root does not exist).
// Steps newer than LATEST's are not considered: they are leftovers of an older timeline
// (a run that fell back past them), or a commit whose LATEST update did not happen.
std::optional<std::filesystem::path> find_latest(const std::filesystem::path& root,
                                                 VerifyLevel level = VerifyLevel::kFull);

// `dir` itself if it holds manifest.json; else the step named by dir/LATEST. Throws
// Error(kUsage) when it is neither (for `conveyor ckpt`, which accepts both).
std::filesystem::path resolve_step_dir(const std::filesystem::path& dir);

}  // namespace conveyor::checkpoint
