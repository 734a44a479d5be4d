#include "checkpoint/file_system.h"

#include <atomic>

#include "common/file_io.h"

namespace conveyor::checkpoint {

namespace {

namespace fs = std::filesystem;

class PosixFileSystem final : public FileSystem {
 public:
  void create_directories(const fs::path& dir, std::error_code& ec) override {
    fs::create_directories(dir, ec);
  }
  void write_new_file(const fs::path& path, std::string_view bytes) override {
    UniqueFd fd = open_output_file(path, WriteMode::kExclusive, "temporary file");
    write_all(fd.get(), bytes, "temporary file", path);
  }
  void fsync_file(const fs::path& path) override { conveyor::fsync_file(path); }
  void fsync_dir(const fs::path& dir) override { conveyor::fsync_dir(dir); }
  void rename(const fs::path& from, const fs::path& to) override { rename_path(from, to); }
  void remove(const fs::path& path, std::error_code& ec) override { fs::remove_all(path, ec); }
};

PosixFileSystem g_posix;
std::atomic<FileSystem*> g_installed{&g_posix};

}  // namespace

FileSystem& file_system() {
  return *g_installed.load(std::memory_order_acquire);
}

FileSystem& posix_file_system() {
  return g_posix;
}

void install_file_system(FileSystem* files) {
  g_installed.store(files != nullptr ? files : &g_posix, std::memory_order_release);
}

void write_file_atomic(FileSystem& files, const fs::path& path, const std::string& text) {
  check_replaceable(path);
  const fs::path tmp = temporary_path_beside(path);
  std::error_code ec;
  files.remove(tmp, ec);  // a stale or planted one; a link there is removed, never followed
  try {
    files.write_new_file(tmp, text);
    files.fsync_file(tmp);
    files.rename(tmp, path);
  } catch (...) {
    files.remove(tmp, ec);  // no half-written temporary file is left behind
    throw;
  }
  const fs::path parent = path.parent_path();
  files.fsync_dir(parent.empty() ? fs::path(".") : parent);
}

}  // namespace conveyor::checkpoint
