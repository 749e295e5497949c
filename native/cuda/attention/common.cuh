// common.cuh: what the fused attention versions (v1_simt.cu, v2_mma.cu) and their dispatcher
// (attention.cu) share: the launch parameters, the logits rule (bias, causal, key padding) and
// the scratch buffers of the backward.
//
// The contract is the CPU kernel's (native/cpu/kernels/attention.cpp): q [B,H,Lq,D], k [B,H,Lk,D],
// v [B,H,Lk,Dv], out [B,H,Lq,Dv], lse [B,H,Lq], optional bias [B,H,Lq,Lk] and kpm bool [B,Lk]
// (true = key hidden), all on any strides (broadcast dims arrive with stride 0). Key j is hidden
// from query i when causal and j > i (top-left aligned, also when Lq != Lk) or kpm[b][j]; a row
// that sees no key gets out = 0 and lse = -inf, and its gradients are 0. bf16 and f16 compute in
// f32 and save lse in f32 (a bf16 lse would put a 0.4% error on every recomputed probability).
#pragma once
#include <type_traits>

#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS::attention {

// The strides (in elements) of a [B, H, L, X] operand; lse and kpm use the leading ones.
struct Strides4 {
  long long b, h, l, x;
  __device__ __forceinline__ long long at(long long bi, long long hi, long long li, long long xi) const {
    return bi * b + hi * h + li * l + xi * x;
  }
};

struct Params {
  long long B, H, Lq, Lk, D, Dv;
  Strides4 q, k, v, out, lse, bias, kpm, dout, dq, dk, dv, dbias;
  double scale;
  bool causal;
};

// The saved log-sum-exp's type (and the compute type): f64 for f64, f32 otherwise.
template <class T> using Acc = C<T>;

// Every operand of one call; the forward leaves the gradient pointers null, and bias, kpm and
// dbias are null when absent.
template <class T>
struct Operands {
  const T *q, *k, *v, *bias;
  const bool* kpm;
  T* out;
  Acc<T>* lse;
  const T* dout;
  T *dq, *dk, *dv, *dbias;
};

template <class V> __device__ __forceinline__ V neg_inf() { return extreme_start<V, true>(); }

// Whether query i may see key j (i < Lq, j < Lk assumed).
template <class T>
__device__ __forceinline__ bool visible(const Params& p, const Operands<T>& o, long long b, long long i, long long j) {
  if (p.causal && j > i) return false;
  return !(o.kpm && o.kpm[b * p.kpm.b + j * p.kpm.l]);
}

// The logit of query i and key j from their scaled score s: bias added, -inf where hidden or
// outside [Lq, Lk] (tile padding).
template <class T, class V>
__device__ __forceinline__ V logit(const Params& p, const Operands<T>& o, long long b, long long h, long long i, long long j,
                                   V s) {
  if (i >= p.Lq || j >= p.Lk || !visible(p, o, b, i, j)) return neg_inf<V>();
  if (o.bias) s += V(load(o.bias[p.bias.at(b, h, i, j)]));
  return s;
}

// Device scratch for one call (the backward's row sums D = rowsum(dO * O)), freed on return.
template <class V>
class Scratch {
 public:
  explicit Scratch(long long n) : ptr_(static_cast<V*>(runtime().allocate(size_t(n < 1 ? 1 : n) * sizeof(V), Stream{}))) {}
  ~Scratch() { runtime().deallocate(ptr_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  V* get() const { return ptr_; }

 private:
  V* ptr_;
};

// The backward's pre-pass: Dr_i = sum_c dO[i][c] * O[i][c], one thread per row of every (b, h),
// into dr [B*H*Lq] (row (b, h, i) at (b * H + h) * Lq + i).
template <class T>
__global__ void row_dot_kernel(Params p, Operands<T> o, Acc<T>* dr) {
  using V = Acc<T>;
  const long long n = p.B * p.H * p.Lq;
  for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < n; x += (long long)gridDim.x * blockDim.x) {
    const long long i = x % p.Lq, b = x / p.Lq / p.H, h = x / p.Lq % p.H;
    V acc = V(0);
    for (long long c = 0; c < p.Dv; c++) acc += V(load(o.dout[p.dout.at(b, h, i, c)])) * V(load(o.out[p.out.at(b, h, i, c)]));
    dr[x] = acc;
  }
}

template <class T>
void row_dots(const Params& p, const Operands<T>& o, Acc<T>* dr) {
  if (p.Lq > 0) launch<row_dot_kernel<T>>(dim3(blocks_for(p.B * p.H * p.Lq)), dim3(kThreads), 0, Stream{}, p, o, dr);
}

// The versions (each in its own file) and what the dispatcher (attention.cu) needs to know.
namespace v1 {
template <class T> void forward(const Params& p, const Operands<T>& o);
template <class T> void backward(const Params& p, const Operands<T>& o);
}  // namespace v1
namespace v2 {  // T = bf16 or f16
bool supports(const Params& p);  // head dims that fit its register tiles (v3's too)
template <class T> void forward(const Params& p, const Operands<T>& o);
template <class T> void backward(const Params& p, const Operands<T>& o);
}  // namespace v2
namespace v3 {  // T = bf16 or f16
template <class T> void forward(const Params& p, const Operands<T>& o);  // the backward is v2's
}  // namespace v3

}  // namespace emu::EMU_DEVICE_NS::attention
