#include "checkpoint/commit.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "checkpoint/fault_injection.h"
#include "checkpoint/file_system.h"
#include "checkpoint/layout.h"
#include "checkpoint/manifest.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/log.h"

namespace conveyor::checkpoint {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

ShardInfo read_sidecar(const fs::path& tmp, int shard_number, int64_t step, int num_shards) {
  auto path = tmp / sidecar_file_name(shard_number);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("cannot commit checkpoint step {}: stage {} has not written its shard "
                            "({} is missing)",
                            step, shard_number, path.string()),
                "every stage must finish write_shard() before the commit (barrier)");
  }
  json j = json::parse(read_input_file(path), nullptr, false);
  if (j.is_discarded()) {
    throw Error(ErrorKind::kRuntime, fmt::format("{} is not valid JSON", path.string()));
  }
  ShardInfo shard = shard_from_json(j, path.string());
  if (shard.step != step || shard.shard != shard_number || shard.num_shards != num_shards) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("{} describes step {} stage {} of {}, expected step {} stage {} of {}",
                            path.string(), shard.step, shard.shard, shard.num_shards, step,
                            shard_number, num_shards),
                "a stale shard from another run is in the temporary directory; call "
                "remove_stale_temp_dirs() at start-up");
  }
  auto file = tmp / shard.file;
  auto size = fs::file_size(file, ec);
  if (ec || size != shard.bytes) {
    throw Error(
        ErrorKind::kRuntime,
        fmt::format("cannot commit checkpoint step {}: shard {} is {} (expected {} bytes)", step,
                    file.string(), ec ? "missing" : fmt::format("{} bytes", size), shard.bytes));
  }
  return shard;
}

// Parameters held by several shards (the tied embedding) must be bit-identical copies.
void warn_on_diverged_copies(const Manifest& m) {
  for (const auto& [name, loc] : m.params) {
    if (loc.shards.size() < 2) continue;
    for (const char* group : {kParams, kExpAvg, kExpAvgSq}) {
      auto path = fmt::format("/{}/{}", group, name);
      const auto& first = m.shards[static_cast<size_t>(loc.shards[0])].datasets;
      auto a = first.find(path);
      for (size_t i = 1; i < loc.shards.size(); ++i) {
        const auto& other = m.shards[static_cast<size_t>(loc.shards[i])].datasets;
        auto b = other.find(path);
        if (a == first.end() || b == other.end() || a->second.xxh3 == b->second.xxh3) continue;
        CONVEYOR_LOG_WARN(
            "checkpoint step {}: the copies of {} on stages {} and {} differ; loading uses "
            "stage {}'s",
            m.step, path, loc.shards[0], loc.shards[i], loc.shards[0]);
      }
    }
  }
}

void remove_dir(const fs::path& dir) {
  std::error_code ec;
  file_system().remove(dir, ec);
  if (ec) CONVEYOR_LOG_WARN("cannot remove {}: {}", dir.string(), ec.message());
}

}  // namespace

void commit_step(const fs::path& root, int64_t step, int num_shards, const json& config,
                 const std::string& fingerprint, int keep) {
  CONVEYOR_CHECK(num_shards >= 1, "commit_step: num_shards is {}", num_shards);
  const auto tmp = root / temp_dir_name(step);
  // Not through a link: the commit deletes what it does not know in this folder.
  CONVEYOR_CHECK(fs::is_directory(fs::symlink_status(tmp)),
                 "cannot commit checkpoint step {}: {} does not exist or is not a directory "
                 "(begin_step was not called, or the directory was removed or replaced)",
                 step, tmp.string());

  Manifest m;
  m.step = step;
  m.num_shards = num_shards;
  m.config = config;
  m.fingerprint = fingerprint;
  for (int s = 0; s < num_shards; ++s) m.shards.push_back(read_sidecar(tmp, s, step, num_shards));
  index_params(m, tmp.string());
  warn_on_diverged_copies(m);

  // The committed directory holds exactly the shards and the manifest.
  std::set<std::string> keep_names;
  for (const auto& shard : m.shards) keep_names.insert(shard.file);
  std::vector<fs::path> stray;
  for (const auto& entry : fs::directory_iterator(tmp)) {
    if (keep_names.count(entry.path().filename().string()) == 0) stray.push_back(entry.path());
  }
  FileSystem& files = file_system();
  for (const auto& path : stray) remove_dir(path);
  // Its fsync of tmp also makes the removals durable.
  write_file_atomic(files, tmp / kManifestFile, to_json(m).dump(1) + "\n");

  const auto final_dir = root / step_dir_name(step);
  fs::path replaced;
  if (fs::exists(final_dir)) {
    replaced = root / (std::string(kTempPrefix) + "replaced-" + step_dir_name(step));
    remove_dir(replaced);
    files.rename(final_dir, replaced);  // durable with the commit point's fsync of root
  }
  // TEST HOOKS (fault_injection.h): a crash just before and just after the commit point.
  if (fault::armed(fault::kKillBeforeCommit, step)) {
    fault::kill_self(fault::kKillBeforeCommit, step);
  }
  files.rename(tmp, final_dir);  // the commit point, once root is fsynced
  files.fsync_dir(root);
  if (fault::armed(fault::kKillAfterCommit, step)) {
    fault::kill_self(fault::kKillAfterCommit, step);
  }
  write_file_atomic(files, root / kLatestFile, step_dir_name(step) + "\n");
  if (!replaced.empty()) remove_dir(replaced);
  CONVEYOR_LOG_INFO("checkpoint step {} committed to {}", step, final_dir.string());
  apply_retention(root, keep, step);
}

std::vector<int64_t> apply_retention(const fs::path& root, int keep, int64_t protect) {
  std::vector<int64_t> deleted;
  if (keep <= 0) return deleted;
  auto steps = list_committed_steps(root);  // newest first
  for (size_t i = static_cast<size_t>(keep); i < steps.size(); ++i) {
    if (steps[i] == protect) continue;
    auto dir = root / step_dir_name(steps[i]);
    auto doomed = root / (std::string(kTempPrefix) + "deleted-" + step_dir_name(steps[i]));
    file_system().rename(dir, doomed);
    remove_dir(doomed);
    deleted.push_back(steps[i]);
  }
  if (!deleted.empty()) file_system().fsync_dir(root);
  return deleted;
}

std::vector<int64_t> move_aside_steps_after(const fs::path& root, int64_t step) {
  FileSystem& files = file_system();
  const auto aside = root / kAbandonedDir;
  std::vector<int64_t> moved;
  for (int64_t newer : list_committed_steps(root)) {  // newest first
    if (newer <= step) break;
    const auto dir = root / step_dir_name(newer);
    std::error_code ec;
    files.create_directories(aside, ec);
    fs::path target = aside / step_dir_name(newer);
    for (int n = 1; fs::exists(target, ec); ++n) {
      target = aside / fmt::format("{}.{}", step_dir_name(newer), n);
    }
    files.rename(dir, target);
    CONVEYOR_LOG_WARN(
        "moved checkpoint {} aside to {}: it is newer than step {}, which this run continues "
        "from, so it belongs to an abandoned timeline (delete it when it is not needed)",
        dir.string(), target.string(), step);
    moved.push_back(newer);
  }
  if (moved.empty()) return moved;
  // A rename between folders is durable once both are fsynced: the new entries first, so that
  // a crash never leaves a moved step in neither (root's fsync below, or LATEST's, removes
  // the old entries).
  files.fsync_dir(aside);
  std::error_code ec;
  const auto latest = root / kLatestFile;
  if (fs::is_regular_file(latest, ec)) {
    std::string text = read_input_file(latest);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    auto named = parse_step_dir_name(text);
    if (named && std::find(moved.begin(), moved.end(), *named) != moved.end()) {
      if (fs::is_directory(root / step_dir_name(step), ec)) {
        write_file_atomic(files, latest, step_dir_name(step) + "\n");
      } else {
        files.remove(latest, ec);
      }
    }
  }
  files.fsync_dir(root);
  return moved;
}

int remove_stale_temp_dirs(const fs::path& root) {
  int removed = 0;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return 0;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(root)) {
    auto name = entry.path().filename().string();
    if (name.rfind(kTempPrefix, 0) == 0 || name == std::string(kLatestFile) + ".tmp") {
      stale.push_back(entry.path());
    }
  }
  for (const auto& path : stale) {
    CONVEYOR_LOG_INFO("removing incomplete checkpoint data {}", path.string());
    remove_dir(path);  // not fsynced: a crash brings back only more of what this removes
    ++removed;
  }
  return removed;
}

}  // namespace conveyor::checkpoint
