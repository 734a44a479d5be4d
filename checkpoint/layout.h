// Names of the files and directories of a checkpoint root (docs/CHECKPOINT_FORMAT.md):
//
//   <root>/step_000001200/          committed step (renamed from .tmp-step_000001200)
//       stage_00000.h5 ...          one HDF5 shard per rank (numbered by rank; the rank is
//                                   the pipeline stage with one replica)
//       manifest.json               written last
//   <root>/.tmp-step_000001200/     step being written; the fixed name lets every rank find
//                                   it without talking to the others
//   <root>/LATEST                   "step_000001200\n", replaced atomically after a commit
//   <root>/.lock                    held (flock) by the job using the directory (dir_lock.h)
//   <root>/abandoned/step_...       steps newer than the one a run resumed from, moved aside
//
// Anything whose name starts with ".tmp-" is garbage after a crash and may be deleted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace conveyor::checkpoint {

inline constexpr const char* kLatestFile = "LATEST";
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kTempPrefix = ".tmp-";
inline constexpr const char* kLockFile = ".lock";
inline constexpr const char* kAbandonedDir = "abandoned";

std::string step_dir_name(int64_t step);   // "step_000001200"
std::string temp_dir_name(int64_t step);   // ".tmp-step_000001200"
std::string shard_file_name(int shard);    // "stage_00000.h5"
std::string sidecar_file_name(int shard);  // "stage_00000.json"

// The step of a committed directory name ("step_" + digits), else nullopt.
std::optional<int64_t> parse_step_dir_name(const std::string& name);

// Steps of the committed step directories under root, newest first. Empty if root is missing.
std::vector<int64_t> list_committed_steps(const std::filesystem::path& root);

}  // namespace conveyor::checkpoint
