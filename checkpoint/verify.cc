#include "checkpoint/verify.h"

#include <algorithm>

#include "checkpoint/checksum.h"
#include "checkpoint/file_util.h"
#include "checkpoint/hdf5_file.h"
#include "checkpoint/layout.h"
#include "checkpoint/shard_checks.h"
#include "common/error.h"
#include "common/log.h"

namespace conveyor::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCorruptHint =
    "the checkpoint is damaged; resume from an older step (--resume PATH) or restore the file";

[[noreturn]] void corrupt(const fs::path& shard_path, const std::string& what) {
  throw Error(ErrorKind::kUsage, fmt::format("checkpoint shard {}: {}", shard_path.string(), what),
              kCorruptHint);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::optional<int64_t> read_latest(const fs::path& root) {
  auto path = root / kLatestFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::string text;
  try {
    text = read_input_file(path);
  } catch (const Error& e) {
    CONVEYOR_LOG_WARN("{}; scanning {} for committed steps", e.message(), root.string());
    return std::nullopt;
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  auto step = parse_step_dir_name(text);
  if (!step) {
    // Quoted escaped and cut short: a damaged LATEST may hold anything, terminal escapes too.
    CONVEYOR_LOG_WARN("{} does not name a step directory (\"{}\"); scanning for committed steps",
                      path.string(), printable(text));
  }
  return step;
}

// "…/step_000000006" and "…/step_000000006/" both give "step_000000006".
std::string dir_name(const fs::path& dir) {
  fs::path p = dir;
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

// The manifest against its directory and its shards' entries, and (given `expected`)
// against the model it claims to hold. See verify() in verify.h.
void check_consistency(const fs::path& step_dir, const Manifest& m,
                       const ExpectedParams& expected) {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorKind::kUsage, fmt::format("checkpoint {}: {}", step_dir.string(), what),
                "the checkpoint was edited, renamed or mixed with another; resume from an "
                "older step (--resume PATH) or restore it");
  };
  if (auto named = parse_step_dir_name(dir_name(step_dir)); named && *named != m.step) {
    bad(fmt::format("the directory is named for step {} but its manifest.json is of step {}",
                    *named, m.step));
  }
  for (const auto& shard : m.shards) {
    if (shard.step != m.step || shard.num_shards != m.num_shards) {
      bad(
          fmt::format("manifest.json is of step {} with {} stage(s) but lists shard {} as step "
                      "{} of {} stage(s)",
                      m.step, m.num_shards, shard.file, shard.step, shard.num_shards));
    }
  }
  for (size_t layer = 0; layer < m.layer_shards.size(); ++layer) {
    if (m.layer_shards[layer] < 0) {
      bad(fmt::format("block {} has no parameters in any shard, though block {} has", layer,
                      m.layer_shards.size() - 1));
    }
  }
  if (!expected) return;
  // A trainer's checkpoint: each shard holds, for every parameter it lists, the parameter and
  // both Adam moments, and the shard's state. A manifest that omits one would pass every
  // file check, and resuming would then fail on it instead of falling back past it.
  for (const auto& shard : m.shards) {
    auto require = [&](const std::string& dataset) {
      if (shard.datasets.count(dataset) == 0)
        bad(
            fmt::format("manifest.json lists no dataset {} in {}; a complete shard has the "
                        "parameters, both Adam moments of each and its state",
                        dataset, shard.file));
    };
    for (const auto& name : shard.params)
      for (const char* group : {kParams, kExpAvg, kExpAvgSq})
        require(fmt::format("/{}/{}", group, name));
    require(kStateJson);
    require(kStateStep);
  }
  const auto want = expected(m);
  for (const auto& [name, shape] : want) {
    auto it = m.params.find(name);
    if (it == m.params.end()) {
      bad(
          fmt::format("parameter {} of the saved model is in no shard ({} of its {} parameters "
                      "are)",
                      name, m.params.size(), want.size()));
    }
    if (it->second.shape != shape) {
      bad(fmt::format("parameter {} has shape {} but the saved model configuration needs {}", name,
                      shape_text(it->second.shape), shape_text(shape)));
    }
  }
  if (!want.empty()) {
    for (const auto& [name, loc] : m.params) {
      if (want.count(name) == 0) {
        bad(fmt::format("{} holds parameter {}, which the saved model does not have", loc.file,
                        name));
      }
    }
  }
}

}  // namespace

void check_shard_file(const fs::path& shard_path, const ShardInfo& shard) {
  std::error_code ec;
  if (!fs::exists(shard_path, ec)) corrupt(shard_path, "listed in the manifest but missing");
  auto size = fs::file_size(shard_path, ec);
  if (ec) corrupt(shard_path, fmt::format("cannot read its size: {}", ec.message()));
  if (size != shard.bytes) {
    // Say "not an HDF5 file" when that is the reason, rather than only the size.
    h5::require_signature(shard_path);
    corrupt(shard_path, fmt::format("is {} bytes but the manifest says {} (truncated or replaced)",
                                    size, shard.bytes));
  }
}

void check_shard_header(hid_t file, const fs::path& shard_path, const ShardInfo& shard) {
  auto step = h5::read_root_attr_i64(file, "step", shard_path);
  auto number = h5::read_root_attr_i64(file, "stage", shard_path);  // the shard's number
  if (!step || !number) corrupt(shard_path, "has no step/stage attributes (not a conveyor shard)");
  if (*step != shard.step || *number != shard.shard) {
    corrupt(shard_path, fmt::format("holds step {} stage {}, but the manifest expects step {} "
                                    "stage {}",
                                    *step, *number, shard.step, shard.shard));
  }
  // Every format-1 shard has it; a shard without it is still read (the check is skipped).
  auto num_shards = h5::read_root_attr_i64(file, "num_stages", shard_path);
  if (num_shards && *num_shards != shard.num_shards) {
    corrupt(shard_path, fmt::format("was written as one of {} stages, but the manifest says {}",
                                    *num_shards, shard.num_shards));
  }
}

void check_dataset_sum(const fs::path& shard_path, const std::string& dataset, uint64_t data_sum,
                       std::optional<uint64_t> attr_sum, uint64_t manifest_sum) {
  if (!attr_sum) corrupt(shard_path, fmt::format("dataset {} has no xxh3 attribute", dataset));
  if (data_sum == *attr_sum && data_sum == manifest_sum) return;
  corrupt(shard_path,
          fmt::format("dataset {} fails its checksum (data xxh3 {}, attribute {}, manifest {})",
                      dataset, checksum_hex(data_sum), checksum_hex(*attr_sum),
                      checksum_hex(manifest_sum)));
}

VerifyResult verify(const fs::path& step_dir, VerifyLevel level, const ExpectedParams& expected) {
  Manifest m = read_manifest(step_dir);
  check_consistency(step_dir, m, expected);
  VerifyResult result;
  result.step = m.step;
  for (const auto& shard : m.shards) {
    auto path = step_dir / shard.file;
    check_shard_file(path, shard);
    h5::Handle file = h5::open_file(path);
    check_shard_header(file.get(), path, shard);
    for (const auto& [name, info] : shard.datasets) {
      auto view = h5::open_dataset(file.get(), name, path);
      if (!view) corrupt(path, fmt::format("dataset {} listed in the manifest is missing", name));
      if (view->shape != info.shape) {
        corrupt(path, fmt::format("dataset {} has shape {} but the manifest says {}", name,
                                  shape_text(view->shape), shape_text(info.shape)));
      }
      if (level == VerifyLevel::kFull) {
        check_dataset_sum(path, name, h5::hash_dataset(*view, name, path),
                          h5::read_checksum_attr(*view, name, path), info.xxh3);
      }
      ++result.datasets;
    }
    ++result.shards;
  }
  return result;
}

std::optional<fs::path> find_latest(const fs::path& root, VerifyLevel level,
                                    const ExpectedParams& expected) {
  auto steps = list_committed_steps(root);  // newest first
  if (auto latest = read_latest(root)) {
    std::erase_if(steps, [&](int64_t s) { return s > *latest; });
    if (steps.empty() || steps.front() != *latest) {
      CONVEYOR_LOG_WARN("{} names {}, which does not exist; trying older steps",
                        (root / kLatestFile).string(), step_dir_name(*latest));
    }
  }
  for (int64_t step : steps) {
    auto dir = root / step_dir_name(step);
    try {
      verify(dir, level, expected);
      return dir;
    } catch (const Error& e) {
      CONVEYOR_LOG_WARN("skipping checkpoint {}: {}", dir.string(), describe(e));
    } catch (const std::exception& e) {  // e.g. a permission error from std::filesystem
      CONVEYOR_LOG_WARN("skipping checkpoint {}: {}", dir.string(), e.what());
    }
  }
  return std::nullopt;
}

fs::path resolve_step_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kManifestFile, ec)) return dir;
  if (fs::exists(dir / kLatestFile, ec)) {
    auto step = read_latest(dir);
    if (!step) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{} does not name a step directory", (dir / kLatestFile).string()),
                  "pass a step directory (step_NNNNNNNNN) instead");
    }
    return dir / step_dir_name(*step);
  }
  if (!fs::exists(dir, ec)) {
    throw Error(ErrorKind::kUsage, fmt::format("{} does not exist", dir.string()),
                "pass a checkpoint root (with LATEST) or a step directory (step_NNNNNNNNN)");
  }
  throw Error(ErrorKind::kUsage,
              fmt::format("{} is neither a checkpoint step (no {}) nor a checkpoint root (no {})",
                          dir.string(), kManifestFile, kLatestFile),
              "pass the --ckpt-dir of a run, or one of its step_NNNNNNNNN directories");
}

}  // namespace conveyor::checkpoint
