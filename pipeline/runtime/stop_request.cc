#include "pipeline/runtime/stop_request.h"

#include <signal.h>

#include "common/clock.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

volatile sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) {
  if (g_stop_signal == 0) g_stop_signal = sig;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

int stop_signal() {
  return g_stop_signal;
}

bool stop_requested_anywhere(transport::Transport* transport) {
  const double mine = stop_signal() != 0 ? 1 : 0;
  if (!transport) return mine > 0;
  const double flag[1] = {mine};
  return transport->all_reduce_sum(flag, Deadline::after_seconds(kPeerWaitSeconds))[0] > 0;
}

int stop_exit_code(bool checkpoint_saved) {
  if (checkpoint_saved) return kExitPreempted;
  return 128 + (stop_signal() != 0 ? stop_signal() : SIGTERM);
}

}  // namespace conveyor::pipeline
