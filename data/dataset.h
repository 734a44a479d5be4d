// Training data: a read-only sequence of token ids, mapped from its files.
//
// Two kinds of input (DESIGN.md, Data):
//   - byte-level text: one token per byte, vocabulary 256 (the default corpus is Debian's
//     fortunes package);
//   - llm.c token files (.bin, see data/token_file.h): uint16 tokens, e.g. GPT-2 BPE.
// Files are memory-mapped, not read into memory (a corpus larger than memory trains; the
// kernel pages it), and tokens are widened to int32 on read (uint8 for text, uint16 for
// token files). A Dataset is immutable after open(): every const method is safe to call from
// any number of threads at once. Copies share the mappings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/mapped_file.h"

namespace conveyor::data {

// Used when --data is not given.
inline constexpr const char* kDefaultCorpus = "/usr/share/games/fortunes";

enum class Split { kTrain, kVal };

struct OpenOptions {
  // Where the vocabulary size comes from, for error messages: the --vocab flag (train) or a
  // checkpoint's model (eval: there is no flag to change).
  const char* vocab_name = "--vocab";
  bool vocab_is_flag = true;
  // In a folder of llm.c shards (names with "_train_"/"_train." and "_val_"/"_val."), the
  // split to read; files whose name has neither are read for both. No effect elsewhere.
  Split split = Split::kTrain;
};
inline constexpr OpenOptions kCheckpointVocab{"the checkpoint's vocabulary", false};

class Dataset {
 public:
  // Opens `path`: a regular file or a folder. A folder means all regular files directly in it
  // (not recursive), sorted by name, concatenated. In a folder, files ending in .dat are skipped
  // (fortune's index files are binary), so are hidden files (names starting with '.'), and a
  // file reached twice (e.g. fortunes' "art.u8" symlink to "art") is read once, under the first
  // name. A folder of llm.c shards that has validation shards (*_val_*) reads only the split
  // options.split names (training shards by default; see OpenOptions). A folder that is also a
  // checkpoint directory (--ckpt-dir inside or equal to the data folder) gives no checkpoint file:
  // the checkpoint's step folders are sub-folders, its lock and temporary files are hidden, and its
  // LATEST and LATEST.tmp are skipped in any folder that holds a step_NNNNNNNNN sub-folder (a
  // committed checkpoint step). A path ending in ".bin", or a folder whose files all end in ".bin",
  // is read as llm.c token files; anything else is byte-level text (one token per byte). Blocking:
  // maps every file and reads it once to check its tokens against `vocab`. Throws
  // conveyor::Error(kUsage), with a message naming the path and a hint saying how to fix it, for:
  // vocab < 1, missing path, a path that is neither a file nor a folder, a folder with no usable
  // files, a folder mixing .bin and text files, no data at all, bad .bin magic or version, a .bin
  // whose size does not match its header's count, or a token >= vocab (names the file and the
  // token's index in it). Throws kRuntime if a file cannot be read.
  static Dataset open(const std::string& path, int vocab, const OpenOptions& options = {});

  // The files open(path) reads, in reading order, by the same rules and with the same errors
  // for the path and the folder (reads no file; e.g. to fingerprint the data cheaply).
  static std::vector<std::filesystem::path> input_files(const std::string& path,
                                                        Split split = Split::kTrain);

  // Builds a dataset from tokens in memory (tests, benchmarks). Same checks as open():
  // kUsage if empty or a token >= vocab. `name` only appears in description() and errors.
  static Dataset from_tokens(const std::vector<uint16_t>& tokens, int vocab,
                             const std::string& name = "<memory>");

  size_t size() const { return size_; }

  // Token i. REQUIRES: i < size() (not checked; use read() for checked access).
  int32_t operator[](size_t i) const;

  // Copies tokens [begin, begin+count) to out[0..count-1] as int32.
  // Throws kRuntime if the range is out of bounds.
  void read(size_t begin, size_t count, int32_t* out) const;

  // One line for logs, e.g. "/usr/share/games/fortunes: 43 files, 2.6 MB, byte-level".
  const std::string& description() const { return description_; }
  bool is_token_file() const { return is_token_file_; }
  int vocab() const { return vocab_; }

 private:
  Dataset() = default;
  // Appends `count` tokens stored at `base` (uint8 for text, uint16 for token files).
  void add_segment(const uint8_t* base, size_t count);
  const uint8_t* token_address(size_t i, size_t* left_in_segment) const;

  // One file's tokens, in order; `first` is the index of its first token in the dataset.
  struct Segment {
    const uint8_t* base = nullptr;
    size_t first = 0, count = 0;
  };
  bool is_token_file_ = false;
  int vocab_ = 0;
  size_t size_ = 0;
  std::vector<Segment> segments_;
  std::vector<std::shared_ptr<const MappedFile>> files_;  // what the segments point into
  std::shared_ptr<const std::vector<uint16_t>> owned_;    // from_tokens()
  std::string description_;
};

}  // namespace conveyor::data
