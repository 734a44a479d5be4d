// The CPU backend: the reference. Host memory (huge pages for large buffers, see
// common/host_buffer.h) and the kernels of kernels/cpu/ops.h, one call each.
#pragma once

#include "kernels/backend.h"

namespace conveyor::kernels {

class CpuBackend final : public Backend {
 public:
  // threads > 0 sets the kernels' thread count (process-wide, see cpu::set_num_threads).
  explicit CpuBackend(int threads = 0);

  const char* name() const override { return "cpu"; }
  std::string describe() const override;
  MemoryType memory_type() const override { return MemoryType::kHost; }

  void zero(void* p, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* host_src, size_t bytes) override;
  void synchronize() override;
  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                         int B, int T, int C) override;
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                          int T, int C) override;
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                         const float* weight, const float* bias, int N, int C) override;
  void layernorm_backward_input(float* dinp, const float* dout, const float* inp,
                                const float* weight, const float* mean, const float* rstd, int N,
                                int C) override;
  void layernorm_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                                 const float* mean, const float* rstd, int N, int C) override;
  void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                      int IC, int OC) override;
  void linear_backward_input(float* dinp, const float* dout, const float* weight, int N, int IC,
                             int OC) override;
  void linear_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                              int N, int IC, int OC) override;
  void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C,
                         int NH) override;
  void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                          const float* att, int B, int T, int C, int NH) override;
  void gelu_forward(float* out, const float* inp, size_t n) override;
  void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) override;
  void residual_forward(float* out, const float* a, const float* b, size_t n) override;
  void crossentropy_forward(float* losses, float* probs, const float* logits,
                            const int32_t* targets, int N, int V) override;
  void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                             float scale, int N, int V) override;
  double sum(const float* x, size_t n) override;
  void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, size_t n,
                    const AdamWParams& hp) override;
  double sum_of_squares(const float* x, size_t n) override;
  void scale_inplace(float* x, size_t n, float s) override;
  void add_inplace(float* x, const float* y, size_t n) override;

 protected:
  void* allocate_bytes(size_t bytes) const override;
  void free_bytes(void* p) const noexcept override;
};

}  // namespace conveyor::kernels
