// `conveyor --version` prints the version the project declares (project(VERSION) in the top
// CMakeLists.txt), read here from that file itself, so a version written anywhere else, or
// a build that did not carry it through, fails.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "tests/test_util.h"

using conveyor::test::run_conveyor;

namespace {

std::string declared_version() {
  std::ifstream in(std::string(CONVEYOR_SOURCE_DIR) + "/CMakeLists.txt");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  std::smatch m;
  const std::string cmake = text.str();
  REQUIRE(std::regex_search(cmake, m, std::regex(R"(project\(conveyor\s+VERSION\s+([0-9.]+))")));
  return m[1];
}

}  // namespace

TEST_CASE("conveyor --version prints the project's version", "[cli]") {
  const std::string version = declared_version();
  const auto r = run_conveyor({"--version"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output == "conveyor " + version + "\n");
}
