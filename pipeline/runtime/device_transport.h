// The transport the pipeline hands its tensors to, given where the compute backend keeps them
// (docs/TRANSPORT.md, "Device tensors"):
// - host memory (cpu): the transport itself, untouched;
// - device memory, and the transport reaches it (device_memory_direct(): UCX with CUDA
//   support): the transport itself, device pointers passed as they are;
// - device memory the transport cannot reach (Debian's UCX): a StagingTransport in front of
//   it (transport/staging_transport.h) that copies through pinned host memory with the
//   backend's own to_host / from_host, on the backend's stream.
#pragma once

#include <cstddef>
#include <memory>

#include "kernels/backend.h"
#include "transport/staging_transport.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// Staging through `backend`'s copies (the memory its callers give as MemoryType::kDevice, which
// is the backend's: the executor, the gradient sync and the trainer say so per buffer); bounce
// buffers pinned when the device seam can pin them (kernels/device.h), plain host memory
// otherwise. REQUIRES: backend outlives the transport's last message.
transport::StagingOptions staging_options(kernels::Backend& backend);

// See the top of the file; logs which path was chosen. `t` may be null (one rank): null.
std::unique_ptr<transport::Transport> transport_for_backend(std::unique_ptr<transport::Transport> t,
                                                            kernels::Backend& backend);

}  // namespace conveyor::pipeline
