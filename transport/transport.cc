#include "transport/transport.h"

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
bool MemoryRegion::is_device() const {
  return impl_ && impl_->device;
}

bool Request::done() const {
  return state_ && state_->done.load(std::memory_order_acquire);
}

std::unique_ptr<Transport> Transport::create(const Options& options) {
  return std::make_unique<UcxTransport>(options);
}

}  // namespace conveyor::transport
