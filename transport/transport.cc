#include "transport/transport.h"

#include "common/error.h"
#include "transport/bootstrap/wire.h"
#include "transport/request_state.h"
#include "transport/ucx_transport.h"

namespace conveyor::transport {

MemoryRegion::MemoryRegion() = default;
MemoryRegion::MemoryRegion(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MemoryRegion::MemoryRegion(MemoryRegion&&) noexcept = default;
MemoryRegion& MemoryRegion::operator=(MemoryRegion&&) noexcept = default;
MemoryRegion::~MemoryRegion() = default;
void* MemoryRegion::data() const {
  return impl_ ? impl_->base : nullptr;
}
size_t MemoryRegion::size() const {
  return impl_ ? impl_->bytes : 0;
}
MemoryType MemoryRegion::memory_type() const {
  return impl_ ? impl_->type : MemoryType::kHost;
}

bool Request::done() const {
  return state_ && state_->done.load(std::memory_order_acquire);
}

std::chrono::steady_clock::time_point Request::completed_at() const {
  CONVEYOR_REQUIRE(done(), "completed_at: the request has not completed");
  return state_->completed_at;
}

namespace {

// What the bootstrap's wire cannot carry is refused before any rank waits for another: a
// token over the hello's limit would otherwise be cut off by rank 0 as a stranger's
// oversized hello, and every rank would blame rank 0.
void check_options(const Options& options) {
  if (options.world_size > 1 && options.job_token.size() > wire::kMaxJobTokenBytes)
    throw Error(ErrorKind::kUsage,
                fmt::format("CONVEYOR_JOB_TOKEN is {} bytes long; the rendezvous takes a token "
                            "of at most {} bytes",
                            options.job_token.size(), wire::kMaxJobTokenBytes),
                "give every rank the same shorter secret, e.g. 32 random hex digits (`conveyor "
                "launch` makes one for each job)");
}

}  // namespace

std::unique_ptr<Transport> Transport::create(const Options& options) {
  check_options(options);
  return std::make_unique<UcxTransport>(options);
}

}  // namespace conveyor::transport
