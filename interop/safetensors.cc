#include "interop/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/file_util.h"
#include "checkpoint/manifest.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_number.h"
#include "common/printable.h"

namespace conveyor::checkpoint {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using nlohmann::json;

// A header larger than this is not one we wrote, nor any model's (GPT-2 XL's is ~40 kB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
// A file larger than this is no model conveyor could hold (GPT-2 XL in fp32 is 6.4 GB).
constexpr int64_t kMaxFileBytes = int64_t{1} << 40;
// Elements of one tensor: far above any real one, far below an overflow of its byte count.
constexpr int64_t kMaxElements = int64_t{1} << 40;
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void bad_file(const std::filesystem::path& path, const std::string& what) {
  throw Error(
      ErrorKind::kUsage,
      fmt::format("{} is not a valid safetensors file: {}", printable(path.string(), 512), what),
      "export it again, or check that the download or copy is complete");
}

}  // namespace

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  size_t offset = 0;
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    CONVEYOR_REQUIRE(seen.insert(t.name).second, "safetensors: tensor {} given twice", t.name);
    CONVEYOR_REQUIRE(element_count(t.shape) == t.data.size(),
                     "safetensors: tensor {} has {} values for shape [{}]", t.name, t.data.size(),
                     fmt::join(t.shape, ", "));
    const size_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {
        {"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string file(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(file.data(), &n, 8);
  file += text;
  file.reserve(file.size() + offset);
  for (const auto& t : tensors)
    file.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
  write_file_atomic(path, file);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  // A FIFO, device or folder is refused at once (common/file_io.h), never blocked on.
  bytes_ = read_input_file(path, "safetensors file", kMaxFileBytes);
  if (bytes_.size() < 8)
    bad_file(path,
             fmt::format("it has {} bytes, less than the 8-byte header length", bytes_.size()));
  uint64_t n = 0;
  std::memcpy(&n, bytes_.data(), 8);
  if (n > kMaxHeaderBytes || n > bytes_.size() - 8)
    bad_file(path,
             fmt::format("its header length {} exceeds the file ({} bytes)", n, bytes_.size()));
  data_start_ = 8 + n;
  const auto header = json::parse(bytes_.begin() + 8,
                                  bytes_.begin() + static_cast<long>(data_start_), nullptr, false);
  if (!header.is_object()) bad_file(path, "its header is not a JSON object");
  const size_t data_bytes = bytes_.size() - data_start_;
  std::vector<std::pair<size_t, std::string>> by_offset;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      if (!info.is_object()) bad_file(path, "__metadata__ is not an object");
      for (const auto& [k, v] : info.items())
        if (v.is_string()) metadata_[k] = v.get<std::string>();
      continue;
    }
    // Quoted escaped: a tensor name may hold terminal codes.
    const std::string where = fmt::format("tensor '{}'", printable(name, 128));
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets"))
      bad_file(path, where + " lacks dtype, shape or data_offsets");
    if (info["dtype"] != "F32")
      bad_file(path, fmt::format("{} is {}; only F32 tensors are read", where,
                                 printable(info["dtype"].dump(), 64)));
    Tensor t;
    const auto& shape = info["shape"];
    const auto& offsets = info["data_offsets"];
    if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2)
      bad_file(path, where + " has a malformed shape or data_offsets");
    // Numbers through common/json_number.h: a float, a negative or an out-of-range value is
    // refused, never converted.
    uint64_t elements = 1;
    for (const auto& d : shape) {
      int64_t dim = 0;
      try {
        dim = json_integer(d, "a dimension", 0, kMaxElements, "elements");
      } catch (const Error& e) {
        bad_file(path, fmt::format("{} has the impossible shape {} ({})", where,
                                   printable(shape.dump(), 128), e.message()));
      }
      t.shape.push_back(dim);
      elements *= static_cast<uint64_t>(dim);
      if (elements > static_cast<uint64_t>(kMaxElements))
        bad_file(path, fmt::format("{} has the impossible shape {}", where,
                                   printable(shape.dump(), 128)));
    }
    try {
      t.begin = static_cast<size_t>(
          json_integer(offsets[0], "its first data offset", 0, kMaxFileBytes, "bytes"));
      t.end = static_cast<size_t>(
          json_integer(offsets[1], "its end data offset", 0, kMaxFileBytes, "bytes"));
    } catch (const Error& e) {
      bad_file(path, fmt::format("{} has malformed data_offsets: {}", where, e.message()));
    }
    if (t.begin > t.end || t.end > data_bytes)
      bad_file(path, fmt::format("{} lies at bytes [{}, {}), outside the {} bytes of data (is "
                                 "the file cut short?)",
                                 where, t.begin, t.end, data_bytes));
    if (t.end - t.begin != elements * sizeof(float))
      bad_file(path,
               fmt::format("{} has {} bytes for shape {} ({} expected)", where, t.end - t.begin,
                           printable(shape.dump(), 128), elements * sizeof(float)));
    by_offset.emplace_back(t.begin, name);
    tensors_.emplace(name, std::move(t));
  }
  std::sort(by_offset.begin(), by_offset.end());
  size_t expected = 0;
  for (const auto& [begin, name] : by_offset) {
    if (begin != expected)
      bad_file(path, fmt::format("tensor '{}' starts at byte {} where {} was expected (the "
                                 "tensors must cover the data without gaps or overlaps)",
                                 printable(name, 128), begin, expected));
    expected = tensors_.at(name).end;
    names_.push_back(name);
  }
  if (expected != data_bytes)
    bad_file(path, fmt::format("{} bytes follow the last tensor", data_bytes - expected));
}

const SafetensorsFile::Tensor& SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error(
        ErrorKind::kUsage,
        fmt::format("{} has no tensor '{}'", printable(path_.string(), 512), printable(name, 128)),
        "is it a GPT-2 model of the shape given?");
  return it->second;
}

const std::vector<int64_t>& SafetensorsFile::shape(const std::string& name) const {
  return find(name).shape;
}

std::vector<float> SafetensorsFile::values(const std::string& name) const {
  const Tensor& t = find(name);
  std::vector<float> out((t.end - t.begin) / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), bytes_.data() + data_start_ + t.begin, t.end - t.begin);
  return out;
}

}  // namespace conveyor::checkpoint
