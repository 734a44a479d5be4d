// Small socket helpers that sit below the transport (used by the launcher and the tests).
#pragma once

#include <string>

namespace conveyor {

// A TCP port on 127.0.0.1 that was free a moment ago: binds port 0, reads the port the
// kernel chose, and closes the socket. Another process may take it before the caller binds
// it, so callers that must not race pick a port of their own. Throws Error(kRuntime) when no
// socket can be bound.
int free_tcp_port();

// This machine's host name (gethostname), or "unknown" when it cannot be read.
std::string host_name();

}  // namespace conveyor
