// swiglu.cu: the SwiGLU gate of a LLaMA MLP, silu(a) * b, forward and backward, one element-wise
// pass each; the device version of cpu/kernels/swiglu.cpp, with its formulas:
//   out = a / (1 + exp(-a)) * b
//   da = dout b s (1 + a (1 - s)),  db = dout silu(a),  s = 1 / (1 + exp(-a))
// A grid-stride loop (rows.cuh's for_elements, 256 threads): 16-byte chunks (4 f32, 2 f64, 8
// bf16 / f16) when every operand is contiguous and aligned, else any strides through Strided<N>.
// bf16 and f16 are computed in f32 and rounded once.
//
// What bounds it on an H100/H200: memory. Forward: 12 bytes per f32 element (read a, b; write
// out) and one exp, against 20 for the composed silu then mul (read a, write s, read s and b,
// write out). Backward: 20 bytes (read dout, a, b; write da, db) and one exp, against ~60 for the
// composed rule's five element-wise ops. Both are streaming kernels: expect 85-90% of copy
// bandwidth once there are a million elements or more.
#include <string>

#include "cpu/fused.h"
#include "cuda/rows.cuh"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace swiglu_gate {

template <class T>
__global__ void forward_kernel(T* out, const T* a, const T* b, Strided<3> layout, int64_t n, bool vec) {
  for_elements<T, 3>(n, vec, layout, [&](const int64_t* off, auto chunk) {
    constexpr int c = decltype(chunk)::value;
    using A = C<T>;
    A av[c], bv[c];
    load_n<c>(a, off[1], 1, av);
    load_n<c>(b, off[2], 1, bv);
    for (int k = 0; k < c; k++) av[k] = av[k] / (A(1) + m_exp(-av[k])) * bv[k];
    store_n<c>(out, off[0], 1, av);
  });
}

template <class T>
__global__ void backward_kernel(T* da, T* db, const T* dout, const T* a, const T* b, Strided<5> layout, int64_t n,
                                bool vec) {
  for_elements<T, 5>(n, vec, layout, [&](const int64_t* off, auto chunk) {
    constexpr int c = decltype(chunk)::value;
    using A = C<T>;
    A gv[c], av[c], bv[c], ga[c], gb[c];
    load_n<c>(dout, off[2], 1, gv);
    load_n<c>(a, off[3], 1, av);
    load_n<c>(b, off[4], 1, bv);
    for (int k = 0; k < c; k++) {
      const A e = m_exp(-av[k]), s = A(1) / (A(1) + e);
      ga[k] = gv[k] * bv[k] * (s * (A(1) + av[k] * (A(1) - s)));
      gb[k] = gv[k] * (av[k] / (A(1) + e));
    }
    store_n<c>(da, off[0], 1, ga);
    store_n<c>(db, off[1], 1, gb);
  });
}

template <class T>
void forward(const View& out, const View& a, const View& b) {
  const int64_t n = a.numel();
  if (n == 0) return;
  const View* views[3] = {&out, &a, &b};
  const bool vec = contiguous_aligned(views);
  launch<forward_kernel<T>>(dim3(element_blocks<T>(n, vec)), dim3(kThreads), 0, Stream{}, static_cast<T*>(out.data),
                            static_cast<const T*>(a.data), static_cast<const T*>(b.data), Strided<3>::make(views), n, vec);
}

template <class T>
void backward(const View& da, const View& db, const View& dout, const View& a, const View& b) {
  const int64_t n = a.numel();
  if (n == 0) return;
  const View* views[5] = {&da, &db, &dout, &a, &b};
  const bool vec = contiguous_aligned(views);
  launch<backward_kernel<T>>(dim3(element_blocks<T>(n, vec)), dim3(kThreads), 0, Stream{}, static_cast<T*>(da.data),
                             static_cast<T*>(db.data), static_cast<const T*>(dout.data), static_cast<const T*>(a.data),
                             static_cast<const T*>(b.data), Strided<5>::make(views), n, vec);
}

}  // namespace swiglu_gate

void swiglu(const View& out, const View& a, const View& b) {
  dispatch_float(a.dtype, "swiglu", [&](auto t) { swiglu_gate::forward<decltype(t)>(out, a, b); });
}

void swiglu_backward(const View& da, const View& db, const View& dout, const View& a, const View& b) {
  dispatch_float(a.dtype, "swigluBackward", [&](auto t) { swiglu_gate::backward<decltype(t)>(da, db, dout, a, b); });
}

}  // namespace emu::EMU_DEVICE_NS
