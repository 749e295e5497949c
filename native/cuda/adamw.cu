// adamw.cu: one AdamW step of one parameter in a single pass over p, g, m and v; the device
// version of cpu/kernels/adamw.cpp, with its arithmetic in its order (src/nn/optim/adamw.ts):
//   p = p (1 - lr wd);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p - (m / (sqrt(v) / bias2 + eps)) step_size     (bias2 = sqrt(1 - b2^t), step_size = lr / (1 - b1^t))
//
// A grid-stride loop (rows.cuh's for_elements, 256 threads). When the four operands are
// contiguous and 16-byte aligned each thread takes 16-byte chunks (float4 / double2: four 128-bit
// loads and three 128-bit stores per chunk), then the tail element by element; any other layout
// goes through Strided<4> (strided.cuh: one flat index turned into each operand's offset). f32 and
// f64; bf16 parameters are stepped through their f32 master copy by the optimizer.
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
  const Hyper<T> h{T(1 - hp.lr * hp.weight_decay), T(hp.beta1), T(hp.beta2), T(1 - hp.beta1), T(1 - hp.beta2),
                   T(hp.bias2), T(hp.eps), T(hp.step_size), hp.weight_decay != 0};
  const View* views[4] = {&p, &g, &m, &v};
  const bool vec = contiguous_aligned(views);
  launch<kernel<T>>(dim3(element_blocks<T>(n, vec)), dim3(kThreads), 0, Stream{}, static_cast<T*>(p.data),
                    static_cast<const T*>(g.data), static_cast<T*>(m.data), static_cast<T*>(v.data),
                    Strided<4>::make(views), n, vec, h);
}

}  // namespace adamw_step

void adamw(const View& p, const View& g, const View& m, const View& v, const cpu::AdamWHyper& h) {
  if (p.dtype == DType::F32) adamw_step::run<float>(p, g, m, v, h);
  else if (p.dtype == DType::F64) adamw_step::run<double>(p, g, m, v, h);
  else fail(ErrorKind::DType, std::string("adamw: f32 or f64 only, got ") + dtype_name(p.dtype));
}

}  // namespace emu::EMU_DEVICE_NS
