#include "train/trainer.h"

#include "train/session.h"

namespace conveyor::pipeline {

TrainSummary train(const TrainConfig& config, const TrainHooks& hooks) {
  auto session = TrainingSession::build(config, hooks);
  for (int64_t step = session->start_step(); step < session->end_step(); ++step) {
    const StepOutcome outcome = session->step(step);
    session->report(outcome);
    if (session->after_step(outcome)) break;  // asked to stop: saved, exit kExitPreempted
  }
  return session->finish();
}

}  // namespace conveyor::pipeline
