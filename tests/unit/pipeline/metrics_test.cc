// The metrics file on resume (train/metrics.h): only the step rows past the resume point go,
// every other line stays, a torn last line from a crash goes, and a stream is never re-read.
// And the row's contract: its keys in order, mfu last and only when a peak is known, and the
// progress line's MFU.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits>
#include <nlohmann/json.hpp>

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

namespace {

StepMetrics sample_step() {
  StepMetrics m;
  m.step = 40;
  m.loss = 2.4312f;
  m.lr = 2.9e-3f;
  m.grad_norm = 0.75;
  m.tokens_per_s = 11200;
  m.step_ms = 183;
  m.bubble = 0.12;
  m.tokens = 40960;
  m.elapsed_s = 9.5;
  m.time = 1.7e9;
  return m;
}

std::vector<std::string> keys_of(const std::string& line) {
  std::vector<std::string> keys;
  // ordered_json keeps the order of the text, which is part of the contract.
  const auto row = nlohmann::ordered_json::parse(line);
  for (const auto& [key, value] : row.items()) keys.push_back(key);
  return keys;
}

}  // namespace

TEST_CASE("a step row has mfu last and only when a peak is known", "[metrics]") {
  const std::vector<std::string> contract = {"step",         "loss",    "lr",      "grad_norm",
                                             "tokens_per_s", "step_ms", "bubble",  "tokens",
                                             "elapsed_s",    "time",    "restarts"};
  StepMetrics m = sample_step();
  const std::string without = format_metrics_line(m);
  CHECK(keys_of(without) == contract);

  m.mfu = 0.4132499;  // 4 significant digits
  const std::string with_mfu = format_metrics_line(m);
  auto keys = contract;
  keys.push_back("mfu");
  CHECK(keys_of(with_mfu) == keys);
  // Every other key keeps its text: the row with mfu is the row without it, plus mfu.
  CHECK(with_mfu == without.substr(0, without.size() - 1) + ", \"mfu\": 0.4132}");

  m.mfu = 0.000523;  // a small model on the CPU: still 4 significant digits
  CHECK(nlohmann::json::parse(format_metrics_line(m))["mfu"].get<double>() == 0.000523);

  m.mfu = std::numeric_limits<double>::infinity();  // a step timed at 0 s: still JSON
  CHECK(nlohmann::json::parse(format_metrics_line(m))["mfu"].is_null());
}

TEST_CASE("the progress line shows MFU as a percentage when known", "[metrics]") {
  StepMetrics m = sample_step();
  CHECK(progress_line(m, 300, 47) ==
        "step  40/300 | loss 2.4312 | lr 2.90e-03 | 11.2k tok/s | 183 ms | bubble 0.12 | ETA 47s");
  m.mfu = 0.4132;
  CHECK(progress_line(m, 300, 47) ==
        "step  40/300 | loss 2.4312 | lr 2.90e-03 | 11.2k tok/s | 183 ms | bubble 0.12 | MFU "
        "41.3% | ETA 47s");
  m.mfu = 0.000523;  // below 1%: two significant digits, not "0.1%"
  CHECK_THAT(progress_line(m, 300, 47), Catch::Contains("| MFU 0.052% | ETA"));
}
