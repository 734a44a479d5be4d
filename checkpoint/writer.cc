#include "checkpoint/writer.h"

#include <set>

#include "checkpoint/fault_injection.h"
#include "checkpoint/file_system.h"
#include "checkpoint/hdf5_file.h"
#include "checkpoint/layout.h"
#include "common/error.h"
#include "common/log.h"
#include "common/printable.h"

namespace conveyor::checkpoint {

namespace {

void validate_name(const std::string& name) {
  CONVEYOR_REQUIRE(
      !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..",
      "checkpoint parameter name \"{}\" is invalid: it must be non-empty and contain "
      "no '/'",
      name);
}

void validate(const ShardContents& c) {
  CONVEYOR_REQUIRE(c.num_shards >= 1 && c.shard >= 0 && c.shard < c.num_shards,
                   "checkpoint shard: stage {} is outside 0..{}", c.shard, c.num_shards - 1);
  CONVEYOR_REQUIRE(c.step >= 0, "checkpoint step {} is negative", c.step);
  std::set<std::string> names;
  for (const auto& t : c.params) {
    validate_name(t.name);
    CONVEYOR_REQUIRE(names.insert(t.name).second, "checkpoint parameter {} is listed twice",
                     t.name);
    for (int64_t d : t.shape) {
      CONVEYOR_REQUIRE(d >= 0, "checkpoint parameter {} has a negative dimension", t.name);
    }
    CONVEYOR_REQUIRE(t.data != nullptr || element_count(t.shape) == 0,
                     "checkpoint parameter {} has no data", t.name);
  }
  for (const auto* list : {&c.exp_avg, &c.exp_avg_sq}) {
    if (list->empty()) continue;
    CONVEYOR_REQUIRE(list->size() == c.params.size(),
                     "checkpoint optimizer state lists {} tensors but there are {} parameters",
                     list->size(), c.params.size());
    for (size_t i = 0; i < list->size(); ++i) {
      const auto& t = (*list)[i];
      CONVEYOR_REQUIRE(t.name == c.params[i].name && t.shape == c.params[i].shape,
                       "checkpoint optimizer state tensor {} does not match parameter {} (same "
                       "names, shapes and order required)",
                       t.name, c.params[i].name);
      CONVEYOR_REQUIRE(t.data != nullptr || element_count(t.shape) == 0,
                       "checkpoint optimizer state of {} has no data", t.name);
    }
  }
}

// TEST HOOK (fault_injection.h): with a fault armed for this step and shard (its ":STAGE"
// is the shard's number), die or fail half-way through the /params group, leaving a partly
// written .part file behind.
void maybe_fault_midway(const ShardContents& c) {
  if (fault::armed(fault::kKillInSave, c.step, c.shard)) {
    fault::kill_self(fault::kKillInSave, c.step);
  }
  if (fault::armed(fault::kFailSave, c.step, c.shard)) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("checkpoint shard of stage {} for step {}: injected failure ({})",
                            c.shard, c.step, fault::kFailSave),
                fmt::format("unset {}; it is a test hook", fault::kFailSave));
  }
}

// `midway`, if set, runs after half of the tensors are written.
void write_group(hid_t file, const char* group, const std::vector<TensorRef>& tensors,
                 const std::filesystem::path& path, ShardInfo& info,
                 const ShardContents* midway = nullptr) {
  h5::Handle g = h5::create_group(file, std::string("/") + group, path);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (midway != nullptr && i == tensors.size() / 2) maybe_fault_midway(*midway);
    const auto& t = tensors[i];
    size_t bytes = element_count(t.shape) * sizeof(float);
    uint64_t sum = h5::write_dataset(g.get(), t.name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.shape,
                                     t.data, bytes, path);
    info.datasets[fmt::format("/{}/{}", group, t.name)] = {t.shape, "float32", sum};
  }
}

}  // namespace

std::filesystem::path begin_step(const std::filesystem::path& root, int64_t step) {
  namespace fs = std::filesystem;
  auto tmp = root / temp_dir_name(step);
  FileSystem& files = file_system();
  std::error_code ec;
  // The temporary name is conveyor's own: a link planted there would send the shards into its
  // target and let the commit delete that folder's files, so it is removed, never followed.
  if (fs::is_symlink(fs::symlink_status(tmp, ec))) {
    CONVEYOR_LOG_WARN("removing the symbolic link {} found where checkpoint step {} is written",
                      printable(tmp.string()), step);
    files.remove(tmp, ec);
  }
  files.create_directories(root, ec);
  files.create_directories(tmp, ec);
  // Another rank may have created it at the same moment; only a missing directory is an error.
  if (!fs::is_directory(fs::symlink_status(tmp, ec))) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("cannot create checkpoint directory {}: {}", tmp.string(),
                            ec ? ec.message() : "not a directory"),
                "check --ckpt-dir: it must be writable");
  }
  return tmp;
}

ShardInfo write_shard(const std::filesystem::path& tmp_dir, const ShardContents& contents) {
  validate(contents);
  ShardInfo info;
  info.step = contents.step;
  info.shard = contents.shard;
  info.num_shards = contents.num_shards;
  info.file = shard_file_name(contents.shard);
  for (const auto& t : contents.params) info.params.push_back(t.name);

  const auto final_path = tmp_dir / info.file;
  auto part_path = final_path;
  part_path += ".part";
  FileSystem& files = file_system();
  std::error_code ec;
  files.remove(part_path, ec);  // HDF5 would write through a link planted at the name
  {
    h5::Handle file = h5::create_file(part_path);
    h5::write_attr_string(file.get(), "format", kFormatName, part_path);
    h5::write_attr_i64(file.get(), "format_version", kFormatVersion, part_path);
    h5::write_attr_i64(file.get(), "step", contents.step, part_path);
    h5::write_attr_i64(file.get(), "stage", contents.shard, part_path);
    h5::write_attr_i64(file.get(), "num_stages", contents.num_shards, part_path);

    write_group(file.get(), kParams, contents.params, part_path, info, &contents);
    if (!contents.exp_avg.empty() || !contents.exp_avg_sq.empty()) {
      h5::Handle optim = h5::create_group(file.get(), "/optim", part_path);
      if (!contents.exp_avg.empty()) {
        write_group(file.get(), kExpAvg, contents.exp_avg, part_path, info);
      }
      if (!contents.exp_avg_sq.empty()) {
        write_group(file.get(), kExpAvgSq, contents.exp_avg_sq, part_path, info);
      }
    }

    h5::Handle state = h5::create_group(file.get(), "/state", part_path);
    std::string text = contents.state.dump();
    h5::Handle type = h5::string_type(text.size());
    info.datasets[kStateJson] = {{},
                                 "string",
                                 h5::write_dataset(state.get(), "json", type.get(), type.get(), {},
                                                   text.data(), text.size(), part_path)};
    int64_t step = contents.step;
    info.datasets[kStateStep] = {
        {},
        "int64",
        h5::write_dataset(state.get(), "step", H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &step,
                          sizeof(step), part_path)};
    state.reset();
    h5::close_file(file, part_path);
  }
  // sec2 does not fsync on close: make the bytes durable before the name appears.
  files.fsync_file(part_path);
  files.rename(part_path, final_path);
  info.bytes = std::filesystem::file_size(final_path);
  // Its fsync of tmp_dir also makes the shard's rename durable.
  write_file_atomic(files, tmp_dir / sidecar_file_name(contents.shard),
                    to_json(info).dump(1) + "\n");
  return info;
}

}  // namespace conveyor::checkpoint
