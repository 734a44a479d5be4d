#include "infer/forward_pass.h"

#include "common/clock.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

void forward_through_pipeline(const PipelinePlace& place, const ForwardChunks& mine, MessageTag tag,
                              const std::function<void(model::Slot&)>& load_first,
                              const std::function<void(model::Slot&)>& at_head) {
  const Topology& topo = place.topology;
  const int pieces = topo.num_virtual_stages();
  const int replica = topo.place(place.rank).replica;
  for (int vs = 0; vs < pieces; ++vs) {
    if (topo.rank_of_virtual_stage(replica, vs) != place.rank) continue;
    const int c = topo.chunk_of(vs);
    model::ModelChunk& chunk = *mine.chunks[c];
    model::Slot& slot = *mine.slots[c];
    kernels::Backend& k = *mine.backend;
    const size_t act_bytes = mine.message_bytes;
    if (vs == 0) {
      load_first(slot);
    } else {
      const int from = topo.rank_of_virtual_stage(replica, vs - 1);
      if (from == place.rank) {
        k.copy(slot.input(), mine.slots[topo.chunk_of(vs - 1)]->output(), act_bytes);
      } else {
        tag.virtual_stage = vs;
        auto r = place.transport->irecv(from, encode(tag), slot.input(), act_bytes, nullptr,
                                        k.memory_type());
        place.transport->wait(r, Deadline::after_seconds(kPeerWaitSeconds));
      }
    }
    chunk.forward(slot);
    if (vs + 1 == pieces) {
      at_head(slot);
      continue;
    }
    const int to = topo.rank_of_virtual_stage(replica, vs + 1);
    if (to != place.rank) {
      tag.virtual_stage = vs + 1;
      k.synchronize();  // the activations are complete before the transport reads them
      auto r = place.transport->isend(to, encode(tag), slot.output(), act_bytes, nullptr,
                                      k.memory_type());
      place.transport->wait(r, Deadline::after_seconds(kPeerWaitSeconds));
    }
  }
}

}  // namespace conveyor::pipeline
