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
    text = read_text_file(path);
  } catch (const Error& e) {
    CONVEYOR_LOG_WARN("{}; scanning {} for committed steps", e.message(), root.string());
    return std::nullopt;
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  auto step = parse_step_dir_name(text);
  if (!step) {
    CONVEYOR_LOG_WARN("{} does not name a step directory (\"{}\"); scanning for committed steps",
                      path.string(), text);
  }
  return step;
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
  auto stage = h5::read_root_attr_i64(file, "stage", shard_path);
  if (!step || !stage) corrupt(shard_path, "has no step/stage attributes (not a conveyor shard)");
  if (*step != shard.step || *stage != shard.stage) {
    corrupt(shard_path, fmt::format("holds step {} stage {}, but the manifest expects step {} "
                                    "stage {}",
                                    *step, *stage, shard.step, shard.stage));
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

VerifyResult verify(const fs::path& step_dir, VerifyLevel level) {
  Manifest m = read_manifest(step_dir);
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

std::optional<fs::path> find_latest(const fs::path& root, VerifyLevel level) {
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
      verify(dir, level);
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
