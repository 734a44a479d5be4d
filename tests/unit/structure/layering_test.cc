// The layering stays true by construction: every #include "..." of a room's files names a
// header of the same room or of a room that cmake/layers.txt lets it include, and the table
// lists every room after the rooms it may include (so no two rooms can include each other).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path kSource = CONVEYOR_SOURCE_DIR;

struct Room {
  std::string folder;
  std::vector<std::string> may_include;
};

// The rooms of cmake/layers.txt, in the table's order ("room: a b c"; '#' starts a comment).
std::vector<Room> read_table(std::istream& in) {
  std::vector<Room> rooms;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto colon = line.find(':');
    REQUIRE(colon != std::string::npos);
    Room room{line.substr(0, colon), {}};
    std::istringstream deps(line.substr(colon + 1));
    for (std::string dep; deps >> dep;) room.may_include.push_back(dep);
    rooms.push_back(room);
  }
  return rooms;
}

// The deepest room whose folder holds `file` (a path relative to the source root), or "".
std::string room_of(const std::vector<Room>& rooms, const std::string& file) {
  std::string best;
  for (const Room& room : rooms) {
    if (file.rfind(room.folder + "/", 0) == 0 && room.folder.size() > best.size())
      best = room.folder;
  }
  return best;
}

// "file includes header: room A may not include room B" for each include the table refuses.
std::vector<std::string> violations(const std::vector<Room>& rooms, const std::string& file,
                                    const std::vector<std::string>& includes) {
  std::vector<std::string> found;
  const std::string from = room_of(rooms, file);
  const auto room =
      std::find_if(rooms.begin(), rooms.end(), [&](const Room& r) { return r.folder == from; });
  for (const std::string& header : includes) {
    const std::string to = room_of(rooms, header);
    if (to.empty() || to == from) continue;  // a system header or one of its own
    if (room == rooms.end() || std::find(room->may_include.begin(), room->may_include.end(), to) ==
                                   room->may_include.end()) {
      found.push_back(file + " includes " + header + ": room '" + from +
                      "' may not include room '" + to + "' (cmake/layers.txt)");
    }
  }
  return found;
}

std::vector<std::string> quoted_includes(const fs::path& path) {
  static const std::regex include_line(R"(^\s*#\s*include\s*"([^"]+)\")");
  std::ifstream in(path);
  std::vector<std::string> includes;
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (std::regex_search(line, m, include_line)) includes.push_back(m[1]);
  }
  return includes;
}

std::vector<Room> project_table() {
  std::ifstream in(kSource / "cmake" / "layers.txt");
  REQUIRE(in);
  return read_table(in);
}

}  // namespace

TEST_CASE("every room includes only the rooms cmake/layers.txt allows it") {
  const std::vector<Room> rooms = project_table();
  REQUIRE(rooms.size() >= 10);
  std::vector<std::string> found;
  size_t files = 0;
  for (const Room& room : rooms) {
    for (const auto& entry : fs::recursive_directory_iterator(kSource / room.folder)) {
      const std::string ext = entry.path().extension();
      if (!entry.is_regular_file() ||
          (ext != ".h" && ext != ".cc" && ext != ".cu" && ext != ".cuh"))
        continue;
      const std::string file = fs::relative(entry.path(), kSource).string();
      if (room_of(rooms, file) != room.folder) continue;  // a subfolder that is a room of its own
      ++files;
      for (const std::string& v : violations(rooms, file, quoted_includes(entry.path())))
        found.push_back(v);
    }
  }
  CHECK(files > 100);
  INFO([&] {
    std::string all;
    for (const auto& v : found) all += v + "\n";
    return all;
  }());
  CHECK(found.empty());
}

TEST_CASE("cmake/layers.txt lists every room after the rooms it may include") {
  const std::vector<Room> rooms = project_table();
  std::set<std::string> earlier;
  for (const Room& room : rooms) {
    INFO("room " << room.folder);
    CHECK(fs::is_directory(kSource / room.folder));
    for (const std::string& dep : room.may_include) {
      INFO("may include " << dep);
      CHECK(earlier.count(dep) == 1);
    }
    earlier.insert(room.folder);
  }
}

TEST_CASE("the layering check refuses an include that points up and allows one that points down") {
  std::istringstream table("# comment\ncommon:\nmodel: common\ntrain: model common\n");
  const std::vector<Room> rooms = read_table(table);
  CHECK(violations(rooms, "train/session.cc", {"model/config.h", "train/x.h", "vector"}).empty());
  CHECK(violations(rooms, "model/config.h", {"common/error.h"}).empty());
  const auto up = violations(rooms, "model/sub/chunk.cc", {"train/trainer.h"});
  REQUIRE(up.size() == 1);
  CHECK(up[0].find("room 'model' may not include room 'train'") != std::string::npos);
  CHECK(violations(rooms, "common/log.cc", {"model/config.h"}).size() == 1);
}
