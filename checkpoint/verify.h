// Checking a committed checkpoint step against its manifest, and finding the newest good one.
// All functions are blocking and thread-safe (no shared state). Failures are Error(kUsage)
// whose message names the step directory, the shard file and, where it applies, the dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"

namespace conveyor::checkpoint {

enum class VerifyLevel {
  kStructure,  // manifest, every shard present with its size, opens as HDF5, datasets exist
               // with the manifest's shapes; the manifest agrees with the shards and its step
               // directory (see verify()). Reads metadata only.
  kFull,       // kStructure, plus every dataset's bytes hash to its "xxh3" attribute and to the
               // manifest. Reads the whole checkpoint.
};

struct VerifyResult {
  int64_t step = 0;
  int shards = 0;
  size_t datasets = 0;
};

// What a complete checkpoint must hold, worked out from its manifest: parameter name ->
// shape. The checkpoint library knows no model; the trainer derives this from the model
// configuration saved in the manifest (train/stage_checkpoint.h: saved_model_params).
// An empty map means "cannot tell" (the manifest has no model configuration). May throw
// Error(kUsage) for a manifest whose saved configuration is malformed.
using ExpectedParams =
    std::function<std::map<std::string, std::vector<int64_t>>(const Manifest& manifest)>;

// Throws Error(kUsage) describing the first problem found. Besides the files (VerifyLevel),
// checks that the manifest agrees with the shards and the directory:
//   - a directory named step_NNNNNNNNN holds that step (a step copied or renamed over
//     another is refused);
//   - every shard, in the manifest and in its own header (root attributes step, stage,
//     num_stages: the shard's number and count), is of the manifest's step and shard count
//     (a manifest cut to fewer shards is refused);
//   - transformer blocks 0..n-1 each have parameters in some shard (no gaps);
//   - when `expected` is given (a trainer's checkpoint): every shard's entry lists, for each
//     parameter it holds, the parameter and both Adam moments (kParams, kExpAvg, kExpAvgSq),
//     and its state (kStateJson, kStateStep); and when `expected` knows the model, every
//     parameter of it is present, with its shape, and no other.
VerifyResult verify(const std::filesystem::path& step_dir, VerifyLevel level = VerifyLevel::kFull,
                    const ExpectedParams& expected = {});

// The newest committed step under root that passes verify(level): the step LATEST names
// first; if that fails (or LATEST is missing or garbled), older committed steps, newest first,
// each failure logged as a warning. nullopt when there is none (or root does not exist).
// Steps newer than LATEST's are not considered: they are leftovers of an older timeline
// (a run that fell back past them), or a commit whose LATEST update did not happen.
// `expected` is passed on to verify().
std::optional<std::filesystem::path> find_latest(const std::filesystem::path& root,
                                                 VerifyLevel level = VerifyLevel::kFull,
                                                 const ExpectedParams& expected = {});

// `dir` itself if it holds manifest.json; else the step named by dir/LATEST. Throws
// Error(kUsage) when it is neither (for `conveyor ckpt`, which accepts both).
std::filesystem::path resolve_step_dir(const std::filesystem::path& dir);

}  // namespace conveyor::checkpoint
