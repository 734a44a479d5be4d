// manifest_from_json on numbers a damaged or hostile manifest.json can hold. Each is refused
// with a usage error naming the file, never converted with undefined behaviour (the fuzz
// target fuzz/manifest_fuzz.cc found the float case: docs/FUZZING.md).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "checkpoint/manifest.h"
#include "common/error.h"

using namespace conveyor;
using nlohmann::json;

namespace {

json good_manifest() {
  json dataset = {{"shape", {4, 2}}, {"dtype", "float32"}, {"xxh3", "00000000000000ff"}};
  json shard = {{"step", 5},
                {"stage", 0},
                {"num_stages", 1},
                {"file", "stage_00000.h5"},
                {"bytes", 1000},
                {"params", {"wte.weight"}},
                {"datasets", {{"/params/wte.weight", dataset}}}};
  return {{"format", checkpoint::kFormatName},
          {"format_version", checkpoint::kFormatVersion},
          {"step", 5},
          {"num_stages", 1},
          {"fingerprint", "f"},
          {"shards", {shard}}};
}

void expect_malformed(const json& j, const std::string& mention) {
  INFO(j.dump());
  try {
    checkpoint::manifest_from_json(j, "ckpt/manifest.json");
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("ckpt/manifest.json"));
    CHECK_THAT(e.message(), Catch::Contains(mention));
  }
}

}  // namespace

TEST_CASE("a manifest's integers must be integers in range", "[checkpoint]") {
  CHECK(checkpoint::manifest_from_json(good_manifest(), "m").step == 5);

  auto j = good_manifest();
  j["step"] = 2.4e71;  // once converted to int64 with undefined behaviour
  expect_malformed(j, "\"step\" is not an integer");

  j = good_manifest();
  j["step"] = 5.0;
  expect_malformed(j, "\"step\" is not an integer");

  j = good_manifest();
  j["shards"][0]["stage"] = 4294967296LL;  // once truncated to stage 0
  expect_malformed(j, "\"stage\" is out of range (4294967296)");

  j = good_manifest();
  j["shards"][0]["bytes"] = -1;
  expect_malformed(j, "\"bytes\" is out of range (-1)");

  j = good_manifest();
  j["shards"][0]["datasets"]["/params/wte.weight"]["shape"] = {4, 1e30};
  expect_malformed(j, "\"shape\" is not an integer");
}

TEST_CASE("a manifest's shapes must be possible", "[checkpoint]") {
  auto j = good_manifest();
  j["shards"][0]["datasets"]["/params/wte.weight"]["shape"] = {4, -2};
  expect_malformed(j, "\"shape\" [4, -2] is impossible");
  j["shards"][0]["datasets"]["/params/wte.weight"]["shape"] = {1LL << 40, 1LL << 40};
  expect_malformed(j, "is impossible");
}
