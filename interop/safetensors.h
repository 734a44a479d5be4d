// safetensors, Hugging Face's tensor file format (https://huggingface.co/docs/safetensors):
//
//   8 bytes   N, the header's length (unsigned little-endian)
//   N bytes   JSON: {"NAME": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [b, e]},
//                    ..., "__metadata__": {"key": "text", ...}}   (padded with spaces)
//   the rest  the tensors' bytes, little-endian, row-major; tensor NAME is bytes [b, e) of it
//
// Only F32 tensors are written and read (conveyor keeps fp32 weights). The writer packs the
// tensors in the order given, 8-byte aligned header; the reader checks everything before it
// hands out data: the header length against the file, the JSON, every dtype, shape and
// offset pair (in bounds, matching the shape, not overlapping, covering the data exactly).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace conveyor::checkpoint {

struct SafetensorsEntry {
  std::string name;
  std::vector<int64_t> shape;  // empty for a scalar
  std::span<const float> data;
};

// Writes `tensors` (names unique) and `metadata` to `path` atomically (temporary file,
// fsync, rename). Throws Error(kRuntime) when the file cannot be written, kUsage for a
// duplicate name or data that does not match its shape.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A safetensors file read whole into memory and checked (see above).
class SafetensorsFile {
 public:
  // Throws Error(kUsage) naming the file and what is wrong with it; a FIFO, device or folder
  // is refused at once (common/file_io.h), never blocked on. Every number of the header (a
  // dimension, an offset) goes through common/json_number.h: a fraction, a negative or an
  // out-of-range value is refused, never converted.
  explicit SafetensorsFile(const std::filesystem::path& path);

  // Tensor names in file order (by offset).
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws Error(kUsage) naming the file when there is no such tensor.
  const std::vector<int64_t>& shape(const std::string& name) const;
  // A copy of the tensor's values (the file's data need not be aligned for float).
  std::vector<float> values(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Tensor {
    std::vector<int64_t> shape;
    size_t begin = 0, end = 0;  // byte offsets into bytes_, past the header
  };
  const Tensor& find(const std::string& name) const;

  std::filesystem::path path_;
  std::string bytes_;  // the whole file
  size_t data_start_ = 0;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace conveyor::checkpoint
