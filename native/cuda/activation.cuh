// activation.cuh: the activations a kernel can apply on the fly, one definition for the
// element-wise unary kernels (elementwise.cu) and the GEMM epilogue (gemm/gemm.cuh), so a fused
// activation computes exactly what the separate op does on the same input. The formulas are the
// CPU kernels' (cpu/kernels/elementwise.cpp): relu, gelu with erf, gelu's tanh approximation, silu.
#pragma once
#include "cpu/kernels.h"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {

// Whether UnaryOp `op` is one of the activations below (the GEMM epilogue takes only these).
inline bool is_activation(int op) {
  using cpu::UnaryOp;
  return op == int(UnaryOp::Relu) || op == int(UnaryOp::GeluErf) || op == int(UnaryOp::GeluTanh) || op == int(UnaryOp::Silu);
}

template <class V>
__device__ __forceinline__ V activation(cpu::UnaryOp op, V x) {
  using cpu::UnaryOp;
  switch (op) {
    case UnaryOp::Relu: return x > V(0) ? x : V(0);
    case UnaryOp::GeluErf: return V(0.5) * x * (V(1) + m_erf(x * V(0.70710678118654752440)));
    case UnaryOp::GeluTanh: {
      const V k = V(0.79788456080286535588);  // sqrt(2/pi)
      return V(0.5) * x * (V(1) + m_tanh(k * (x + V(0.044715) * x * x * x)));
    }
    case UnaryOp::Silu: return x / (V(1) + m_exp(-x));
    default: return x;
  }
}

}  // namespace emu::EMU_DEVICE_NS
