// `conveyor launch --nproc N [--max-restarts R] -- conveyor train ...` (one host), or
// `conveyor launch --hostfile FILE | --hosts h1:2,h2:2 [--rsh CMD] -- ...` (several).
#include <limits>

#include "common/checked_number.h"
#include "launcher/cli_number.h"
#include "launcher/commands.h"
#include "launcher/launch/supervisor.h"

namespace conveyor::cli {

void add_launch(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand(
      "launch", "start the ranks of a job: N on this host, or on every host of a hostfile");
  auto o = std::make_shared<LaunchOptions>();
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  // Bounded: an unbounded --nproc forked until descriptors or processes ran out.
  sub->add_option("--nproc", o->nproc, "ranks to start on this host (one host)")
      ->transform(integer_in(1, kMaxJobRanks, "ranks"));
  sub->add_option("--hostfile", o->hostfile,
                  "hosts of a multi-host job, one 'HOST slots=N' line each (started over ssh)");
  sub->add_option("--hosts", o->hosts, "hosts of a multi-host job as h1:2,h2:2");
  sub->add_option("--rsh", o->rsh, "the ssh-compatible command that reaches each host")
      ->capture_default_str();
  sub->add_option("--max-restarts", o->max_restarts,
                  "restart the whole job after a failure, up to R times")
      ->capture_default_str()
      ->transform(integer_in(0, kMaxInt, "restarts"));
  sub->add_option("--master-addr", o->master_addr,
                  "address of rank 0's host (default 127.0.0.1, or the first host)");
  sub->add_option("--master-port", o->master_port,
                  "rendezvous port (0: a free one on one host, 29500 on several)")
      ->capture_default_str();
  sub->add_option("--grace", o->grace_seconds,
                  "seconds the survivors of a failure get between SIGTERM and SIGKILL")
      ->capture_default_str()
      ->transform(seconds_at_least(0));
  sub->add_option("--stop-timeout", o->stop_timeout_seconds,
                  "seconds the ranks get to save and stop after SIGTERM or SIGUSR1")
      ->capture_default_str()
      ->transform(seconds_at_least(0));
  // Set by a multi-host launch for the supervisor it starts on each host.
  const std::string internal;  // an empty group hides an option from --help
  sub->add_option("--nnodes", o->nnodes, "hosts in the job")->group(internal);
  sub->add_option("--node-rank", o->node_rank, "this host's index")->group(internal);
  sub->add_option("--first-rank", o->first_rank, "RANK of this host's first rank")
      ->group(internal)
      ->transform(integer_in(-1, kMaxJobRanks - 1, "ranks"));
  sub->add_option("--world-size", o->world_size, "ranks in the job")
      ->group(internal)
      ->transform(integer_in(0, kMaxJobRanks, "ranks"));
  sub->add_flag("--token-stdin", o->token_stdin, "read the job secret from stdin")->group(internal);
  sub->add_option("--restart-count", o->restart_count, "restarts before this attempt")
      ->group(internal)
      ->transform(integer_in(0, kMaxInt, "restarts"));
  sub->add_option("command", o->command, "the command every rank runs")->required();
  sub->callback([&run, o] { run = [o] { return run_supervisor(*o); }; });
}

}  // namespace conveyor::cli
