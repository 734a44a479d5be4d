// The checkpoint directory lock: one holder at a time, the holder named to the refused one, a
// stale record taken over, a clean release leaving an empty file.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace conveyor::checkpoint;

namespace {

// The Error that acquire() throws for `root`; fails the test when it succeeds.
conveyor::Error refusal(const fs::path& root) {
  try {
    DirLock::acquire(root);
  } catch (const conveyor::Error& e) {
    return e;
  }
  FAIL("DirLock::acquire succeeded");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("a locked checkpoint directory is refused, naming its holder", "[checkpoint][lock]") {
  conveyor::test::TempDir dir;
  const auto root = dir.path() / "ckpt";
  DirLock held = DirLock::acquire(root);  // creates root
  REQUIRE(held.held());
  const auto record = nlohmann::json::parse(conveyor::test::read_file(root / ".lock"));
  CHECK(record["pid"] == static_cast<int64_t>(getpid()));

  const auto e = refusal(root);
  INFO(e.message());
  CHECK(e.kind() == conveyor::ErrorKind::kUsage);
  CHECK_THAT(e.message(), Catch::Contains("in use by another job") &&
                              Catch::Contains(fmt::format("pid {}", getpid())) &&
                              Catch::Contains(record["host"].get<std::string>()) &&
                              Catch::Contains(record["started"].get<std::string>()));
  // The refused attempt left the holder's record alone.
  CHECK(nlohmann::json::parse(conveyor::test::read_file(root / ".lock")) == record);

  held.release();
  CHECK(conveyor::test::read_file(root / ".lock").empty());  // a clean release
  CHECK(DirLock::acquire(root).held());
}

TEST_CASE("a lock file left by a job that died is taken over", "[checkpoint][lock]") {
  conveyor::test::TempDir dir;
  // What a SIGKILLed holder leaves: its record, but no flock (the kernel dropped it).
  conveyor::test::write_file(
      dir.path() / ".lock",
      R"({"host":"elsewhere","pid":999999,"started":"2020-01-01T00:00:00Z"})");
  DirLock lock = DirLock::acquire(dir.path());
  CHECK(lock.held());
  const auto record = nlohmann::json::parse(conveyor::test::read_file(dir.path() / ".lock"));
  CHECK(record["pid"] == static_cast<int64_t>(getpid()));
  CHECK(describe_lock_holder(R"({"host":"h","pid":12,"started":"s"})") ==
        "host h, pid 12, started s");
  CHECK(describe_lock_holder("\x1b[2J") == "lock file says \"\\x1b[2J\"");
}

TEST_CASE("a checkpoint directory that is a file, or cannot be created, is refused",
          "[checkpoint][lock]") {
  conveyor::test::TempDir dir;
  const auto file = dir.path() / "file";
  conveyor::test::write_file(file, "x");
  auto e = refusal(file);
  CHECK(e.kind() == conveyor::ErrorKind::kUsage);
  CHECK_THAT(e.message(), Catch::Contains("not a directory"));
  e = refusal(file / "sub");
  CHECK(e.kind() == conveyor::ErrorKind::kUsage);
  CHECK_THAT(e.message(), Catch::Contains("cannot create"));
}

TEST_CASE("a link or FIFO planted at the lock file is refused and its target left alone",
          "[checkpoint][lock]") {
  conveyor::test::TempDir dir;
  const auto victim = dir.path() / "victim.txt";
  conveyor::test::write_file(victim, "precious\n");
  const auto ckpt = dir.path() / "ckpt";
  std::filesystem::create_directories(ckpt);
  std::filesystem::create_symlink(victim, ckpt / ".lock");
  auto e = refusal(ckpt);
  CHECK(e.kind() == conveyor::ErrorKind::kUsage);
  CHECK_THAT(e.message(), Catch::Contains("symbolic link"));
  CHECK(conveyor::test::read_file(victim) == "precious\n");

  std::filesystem::remove(ckpt / ".lock");
  REQUIRE(mkfifo((ckpt / ".lock").c_str(), 0644) == 0);
  e = refusal(ckpt);  // returns at once: a FIFO is not opened for blocking I/O
  CHECK(e.kind() == conveyor::ErrorKind::kUsage);
  CHECK_THAT(e.message(), Catch::Contains("FIFO"));
}
