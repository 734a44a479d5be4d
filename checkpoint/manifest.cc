#include "checkpoint/manifest.h"

#include <fmt/ranges.h>

#include <cctype>
#include <limits>
#include <type_traits>

#include "checkpoint/checksum.h"
#include "checkpoint/file_util.h"
#include "checkpoint/layout.h"
#include "common/error.h"
#include "common/json_number.h"

namespace conveyor::checkpoint {

namespace {

using nlohmann::json;

[[noreturn]] void malformed(const std::string& source, const std::string& what) {
  throw Error(ErrorKind::kUsage, fmt::format("{} is malformed: {}", source, what),
              "the checkpoint is damaged or was not written by this version of conveyor");
}

// `v` as the integer type T, through common/json_number.h. A float is refused (conveyor writes
// counts and sizes as JSON integers; a float there is damage), and so is an integer outside
// T's range (int64 at most).
template <typename T>
T integer_value(const json& v, const char* name, const std::string& source) {
  using limits = std::numeric_limits<T>;
  if (!v.is_number_integer()) malformed(source, fmt::format("\"{}\" is not an integer", name));
  constexpr int64_t max = limits::max() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                              ? std::numeric_limits<int64_t>::max()
                              : static_cast<int64_t>(limits::max());
  try {
    return static_cast<T>(json_integer(v, name, static_cast<int64_t>(limits::min()), max, name));
  } catch (const Error&) {
    malformed(source, fmt::format("\"{}\" is out of range ({})", name, v.dump()));
  }
}

template <typename T>
T field(const json& j, const char* name, const std::string& source) {
  if (!j.is_object() || !j.contains(name)) malformed(source, fmt::format("missing \"{}\"", name));
  const json& v = j.at(name);
  if constexpr (std::is_integral_v<T>) {
    return integer_value<T>(v, name, source);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (!v.is_array()) malformed(source, fmt::format("\"{}\" is not an array", name));
    T out;
    for (const auto& e : v) out.push_back(integer_value<int64_t>(e, name, source));
    return out;
  } else {
    try {
      return v.get<T>();
    } catch (const json::exception& e) {
      malformed(source, fmt::format("\"{}\" has the wrong type ({})", name, e.what()));
    }
  }
}

// "layers.007.attn.qkv.weight" -> 7; -1 for names outside the transformer blocks.
// The parameter-name grammar belongs to model::layer_of (model/param_table.h); checkpoint/
// sits below model/ and does not link it, so this is the one copy of that parse.
// tests/unit/checkpoint/param_names_test.cc keeps the two in step.
// model::kMaxLayers: block numbers in names are below it.
constexpr int kMaxLayerNames = 999;

int layer_of(const std::string& name) {
  static const std::string prefix = "layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  size_t i = prefix.size();
  int layer = 0;
  bool digits = false;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) {
    layer = layer * 10 + (name[i] - '0');
    if (layer >= kMaxLayerNames) return -1;  // no block has this number (and no int overflow)
    digits = true;
    ++i;
  }
  if (!digits || (i < name.size() && name[i] != '.')) return -1;
  return layer;
}

}  // namespace

size_t element_count(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

json to_json(const ShardInfo& shard) {
  json datasets = json::object();
  for (const auto& [path, info] : shard.datasets) {
    datasets[path] = {
        {"shape", info.shape}, {"dtype", info.dtype}, {"xxh3", checksum_hex(info.xxh3)}};
  }
  return {{"step", shard.step},  {"stage", shard.shard}, {"num_stages", shard.num_shards},
          {"file", shard.file},  {"bytes", shard.bytes}, {"params", shard.params},
          {"datasets", datasets}};
}

ShardInfo shard_from_json(const json& j, const std::string& source) {
  ShardInfo shard;
  shard.step = field<int64_t>(j, "step", source);
  shard.shard = field<int>(j, "stage", source);
  shard.num_shards = field<int>(j, "num_stages", source);
  shard.file = field<std::string>(j, "file", source);
  shard.bytes = field<uint64_t>(j, "bytes", source);
  shard.params = field<std::vector<std::string>>(j, "params", source);
  auto datasets = field<json>(j, "datasets", source);
  if (!datasets.is_object()) malformed(source, "\"datasets\" is not an object");
  for (const auto& [path, info] : datasets.items()) {
    std::string where = fmt::format("{} (dataset {})", source, path);
    DatasetInfo d;
    d.shape = field<std::vector<int64_t>>(info, "shape", where);
    uint64_t elements = 1;
    for (int64_t dim : d.shape) {
      // Shapes of real models stay far below 2^48 elements: anything else is damage, and
      // would overflow the byte counts computed from it.
      if (dim < 0 || (dim > 0 && elements > (uint64_t{1} << 48) / static_cast<uint64_t>(dim)))
        malformed(where, fmt::format("\"shape\" [{}] is impossible", fmt::join(d.shape, ", ")));
      elements *= static_cast<uint64_t>(dim);
    }
    d.dtype = field<std::string>(info, "dtype", where);
    auto sum = parse_checksum_hex(field<std::string>(info, "xxh3", where));
    if (!sum) malformed(where, "\"xxh3\" is not 16 hex digits");
    d.xxh3 = *sum;
    shard.datasets.emplace(path, std::move(d));
  }
  if (shard.file.empty() || shard.file.find('/') != std::string::npos) {
    malformed(source, fmt::format("shard file name \"{}\" is not a plain file name", shard.file));
  }
  return shard;
}

void index_params(Manifest& manifest, const std::string& source) {
  manifest.params.clear();
  manifest.layer_shards.clear();
  for (const auto& shard : manifest.shards) {
    for (const auto& name : shard.params) {
      auto it = shard.datasets.find(fmt::format("/{}/{}", kParams, name));
      if (it == shard.datasets.end()) {
        malformed(source, fmt::format("parameter {} of {} has no dataset", name, shard.file));
      }
      auto [loc, inserted] = manifest.params.try_emplace(name);
      if (inserted) {
        loc->second.shard = shard.shard;
        loc->second.file = shard.file;
        loc->second.shape = it->second.shape;
      } else if (loc->second.shape != it->second.shape) {
        malformed(source, fmt::format("parameter {} has different shapes in {} and {}", name,
                                      loc->second.file, shard.file));
      }
      loc->second.shards.push_back(shard.shard);
      int layer = layer_of(name);
      if (layer >= 0) {
        if (static_cast<size_t>(layer) >= manifest.layer_shards.size()) {
          manifest.layer_shards.resize(static_cast<size_t>(layer) + 1, -1);
        }
        manifest.layer_shards[static_cast<size_t>(layer)] = shard.shard;
      }
    }
  }
}

json to_json(const Manifest& manifest) {
  json shards = json::array();
  for (const auto& shard : manifest.shards) shards.push_back(to_json(shard));
  json params = json::object();
  for (const auto& [name, loc] : manifest.params) {
    params[name] = {
        {"file", loc.file}, {"stage", loc.shard}, {"stages", loc.shards}, {"shape", loc.shape}};
  }
  return {{"format", kFormatName},
          {"format_version", manifest.format_version},
          {"step", manifest.step},
          {"num_stages", manifest.num_shards},
          {"fingerprint", manifest.fingerprint},
          {"config", manifest.config},
          {"layer_stages", manifest.layer_shards},
          {"params", params},
          {"shards", shards}};
}

Manifest manifest_from_json(const json& j, const std::string& source) {
  if (field<std::string>(j, "format", source) != kFormatName) {
    malformed(source, fmt::format("\"format\" is not \"{}\"", kFormatName));
  }
  Manifest m;
  m.format_version = field<int>(j, "format_version", source);
  if (m.format_version != kFormatVersion) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{} has format_version {}; this conveyor reads version {}", source,
                            m.format_version, kFormatVersion),
                "use the conveyor version that wrote the checkpoint");
  }
  m.step = field<int64_t>(j, "step", source);
  m.num_shards = field<int>(j, "num_stages", source);
  m.fingerprint = field<std::string>(j, "fingerprint", source);
  m.config = j.contains("config") ? j.at("config") : json();
  auto shards = field<json>(j, "shards", source);
  if (!shards.is_array()) malformed(source, "\"shards\" is not an array");
  for (const auto& s : shards) m.shards.push_back(shard_from_json(s, source));
  if (m.num_shards <= 0 || static_cast<int>(m.shards.size()) != m.num_shards) {
    malformed(source, fmt::format("num_stages is {} but {} shards are listed", m.num_shards,
                                  m.shards.size()));
  }
  for (int s = 0; s < m.num_shards; ++s) {
    if (m.shards[static_cast<size_t>(s)].shard != s) {
      malformed(source, fmt::format("shard {} is listed as stage {}", s,
                                    m.shards[static_cast<size_t>(s)].shard));
    }
  }
  index_params(m, source);
  return m;
}

Manifest read_manifest(const std::filesystem::path& step_dir) {
  auto path = step_dir / kManifestFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{} not found: {} is not a committed checkpoint step", path.string(),
                            step_dir.string()),
                "pass a step directory (step_NNNNNNNNN) or a checkpoint root containing LATEST");
  }
  std::string text = read_input_file(path);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) malformed(path.string(), "not valid JSON");
  return manifest_from_json(j, path.string());
}

}  // namespace conveyor::checkpoint
