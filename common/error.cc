#include "common/error.h"

#include <cstring>

namespace conveyor {

namespace {
std::string short_file(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}
}  // namespace

Error::Error(ErrorKind kind, std::string message, std::string hint, std::source_location where)
    : std::runtime_error(message),
      kind_(kind),
      message_(std::move(message)),
      hint_(std::move(hint)),
      where_(fmt::format("{}:{}", short_file(where.file_name()), where.line())) {}

int Error::exit_code() const {
  switch (kind_) {
    case ErrorKind::kUsage:
      return kExitUsage;
    case ErrorKind::kPeerFailed:
      return kExitPeerFailed;
    case ErrorKind::kRuntime:
      break;
  }
  return kExitRuntime;
}

std::string describe(const Error& e) {
  if (e.hint().empty()) return e.message();
  return fmt::format("{} ({})", e.message(), e.hint());
}

}  // namespace conveyor
