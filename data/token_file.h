// llm.c token files (.bin): the on-disk format and a writer for tests and benchmarks.
//
// Format (little-endian, as written by karpathy/llm.c's dev/data scripts):
//   header: 256 x int32 -- [0] magic 20240520, [1] version 1, [2] token count N, rest zero
//   body:   N x uint16 tokens (GPT-2 vocabulary fits in 16 bits)
// Version 2 (uint32 tokens, Llama 3) is not supported. The reader is data::Dataset::open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace conveyor::data {

inline constexpr int32_t kTokenFileMagic = 20240520;
inline constexpr int32_t kTokenFileVersion = 1;
inline constexpr size_t kTokenFileHeaderInts = 256;
inline constexpr size_t kTokenFileHeaderBytes = kTokenFileHeaderInts * sizeof(int32_t);

// Writes `tokens` to `path` as a version-1 token file, replacing any existing file: written
// whole under a hidden temporary name beside it (".NAME.tmp", created exclusively, nothing
// planted there followed), fsynced and renamed into place, so a job that has the old file
// mapped keeps its bytes. A link at `path` is replaced, not written through. Blocking.
// Throws conveyor::Error(kUsage) if there are more tokens than an int32 count can hold or
// `path` is a folder, FIFO or device (left as it is), conveyor::Error(kRuntime) if the file
// cannot be written.
void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens);

}  // namespace conveyor::data
