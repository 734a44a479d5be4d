// The one way conveyor opens what it writes and reads (common/file_io.h): a link planted where
// it writes is refused and its target left alone, a FIFO is never blocked on, special files are
// never replaced, and inputs that are not regular files are refused with exit 2.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "common/file_io.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace conveyor;
using conveyor::test::read_file;
using conveyor::test::TempDir;
using conveyor::test::write_file;

namespace {

// The Error `f` throws; fails the test when it throws none.
template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no error was thrown");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("an output path holding a link is refused in every mode, its target untouched",
          "[common][files]") {
  TempDir dir;
  write_file(dir / "victim", "precious\n");
  fs::create_symlink(dir / "victim", dir / "out");
  for (WriteMode mode :
       {WriteMode::kTruncate, WriteMode::kAppend, WriteMode::kExclusive, WriteMode::kLock}) {
    const Error e = error_of([&] { open_output_file(dir / "out", mode, "test output"); });
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("test output"));
  }
  CHECK(read_file(dir / "victim") == "precious\n");
  // A link to a file is refused even where streams are allowed (it is not a stream).
  const Error e = error_of([&] {
    open_output_file(dir / "out", WriteMode::kAppend, "--metrics file",
                     OutputTarget::kRegularOrStream);
  });
  CHECK_THAT(e.message(), Catch::Contains("symbolic link"));
  CHECK(read_file(dir / "victim") == "precious\n");
}

TEST_CASE("a FIFO, a folder or a device where a file is written is refused without blocking",
          "[common][files]") {
  TempDir dir;
  REQUIRE(mkfifo((dir / "fifo").c_str(), 0644) == 0);
  fs::create_directory(dir / "folder");
  for (const char* name : {"fifo", "folder"}) {
    for (WriteMode mode : {WriteMode::kTruncate, WriteMode::kAppend, WriteMode::kLock}) {
      const Error e = error_of([&] { open_output_file(dir / name, mode, "test output"); });
      INFO(name << ": " << e.message());
      CHECK(e.kind() == ErrorKind::kUsage);
    }
  }
  // /dev/null is a device: not for a file, but a stream may be one.
  CHECK(error_of([] { open_output_file("/dev/null", WriteMode::kAppend, "x"); }).kind() ==
        ErrorKind::kUsage);
  CHECK(open_output_file("/dev/null", WriteMode::kAppend, "x", OutputTarget::kRegularOrStream)
            .get() >= 0);
  // ... and so may a link to one, as /dev/stdout is.
  fs::create_symlink("/dev/null", dir / "null-link");
  CHECK(open_output_file(dir / "null-link", WriteMode::kAppend, "x", OutputTarget::kRegularOrStream)
            .get() >= 0);
}

TEST_CASE("a regular output file is created, emptied or appended to", "[common][files]") {
  TempDir dir;
  const auto path = dir / "out.txt";
  {
    auto f = open_output_stream(path, WriteMode::kTruncate, "x");
    std::fputs("one\n", f.get());
  }
  {
    auto f = open_output_stream(path, WriteMode::kAppend, "x");
    std::fputs("two\n", f.get());
  }
  CHECK(read_file(path) == "one\ntwo\n");
  {
    auto f = open_output_stream(path, WriteMode::kTruncate, "x");
    std::fputs("three\n", f.get());
  }
  CHECK(read_file(path) == "three\n");
  CHECK(error_of([&] { open_output_file(path, WriteMode::kExclusive, "x"); }).kind() ==
        ErrorKind::kUsage);
  CHECK(error_of([&] {
          open_output_file(dir / "missing" / "f", WriteMode::kTruncate, "x");
        }).kind() == ErrorKind::kUsage);
}

TEST_CASE("write_file_atomic never writes through a planted link and never replaces a FIFO",
          "[common][files]") {
  TempDir dir;
  write_file(dir / "victim", "precious\n");
  const auto path = dir / "LATEST";
  // A link planted at the temporary name is removed, not followed.
  fs::create_symlink(dir / "victim", temporary_path_beside(path));
  write_file_atomic(path, "step_000000002\n");
  CHECK(read_file(path) == "step_000000002\n");
  CHECK(read_file(dir / "victim") == "precious\n");
  CHECK(!fs::exists(fs::symlink_status(temporary_path_beside(path))));
  // A link at the path itself is replaced by the file, its target untouched.
  fs::remove(path);
  fs::create_symlink(dir / "victim", path);
  write_file_atomic(path, "new\n");
  CHECK(fs::is_regular_file(fs::symlink_status(path)));
  CHECK(read_file(path) == "new\n");
  CHECK(read_file(dir / "victim") == "precious\n");
  // A FIFO at the path is left as it is.
  REQUIRE(mkfifo((dir / "fifo").c_str(), 0644) == 0);
  CHECK(error_of([&] { write_file_atomic(dir / "fifo", "x"); }).kind() == ErrorKind::kRuntime);
  CHECK(fs::is_fifo(dir / "fifo"));
  CHECK(!fs::exists(temporary_path_beside(dir / "fifo")));
}

TEST_CASE("inputs that are not regular files are refused at once with exit 2", "[common][files]") {
  TempDir dir;
  write_file(dir / "config.toml", "layers = 2\n");
  fs::create_symlink(dir / "config.toml", dir / "link.toml");
  CHECK(read_input_file(dir / "link.toml") == "layers = 2\n");  // links are followed
  REQUIRE(mkfifo((dir / "fifo").c_str(), 0644) == 0);
  fs::create_directory(dir / "folder");
  fs::create_symlink(dir / "loop-a", dir / "loop-b");
  fs::create_symlink(dir / "loop-b", dir / "loop-a");
  for (const char* name : {"fifo", "folder", "loop-a", "missing"}) {
    const Error e = error_of([&] { read_input_file(dir / name, "config file"); });
    INFO(name << ": " << e.message());
    CHECK(e.exit_code() == 2);
    CHECK_THAT(e.message(), Catch::Contains("config file"));
    CHECK_THAT(e.message(), Catch::Contains(name));
  }
  CHECK_THAT(error_of([&] { read_input_file(dir / "fifo"); }).message(), Catch::Contains("a FIFO"));
  CHECK_THAT(error_of([&] { read_input_file(dir / "loop-a"); }).message(),
             Catch::Contains("symbolic links"));
  CHECK_THAT(error_of([&] { read_input_file("/dev/null"); }).message(),
             Catch::Contains("character device"));
  CHECK(error_of([&] { read_input_file(dir / "config.toml", "x", 3); }).exit_code() == 2);
}
