// A read-only memory mapping of a whole file: data files are mapped, not read into memory,
// so a corpus larger than the machine's memory trains (the kernel pages it in and out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace conveyor::data {

class MappedFile {
 public:
  // Maps `path` read-only. Throws Error(kUsage) naming the path when it cannot be opened or
  // is not a regular file (a FIFO is refused without blocking: common/file_io.h), kRuntime
  // when it cannot be mapped. An empty file maps to data() == nullptr, size() == 0. The
  // mapping stays valid while the file is replaced by rename (data/token_file.h writes so);
  // a file truncated in place under it would fault (SIGBUS).
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace conveyor::data
