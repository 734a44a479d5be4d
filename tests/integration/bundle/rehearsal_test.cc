// The GPU check's rehearsal, as CI runs it: scripts/gpu-bundle.sh packs this build's binaries
// (the conveyor of CONVEYOR_BIN and test_unit_kernels beside it), and scripts/gpu-check.sh
// --rehearsal unpacks the bundle into an empty temporary folder and runs every step it can
// without a GPU, in an environment that holds nothing of the build tree (env -i: PATH
// /usr/bin:/bin, HOME and TMPDIR only), so the binaries and libraries come from the bundle
// alone. What passes here is what the one GPU session will run, minus the GPU.
//
// Its own folder and label (integration:bundle, `ctest -L bundle`): a label with "gpu" in it
// would be selected by `ctest -L gpu`, which runs exactly the cases that need a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "tests/test_util.h"

using namespace conveyor::test;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = CONVEYOR_SOURCE_DIR;
// The CMake binary dir of this build: conveyor is <build>/launcher/conveyor.
const fs::path kBuild = fs::path(CONVEYOR_BIN).parent_path().parent_path();

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Whether this build (the test's flags are the binaries') is an optimised one without
// sanitizers: the bundle ships such a build, a Debug one would train too slowly for the test's
// time, and a sanitizer's runtime options would not pass env -i.
#if defined(NDEBUG) && !defined(CONVEYOR_SANITIZER_BUILD)
constexpr bool kReleaseBuild = true;
#else
constexpr bool kReleaseBuild = false;
#endif

// Why the rehearsal cannot run here, or "" when it can. The loss comparisons need python3 from
// the plain PATH the rehearsal gets; the bundle needs test_unit_kernels built beside conveyor.
std::string unavailable() {
  if (!kReleaseBuild) return "the rehearsal packs an optimised build without sanitizers";
  if (!fs::exists("/usr/bin/python3") && !fs::exists("/bin/python3"))
    return "no python3 in /usr/bin or /bin (the rehearsal's loss comparisons need it)";
  if (!fs::exists(kBuild / "tests" / "test_unit_kernels"))
    return "test_unit_kernels is not built in " + kBuild.string();
  return "";
}

#define SKIP_WITHOUT_REHEARSAL()                      \
  if (const auto why = unavailable(); !why.empty()) { \
    WARN("SKIPPED: " << why);                         \
    return;                                           \
  }

// Packs this build into dir/bundle (xz -0: the test's time goes into the checks) and returns
// the archive.
fs::path pack_bundle(const TempDir& dir) {
  const auto r =
      run_program({"bash", (kSource / "scripts" / "gpu-bundle.sh").string(), "--from-build",
                   kBuild.string(), "--out", (dir / "bundle").string(), "--fast"},
                  {}, 240);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto archive = dir / "bundle" / "conveyor-gpu-bundle.tar.xz";
  REQUIRE(fs::is_regular_file(archive));
  return archive;
}

// scripts/gpu-check.sh --rehearsal with nothing of this process's environment: env -i, a PATH
// without the build tree, an empty TMPDIR (where the script unpacks the bundle) and HOME.
RunResult rehearse(const TempDir& dir, const fs::path& archive, std::vector<std::string> flags) {
  fs::create_directories(dir / "tmp");
  fs::create_directories(dir / "home");
  std::vector<std::string> argv{"env",
                                "-i",
                                "PATH=/usr/bin:/bin",
                                "HOME=" + (dir / "home").string(),
                                "TMPDIR=" + (dir / "tmp").string(),
                                "bash",
                                (kSource / "scripts" / "gpu-check.sh").string(),
                                "--rehearsal",
                                "--bundle",
                                archive.string(),
                                "--out",
                                (dir / "out").string()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  // The script keeps itself under 8 minutes; the rehearsal takes about one on 2 cores.
  return run_program(argv, {}, 290);
}

// The summary's line for step `name` ("PASS  12s  name" or "FAIL  3s  name (why)"), or "".
std::string step_line(const std::string& summary, const std::string& name) {
  for (const auto& line : lines_of(summary)) {
    const auto at = line.find("s  " + name);
    if (at != std::string::npos &&
        (line.size() == at + 3 + name.size() || line[at + 3 + name.size()] == ' '))
      return line;
  }
  return "";
}

std::set<std::string> names_in(const fs::path& folder) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(folder)) names.insert(e.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE("gpu-check rehearsal: the bundle of this build passes every step without the build",
          "[bundle]") {
  SKIP_WITHOUT_REHEARSAL();
  TempDir dir;
  const auto archive = pack_bundle(dir);
  const auto r = rehearse(dir, archive, {});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);

  // The results: one folder, at most 8 files (what the GPU machine's tool sends back).
  const auto out = dir / "out";
  const auto files = names_in(out);
  CHECK(files == std::set<std::string>{"summary.txt", "comparisons.txt", "logs.tar.gz",
                                       "losses.tar.gz", "MANIFEST"});
  const auto summary = read_file(out / "summary.txt");
  INFO(summary);
  CHECK(contains(summary, "result: PASS"));
  CHECK_FALSE(contains(summary, "FAIL"));
  for (const char* step :
       {"unpack the bundle", "bundle libraries resolve into the bundle or the base system",
        "conveyor doctor", "kernel tests [cpu] (rehearsal)", "gpu run twice same bits",
        "gpu 1 2 4 stages every schedule same bits", "gpu vs cpu: steps 1-10 within 1e-5",
        "checkpoint gpu 4 stages to cpu 2 and cpu 2 to gpu within 1e-4"})
    CHECK(step_line(summary, step).rfind("PASS  ", 0) == 0);
  CHECK(contains(summary, "All tests passed"));  // the bundled kernel tests ran

  // The binaries ran from the bundle, unpacked into the empty TMPDIR; nothing is left there.
  CHECK(contains(summary, "conveyor: " + (dir / "tmp").string() + "/conveyor-gpu-check."));
  CHECK(fs::is_empty(dir / "tmp"));

  // Every step's difference is printed: one row per step of the 50-step GPU-against-CPU run.
  const auto comparisons = read_file(out / "comparisons.txt");
  const auto lines = lines_of(comparisons);
  const auto header = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return contains(l, "gpu50 against cpu50: loss relative difference");
  });
  REQUIRE(header != lines.end());
  REQUIRE(lines.end() - header > 52);
  CHECK(contains(header[2], "    1 "));
  CHECK(contains(header[51], "   50 "));
  CHECK(header[52].rfind("ok: gpu50 against cpu50, steps 1-50", 0) == 0);
  CHECK(contains(comparisons, "ok: ck_gpu4_on_cpu2 against ck_gpu4, steps 11-20"));
  CHECK(contains(comparisons, "ok: ck_cpu2_on_gpu1 against ck_cpu2, steps 11-20"));

  // Every run's loss curve comes back in one file.
  const auto listing = run_program({"tar", "-tzf", (out / "losses.tar.gz").string()});
  REQUIRE(listing.exit_code == 0);
  for (const char* run : {"gpu1.jsonl", "gpu_zb-h1_4.jsonl", "gpu_interleaved_4.jsonl",
                          "cpu50.jsonl", "gpu50.jsonl", "ck_cpu2_on_gpu1.jsonl"})
    CHECK(contains(listing.output, run));
}

TEST_CASE("gpu-check rehearsal: a bundle that lacks a library fails the self-check that names it",
          "[bundle]") {
  SKIP_WITHOUT_REHEARSAL();
  TempDir dir;
  const auto archive = pack_bundle(dir);
  // The bundle without HDF5: here the loader still finds Debian's copy, which is exactly what
  // would not exist on the GPU machine.
  const auto unpacked = dir / "unpacked";
  fs::create_directories(unpacked);
  REQUIRE(run_program({"tar", "-C", unpacked.string(), "-xf", archive.string()}).exit_code == 0);
  std::string removed;
  for (const auto& e : fs::directory_iterator(unpacked / "lib"))
    if (e.path().filename().string().rfind("libhdf5", 0) == 0) {
      removed = e.path().filename().string();
      fs::remove(e.path());
    }
  REQUIRE_FALSE(removed.empty());  // conveyor links HDF5, so the bundle had it
  const auto broken = dir / "broken.tar";
  REQUIRE(run_program({"tar", "-C", unpacked.string(), "-cf", broken.string(), "."}).exit_code ==
          0);

  const auto r = rehearse(dir, broken, {"--quick"});
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.output, "FAIL: " + removed + " (needed by libexec/conveyor) resolves to /"));
  CHECK(contains(r.output, "outside the bundle and not part of the base system"));
  // The results still come back, and say which step failed.
  const auto summary = read_file(dir / "out" / "summary.txt");
  INFO(summary);
  CHECK(contains(summary, "result: FAIL"));
  CHECK(step_line(summary, "bundle libraries resolve into the bundle or the base system")
            .rfind("FAIL  ", 0) == 0);
  // The other steps still ran.
  CHECK(step_line(summary, "gpu vs cpu: steps 1-10 within 1e-5").rfind("PASS  ", 0) == 0);
  CHECK(fs::exists(dir / "out" / "logs.tar.gz"));
  CHECK(fs::is_empty(dir / "tmp"));
}
