// `conveyor bench transport` refuses bad sizes with exit 2 and a message naming the flag,
// before it starts any rank.
#include <catch2/catch.hpp>

#include "tests/test_util.h"

using conveyor::test::run_conveyor;

TEST_CASE("bench transport rejects message sizes it cannot hold", "[cli][bench]") {
  auto huge = run_conveyor({"bench", "transport", "--max-bytes", "100000000000000"});
  CHECK(huge.exit_code == 2);
  CHECK_THAT(huge.output, Catch::Contains("--max-bytes 100000000000000"));
  CHECK_THAT(huge.output, Catch::Contains("1 GiB"));

  auto inverted = run_conveyor({"bench", "transport", "--min-bytes", "4096", "--max-bytes", "8"});
  CHECK(inverted.exit_code == 2);
  CHECK_THAT(inverted.output, Catch::Contains("--min-bytes 4096"));
}
