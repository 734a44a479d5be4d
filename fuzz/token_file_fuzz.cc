// Fuzzes the llm.c token-file reader: data::Dataset::open on one .bin file, or on a folder
// of two shards (reads that span files). The input's first byte picks the layout and the
// vocabulary; the rest is the file's bytes.
//
// Beyond "no crash": whenever open() accepts the data, every token it returns must be the
// uint16 stored at its place after the 1024-byte header, and below the vocabulary.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/error.h"
#include "data/dataset.h"
#include "data/token_file.h"

namespace fs = std::filesystem;
using namespace conveyor;

namespace {

const fs::path& work_dir() {
  static const fs::path dir = [] {
    fs::path d =
        fs::temp_directory_path() / ("conveyor-fuzz-token-file-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

void write(const fs::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// The tokens a well-formed file holds (the bytes after the header, as little-endian uint16).
void expected_tokens(const uint8_t* data, size_t size, std::vector<uint16_t>& out) {
  for (size_t at = data::kTokenFileHeaderBytes; at + 1 < size; at += 2)
    out.push_back(static_cast<uint16_t>(data[at] | (data[at + 1] << 8)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const int vocab = (mode & 0x80) ? 50304 : 1 + (mode & 0x7e) * 4;
  ++data;
  --size;
  const fs::path dir = work_dir() / "shards";
  fs::remove_all(dir);
  std::string path;
  std::vector<uint16_t> expected;
  if (mode & 1) {  // two shards: split the bytes in the middle
    fs::create_directories(dir);
    const size_t half = size / 2;
    write(dir / "x_train_000.bin", data, half);
    write(dir / "x_train_001.bin", data + half, size - half);
    expected_tokens(data, half, expected);
    expected_tokens(data + half, size - half, expected);
    path = dir.string();
  } else {
    path = (work_dir() / "one.bin").string();
    write(path, data, size);
    expected_tokens(data, size, expected);
  }
  try {
    const data::Dataset ds = data::Dataset::open(path, vocab);
    if (ds.size() != expected.size()) std::abort();
    std::vector<int32_t> window(ds.size());
    ds.read(0, ds.size(), window.data());
    for (size_t i = 0; i < ds.size(); ++i) {
      if (window[i] != expected[i] || ds[i] != window[i] || window[i] >= vocab) std::abort();
    }
  } catch (const Error&) {
    // Refused with a message: what bad input must get.
  }
  return 0;
}
