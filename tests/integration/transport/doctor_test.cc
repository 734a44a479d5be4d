// `conveyor doctor` works on any machine, with or without RDMA and GPUs.
#include <catch2/catch.hpp>

#include "tests/test_util.h"

TEST_CASE("conveyor doctor reports UCX, RDMA, CUDA and its choice", "[transport]") {
  auto r = conveyor::test::run_conveyor({"doctor"}, {}, 60);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* section : {"UCX\n  version: 1.", "transports: ", "RDMA devices\n",
                              "CUDA devices\n", "conveyor would use\n", "same host: "})
    CHECK(r.output.find(section) != std::string::npos);
  CHECK(r.output.find("tcp/lo") != std::string::npos);  // loopback TCP exists everywhere
}
