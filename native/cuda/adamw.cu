// adamw.cu: one AdamW step of one parameter in a single pass over p, g, m and v; the device
// version of cpu/kernels/adamw.cpp, with its arithmetic in its order (src/nn/optim/adamw.ts):
//   p = p (1 - lr wd);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p - (m / (sqrt(v) / bias2 + eps)) step_size     (bias2 = sqrt(1 - b2^t), step_size = lr / (1 - b1^t))
//
// A grid-stride loop (rows.cuh's for_elements, 256 threads). When the four operands are
// contiguous and 16-byte aligned each thread takes 16-byte chunks (float4 / double2: four 128-bit
// loads and three 128-bit stores per chunk), then the tail element by element; any other layout
// goes through Strided<4> (strided.cuh: one flat index turned into each operand's offset). f32 and
// f64. adamw_mixed steps a bf16 or f16 parameter through its f32 master copy in the same pass: it
// widens the 16-bit gradient as it reads it and writes the new master rounded to the parameter
// (16 bytes read and 14 written per element, 28 + 4 where the separate widening of the gradient
// and rounding of the master would add two more passes, 12 bytes more).
//
// What bounds it on an H100/H200: memory. 28 bytes per f32 element (read p, g, m, v; write p,
// m, v) against ~12 FLOPs and one sqrt: a streaming triad-like kernel, so expect 85-90% of copy
// bandwidth on parameters of a million elements or more (below that, launch latency dominates:
// the optimizer's one launch per parameter is the next thing to fuse, a multi-tensor apply).
#include <string>

#include "cpu/fused.h"
#include "cuda/rows.cuh"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace adamw_step {

template <class T>
struct Hyper {
  T decay, b1, b2, c1, c2, bias2, eps, size;
  bool decays;
};

template <class T>
Hyper<T> hyper_of(const cpu::AdamWHyper& hp) {
  return Hyper<T>{T(1 - hp.lr * hp.weight_decay), T(hp.beta1), T(hp.beta2), T(1 - hp.beta1), T(1 - hp.beta2),
                  T(hp.bias2), T(hp.eps), T(hp.step_size), hp.weight_decay != 0};
}

template <class T>
__device__ __forceinline__ void step(const Hyper<T>& h, T& p, T g, T& m, T& v) {
  const T pd = h.decays ? p * h.decay : p;
  m = h.b1 * m + h.c1 * g;
  v = h.b2 * v + h.c2 * (g * g);
  p = pd - (m / (m_sqrt(v) / h.bias2 + h.eps)) * h.size;
}

template <class T>
__global__ void kernel(T* p, const T* g, T* m, T* v, Strided<4> layout, int64_t n, bool vec, Hyper<T> h) {
  for_elements<T, 4>(n, vec, layout, [&](const int64_t* off, auto chunk) {
    constexpr int c = decltype(chunk)::value;
    T pv[c], gv[c], mv[c], vv[c];
    load_n<c>(p, off[0], 1, pv);
    load_n<c>(g, off[1], 1, gv);
    load_n<c>(m, off[2], 1, mv);
    load_n<c>(v, off[3], 1, vv);
    for (int k = 0; k < c; k++) step(h, pv[k], gv[k], mv[k], vv[k]);
    store_n<c>(p, off[0], 1, pv);
    store_n<c>(m, off[2], 1, mv);
    store_n<c>(v, off[3], 1, vv);
  });
}

template <class T>
void run(const View& p, const View& g, const View& m, const View& v, const cpu::AdamWHyper& hp) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const Hyper<T> h = hyper_of<T>(hp);
  const View* views[4] = {&p, &g, &m, &v};
  const bool vec = contiguous_aligned(views);
  launch<kernel<T>>(dim3(element_blocks<T>(n, vec)), dim3(kThreads), 0, Stream{}, static_cast<T*>(p.data),
                    static_cast<const T*>(g.data), static_cast<T*>(m.data), static_cast<T*>(v.data),
                    Strided<4>::make(views), n, vec, h);
}

// The 16-bit operands' c elements at flat offset i (c = 4 in the vector path, 8 aligned bytes).
template <int c, class H>
__device__ __forceinline__ void load_half(const H* p, int64_t i, float (&out)[c]) {
  if constexpr (c == 4) {
    const uint2 q = *reinterpret_cast<const uint2*>(p + i);
    const uint32_t w[2] = {q.x, q.y};
    for (int k = 0; k < 4; k++) out[k] = load(H{uint16_t(w[k / 2] >> (16 * (k % 2)))});
  } else {
    for (int k = 0; k < c; k++) out[k] = load(p[i + k]);
  }
}
template <int c, class H>
__device__ __forceinline__ void store_half(H* p, int64_t i, const float (&in)[c]) {
  if constexpr (c == 4) {
    *reinterpret_cast<uint2*>(p + i) = uint2{pack_half2<H>(in[0], in[1]), pack_half2<H>(in[2], in[3])};
  } else {
    for (int k = 0; k < c; k++) p[i + k] = cvt<H>(in[k]);
  }
}

// Operands in Strided<5> order: p16, master, g16, m, v.
template <class H>
__global__ void mixed_kernel(H* p16, float* master, const H* g16, float* m, float* v, Strided<5> layout, int64_t n, bool vec,
                             Hyper<float> h) {
  for_elements<float, 5>(n, vec, layout, [&](const int64_t* off, auto chunk) {
    constexpr int c = decltype(chunk)::value;
    float pv[c], gv[c], mv[c], vv[c];
    load_n<c>(master, off[1], 1, pv);
    load_half<c>(g16, off[2], gv);
    load_n<c>(m, off[3], 1, mv);
    load_n<c>(v, off[4], 1, vv);
    for (int k = 0; k < c; k++) step(h, pv[k], gv[k], mv[k], vv[k]);
    store_n<c>(master, off[1], 1, pv);
    store_n<c>(m, off[3], 1, mv);
    store_n<c>(v, off[4], 1, vv);
    store_half<c>(p16, off[0], pv);
  });
}

template <class H>
void run_mixed(const View& p16, const View& master, const View& g16, const View& m, const View& v, const cpu::AdamWHyper& hp) {
  const int64_t n = p16.numel();
  if (n == 0) return;
  const Hyper<float> h = hyper_of<float>(hp);
  const View* views[5] = {&p16, &master, &g16, &m, &v};
  const bool vec = contiguous_aligned(views);
  launch<mixed_kernel<H>>(dim3(element_blocks<float>(n, vec)), dim3(kThreads), 0, Stream{}, static_cast<H*>(p16.data),
                          static_cast<float*>(master.data), static_cast<const H*>(g16.data), static_cast<float*>(m.data),
                          static_cast<float*>(v.data), Strided<5>::make(views), n, vec, h);
}

}  // namespace adamw_step

void adamw_mixed(const View& p16, const View& master, const View& g16, const View& m, const View& v, const cpu::AdamWHyper& h) {
  if (p16.dtype == DType::BF16) adamw_step::run_mixed<bf16>(p16, master, g16, m, v, h);
  else if (p16.dtype == DType::F16) adamw_step::run_mixed<f16>(p16, master, g16, m, v, h);
  else fail(ErrorKind::DType, std::string("adamwMixed: bf16 or f16 parameters only, got ") + dtype_name(p16.dtype));
}

void adamw(const View& p, const View& g, const View& m, const View& v, const cpu::AdamWHyper& h) {
  if (p.dtype == DType::F32) adamw_step::run<float>(p, g, m, v, h);
  else if (p.dtype == DType::F64) adamw_step::run<double>(p, g, m, v, h);
  else fail(ErrorKind::DType, std::string("adamw: f32 or f64 only, got ") + dtype_name(p.dtype));
}

}  // namespace emu::EMU_DEVICE_NS
