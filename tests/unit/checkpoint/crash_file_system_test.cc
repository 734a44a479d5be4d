// The crash test's model of durability (crash_file_system.h) keeps exactly what fsync made
// durable: were it to keep more, crash_consistency_test.cc would pass whatever the commit
// protocol forgot to fsync.
#include <catch2/catch.hpp>

#include <fstream>

#include "tests/test_util.h"
#include "tests/unit/checkpoint/crash_file_system.h"

namespace fs = std::filesystem;
using conveyor::test::read_file;
using conveyor::test::write_file;
using namespace conveyor::checkpoint::testing;

namespace {

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("a crash keeps synced bytes and synced entries, and nothing else", "[checkpoint]") {
  conveyor::test::TempDir dir;
  const fs::path root = dir.path();
  write_file(root / "old", "old\n");
  fs::create_directory(root / "d");
  write_file(root / "d" / "kept", "kept\n");
  CrashFileSystem files(root);  // all of that counts as durable

  files.write_new_file(root / "a", "a1");
  files.fsync_file(root / "a");
  files.write_new_file(root / "b", "b");             // never fsynced
  files.fsync_dir(root);                             // a and b are entries of root from now on
  std::ofstream(root / "a", std::ios::app) << "a2";  // written as HDF5 does, not fsynced
  files.write_new_file(root / "c", "c");
  files.fsync_file(root / "c");  // its bytes are durable, its entry is not
  files.rename(root / "old", root / "renamed");
  std::error_code ec;
  files.remove(root / "d", ec);
  REQUIRE(!ec);

  files.crash();
  CHECK(names_in(root) == std::vector<std::string>{"a", "b", "d", "old"});
  CHECK(read_file(root / "a") == "a1");
  CHECK(read_file(root / "b").empty());
  CHECK(read_file(root / "old") == "old\n");
  CHECK(read_file(root / "d" / "kept") == "kept\n");
}

TEST_CASE("a renamed directory keeps its own synced entries", "[checkpoint]") {
  conveyor::test::TempDir dir;
  const fs::path root = dir.path();
  CrashFileSystem files(root);
  std::error_code ec;
  files.create_directories(root / ".tmp", ec);
  files.write_new_file(root / ".tmp" / "shard", "bytes");
  files.fsync_file(root / ".tmp" / "shard");
  files.fsync_dir(root / ".tmp");
  files.rename(root / ".tmp", root / "step");
  files.fsync_dir(root);
  files.write_new_file(root / "step" / "unsynced", "x");

  files.crash();
  CHECK(names_in(root) == std::vector<std::string>{"step"});
  CHECK(names_in(root / "step") == std::vector<std::string>{"shard"});
  CHECK(read_file(root / "step" / "shard") == "bytes");
}

TEST_CASE("the crash comes after the k-th call, and later calls do nothing", "[checkpoint]") {
  conveyor::test::TempDir dir;
  const fs::path root = dir.path();
  write_file(root / "a", "a");
  CrashFileSystem files(root);
  files.crash_after(2);
  std::error_code ec;
  files.create_directories(root / "x", ec);
  CHECK_FALSE(files.crashed());
  CHECK_THROWS_AS(files.fsync_dir(root), Crashed);  // it happened, then the process died
  CHECK(files.crashed());
  CHECK_THROWS_AS(files.remove(root / "a", ec), Crashed);
  CHECK(fs::exists(root / "a"));
  CHECK(files.calls() == std::vector<std::string>{"create_directories x", "fsync_dir ."});

  files.crash();
  CHECK(names_in(root) == std::vector<std::string>{"a", "x"});
  CHECK_FALSE(files.crashed());
  CHECK(files.calls().empty());
}
