// Escaping peer-supplied text and capping repeated log lines (common/printable.h,
// common/log_rate_limit.h).
#include <catch2/catch.hpp>

#include "common/log_rate_limit.h"
#include "common/printable.h"

#include <nlohmann/json.hpp>

using namespace conveyor;

TEST_CASE("printable escapes control bytes so a peer cannot forge a log line", "[common]") {
  const std::string forged = "vm\n[error] rank 3 died\x1b[31m\r\x7f\xff";
  const std::string out = printable(forged);
  CHECK(out == "vm\\x0a[error] rank 3 died\\x1b[31m\\x0d\\x7f\\xff");
  for (char ch : out) CHECK((ch >= 0x20 && ch <= 0x7e));
  CHECK(printable(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(printable("plain host-1.example") == "plain host-1.example");
}

TEST_CASE("printable cuts long text and says how much it left out", "[common]") {
  const std::string huge(60000, 'A');
  const std::string out = printable(huge, kMaxPeerHostBytes);
  CHECK(out == std::string(kMaxPeerHostBytes, 'A') + "... (59745 more bytes)");
  CHECK(printable("abc", 3) == "abc");
}

TEST_CASE("printable is idempotent on what it kept whole", "[common]") {
  const std::string once = printable("x\x1b\ny\\z");
  CHECK(printable(once) == once);
}

TEST_CASE("a log rate limit admits a burst per window and reports what it left out", "[common]") {
  using std::chrono::seconds;
  LogRateLimit limit(3, seconds(10));
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 3; ++i) {
    auto note = limit.admit(t0 + seconds(i));
    REQUIRE(note);
    CHECK(note->empty());
  }
  for (int i = 0; i < 5; ++i) CHECK_FALSE(limit.admit(t0 + seconds(3)));
  CHECK(limit.left_out() == 5);
  CHECK_FALSE(limit.admit(t0 + seconds(9)));  // same window: still refused
  auto note = limit.admit(t0 + seconds(10));  // a new window
  REQUIRE(note);
  CHECK(*note == " (6 similar lines left out before this one)");
  CHECK(limit.left_out() == 0);
  auto next = limit.admit(t0 + seconds(11));
  REQUIRE(next);
  CHECK(next->empty());
}

TEST_CASE("utf8_text keeps valid UTF-8 and escapes the bytes of anything else", "[common]") {
  CHECK(utf8_text("data/ok.txt") == "data/ok.txt");
  CHECK(utf8_text("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80") ==
        "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80");
  CHECK(utf8_text("data\xff.txt") == "data\\xff.txt");                            // Latin-1 byte
  CHECK(utf8_text("\xc0\xaf") == "\\xc0\\xaf");                                   // overlong '/'
  CHECK(utf8_text("\xed\xa0\x80") == "\\xed\\xa0\\x80");                          // a surrogate
  CHECK(utf8_text("\xe2\x82") == "\\xe2\\x82");                                   // cut short
  CHECK(utf8_text("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");                 // past U+10FFFF
  CHECK(nlohmann::json(utf8_text("a\xff\xfe")).dump() == "\"a\\\\xff\\\\xfe\"");  // no throw
}

TEST_CASE("terminal_text escapes what a terminal would act on and keeps the rest", "[common]") {
  CHECK(terminal_text("line one\n\tline two") == "line one\n\tline two");
  CHECK(terminal_text("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");
  CHECK(terminal_text("evil\x1b[2J.bin") == "evil\\x1b[2J.bin");
  CHECK(terminal_text("a\rb\x7f") == "a\\x0db\\x7f");
  CHECK(terminal_text("c1 \xc2\x9b"
                      "31m") == "c1 \\xc2\\x9b31m");  // CSI as a C1 control
  CHECK(terminal_text("bad \xff") == "bad \\xff");
}
