// Dataset::open: text files and folders, llm.c token files, and every bad input's error.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/dataset.h"
#include "data/token_file.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using conveyor::Error;
using conveyor::ErrorKind;
using conveyor::data::Dataset;
using conveyor::data::write_token_file;
using conveyor::test::TempDir;
using conveyor::test::write_file;

namespace {

std::string contents(const Dataset& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s.push_back(static_cast<char>(d[i]));
  return s;
}

std::vector<uint16_t> tokens_of(const Dataset& d) {
  std::vector<uint16_t> t;
  for (size_t i = 0; i < d.size(); ++i) t.push_back(static_cast<uint16_t>(d[i]));
  return t;
}

// Writes a token file with an arbitrary header and body, for the corruption cases.
void write_raw_token_file(const fs::path& path, int32_t magic, int32_t version, int32_t count,
                          const std::vector<uint16_t>& body) {
  std::vector<int32_t> header(conveyor::data::kTokenFileHeaderInts, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count;
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()),
            static_cast<std::streamsize>(header.size() * sizeof(int32_t)));
  out.write(reinterpret_cast<const char*>(body.data()),
            static_cast<std::streamsize>(body.size() * sizeof(uint16_t)));
  REQUIRE(out.good());
}

// Opening `path` must fail as a usage error whose message names `must_name`; returns the
// message so callers can check more of it.
std::string usage_error(const std::string& path, int vocab, const std::string& must_name) {
  try {
    Dataset::open(path, vocab);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains(must_name));
    CHECK_FALSE(e.hint().empty());
    return e.message();
  }
  FAIL("Dataset::open(" << path << ") did not throw");
  return {};
}

}  // namespace

TEST_CASE("a text file is one token per byte", "[data]") {
  TempDir dir;
  const std::string text = "hello, \xff world\n";
  write_file(dir / "a.txt", text);
  const Dataset d = Dataset::open((dir / "a.txt").string(), 256);
  CHECK_FALSE(d.is_token_file());
  CHECK(d.size() == text.size());
  CHECK(contents(d) == text);
  CHECK(d[7] == 255);  // bytes are unsigned
  CHECK_THAT(d.description(), Catch::Contains("1 file") && Catch::Contains("byte-level"));

  std::vector<int32_t> out(4);
  d.read(7, 4, out.data());
  CHECK(out == std::vector<int32_t>{255, ' ', 'w', 'o'});
  CHECK_THROWS_AS(d.read(text.size() - 1, 2, out.data()), Error);
}

TEST_CASE("a folder is its files concatenated in name order, skipping .dat and hidden files",
          "[data]") {
  TempDir dir;
  // Created out of order so the test does not pass by directory listing order.
  write_file(dir / "c", "CCC");
  write_file(dir / "a", "AA");
  write_file(dir / "b.txt", "B");
  write_file(dir / "a.dat", std::string("\x00\x01\x02", 3));
  write_file(dir / ".hidden", "HIDDEN");
  fs::create_directory(dir / "sub");
  write_file(dir / "sub" / "nested", "NESTED");
  // fortunes ships "x.u8 -> x" symlinks: the same file must not be read twice.
  fs::create_symlink(dir / "c", dir / "c.u8");

  const Dataset d = Dataset::open(dir.str(), 256);
  CHECK(contents(d) == "AABCCC");
  CHECK_FALSE(d.is_token_file());
  CHECK_THAT(d.description(), Catch::Contains(dir.str()) && Catch::Contains("3 files"));
}

TEST_CASE("token files round trip, alone and as a folder", "[data]") {
  TempDir dir;
  const std::vector<uint16_t> first = {0, 1, 50256, 65535, 7};
  const std::vector<uint16_t> second = {42, 43};
  write_token_file((dir / "b_train.bin").string(), second);
  write_token_file((dir / "a_train.bin").string(), first);

  const Dataset one = Dataset::open((dir / "a_train.bin").string(), 65536);
  CHECK(one.is_token_file());
  CHECK(tokens_of(one) == first);
  CHECK(one[3] == 65535);  // uint16 tokens are unsigned

  const Dataset both = Dataset::open(dir.str(), 65536);
  CHECK(both.is_token_file());
  std::vector<uint16_t> expected = first;
  expected.insert(expected.end(), second.begin(), second.end());
  CHECK(tokens_of(both) == expected);
  CHECK_THAT(both.description(), Catch::Contains("2 files") && Catch::Contains("token"));
}

TEST_CASE("a folder of llm.c shards reads its train or val split, not both", "[data]") {
  using conveyor::data::Split;
  TempDir dir;
  write_token_file((dir / "fineweb_train_000001.bin").string(), {1, 2, 3});
  write_token_file((dir / "fineweb_train_000002.bin").string(), {4, 5});
  write_token_file((dir / "fineweb_val_000000.bin").string(), {9, 8, 7, 6});
  CHECK(tokens_of(Dataset::open(dir.str(), 256)) == std::vector<uint16_t>{1, 2, 3, 4, 5});
  CHECK(tokens_of(Dataset::open(dir.str(), 256, {.split = Split::kVal})) ==
        std::vector<uint16_t>{9, 8, 7, 6});

  // Only validation shards: --data names what is missing.
  TempDir val_only;
  write_token_file((val_only / "shakespeare_val.bin").string(), {1, 2});
  usage_error(val_only.str(), 256, "no training shards");
}

TEST_CASE("a window that spans two files of a folder reads both", "[data]") {
  TempDir dir;
  write_file(dir / "a.txt", "abc");
  write_file(dir / "b.txt", "defg");
  const Dataset d = Dataset::open(dir.str(), 256);
  std::vector<int32_t> out(5);
  d.read(1, 5, out.data());
  CHECK(out == std::vector<int32_t>{'b', 'c', 'd', 'e', 'f'});
}

TEST_CASE("bad token files are usage errors naming the file", "[data]") {
  TempDir dir;
  const std::string path = (dir / "x.bin").string();

  SECTION("bad magic") {
    write_raw_token_file(path, 12345, 1, 2, {1, 2});
    CHECK_THAT(usage_error(path, 256, path), Catch::Contains("magic"));
  }
  SECTION("unsupported version") {
    write_raw_token_file(path, conveyor::data::kTokenFileMagic, 2, 2, {1, 2});
    CHECK_THAT(usage_error(path, 256, path), Catch::Contains("version"));
  }
  SECTION("truncated body") {
    write_raw_token_file(path, conveyor::data::kTokenFileMagic, 1, 10, {1, 2, 3});
    CHECK_THAT(usage_error(path, 256, path), Catch::Contains("10 tokens"));
  }
  SECTION("trailing bytes after the counted tokens") {
    write_raw_token_file(path, conveyor::data::kTokenFileMagic, 1, 2, {1, 2, 3});
    usage_error(path, 256, path);
  }
  SECTION("shorter than the header") {
    write_file(path, "tiny");
    usage_error(path, 256, path);
  }
  SECTION("no tokens") {
    write_token_file(path, {});
    usage_error(path, 256, path);
  }
  SECTION("a token >= vocab names the file and the token's index") {
    write_token_file(path, {1, 2, 3, 300, 4});
    const std::string msg = usage_error(path, 256, path);
    CHECK_THAT(msg, Catch::Contains("300") && Catch::Contains("index 3"));
    // The same file is fine with a big enough vocabulary.
    CHECK(Dataset::open(path, 301).size() == 5);
  }
  SECTION("a folder in which one of several token files is bad names that file") {
    write_token_file((dir / "a.bin").string(), {1, 2});
    write_raw_token_file(dir / "b.bin", 999, 1, 1, {1});
    usage_error(dir.str(), 256, (dir / "b.bin").string());
  }
}

TEST_CASE("bad paths and empty data are usage errors naming the path", "[data]") {
  TempDir dir;

  SECTION("missing path") {
    const std::string path = (dir / "no-such-file").string();
    usage_error(path, 256, path);
  }
  SECTION("empty text file") {
    write_file(dir / "empty.txt", "");
    const std::string path = (dir / "empty.txt").string();
    usage_error(path, 256, path);
  }
  SECTION("empty folder") {
    usage_error(dir.str(), 256, dir.str());
  }
  SECTION("folder with only .dat files and empty files") {
    write_file(dir / "x.dat", "index");
    CHECK_THAT(usage_error(dir.str(), 256, dir.str()), Catch::Contains("no usable files"));
    write_file(dir / "y", "");
    usage_error(dir.str(), 256, dir.str());
  }
  SECTION("folder mixing token files and text") {
    write_token_file((dir / "a.bin").string(), {1, 2});
    write_file(dir / "b.txt", "text");
    CHECK_THAT(usage_error(dir.str(), 256, dir.str()), Catch::Contains("mixes"));
  }
  SECTION("text with bytes >= a small vocab names the file and index") {
    write_file(dir / "t.txt", "ab\xc3");
    const std::string path = (dir / "t.txt").string();
    CHECK_THAT(usage_error(path, 128, path), Catch::Contains("index 2"));
  }
  SECTION("vocab below 1") {
    write_file(dir / "t.txt", "ab");
    CHECK_THROWS_MATCHES(
        Dataset::open((dir / "t.txt").string(), 0), Error,
        Catch::Predicate<Error>([](const Error& e) { return e.kind() == ErrorKind::kUsage; }));
  }
}

TEST_CASE("from_tokens checks like open", "[data]") {
  const Dataset d = Dataset::from_tokens({5, 6, 7}, 8);
  CHECK(d.size() == 3);
  CHECK(d[2] == 7);
  CHECK_THROWS_AS(Dataset::from_tokens({5, 8}, 8), Error);
  CHECK_THROWS_AS(Dataset::from_tokens({}, 8), Error);
}

TEST_CASE("the default corpus opens as byte-level text", "[data]") {
  if (!fs::is_directory(conveyor::data::kDefaultCorpus)) {
    WARN("SKIPPED: " << conveyor::data::kDefaultCorpus << " is not installed (package fortunes)");
    return;
  }
  const Dataset d = Dataset::open(conveyor::data::kDefaultCorpus, 256);
  CHECK_FALSE(d.is_token_file());
  CHECK(d.size() > 100000);
  CHECK_THAT(d.description(), Catch::Contains("byte-level"));
}
