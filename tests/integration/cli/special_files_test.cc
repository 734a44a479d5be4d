// What `conveyor train` and `conveyor ckpt` do with special files, links and odd names where
// they read and write (docs/DESIGN.md, "Files"): a link or FIFO is refused with exit 2 and
// left alone, nothing blocks, two outputs that are one file are refused, a path that is not
// UTF-8 trains and resumes.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>

#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace conveyor::test;

namespace {

std::vector<std::string> tiny(const std::vector<std::string>& more) {
  return with(with({"train"}, tiny_model_args({.layers = 2, .microbatches = 2})),
              with({"--steps", "2"}, more));
}

void expect_exit(const RunResult& r, int code, const std::string& must_mention) {
  INFO(r.output);
  CHECK(r.exit_code == code);
  CHECK(r.output.find(must_mention) != std::string::npos);
}

}  // namespace

TEST_CASE("a link or FIFO planted at a trace part file is refused and left alone", "[cli][files]") {
  TempDir dir;
  write_file(dir / "victim", "precious\n");
  fs::create_symlink(dir / "victim", dir / "trace.rank-0.json");
  expect_exit(run_conveyor(tiny({"--trace", (dir / "trace.json").string()})), 2, "symbolic link");
  CHECK(read_file(dir / "victim") == "precious\n");

  fs::remove(dir / "trace.rank-0.json");
  REQUIRE(mkfifo((dir / "trace.rank-0.json").c_str(), 0644) == 0);
  expect_exit(run_conveyor(tiny({"--trace", (dir / "trace.json").string()})), 2, "FIFO");
  CHECK(fs::is_fifo(dir / "trace.rank-0.json"));  // not deleted at the end
  CHECK(!fs::exists(dir / "trace.json"));
}

TEST_CASE("the metrics and the trace naming one file are refused", "[cli][files]") {
  TempDir dir;
  const std::string same = (dir / "out.json").string();
  expect_exit(run_conveyor(tiny({"--metrics", same, "--trace", same})), 2, "are one file");
  // Nor may the metrics be a rank's trace part (trace.rank-1.json of a 2-stage job).
  expect_exit(
      run_conveyor(with({"launch", "--nproc", "2", "--", "conveyor"},
                        tiny({"--stages", "2", "--metrics", (dir / "trace.rank-1.json").string(),
                              "--trace", (dir / "trace.json").string()}))),
      2, "are one file");
  // Through a hard link too.
  write_file(dir / "m.jsonl", "");
  fs::create_hard_link(dir / "m.jsonl", dir / "t.json");
  expect_exit(run_conveyor(tiny(
                  {"--metrics", (dir / "m.jsonl").string(), "--trace", (dir / "t.json").string()})),
              2, "are one file");
  CHECK(read_file(dir / "m.jsonl").empty());
}

TEST_CASE("a resumed run with --metrics on a pipe does not read its own output", "[cli][files]") {
  TempDir dir;
  const auto ckpt = (dir / "ckpt").string();
  // run_conveyor's stdout is a pipe: /dev/stdout names it.
  auto first = run_conveyor(tiny({"--ckpt-dir", ckpt, "--metrics", "/dev/stdout"}), {}, 60);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(first.output.find("{\"step\": 2,") != std::string::npos);
  auto resumed =
      run_conveyor(tiny({"--ckpt-dir", ckpt, "--metrics", "/dev/stdout", "--steps", "3"}), {}, 60);
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(resumed.output.find("{\"step\": 3,") != std::string::npos);
}

TEST_CASE("special files in place of inputs are refused at once or skipped, never blocked on",
          "[cli][files]") {
  TempDir dir;
  // --metrics a FIFO with no reader: refused at start-up.
  REQUIRE(mkfifo((dir / "metrics.fifo").c_str(), 0644) == 0);
  expect_exit(run_conveyor(tiny({"--metrics", (dir / "metrics.fifo").string()}), {}, 60), 2,
              "no reader");
  // --config a FIFO or a link loop.
  fs::create_symlink(dir / "loop-a", dir / "loop-b");
  fs::create_symlink(dir / "loop-b", dir / "loop-a");
  expect_exit(run_conveyor(tiny({"--config", (dir / "metrics.fifo").string()}), {}, 60), 2, "FIFO");
  expect_exit(run_conveyor(tiny({"--config", (dir / "loop-a").string()}), {}, 60), 2,
              "symbolic links");
  // --ckpt-dir a link loop.
  expect_exit(run_conveyor(tiny({"--ckpt-dir", (dir / "loop-a").string()}), {}, 60), 2, "loop-a");

  // A checkpoint whose LATEST is a FIFO is refused at start-up (no commit could replace it);
  // one whose newest manifest is a FIFO is skipped by auto-resume and refused by ckpt verify.
  const auto ckpt = dir / "ckpt";
  REQUIRE(
      run_conveyor(tiny({"--ckpt-dir", ckpt.string(), "--save-every", "1"}), {}, 60).exit_code ==
      0);
  fs::rename(ckpt / "LATEST", dir / "LATEST.saved");
  REQUIRE(mkfifo((ckpt / "LATEST").c_str(), 0644) == 0);
  expect_exit(run_conveyor(tiny({"--ckpt-dir", ckpt.string(), "--steps", "3"}), {}, 60), 2,
              "LATEST is not a regular file");
  fs::remove(ckpt / "LATEST");
  fs::rename(dir / "LATEST.saved", ckpt / "LATEST");

  const auto manifest = ckpt / "step_000000002" / "manifest.json";
  fs::remove(manifest);
  REQUIRE(mkfifo(manifest.c_str(), 0644) == 0);
  expect_exit(run_conveyor({"ckpt", "verify", (ckpt / "step_000000002").string()}, {}, 60), 2,
              "FIFO");
  auto r = run_conveyor(tiny({"--ckpt-dir", ckpt.string(), "--steps", "3"}), {}, 60);
  expect_exit(r, 0, "resumed from");
  CHECK(r.output.find("step_000000001") != std::string::npos);
}

TEST_CASE("data and checkpoint paths that are not UTF-8 train and resume", "[cli][files]") {
  TempDir dir;
  const auto data = dir / "fortune\xff.txt";
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "A fortune is a short saying, line " + std::to_string(i) + ".\n";
  write_file(data, text);
  const auto ckpt = (dir / "ckpt\xe9").string();
  auto r = run_conveyor(tiny({"--data", data.string(), "--ckpt-dir", ckpt}), {}, 60);
  expect_exit(r, 0, "checkpoint step 2 committed");
  r = run_conveyor(tiny({"--data", data.string(), "--ckpt-dir", ckpt, "--steps", "3"}), {}, 60);
  expect_exit(r, 0, "resumed from");
  auto settings = run_conveyor({"ckpt", "settings", ckpt}, {}, 60);
  expect_exit(settings, 0, "\\xe9");
}

TEST_CASE("a data file name with terminal escapes is printed escaped", "[cli][files]") {
  TempDir dir;
  fs::create_directory(dir / "data");
  write_file(dir / "data" / "evil\x1b[2J\x1b]0;owned\x07.bin", "abc");  // too short a header
  auto r = run_conveyor(tiny({"--data", (dir / "data").string()}), {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("evil\\x1b[2J\\x1b]0;owned\\x07.bin") != std::string::npos);
  CHECK(r.output.find('\x1b') == std::string::npos);
  CHECK(r.output.find('\x07') == std::string::npos);
}

TEST_CASE("a checkpoint's LATEST that is a link loop is a usage error naming it", "[cli][files]") {
  TempDir dir;
  const auto ckpt = dir / "ckpt";
  REQUIRE(run_conveyor(tiny({"--ckpt-dir", ckpt.string()}), {}, 60).exit_code == 0);
  fs::remove(ckpt / "LATEST");
  fs::create_symlink("LATEST", ckpt / "LATEST");
  expect_exit(run_conveyor(tiny({"--ckpt-dir", ckpt.string(), "--steps", "3"}), {}, 60), 2,
              "LATEST: too many levels of symbolic links");
}
