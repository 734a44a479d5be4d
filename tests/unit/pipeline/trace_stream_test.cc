// A rank's streamed trace and the merge of every rank's part (pipeline/runtime/trace.h): the merged
// file holds every event of every part whatever pieces the parts arrive in, and a part file
// never writes through a link or removes what is not its own.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "pipeline/runtime/trace.h"
#include "tests/test_util.h"

using namespace conveyor;
using namespace conveyor::pipeline;
using conveyor::test::read_file;
using conveyor::test::TempDir;
using conveyor::test::write_file;

namespace {

std::vector<Span> spans_of(int stage, int count) {
  std::vector<Span> spans;
  for (int i = 0; i < count; ++i)
    spans.push_back({stage, "F" + std::to_string(i), "compute", 10.0 * i, 5.0});
  return spans;
}

// The events of a trace file, as sorted JSON texts.
std::vector<std::string> events_of(const std::filesystem::path& path) {
  const auto doc = nlohmann::json::parse(read_file(path));
  std::vector<std::string> events;
  for (const auto& e : doc.at("traceEvents")) events.push_back(e.dump());
  std::sort(events.begin(), events.end());
  return events;
}

}  // namespace

TEST_CASE("parts merged in pieces of any size give the trace of all their spans", "[trace]") {
  TempDir dir;
  const std::string trace = (dir / "trace.json").string();
  std::vector<Span> all;
  for (int rank = 0; rank < 3; ++rank) {
    TraceStream part(trace, rank);
    const auto spans = spans_of(rank, rank == 1 ? 0 : 4);  // rank 1 recorded nothing
    part.append(spans);
    part.append(spans_of(rank, rank == 1 ? 0 : 2));
    all.insert(all.end(), spans.begin(), spans.end());
    const auto more = spans_of(rank, rank == 1 ? 0 : 2);
    all.insert(all.end(), more.begin(), more.end());
  }
  write_chrome_trace((dir / "expected.json").string(), all);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{1} << 20}) {
    INFO("pieces of " << piece << " bytes");
    {
      MergedTraceWriter merged(trace);
      for (int rank = 0; rank < 3; ++rank) {
        merged.begin_part();
        const std::string bytes = read_file(trace_part_path(trace, rank));
        for (size_t at = 0; at < bytes.size(); at += piece) merged.add(bytes.substr(at, piece));
      }
      merged.commit();
    }
    CHECK(events_of(trace) == events_of(dir / "expected.json"));
    CHECK(!std::filesystem::exists(trace + ".tmp"));
  }
}

TEST_CASE("a trace part never writes through a planted link and removes only its own file",
          "[trace]") {
  TempDir dir;
  const std::string trace = (dir / "trace.json").string();
  write_file(dir / "victim", "precious\n");
  std::filesystem::create_symlink(dir / "victim", trace_part_path(trace, 0));
  try {
    TraceStream part(trace, 0);
    FAIL("the part was opened through a link");
  } catch (const Error& e) {
    CHECK(e.exit_code() == 2);
    CHECK_THAT(e.message(), Catch::Contains("symbolic link"));
  }
  CHECK(read_file(dir / "victim") == "precious\n");

  // A FIFO put in the part's place after it was created is not the part's to delete.
  TraceStream part(trace, 1);
  part.append(spans_of(1, 2));
  std::filesystem::remove(trace_part_path(trace, 1));
  REQUIRE(mkfifo(trace_part_path(trace, 1).c_str(), 0644) == 0);
  part.remove();
  CHECK(std::filesystem::is_fifo(trace_part_path(trace, 1)));
}
