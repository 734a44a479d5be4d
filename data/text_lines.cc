#include "data/text_lines.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"

namespace conveyor::data {

TextLines::TextLines(std::vector<std::filesystem::path> files) : files_(std::move(files)) {}

bool TextLines::next(std::string& line) {
  for (;;) {
    if (!file_) {
      if (index_ == files_.size()) return false;
      const auto& path = files_[index_++];
      UniqueFd fd = open_input_file(path, "--data file");
      std::FILE* f = ::fdopen(fd.get(), "r");
      CONVEYOR_CHECK(f != nullptr, "cannot read {}: {}", printable(path.string(), 512),
                     std::strerror(errno));
      fd.release();  // the stream owns it now
      file_.reset(f);
    }
    char* data = buffer_.release();
    errno = 0;
    const ssize_t n = ::getline(&data, &capacity_, file_.get());
    buffer_.reset(data);
    if (n >= 0) {
      line.assign(data, static_cast<size_t>(n));
      if (!line.empty() && line.back() == '\n') line.pop_back();
      return true;
    }
    if (std::ferror(file_.get())) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("cannot read --data file {}: {}",
                              printable(files_[index_ - 1].string(), 512), std::strerror(errno)),
                  "check that it is readable");
    }
    file_.reset();  // the end of this file: on to the next
  }
}

}  // namespace conveyor::data
