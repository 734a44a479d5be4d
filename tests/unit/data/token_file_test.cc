// Token shards are replaced, never rewritten in place (issue 22, D13): a training job that has
// the old shard mapped keeps reading its old bytes while `conveyor tokenize` writes new ones.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/dataset.h"
#include "data/mapped_file.h"
#include "data/token_file.h"
#include "tests/test_util.h"

using namespace conveyor;
namespace fs = std::filesystem;

TEST_CASE("rewriting a token file leaves a mapping of the old one intact", "[data][hardening]") {
  test::TempDir dir;
  const auto path = (dir / "tokens_train_000000.bin").string();
  std::vector<uint16_t> old_tokens(50000);
  for (size_t i = 0; i < old_tokens.size(); ++i) old_tokens[i] = static_cast<uint16_t>(i * 7);
  data::write_token_file(path, old_tokens);
  const std::string old_bytes = test::read_file(path);
  data::MappedFile mapped(path);
  REQUIRE(mapped.size() == old_bytes.size());

  data::write_token_file(path, std::vector<uint16_t>(10, 1));  // shorter: a truncation faults
  // Every byte of the old mapping is still readable and still the old content.
  CHECK(std::memcmp(mapped.data(), old_bytes.data(), old_bytes.size()) == 0);
  CHECK(fs::file_size(path) == data::kTokenFileHeaderBytes + 20);
  // No temporary file is left beside it.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 1);
}

TEST_CASE("a token file is not written through a link, a FIFO or a folder", "[data][hardening]") {
  test::TempDir dir;
  test::write_file(dir / "victim", "untouched");
  fs::create_symlink(dir / "victim", dir / "link.bin");
  data::write_token_file((dir / "link.bin").string(), {1, 2, 3});
  CHECK(test::read_file(dir / "victim") == "untouched");
  CHECK(fs::is_regular_file(fs::symlink_status(dir / "link.bin")));
  REQUIRE(::mkfifo((dir / "fifo.bin").c_str(), 0600) == 0);
  try {
    data::write_token_file((dir / "fifo.bin").string(), {1, 2, 3});
    FAIL("wrote over a FIFO");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("fifo.bin") && Catch::Contains("FIFO"));
  }
  CHECK(fs::is_fifo(dir / "fifo.bin"));
}

TEST_CASE("a data file that is a FIFO is refused without blocking", "[data][hardening]") {
  test::TempDir dir;
  REQUIRE(::mkfifo((dir / "fifo.txt").c_str(), 0600) == 0);
  try {
    data::MappedFile mapped(dir / "fifo.txt");
    FAIL("mapped a FIFO");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("fifo.txt") && Catch::Contains("FIFO"));
  }
}
