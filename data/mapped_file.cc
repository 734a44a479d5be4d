#include "data/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"

namespace conveyor::data {

MappedFile::MappedFile(const std::filesystem::path& path) {
  // A FIFO, device or folder is refused at once (kUsage), never blocked on.
  const UniqueFd fd = open_input_file(path, "data file");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("cannot read the size of data file {}: {}",
                            printable(path.string(), 512), std::strerror(errno)));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("cannot map data file {} ({} bytes): {}",
                              printable(path.string(), 512), size_, std::strerror(errno)));
    }
    ::madvise(p, size_, MADV_RANDOM);  // training reads short windows at random offsets
    data_ = static_cast<const uint8_t*>(p);
  }
  // Closing the descriptor keeps the mapping. Writers replace data files by rename
  // (data/token_file.h), so the mapped bytes stay those of the file opened here.
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace conveyor::data
