// `conveyor launch --nproc N [--max-restarts R] -- conveyor train ...`
#include "launcher/commands.h"
#include "launcher/supervisor.h"

namespace conveyor::cli {

void add_launch(CLI::App& app, Runner& run) {
  auto* sub = app.add_subcommand("launch", "start N local ranks of a command (one per stage)");
  auto o = std::make_shared<LaunchOptions>();
  sub->add_option("--nproc", o->nproc, "ranks to start on this node")->required();
  sub->add_option("--max-restarts", o->max_restarts,
                  "restart the whole group after a failure, up to R times")
      ->capture_default_str();
  sub->add_option("--nnodes", o->nnodes, "nodes in the job (set by conveyor-launch)")
      ->capture_default_str();
  sub->add_option("--node-rank", o->node_rank, "this node's index (set by conveyor-launch)")
      ->capture_default_str();
  sub->add_option("--master-addr", o->master_addr, "address of rank 0's node")
      ->capture_default_str();
  sub->add_option("--master-port", o->master_port, "rendezvous port (0: a free one)")
      ->capture_default_str();
  sub->add_option("command", o->command, "the command every rank runs")->required();
  sub->callback([&run, o] { run = [o] { return run_supervisor(*o); }; });
}

}  // namespace conveyor::cli
