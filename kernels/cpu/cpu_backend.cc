#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>

#include <cstring>

#include "common/host_buffer.h"
#include "kernels/cpu/ops.h"

namespace conveyor::kernels {

std::string CpuBackend::describe() const {
  // The kernels OpenBLAS chose for this CPU (or OPENBLAS_CORETYPE): bit-identical results
  // across hosts need the same on every host.
  return std::string("cpu (OpenBLAS ") + openblas_get_corename() + " kernels)";
}

CpuBackend::CpuBackend(int threads) {
  if (threads > 0) cpu::set_num_threads(threads);
}

void* CpuBackend::allocate_bytes(size_t bytes) const {
  return allocate_host_bytes(bytes);
}

void CpuBackend::free_bytes(void* p) const noexcept {
  free_host_bytes(p);
}

void CpuBackend::zero(void* p, size_t bytes) {
  std::memset(p, 0, bytes);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

void CpuBackend::to_host(void* host_dst, const void* src, size_t bytes) {
  std::memcpy(host_dst, src, bytes);
}

void CpuBackend::from_host(void* dst, const void* host_src, size_t bytes) {
  std::memcpy(dst, host_src, bytes);
}

void CpuBackend::synchronize() {}  // every op has finished when it returns

void CpuBackend::embedding_forward(float* out, const int32_t* tokens, const float* wte,
                                   const float* wpe, int B, int T, int C) {
  cpu::embedding_forward(out, tokens, wte, wpe, B, T, C);
}

void CpuBackend::embedding_backward(float* dwte, float* dwpe, const float* dout,
                                    const int32_t* tokens, int B, int T, int C) {
  cpu::embedding_backward(dwte, dwpe, dout, tokens, B, T, C);
}

void CpuBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                   const float* weight, const float* bias, int N, int C) {
  cpu::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
}

void CpuBackend::layernorm_backward_input(float* dinp, const float* dout, const float* inp,
                                          const float* weight, const float* mean, const float* rstd,
                                          int N, int C) {
  cpu::layernorm_backward_input(dinp, dout, inp, weight, mean, rstd, N, C);
}

void CpuBackend::layernorm_backward_weight(float* dweight, float* dbias, const float* dout,
                                           const float* inp, const float* mean, const float* rstd,
                                           int N, int C) {
  cpu::layernorm_backward_weight(dweight, dbias, dout, inp, mean, rstd, N, C);
}

void CpuBackend::linear_forward(float* out, const float* inp, const float* weight,
                                const float* bias, int N, int IC, int OC) {
  cpu::linear_forward(out, inp, weight, bias, N, IC, OC);
}

void CpuBackend::linear_backward_input(float* dinp, const float* dout, const float* weight, int N,
                                       int IC, int OC) {
  cpu::linear_backward_input(dinp, dout, weight, N, IC, OC);
}

void CpuBackend::linear_backward_weight(float* dweight, float* dbias, const float* dout,
                                        const float* inp, int N, int IC, int OC) {
  cpu::linear_backward_weight(dweight, dbias, dout, inp, N, IC, OC);
}

void CpuBackend::attention_forward(float* out, float* att, const float* qkv, int B, int T, int C,
                                   int NH) {
  cpu::attention_forward(out, att, qkv, B, T, C, NH);
}

void CpuBackend::attention_backward(float* dqkv, float* scratch, const float* dout,
                                    const float* qkv, const float* att, int B, int T, int C,
                                    int NH) {
  cpu::attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH);
}

void CpuBackend::gelu_forward(float* out, const float* inp, size_t n) {
  cpu::gelu_forward(out, inp, n);
}

void CpuBackend::gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  cpu::gelu_backward(dinp, inp, dout, n);
}

void CpuBackend::residual_forward(float* out, const float* a, const float* b, size_t n) {
  cpu::residual_forward(out, a, b, n);
}

void CpuBackend::crossentropy_forward(float* losses, float* probs, const float* logits,
                                      const int32_t* targets, int N, int V) {
  cpu::crossentropy_forward(losses, probs, logits, targets, N, V);
}

void CpuBackend::crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                                       float scale, int N, int V) {
  cpu::crossentropy_backward(dlogits, probs, targets, scale, N, V);
}

double CpuBackend::sum(const float* x, size_t n) {
  return cpu::sum(x, n);
}

void CpuBackend::adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                              size_t n, const AdamWParams& hp) {
  cpu::adamw_update(param, grad, exp_avg, exp_avg_sq, n, hp);
}

double CpuBackend::sum_of_squares(const float* x, size_t n) {
  return cpu::sum_of_squares(x, n);
}

void CpuBackend::scale_inplace(float* x, size_t n, float s) {
  cpu::scale_inplace(x, n, s);
}

void CpuBackend::add_inplace(float* x, const float* y, size_t n) {
  cpu::add_inplace(x, y, n);
}
}  // namespace conveyor::kernels
