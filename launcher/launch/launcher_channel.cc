#include "launcher/launch/launcher_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"

namespace conveyor::cli {

namespace {

// A launcher line is short; anything longer is not one.
constexpr size_t kMaxLine = 4096;

}  // namespace

bool LauncherChannel::next_line(std::string& line) {
  const size_t nl = buffer_.find('\n');
  if (nl == std::string::npos) {
    if (buffer_.size() > kMaxLine)
      throw Error(ErrorKind::kUsage, "the launcher sent a line too long");
    return false;
  }
  line = buffer_.substr(0, nl);
  buffer_.erase(0, nl + 1);
  return true;
}

std::string LauncherChannel::read_token(Deadline deadline) {
  std::string line;
  while (!next_line(line)) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(deadline.remaining().count()));
    if (ready == 0 || deadline.expired())
      throw Error(ErrorKind::kUsage,
                  "--token-stdin: no job secret arrived on stdin (this flag is for the "
                  "supervisors a multi-host conveyor launch starts)");
    char buf[512];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(ErrorKind::kUsage, "--token-stdin: stdin closed before the job secret arrived");
    buffer_.append(buf, static_cast<size_t>(n));
  }
  CONVEYOR_REQUIRE(line.rfind("token ", 0) == 0 && line.size() > 6,
                   "--token-stdin: the first line on stdin is not 'token SECRET'");
  // Later reads must not block the supervisor's loop.
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL, 0) | O_NONBLOCK);
  return line.substr(6);
}

int LauncherChannel::poll_once() {
  if (closed_) return 0;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      buffer_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    closed_ = true;  // end of file, or the session broke
    return SIGTERM;
  }
  std::string line;
  int sig = 0;
  while (next_line(line)) {
    if (line.rfind("signal ", 0) == 0) {
      const int n = std::atoi(line.c_str() + 7);
      if (n > 0 && n < NSIG) sig = n;
    }
  }
  return sig;
}

}  // namespace conveyor::cli
