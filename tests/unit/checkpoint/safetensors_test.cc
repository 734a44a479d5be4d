// safetensors writing and reading (interop/safetensors.h): the documented layout byte for
// byte, a round trip, and every kind of damaged file refused with its reason.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "interop/safetensors.h"
#include "tests/test_util.h"

using namespace conveyor;
using namespace conveyor::checkpoint;

namespace {

std::string bytes_of(const std::filesystem::path& p) {
  return test::read_file(p);
}

void expect_bad(const std::filesystem::path& p, const std::string& mention) {
  try {
    SafetensorsFile f(p);
    FAIL("accepted " << p);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains(p.string()));
    CHECK_THAT(e.message(), Catch::Contains(mention));
  }
}

// A file with `header` as its JSON and `data_bytes` zero bytes of data.
void write_raw(const std::filesystem::path& p, const std::string& header, size_t data_bytes,
               uint64_t claimed = 0) {
  std::string out(8, '\0');
  const uint64_t n = claimed ? claimed : header.size();
  std::memcpy(out.data(), &n, 8);
  out += header;
  out.append(data_bytes, '\0');
  test::write_file(p, out);
}

}  // namespace

TEST_CASE("safetensors files have the documented layout and read back", "[checkpoint]") {
  test::TempDir dir;
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {-0.5f};
  write_safetensors(dir / "m.safetensors", {{"x.weight", {2, 3}, a}, {"y", {1}, b}},
                    {{"format", "pt"}});
  const std::string raw = bytes_of(dir / "m.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK((8 + n) % 8 == 0);  // data 8-byte aligned
  const auto header = nlohmann::json::parse(raw.substr(8, n));
  CHECK(header["x.weight"]["dtype"] == "F32");
  CHECK(header["x.weight"]["shape"] == nlohmann::json({2, 3}));
  CHECK(header["x.weight"]["data_offsets"] == nlohmann::json({0, 24}));
  CHECK(header["y"]["data_offsets"] == nlohmann::json({24, 28}));
  CHECK(header["__metadata__"]["format"] == "pt");
  CHECK(raw.size() == 8 + n + 28);
  float first;
  std::memcpy(&first, raw.data() + 8 + n, 4);
  CHECK(first == 1.0f);

  SafetensorsFile f(dir / "m.safetensors");
  CHECK(f.names() == std::vector<std::string>{"x.weight", "y"});
  CHECK(f.shape("x.weight") == std::vector<int64_t>{2, 3});
  CHECK(f.values("x.weight") == a);
  CHECK(f.values("y") == b);
  CHECK(f.metadata().at("format") == "pt");
  CHECK_THROWS_AS(f.values("z"), Error);
}

TEST_CASE("damaged safetensors files are refused naming the problem", "[checkpoint]") {
  test::TempDir dir;
  const auto p = dir / "bad.safetensors";
  test::write_file(p, "abc");
  expect_bad(p, "less than the 8-byte header length");
  write_raw(p, "{}", 0, 1000);
  expect_bad(p, "header length 1000 exceeds the file");
  write_raw(p, "[1, 2]", 0);
  expect_bad(p, "header is not a JSON object");
  write_raw(p, R"({"t": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4);
  expect_bad(p, "only F32 tensors are read");
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4);
  expect_bad(p, "outside the 4 bytes of data (is the file cut short?)");
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  expect_bad(p, "has 8 bytes for shape [3] (12 expected)");
  write_raw(p,
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
            R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            12);
  expect_bad(p, "without gaps or overlaps");
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8);
  expect_bad(p, "4 bytes follow the last tensor");
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
  expect_bad(p, "impossible shape");
  CHECK_THROWS_AS(SafetensorsFile(dir / "missing.safetensors"), Error);
}

TEST_CASE("a safetensors path that is a FIFO or a folder is refused without blocking",
          "[checkpoint][hardening]") {
  test::TempDir dir;
  const auto fifo = dir / "fifo.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  try {
    SafetensorsFile f(fifo);
    FAIL("accepted a FIFO");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains(fifo.string()) && Catch::Contains("FIFO"));
  }
  std::filesystem::create_directory(dir / "model.safetensors");
  try {
    SafetensorsFile f(dir / "model.safetensors");
    FAIL("accepted a folder");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("model.safetensors") && Catch::Contains("folder"));
  }
}

TEST_CASE("safetensors header numbers out of range are refused, never converted",
          "[checkpoint][hardening]") {
  test::TempDir dir;
  const auto p = dir / "bad.safetensors";
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e30]}})", 8);
  expect_bad(p, "malformed data_offsets");
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8);
  expect_bad(p, "malformed data_offsets");
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}})", 8);
  expect_bad(p, "impossible shape");
  write_raw(
      p, R"({"t": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 8]}})", 8);
  expect_bad(p, "impossible shape");
  // A whole number written as a float is that number.
  write_raw(p, R"({"t": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8.0]}})", 8);
  CHECK(SafetensorsFile(p).shape("t") == std::vector<int64_t>{2});
}
