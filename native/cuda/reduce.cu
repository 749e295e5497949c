// reduce.cu: reductions over the trailing dims of a View (sum, mean, max, min, prod, argmax,
// argmin, all, any, var, logsumexp) and softmax / log-softmax along a dim.
//
// One block per output (a grid-stride loop over outputs): thread t folds the reduced elements
// t, t + blockDim, ... in order into its state, then the block combines the states in a fixed
// tree (block_reduce.cuh: warp shuffles, then the warps' results in shared memory). When the
// reduced elements of each output are contiguous and aligned (a reduction over the last dims of a
// contiguous tensor), thread t takes 16-byte packs t, t + blockDim, ... instead (fold).
// The summation order depends only on the shapes, never on timing or thread order: results are
// deterministic, and the emulator's thread orders all give the same bits. The reducers mirror
// cpu/kernels/reduce.cpp, the reference: float sums, products, means, variances and logsumexp
// accumulate in double, i32 sums and products wrap (uint32), max/min and the arg reductions
// propagate NaN (the first NaN wins an arg reduction), ties give the first index; var is
// two-pass and logsumexp subtracts the max first (an infinite max replaced by 0).
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "cuda/block_reduce.cuh"
#include "cuda/rows.cuh"
#include "cuda/strided.cuh"
#include "cpu/kernels.h"

namespace emu::EMU_DEVICE_NS {

void fill(const View& out, double value);  // elementwise.cu

namespace reduction {

using cpu::ReduceOp;

// ---- reducers: a state S, step<P>(s, x, i) in pass P, combine<P>(a, b), mid(s, n), finish(s, n);
// shfl(s, delta) moves a state between lanes, field by field. ------------------------------------

template <class A, bool kMean>  // A: the accumulator (double, or uint32 for wrapping i32 sums)
struct SumR {
  using S = A;
  static constexpr int passes = 1;
  __device__ S init() const { return S(0); }
  template <int P, class X> __device__ void step(S& s, X x, long long) const { s += S(x); }
  template <int P> __device__ void combine(S& a, const S& b) const { a += b; }
  __device__ void mid(S&, long long) const {}
  __device__ S shfl(S s, unsigned d) const { return shfl_down(s, d); }
  __device__ auto finish(const S& s, long long n) const {
    if constexpr (kMean) return s / double(n);
    else return s;
  }
};

template <class A>
struct ProdR {
  using S = A;
  static constexpr int passes = 1;
  __device__ S init() const { return S(1); }
  template <int P, class X> __device__ void step(S& s, X x, long long) const { s *= S(x); }
  template <int P> __device__ void combine(S& a, const S& b) const { a *= b; }
  __device__ void mid(S&, long long) const {}
  __device__ S shfl(S s, unsigned d) const { return shfl_down(s, d); }
  __device__ S finish(const S& s, long long) const { return s; }
};

template <class V, bool kMax>
struct ExtremeR {
  using S = V;
  static constexpr int passes = 1;
  __device__ S init() const { return extreme_start<V, kMax>(); }
  template <int P> __device__ void step(S& s, V x, long long) const { s = better<kMax>(x, s) ? x : s; }
  template <int P> __device__ void combine(S& a, const S& b) const { a = better<kMax>(b, a) ? b : a; }
  __device__ void mid(S&, long long) const {}
  __device__ S shfl(S s, unsigned d) const { return shfl_down(s, d); }
  __device__ S finish(const S& s, long long) const { return s; }
};

template <class V>
struct ArgState {
  V v;
  long long i;
};

// Arg reductions start at (extreme, index 0): that start survives only when every element equals
// the extreme, and then index 0 is the answer.
template <class V, bool kMax>
struct ArgR {
  using S = ArgState<V>;
  static constexpr int passes = 1;
  __device__ S init() const { return {extreme_start<V, kMax>(), 0}; }
  template <int P> __device__ void step(S& s, V x, long long i) const {
    if (is_nan(x) ? !is_nan(s.v) : (kMax ? x > s.v : x < s.v)) s = {x, i};  // indices rise: keeps the first
  }
  template <int P> __device__ void combine(S& a, const S& b) const {
    const bool an = is_nan(a.v), bn = is_nan(b.v);
    bool take;
    if (an || bn) take = bn && (!an || b.i < a.i);
    else take = (kMax ? b.v > a.v : b.v < a.v) || (b.v == a.v && b.i < a.i);
    if (take) a = b;
  }
  __device__ void mid(S&, long long) const {}
  __device__ S shfl(S s, unsigned d) const { return {shfl_down(s.v, d), shfl_down(s.i, d)}; }
  __device__ int32_t finish(const S& s, long long) const { return int32_t(s.i); }
};

template <bool kAll>
struct LogicR {
  using S = bool;
  static constexpr int passes = 1;
  __device__ S init() const { return kAll; }
  template <int P, class X> __device__ void step(S& s, X x, long long) const {
    s = kAll ? (s && x != X(0)) : (s || x != X(0));  // NaN counts as true
  }
  template <int P> __device__ void combine(S& a, const S& b) const { a = kAll ? (a && b) : (a || b); }
  __device__ void mid(S&, long long) const {}
  __device__ S shfl(S s, unsigned d) const { return shfl_down(s, d); }
  __device__ S finish(const S& s, long long) const { return s; }
};

// Two-pass reducers keep the pass-0 result (mean or max) in m, beside the pass-1 sum.
struct TwoPass {
  double m, acc;
};

struct VarR {
  using S = TwoPass;
  static constexpr int passes = 2;
  double correction;
  __device__ S init() const { return {0.0, 0.0}; }
  template <int P, class X> __device__ void step(S& s, X x, long long) const {
    if constexpr (P == 0) {
      s.acc += double(x);
    } else {
      const double d = double(x) - s.m;
      s.acc += d * d;
    }
  }
  template <int P> __device__ void combine(S& a, const S& b) const { a.acc += b.acc; }
  __device__ void mid(S& s, long long n) const { s = {s.acc / double(n), 0.0}; }
  __device__ S shfl(S s, unsigned d) const { return {shfl_down(s.m, d), shfl_down(s.acc, d)}; }
  __device__ double finish(const S& s, long long n) const {
    const double dof = double(n) - correction;
    return s.acc / (dof > 0 ? dof : 0.0);  // 0/0 = NaN, x/0 = inf, as PyTorch
  }
};

struct LogSumExpR {
  using S = TwoPass;
  static constexpr int passes = 2;
  __device__ S init() const { return {extreme_start<double, true>(), 0.0}; }
  template <int P, class X> __device__ void step(S& s, X x, long long) const {
    if constexpr (P == 0) s.m = better<true>(double(x), s.m) ? double(x) : s.m;
    else s.acc += ::exp(double(x) - s.m);
  }
  template <int P> __device__ void combine(S& a, const S& b) const {
    if constexpr (P == 0) a.m = better<true>(b.m, a.m) ? b.m : a.m;
    else a.acc += b.acc;
  }
  // An infinite max would give inf - inf = NaN; 0 gives log(sum) = +inf or -inf instead.
  __device__ void mid(S& s, long long) const {
    const bool inf = s.m == extreme_start<double, true>() || s.m == extreme_start<double, false>();
    s = {inf ? 0.0 : s.m, 0.0};
  }
  __device__ S shfl(S s, unsigned d) const { return {shfl_down(s.m, d), shfl_down(s.acc, d)}; }
  __device__ double finish(const S& s, long long) const { return ::log(s.acc) + s.m; }
};

// The kept dims (outputs, row-major) and the reduced dims of the input, each collapsed. vec: the
// reduced elements of every output are contiguous and start 16-byte aligned (fold's vector path).
struct Plan {
  Strided<1> kept, reduced;
  long long nout, rnumel;
  bool vec;
};

// Elements per 16-byte pack of the vector path.
template <class T> constexpr int kPack = int(16 / sizeof(T));

// Thread t folds its elements into s in rising index order. The vector path gives it whole packs
// t, t + blockDim, ... (one 16-byte load each), then the tail after the last pack one element at a
// time; the strided path elements t, t + blockDim, ... through the reduced dims' strides. Either
// way the assignment depends only on the shape, so the result does not depend on timing.
template <int P, class R, class T>
__device__ void fold(const R& r, const Plan& pl, const T* x, typename R::S& s) {
  if (pl.vec) {
    constexpr int L = kPack<T>;
    const long long packs = pl.rnumel / L;
    for (long long c = threadIdx.x; c < packs; c += blockDim.x) {
      const Pack<T, L> p = reinterpret_cast<const Pack<T, L>*>(x)[c];
#pragma unroll
      for (int k = 0; k < L; k++) r.template step<P>(s, load(p.v[k]), c * L + k);
    }
    for (long long j = packs * L + threadIdx.x; j < pl.rnumel; j += blockDim.x) r.template step<P>(s, load(x[j]), j);
    return;
  }
  for (long long j = threadIdx.x; j < pl.rnumel; j += blockDim.x) {
    int64_t off[1];
    pl.reduced.offsets(j, off);
    r.template step<P>(s, load(x[off[0]]), j);
  }
}

template <class R, class T, class TO>
__global__ void reduce_kernel(R r, Plan pl, const T* in, TO* out) {
  for (long long o = blockIdx.x; o < pl.nout; o += gridDim.x) {
    int64_t base[1];
    pl.kept.offsets(o, base);
    const T* x = in + base[0];
    typename R::S s = r.init();
    fold<0>(r, pl, x, s);
    s = block_reduce<0>(r, s);
    if constexpr (R::passes == 2) {
      r.mid(s, pl.rnumel);
      fold<1>(r, pl, x, s);
      s = block_reduce<1>(r, s);
    }
    if (threadIdx.x == 0) out[o] = cvt<TO>(r.finish(s, pl.rnumel));
  }
}

template <class R, class T, class TO>
void run(const R& r, const Plan& pl, const View& in, const View& out) {
  launch<reduce_kernel<R, T, TO>>(dim3(grid_for(pl.nout)), dim3(threads_for(pl.rnumel)), 0, Stream{}, r, pl,
                                  static_cast<const T*>(in.data), static_cast<TO*>(out.data));
}

// A View of dims [first, last) of v (shape and strides only), for Strided::make.
View dims_of(const View& v, int first, int last) {
  View d;
  d.dtype = v.dtype;
  d.ndim = last - first;
  for (int k = first; k < last; k++) {
    d.shape[k - first] = v.shape[k];
    d.strides[k - first] = v.strides[k];
  }
  return d;
}

const char* op_name(ReduceOp op) {
  static const char* const names[] = {"sum", "mean", "max", "min", "prod", "argmax",
                                      "argmin", "all", "any", "var", "logsumexp"};
  return names[int(op)];
}

bool supported(ReduceOp op, DType d) {
  if (op == ReduceOp::All || op == ReduceOp::Any) return true;
  if (d == DType::Bool) return false;
  if (d == DType::I32) return op != ReduceOp::Mean && op != ReduceOp::Var && op != ReduceOp::LogSumExp;
  return true;
}

// ---- softmax ------------------------------------------------------------------------------------

// One block per line along the softmax dim: the max, then the sum of exp(x - max) in double, then
// the scaled (or shifted, for log) values. Exponentials in the compute type, as on the CPU. The
// three passes read the line through rows.cuh's chunks: 16 bytes at a time (4 f32, 8 bf16) when
// the line is contiguous in both tensors and every line starts aligned (vec), else one element at
// a time through the strides. The line is read three times but from HBM once for lines up to a
// few tens of KiB (the later passes hit L1/L2).
template <class T>
__global__ void softmax_kernel(Strided<2> lines, long long nlines, long long len, int64_t sx, int64_t sy, const T* in,
                               T* out, bool log, bool vec) {
  using V = C<T>;
  const ExtremeR<V, true> max_r;
  const SumR<double, false> sum_r;
  for (long long l = blockIdx.x; l < nlines; l += gridDim.x) {
    int64_t off[2];
    lines.offsets(l, off);
    T* y = out + off[0];
    const T* x = in + off[1];
    V m = max_r.init();
    for_chunks<T>(len, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      V v[n];
      load_n<n>(x, j, sx, v);
      for (int k = 0; k < n; k++) max_r.template step<0>(m, v[k], j + k);
    });
    m = block_reduce<0>(max_r, m);
    double sum = 0;
    for_chunks<T>(len, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      V v[n];
      load_n<n>(x, j, sx, v);
      for (int k = 0; k < n; k++) sum += double(m_exp(v[k] - m));
    });
    sum = block_reduce<0>(sum_r, sum);
    const double shift = log ? double(m) + ::log(sum) : 0, inv = log ? 0 : 1.0 / sum;
    for_chunks<T>(len, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      V v[n];
      load_n<n>(x, j, sx, v);
      for (int k = 0; k < n; k++) v[k] = log ? V(double(v[k]) - shift) : V(double(m_exp(v[k] - m)) * inv);
      store_n<n>(y, j, sy, v);
    });
  }
}

}  // namespace reduction

// ---- the kernel-table entries -------------------------------------------------------------------

void reduce(cpu::ReduceOp op, const View& out, const View& in, int nkeep, double correction) {
  using cpu::ReduceOp;
  using namespace reduction;
  if (int(op) < 0 || int(op) >= int(ReduceOp::Count)) fail(ErrorKind::Value, "reduce: unknown op code " + std::to_string(int(op)));
  const std::string name = op_name(op);
  if (nkeep < 0 || nkeep > in.ndim) fail(ErrorKind::Value, name + ": nkeep " + std::to_string(nkeep) + " is out of range");
  if (!supported(op, in.dtype)) fail(ErrorKind::DType, name + ": not defined for " + dtype_name(in.dtype));
  const bool arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
  const bool logic = op == ReduceOp::All || op == ReduceOp::Any;
  const DType want = arg ? DType::I32 : logic ? DType::Bool : in.dtype;
  if (out.dtype != want) fail(ErrorKind::DType, name + ": output must be " + dtype_name(want) + ", got " + dtype_name(out.dtype));
  Plan pl;
  const View kept = dims_of(in, 0, nkeep), reduced = dims_of(in, nkeep, in.ndim);
  const View* kv[1] = {&kept};
  const View* rv[1] = {&reduced};
  pl.kept = Strided<1>::make(kv);
  pl.reduced = Strided<1>::make(rv);
  pl.nout = kept.numel();
  pl.rnumel = reduced.numel();
  if (out.numel() != pl.nout) fail(ErrorKind::Shape, name + ": output has the wrong size");
  if (!out.contiguous()) fail(ErrorKind::Shape, name + ": output must be contiguous");
  if (arg && pl.rnumel > 2147483647) fail(ErrorKind::Value, name + ": too many elements for an i32 index");
  if (pl.rnumel == 0) {
    switch (op) {
      case ReduceOp::Sum: case ReduceOp::Any: return fill(out, 0);
      case ReduceOp::Prod: case ReduceOp::All: return fill(out, 1);
      case ReduceOp::Mean: case ReduceOp::Var: return fill(out, std::numeric_limits<double>::quiet_NaN());
      case ReduceOp::LogSumExp: return fill(out, -std::numeric_limits<double>::infinity());
      default: fail(ErrorKind::Value, name + ": cannot reduce over an empty dimension");
    }
  }
  if (pl.nout == 0) return;
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    using V = C<T>;
    pl.vec = pl.reduced.ndim == 1 && pl.reduced.strides[0][0] == 1 && reinterpret_cast<uintptr_t>(in.data) % 16 == 0;
    for (int d = 0; d < pl.kept.ndim; d++) pl.vec = pl.vec && pl.kept.strides[0][d] % kPack<T> == 0;
    if (op == ReduceOp::All) return run<LogicR<true>, T, bool>({}, pl, in, out);
    if (op == ReduceOp::Any) return run<LogicR<false>, T, bool>({}, pl, in, out);
    if constexpr (!std::is_same_v<T, bool>) {  // supported() let only all/any through for bool
      using A = std::conditional_t<std::is_same_v<T, int32_t>, uint32_t, double>;
      switch (op) {
        case ReduceOp::Sum: return run<SumR<A, false>, T, T>({}, pl, in, out);
        case ReduceOp::Prod: return run<ProdR<A>, T, T>({}, pl, in, out);
        case ReduceOp::Max: return run<ExtremeR<V, true>, T, T>({}, pl, in, out);
        case ReduceOp::Min: return run<ExtremeR<V, false>, T, T>({}, pl, in, out);
        case ReduceOp::ArgMax: return run<ArgR<V, true>, T, int32_t>({}, pl, in, out);
        case ReduceOp::ArgMin: return run<ArgR<V, false>, T, int32_t>({}, pl, in, out);
        default: break;
      }
      if constexpr (std::is_floating_point_v<V>) {  // supported() kept i32 out of these
        switch (op) {
          case ReduceOp::Mean: return run<SumR<double, true>, T, T>({}, pl, in, out);
          case ReduceOp::Var: return run<VarR, T, T>(VarR{correction}, pl, in, out);
          case ReduceOp::LogSumExp: return run<LogSumExpR, T, T>({}, pl, in, out);
          default: break;
        }
      }
    }
  });
}

void softmax(const View& out, const View& in, int dim, bool log) {
  using namespace reduction;
  const char* op = log ? "log_softmax" : "softmax";
  if (dim < 0 || dim >= (in.ndim > 1 ? in.ndim : 1))
    fail(ErrorKind::Shape, std::string(op) + ": dim " + std::to_string(dim) + " is out of range for " + std::to_string(in.ndim) + " dims");
  bool same = out.ndim == in.ndim && out.dtype == in.dtype;
  for (int d = 0; same && d < in.ndim; d++) same = out.shape[d] == in.shape[d];
  if (!same) fail(ErrorKind::Shape, std::string(op) + ": output must have the input's shape and dtype");
  // The lines: every dim but `dim`, walked in out and in together.
  View lo, li;
  lo.ndim = li.ndim = 0;
  for (int d = 0; d < in.ndim; d++) {
    if (d == dim) continue;
    lo.shape[lo.ndim] = li.shape[li.ndim] = in.shape[d];
    lo.strides[lo.ndim++] = out.strides[d];
    li.strides[li.ndim++] = in.strides[d];
  }
  const long long len = in.ndim ? in.shape[dim] : 1, nlines = li.numel();
  if (len == 0 || nlines == 0) return;
  const View* v[2] = {&lo, &li};
  const int64_t sx = in.ndim ? in.strides[dim] : 0, sy = out.ndim ? out.strides[dim] : 0;
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    constexpr int64_t L = kVec<T>;
    bool vec = sx == 1 && sy == 1 && reinterpret_cast<uintptr_t>(in.data) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(out.data) % 16 == 0;
    for (int d = 0; vec && d < li.ndim; d++) vec = li.shape[d] == 1 || (li.strides[d] % L == 0 && lo.strides[d] % L == 0);
    launch<softmax_kernel<T>>(dim3(grid_for(nlines)), dim3(threads_for(vec ? (len + L - 1) / L : len)), 0, Stream{},
                              Strided<2>::make(v), nlines, len, sx, sy, static_cast<const T*>(in.data),
                              static_cast<T*>(out.data), log, vec);
  });
}

}  // namespace emu::EMU_DEVICE_NS
