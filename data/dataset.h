// Training data: a read-only sequence of token ids held in memory.
//
// Two kinds of input (DESIGN.md, Data):
//   - byte-level text: one token per byte, vocabulary 256 (the default corpus is Debian's
//     fortunes package);
//   - llm.c token files (.bin, see data/token_file.h): uint16 tokens, e.g. GPT-2 BPE.
// Tokens are stored compactly (uint8 for text, uint16 for token files) and widened to int32
// on read. A Dataset is immutable after open(): every const method is safe to call from any
// number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace conveyor::data {

// Used when --data is not given.
inline constexpr const char* kDefaultCorpus = "/usr/share/games/fortunes";

class Dataset {
 public:
  // Opens `path`: a regular file or a folder. A folder means all regular files directly in it
  // (not recursive), sorted by name, concatenated. In a folder, files ending in .dat are skipped
  // (fortune's index files are binary), so are hidden files (names starting with '.'), and a
  // file reached twice (e.g. fortunes' "art.u8" symlink to "art") is read once, under the first
  // name. A folder that is also a checkpoint directory (--ckpt-dir inside or equal to the data
  // folder) gives no checkpoint file: the checkpoint's step folders are sub-folders, its lock
  // and temporary files are hidden, and its LATEST and LATEST.tmp are skipped in any folder
  // that holds a step_NNNNNNNNN sub-folder (a committed checkpoint step).
  // A path ending in ".bin", or a folder whose files all end in ".bin", is read as llm.c token
  // files; anything else is byte-level text (one token per byte).
  // Blocking: reads all files into memory.
  // Throws conveyor::Error(kUsage), with a message naming the path and a hint saying how to fix
  // it, for: vocab < 1, missing path, a path that is neither a file nor a folder, a folder with
  // no usable files, a folder mixing .bin and text files, no data at all, bad .bin magic or
  // version, a .bin whose size does not match its header's count, or a token >= vocab (names
  // the file and the token's index in it). Throws kRuntime if a file cannot be read.
  static Dataset open(const std::string& path, int vocab);

  // The files open(path) reads, in reading order, by the same rules and with the same errors
  // for the path and the folder (reads no file; e.g. to fingerprint the data cheaply).
  static std::vector<std::filesystem::path> input_files(const std::string& path);

  // Builds a dataset from tokens in memory (tests, benchmarks). Same checks as open():
  // kUsage if empty or a token >= vocab. `name` only appears in description() and errors.
  static Dataset from_tokens(const std::vector<uint16_t>& tokens, int vocab,
                             const std::string& name = "<memory>");

  size_t size() const { return is_token_file_ ? tokens16_.size() : bytes_.size(); }

  // Token i. REQUIRES: i < size() (not checked; use read() for checked access).
  int32_t operator[](size_t i) const {
    return is_token_file_ ? static_cast<int32_t>(tokens16_[i]) : static_cast<int32_t>(bytes_[i]);
  }

  // Copies tokens [begin, begin+count) to out[0..count-1] as int32.
  // Throws kRuntime if the range is out of bounds.
  void read(size_t begin, size_t count, int32_t* out) const;

  // One line for logs, e.g. "/usr/share/games/fortunes: 43 files, 2.6 MB, byte-level".
  const std::string& description() const { return description_; }
  bool is_token_file() const { return is_token_file_; }
  int vocab() const { return vocab_; }

 private:
  Dataset() = default;

  bool is_token_file_ = false;
  int vocab_ = 0;
  std::vector<uint8_t> bytes_;      // byte-level text
  std::vector<uint16_t> tokens16_;  // token files
  std::string description_;
};

}  // namespace conveyor::data
