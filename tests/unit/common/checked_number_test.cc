// The one number parser (common/checked_number.h): the whole text, decimal, finite and in
// range, or Error(kUsage) with one message shape. Every flag, environment variable, TOML
// value and JSON field that is a duration, size or count goes through it, so these cases
// are what every such setting refuses.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "common/checked_number.h"
#include "common/error.h"

using namespace conveyor;

namespace {

// Requires a usage error whose message contains `mention`.
template <class F>
void refused(F parse, const std::string& mention) {
  try {
    parse();
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains(mention));
  }
}

double real(const std::string& text) {
  return parse_real(text, "--grace", 0, kMaxSettingSeconds, "seconds");
}

int64_t integer(const std::string& text) {
  return parse_integer(text, "--nproc", -5, 1000, "ranks");
}

}  // namespace

TEST_CASE("parse_real reads a finite decimal number in range", "[checked_number]") {
  CHECK(real("5") == 5);
  CHECK(real("0.25") == 0.25);
  CHECK(real("1e3") == 1000);
  CHECK(real("604800") == kMaxSettingSeconds);
  // -0 is 0: in range, and it does not turn into a negative duration.
  const double negative_zero = real("-0");
  CHECK(negative_zero == 0);
}

TEST_CASE("parse_real refuses what is not a finite number in range", "[checked_number]") {
  for (const char* text :
       {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e309", "-1",    "604801", "1e300", "",
        " 5",  "5 ",  "5s",   "+5",  "0x10", "0x1p3",    "1,5",   "5.0.0", "--1",    "e5"}) {
    INFO(text);
    refused([&] { real(text); }, "--grace '");
  }
  // The message names the flag, the text, the unit and the range.
  refused([] { real("nan"); }, "--grace 'nan' is not a number of seconds in [0, 604800]");
  // A tiny value under the minimum is refused, not rounded up to it.
  refused([] { parse_real("1e-400", "x", 0.001, 1, "seconds"); }, "'1e-400'");
}

TEST_CASE("parse_integer reads a whole decimal number in range", "[checked_number]") {
  CHECK(integer("0") == 0);
  CHECK(integer("-5") == -5);
  CHECK(integer("1000") == 1000);
  CHECK(integer("-0") == 0);
  CHECK(integer("010") == 10);  // decimal, never octal
  CHECK(parse_integer("9223372036854775807", "x", 0, std::numeric_limits<int64_t>::max(), "n") ==
        std::numeric_limits<int64_t>::max());
}

TEST_CASE("parse_integer refuses fractions, exponents, hex and overflow", "[checked_number]") {
  for (const char* text : {"1001", "-6", "2.5", "1e3", "0x10", "", " 1", "1 ", "+1", "1k", "nan",
                           "inf", "9223372036854775808", "-9223372036854775809",
                           "18446744073709551616", "99999999999999999999999"}) {
    INFO(text);
    refused([&] { integer(text); }, "--nproc '");
  }
  refused([] { integer("1001"); }, "--nproc '1001' is not a number of ranks in [-5, 1000]");
  // int64 overflow is refused even when the range is all of int64.
  refused(
      [] {
        parse_integer("9223372036854775808", "x", std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max(), "n");
      },
      "'9223372036854775808'");
}

TEST_CASE("parse_unsigned reads 0 to 2^64 - 1 and refuses the rest", "[checked_number]") {
  CHECK(parse_unsigned("0", "--seed", "seeds") == 0);
  CHECK(parse_unsigned("18446744073709551615", "--seed", "seeds") ==
        std::numeric_limits<uint64_t>::max());
  for (const char* text : {"18446744073709551616", "99999999999999999999", "-1", "-0", "+1", "",
                           "1.0", "1e3", "0x10", " 1", "nan"}) {
    INFO(text);
    refused([&] { parse_unsigned(text, "--seed", "seeds"); }, "--seed '");
  }
}

TEST_CASE("require_real and require_integer check numbers converted elsewhere",
          "[checked_number]") {
  CHECK(require_real(2.5, "field x", 0, 10, "seconds") == 2.5);
  refused([] { require_real(std::nan(""), "field x", 0, 10, "seconds"); }, "field x");
  refused([] { require_real(INFINITY, "field x", 0, 10, "seconds"); }, "field x");
  refused([] { require_real(11, "field x", 0, 10, "seconds"); }, "field x");
  CHECK(require_integer(3.0, "field n", 0, 10, "layers") == 3);
  refused([] { require_integer(2.5, "field n", 0, 10, "layers"); }, "field n");
  refused([] { require_integer(1e10, "field n", 0, 10, "layers"); }, "field n");
  refused([] { require_integer(1e300, "field n", 0, std::numeric_limits<int64_t>::max(), "n"); },
          "field n");
  refused([] { require_integer(std::nan(""), "field n", 0, 10, "layers"); }, "field n");
  refused([] { require_integer(int64_t{4294967298}, "field n", 0, 1000, "layers"); },
          "'4294967298'");
}
