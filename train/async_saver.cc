#include "train/async_saver.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include <fmt/format.h>

#include "common/error.h"
#include "common/log.h"

namespace conveyor::pipeline {

AsyncSaver::~AsyncSaver() {
  join();
}

void AsyncSaver::join() {
  if (thread_.joinable()) thread_.join();
}

bool AsyncSaver::idle() const {
  return state_.load() == State::kIdle;
}

bool AsyncSaver::in_flight() const {
  const State state = state_.load();
  return state != State::kIdle && state != State::kCommitting;
}

SaveProgress AsyncSaver::wait_for_write() {
  if (in_flight()) join();
  return progress();
}

void AsyncSaver::start(int64_t step, Work work) {
  CONVEYOR_CHECK(idle(), "an async save of step {} is still in flight", step_);
  join();
  step_ = step;
  write_error_.clear();
  state_.store(State::kCopying);
  auto run = [this, work = std::move(work)] {
    // The snapshot is copied here, while the training thread runs the next step's forward and
    // backward passes (which only read the parameters and optimizer state); the optimizer
    // update waits in before_update() until the copy is done. So the step boundary costs no
    // copy at all (it was most of the stall: 38 MB on the training thread).
    try {
      work.copy_snapshot();
    } catch (const std::exception& e) {
      write_error_ = fmt::format("taking the host snapshot failed: {}", e.what());
      state_.store(State::kFailed);
      state_.notify_all();
      return;
    }
    state_.store(State::kWriting);
    state_.notify_all();
    // Below the training threads: on a busy host the save should wait, not the step.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    try {
      work.write_shard();
      state_.store(State::kWritten);
    } catch (const std::exception& e) {
      write_error_ = e.what();
      state_.store(State::kFailed);
    }
  };
  try {
    thread_ = std::thread(std::move(run));
  } catch (...) {  // no thread: nothing will copy, so before_update() must not wait
    state_.store(State::kIdle);
    step_ = -1;
    throw;
  }
}

void AsyncSaver::before_update() {
  state_.wait(State::kCopying);
}

SaveProgress AsyncSaver::progress() const {
  const State state = state_.load();
  return {state == State::kWritten ? 1 : 0, state == State::kFailed ? 1 : 0};
}

void AsyncSaver::on_progress(const SaveProgress& summed, int ranks,
                             std::function<void(int64_t)> commit) {
  const State state = state_.load();
  if (state == State::kIdle || state == State::kCommitting) return;
  if (summed.failed > 0) {
    join();
    if (state_.load() == State::kFailed) {
      CONVEYOR_LOG_ERROR("checkpoint: async save of step {} failed on this stage: {}", step_,
                         write_error_);
    }
    if (commit) {
      CONVEYOR_LOG_ERROR(
          "checkpoint: async save of step {} failed on {} stage(s); it was not "
          "committed (LATEST still names the previous checkpoint); training goes on",
          step_, summed.failed);
    }
    failed_step_ = step_;
    state_.store(State::kIdle);
  } else if (summed.written == ranks) {
    join();
    if (commit) {
      // The commit (manifest, renames, directory fsyncs) runs off the training thread too;
      // the next save or the end of the run waits for it and reports its failure.
      const int64_t step = step_;
      state_.store(State::kCommitting);
      thread_ = std::thread([this, step, commit = std::move(commit)] {
        try {
          commit(step);
        } catch (const std::exception& e) {
          commit_error_ = fmt::format("committing checkpoint step {} failed: {}", step, e.what());
        }
      });
    } else {
      state_.store(State::kIdle);
    }
  } else {
    return;  // still writing somewhere
  }
  step_ = -1;
}

void AsyncSaver::join_commit() {
  if (state_.load() != State::kCommitting) return;
  join();
  state_.store(State::kIdle);
  if (!commit_error_.empty()) throw Error(ErrorKind::kRuntime, std::exchange(commit_error_, {}));
}

int64_t AsyncSaver::take_failed_step() {
  return std::exchange(failed_step_, -1);
}

}  // namespace conveyor::pipeline
