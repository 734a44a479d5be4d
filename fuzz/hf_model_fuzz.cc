// Fuzzes a Hugging Face GPT-2 folder as `conveyor eval --ckpt DIR` and `train --init-from DIR`
// read it: config.json and the header of model.safetensors together, through
// interop::WeightSource::open (config numbers, the safetensors header, every tensor's shape
// against the model config.json describes), then every parameter read.
//
// Input: config.json's bytes, a NUL, the safetensors header's JSON, then optionally a NUL and
// the data bytes. Without data bytes the data is zeros up to the largest "data_offsets" end
// the header names (at most 1 MiB), so well-formed headers reach the shape checks.
//
// Beyond "no crash, no UB": bad input is refused with conveyor::Error; any other exception
// aborts. When open() accepts the folder, reading every parameter of its model must succeed
// (open checked every tensor's shape), with the element count the model needs.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"
#include "common/error.h"
#include "interop/weight_source.h"
#include "model/param_table.h"

namespace fs = std::filesystem;
using namespace conveyor;

namespace {

constexpr uint64_t kMaxPaddedData = 1 << 20;

const fs::path& work_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("conveyor-fuzz-hf-model-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The largest data_offsets end the header names, when it is JSON of the expected form.
uint64_t largest_end(const std::string& header) {
  const auto j = nlohmann::json::parse(header, nullptr, false);
  uint64_t end = 0;
  if (!j.is_object()) return 0;
  for (const auto& [name, info] : j.items()) {
    if (!info.is_object() || !info.contains("data_offsets")) continue;
    const auto& offsets = info["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[1].is_number_unsigned()) continue;
    end = std::max(end, offsets[1].get<uint64_t>());
  }
  return end;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t first = input.find('\0');
  if (first == std::string::npos) return 0;
  const std::string config = input.substr(0, first);
  std::string header = input.substr(first + 1);
  std::string body;
  if (const size_t second = header.find('\0'); second != std::string::npos) {
    body = header.substr(second + 1);
    header.resize(second);
  } else {
    const uint64_t end = largest_end(header);
    if (end <= kMaxPaddedData) body.assign(end, '\0');
  }
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header;
  file += body;

  const fs::path dir = work_dir() / "model";
  fs::create_directories(dir);
  write(dir / "config.json", config);
  write(dir / "model.safetensors", file);

  std::unique_ptr<interop::WeightSource> source;
  try {
    source = interop::WeightSource::open(dir);
    interop::require_same_model(*source, source->config());
    (void)source->describe();
  } catch (const Error&) {
    return 0;  // refused with a message: what bad input must get
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hf_model fuzz: an exception outside the contract: %s\n", e.what());
    std::abort();
  }
  // Accepted: every parameter reads, with the count the model needs.
  try {
    std::vector<float> values;
    for (const auto& spec : model::parameter_table(source->config())) {
      values.assign(checkpoint::element_count(spec.shape), 0.0f);
      source->read(spec.name, values);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hf_model fuzz: open accepted the folder but a read failed: %s\n",
                 e.what());
    std::abort();
  }
  return 0;
}
