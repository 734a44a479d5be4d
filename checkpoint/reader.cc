#include "checkpoint/reader.h"

#include <algorithm>
#include <map>

#include "checkpoint/checksum.h"
#include "checkpoint/hdf5_file.h"
#include "checkpoint/shard_checks.h"
#include "common/error.h"

namespace conveyor::checkpoint {

namespace fs = std::filesystem;

struct CheckpointReader::OpenFiles {
  std::map<int, h5::Handle> by_shard;
};

CheckpointReader::CheckpointReader(const fs::path& step_dir)
    : dir_(step_dir), manifest_(read_manifest(step_dir)), files_(std::make_unique<OpenFiles>()) {}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;

std::vector<int64_t> CheckpointReader::shape(const std::string& param) const {
  auto it = manifest_.params.find(param);
  if (it == manifest_.params.end()) {
    throw Error(ErrorKind::kUsage,
                fmt::format("parameter {} is not in checkpoint {} ({} parameters)", param,
                            dir_.string(), manifest_.params.size()),
                "was the checkpoint written with a different model configuration?");
  }
  return it->second.shape;
}

fs::path CheckpointReader::shard_path(int shard) const {
  return dir_ / manifest_.shards[static_cast<size_t>(shard)].file;
}

const h5::Handle& CheckpointReader::open_shard(int shard) {
  auto it = files_->by_shard.find(shard);
  if (it != files_->by_shard.end()) return it->second;
  const auto& info = manifest_.shards[static_cast<size_t>(shard)];
  auto path = shard_path(shard);
  check_shard_file(path, info);
  h5::Handle file = h5::open_file(path);
  check_shard_header(file.get(), path, info);
  return files_->by_shard.emplace(shard, std::move(file)).first->second;
}

void CheckpointReader::read(const std::string& group, const std::string& param, float* out,
                            size_t count) {
  shape(param);  // throws for an unknown parameter
  const int main_shard = manifest_.params.at(param).shard;
  const auto& shard = manifest_.shards[static_cast<size_t>(main_shard)];
  const auto path = shard_path(main_shard);
  const std::string dataset = fmt::format("/{}/{}", group, param);
  auto expected = shard.datasets.find(dataset);
  if (expected == shard.datasets.end()) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint shard {} has no dataset {}", path.string(), dataset),
                group == kParams ? "the checkpoint is damaged"
                                 : "the checkpoint was saved without optimizer state");
  }
  const size_t stored = element_count(expected->second.shape);
  if (stored != count) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint shard {}, dataset {}: {} elements stored, {} expected",
                            path.string(), dataset, stored, count),
                "was the checkpoint written with a different model configuration?");
  }
  hid_t file = open_shard(main_shard).get();
  auto view = h5::open_dataset(file, dataset, path);
  if (!view) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint shard {}: dataset {} listed in the manifest is missing",
                            path.string(), dataset),
                "the checkpoint is damaged; resume from an older step");
  }
  if (view->shape != expected->second.shape) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint shard {}: dataset {} has a different shape than the "
                            "manifest says",
                            path.string(), dataset),
                "the checkpoint is damaged; resume from an older step");
  }
  h5::read_float32(*view, out, dataset, path);
  check_dataset_sum(path, dataset, xxh3(out, count * sizeof(float)),
                    h5::read_checksum_attr(*view, dataset, path), expected->second.xxh3);
}

nlohmann::json CheckpointReader::state() {
  const auto& shard = manifest_.shards.at(0);
  const auto path = shard_path(0);
  const std::string dataset = kStateJson;
  auto expected = shard.datasets.find(dataset);
  hid_t file = open_shard(0).get();
  auto view = h5::open_dataset(file, dataset, path);
  if (expected == shard.datasets.end() || !view) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint shard {} has no dataset {}", path.string(), dataset),
                "the checkpoint is damaged; resume from an older step");
  }
  auto bytes = h5::read_raw(*view, dataset, path);
  check_dataset_sum(path, dataset, xxh3(bytes.data(), bytes.size()),
                    h5::read_checksum_attr(*view, dataset, path), expected->second.xxh3);
  std::string text(bytes.begin(), bytes.end());
  text.erase(std::find(text.begin(), text.end(), '\0'), text.end());  // NUL padding
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint shard {}: {} is not valid JSON", path.string(), dataset));
  }
  return j;
}

}  // namespace conveyor::checkpoint
