#include "train/tied_gradients.h"

#include "common/clock.h"
#include "pipeline/runtime/message_tag.h"

namespace conveyor::pipeline {

void tie_embedding_gradients(model::StageModel& m, transport::Transport* t,
                             const Topology& topology, int rank, int64_t step,
                             kernels::Buffer<float>& other) {
  if (!m.holds_embedding() && !m.holds_head()) return;
  kernels::Backend& k = m.backend();
  float* wte_grad = m.store().grad(model::kWteWeight);
  const size_t n = size_t(m.config().vocab) * m.config().dim;
  if (m.holds_embedding() && m.holds_head()) {
    k.add_inplace(wte_grad, m.head_wte_grad().data(), n);
    return;
  }
  const int replica = topology.place(rank).replica;
  const int peer = m.holds_embedding() ? topology.rank(replica, topology.head_stage())
                                       : topology.rank(replica, topology.embedding_stage());
  const transport::Tag tag = encode(MessageTag{MessageKind::kTiedGradient, step, 0, 0});
  const float* mine = m.holds_embedding() ? wte_grad : m.head_wte_grad().data();
  k.synchronize();  // the gradient is complete before the transport reads it
  auto deadline = Deadline::after_seconds(kPeerWaitSeconds);
  auto recv = t->irecv(peer, tag, other.data(), n * sizeof(float), nullptr, k.memory_type());
  auto send = t->isend(peer, tag, mine, n * sizeof(float), nullptr, k.memory_type());
  t->wait(send, deadline);
  t->wait(recv, deadline);
  if (m.holds_embedding()) {
    k.add_inplace(wte_grad, other.data(), n);  // embedding + head
  } else {
    k.copy(wte_grad, other.data(), n * sizeof(float));     // embedding
    k.add_inplace(wte_grad, m.head_wte_grad().data(), n);  // + head
  }
}

}  // namespace conveyor::pipeline
