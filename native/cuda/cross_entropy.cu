// cross_entropy.cu: softmax cross-entropy over the rows of logits [N, V], forward and backward,
// fused: the probabilities are never stored. The device version of cpu/kernels/cross_entropy.cpp:
//
//   lse_i  = log sum_j exp(x_ij)
//   loss_i = (1 - s) (lse_i - x_it) + s (lse_i - mean_j x_ij)      (s = label smoothing)
//   dx_ij  = g_i (exp(x_ij - lse_i) - s / V) - (1 - s) g_i [j = t]  (g = dloss)
// with loss 0 and dx 0 on rows whose target is the ignore index.
//
// Forward: one block per row (grid-stride over rows), threads_for(V / 4) threads, the row read
// once in 16-byte chunks where the layout allows (rows.cuh). Each thread keeps an online softmax
// state (running max m, sum of exp(x - m), and the plain sum for smoothing): a larger x rescales
// the sum by exp(m_old - m_new) instead of needing a max pass first (Milakov & Gimelshein's
// online normaliser). The block combines the states in one reduction (block_reduce.cuh), then
// thread 0 reads x_t and writes loss and lse. Backward: one block per row again, dx written in
// one pass from x, dloss and the saved lse. An out-of-range target (not the ignore index) raises
// the launch's DeviceFlag, and the host throws the CPU's IndexError. f32 and f64, accumulation
// in T, as on the CPU; bf16 and f16 logits are read as they are and computed in f32, with the
// loss, lse and dloss rows in f32 (dlogits in the logits' type), where the CPU's path casts the
// logits to f32 first: 2 bytes read per logit instead of 2 + 4 written + 4 read again.
//
// What bounds it on an H100/H200: memory. The forward reads 4 bytes per f32 logit (plus 12 bytes
// per row) and does one exp and a few FLOPs per element: at ~4 TB/s of copy bandwidth that is
// ~1e12 logits/s, a quarter of the exp units' rate (16 per SM per clock: ~4e12/s on 132 SMs at
// ~1.9 GHz), so expect 80-90% of copy bandwidth for V >= 1024 and N >= a few hundred rows (fewer
// rows leave SMs idle: one block per row). The backward reads x and writes dx, 8 bytes and one
// exp per element: again 80-90% of copy bandwidth. Forward plus backward move 12 bytes per
// logit, against 24 or more for logSoftmax, gather and a composed backward.
#include <string>

#include "cpu/fused.h"
#include "cuda/block_reduce.cuh"
#include "cuda/rows.cuh"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace softmax_xent {

template <class T>
struct Online {
  T m, s, sum;  // running max, sum of exp(x - m), sum of x
};

template <class T>
__device__ __forceinline__ T rescaled(T s, T from, T to) {  // s exp(from - to), 0 stays 0 (no -inf - -inf)
  return s == T(0) ? T(0) : s * m_exp(from - to);
}

template <class T>
struct OnlineR {
  using S = Online<T>;
  __device__ S init() const { return {extreme_start<T, true>(), T(0), T(0)}; }
  __device__ S shfl(S a, unsigned d) const { return {shfl_down(a.m, d), shfl_down(a.s, d), shfl_down(a.sum, d)}; }
  __device__ void step(S& a, T x) const {
    if (x > a.m) {
      a.s = rescaled(a.s, a.m, x) + T(1);
      a.m = x;
    } else if (x != extreme_start<T, true>()) {  // exp(-inf) adds nothing (and -inf - -inf would be NaN)
      a.s += m_exp(x - a.m);
    }
    a.sum += x;
  }
  template <int P> __device__ void combine(S& a, const S& b) const {
    const T m = b.m > a.m ? b.m : a.m;
    a.s = rescaled(a.s, a.m, m) + rescaled(b.s, b.m, m);
    a.m = m;
    a.sum += b.sum;
  }
};

// The row's target, or the ignore index; an out-of-range one raises the flag (thread 0 only).
__device__ __forceinline__ int64_t target_of(Rows<const int32_t> targets, int64_t r, int64_t ignore, int64_t V,
                                             DeviceFlag flag) {
  const int64_t t = targets.data[r * targets.col];
  if (t != ignore && (t < 0 || t >= V)) {
    if (threadIdx.x == 0) flag.raise(int(t));
    return ignore;
  }
  return t;
}

// T is the logits' (and dlogits') storage type; A = C<T> the compute type, also that of the loss,
// lse and dloss rows (f32 for bf16 and f16 logits).
template <class T>
__global__ void forward_kernel(Rows<C<T>> loss, Rows<C<T>> lse, Rows<const T> x, Rows<const int32_t> targets, int64_t N,
                               int64_t V, int64_t ignore, C<T> smoothing, bool vec, DeviceFlag flag) {
  using A = C<T>;
  const OnlineR<A> online;
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* xr = x.at(r);
    Online<A> st = online.init();
    for_chunks<T>(V, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      A v[n];
      load_n<n>(xr, j, x.col, v);
      for (int k = 0; k < n; k++) online.step(st, v[k]);
    });
    st = block_reduce<0>(online, st);
    if (threadIdx.x != 0) continue;
    const int64_t t = target_of(targets, r, ignore, V, flag);
    const A l = st.m + m_log(st.s);
    A out = A(0);
    if (t != ignore) {
      out = (A(1) - smoothing) * (l - A(load(xr[t * x.col])));
      if (smoothing != A(0)) out += smoothing * (l - st.sum / A(V));
    }
    loss.data[r * loss.col] = out;
    lse.data[r * lse.col] = l;
  }
}

template <class T>
__global__ void backward_kernel(Rows<T> dx, Rows<const C<T>> dloss, Rows<const T> x, Rows<const C<T>> lse,
                                Rows<const int32_t> targets, int64_t N, int64_t V, int64_t ignore, C<T> smoothing, bool vec,
                                DeviceFlag flag) {
  using A = C<T>;
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = target_of(targets, r, ignore, V, flag);
    const T* xr = x.at(r);
    T* dr = dx.at(r);
    const bool ignored = t == ignore;
    const A g = ignored ? A(0) : dloss.data[r * dloss.col], l = lse.data[r * lse.col];
    const A sub = smoothing / A(V), hit = (A(1) - smoothing) * g;
    for_chunks<T>(V, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      A v[n];
      if (ignored) {
        for (int k = 0; k < n; k++) v[k] = A(0);
      } else {
        load_n<n>(xr, j, x.col, v);
        for (int k = 0; k < n; k++) {
          v[k] = (m_exp(v[k] - l) - sub) * g;
          if (j + k == t) v[k] -= hit;
        }
      }
      store_n<n>(dr, j, dx.col, v);
    });
  }
}

unsigned row_threads(int64_t V, bool vec, int64_t esize) { return threads_for(vec ? (V * esize + 15) / 16 : V); }

void check_flag(const FlagBuffer& flag, int64_t V) {
  int t = 0;
  if (flag.raised(&t))
    fail(ErrorKind::Index, "crossEntropy: target " + std::to_string(t) + " is out of range for " + std::to_string(V) + " classes");
}

template <class T>
void forward(const View& loss, const View& lse, const View& x, const View& targets, int64_t ignore, double smoothing) {
  using A = C<T>;
  const int64_t N = x.shape[0], V = x.shape[1];
  if (N == 0) return;
  const bool vec = vectorizable({&x}, sizeof(T));
  FlagBuffer flag;
  launch<forward_kernel<T>>(dim3(grid_for(N)), dim3(row_threads(V, vec, sizeof(T))), 0, Stream{}, rows_of<A>(&loss),
                            rows_of<A>(&lse), rows_of<const T>(&x), rows_of<const int32_t>(&targets), N, V, ignore,
                            A(smoothing), vec, flag.flag());
  check_flag(flag, V);
}

template <class T>
void backward(const View& dx, const View& dloss, const View& x, const View& lse, const View& targets, int64_t ignore,
              double smoothing) {
  using A = C<T>;
  const int64_t N = x.shape[0], V = x.shape[1];
  if (N == 0) return;
  const bool vec = vectorizable({&dx, &x}, sizeof(T));
  FlagBuffer flag;
  launch<backward_kernel<T>>(dim3(grid_for(N)), dim3(row_threads(V, vec, sizeof(T))), 0, Stream{}, rows_of<T>(&dx),
                             rows_of<const A>(&dloss), rows_of<const T>(&x), rows_of<const A>(&lse),
                             rows_of<const int32_t>(&targets), N, V, ignore, A(smoothing), vec, flag.flag());
  check_flag(flag, V);
}

}  // namespace softmax_xent

void cross_entropy(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore,
                   double smoothing) {
  dispatch_float(logits.dtype, "crossEntropy",
                 [&](auto t) { softmax_xent::forward<decltype(t)>(loss, lse, logits, targets, ignore, smoothing); });
}

void cross_entropy_backward(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                            const View& targets, int64_t ignore, double smoothing) {
  dispatch_float(logits.dtype, "crossEntropyBackward", [&](auto t) {
    softmax_xent::backward<decltype(t)>(dlogits, dloss, logits, lse, targets, ignore, smoothing);
  });
}

}  // namespace emu::EMU_DEVICE_NS
