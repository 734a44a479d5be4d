// The metrics file on resume (train/metrics.h): only the step rows past the resume point go,
// every other line stays, a torn last line from a crash goes, and a stream is never re-read.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "tests/test_util.h"
#include "train/metrics.h"

using namespace conveyor;
using namespace conveyor::pipeline;
using conveyor::test::read_file;
using conveyor::test::TempDir;
using conveyor::test::write_file;

namespace {

std::string row(int step) {
  StepMetrics m;
  m.step = step;
  m.loss = 1.5f;
  return format_metrics_line(m) + "\n";
}

}  // namespace

TEST_CASE("resuming removes the rows past the resume point and nothing else", "[metrics]") {
  TempDir dir;
  const auto path = dir / "m.jsonl";
  const std::string note = "# run 1 of the sweep, lr 3e-4\n";
  const std::string other = "{\"event\": \"restarted\"}\n";
  ValidationMetrics v;
  v.step = 2;
  const std::string val2 = format_metrics_line(v) + "\n";
  write_file(path, note + row(1) + row(2) + val2 + other + row(3) + row(4) + "{\"step\": 5, \"lo");
  { MetricsWriter writer(path.string(), int64_t{2}); }
  CHECK(read_file(path) == note + row(1) + row(2) + val2 + other);
}

TEST_CASE("a resumed run appends to a metrics stream without reading it back", "[metrics]") {
  TempDir dir;
  const auto fifo = dir / "m.fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0644) == 0);
  // A reader holds the FIFO open, as a pipe's reader would: the writer must neither block on
  // reading the FIFO nor replace it.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  {
    MetricsWriter writer(fifo.string(), int64_t{3});
    StepMetrics m;
    m.step = 4;
    writer.write(m);
  }
  char buffer[256] = {};
  const ssize_t n = ::read(reader, buffer, sizeof buffer - 1);
  ::close(reader);
  CHECK(n > 0);
  CHECK(std::string(buffer).rfind("{\"step\": 4,", 0) == 0);
  struct stat st {};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
}

TEST_CASE("a metrics FIFO without a reader, or a link to a file, is refused at once", "[metrics]") {
  TempDir dir;
  REQUIRE(mkfifo((dir / "m.fifo").c_str(), 0644) == 0);
  try {
    MetricsWriter writer((dir / "m.fifo").string());
    FAIL("a FIFO without a reader was opened");
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    CHECK_THAT(e.message(), Catch::Contains("no reader"));
  }
  write_file(dir / "victim", "precious\n");
  std::filesystem::create_symlink(dir / "victim", dir / "m.jsonl");
  try {
    MetricsWriter writer((dir / "m.jsonl").string(), int64_t{0});
    FAIL("a link was written through");
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    CHECK_THAT(e.message(), Catch::Contains("symbolic link"));
  }
  CHECK(read_file(dir / "victim") == "precious\n");
}
