// The lines of text files, read in order, for `conveyor tokenize` (training a vocabulary and
// encoding). Each file is opened through common/file_io.h's open_input_file: a FIFO, device
// or folder is refused at once with Error(kUsage), never blocked on. Not thread-safe.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace conveyor::data {

class TextLines {
 public:
  explicit TextLines(std::vector<std::filesystem::path> files);

  // Sets `line` to the next line without its '\n' (a last line without one counts too) and
  // returns true; false after the last line of the last file. Throws Error(kUsage) naming a
  // file that cannot be opened or read.
  bool next(std::string& line);

 private:
  std::vector<std::filesystem::path> files_;
  size_t index_ = 0;  // of the next file to open
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_{nullptr, &std::fclose};
  std::unique_ptr<char, void (*)(void*)> buffer_{nullptr, &std::free};
  size_t capacity_ = 0;
};

}  // namespace conveyor::data
