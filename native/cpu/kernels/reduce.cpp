// reduce.cpp: reductions (sum, mean, max, min, prod, argmax, argmin, all, any, var, logsumexp),
// softmax / log-softmax and cumsum, on any strided View.
//
// reduce() keeps the leading `nkeep` dims of `in` and folds the rest. Both groups of dims are
// first collapsed (size-1 dims dropped, neighbours that are contiguous with each other merged),
// so the reduced elements of one output become a few "runs": the innermost reduced dim, walked
// with one stride (a plain contiguous loop when that stride is 1). Each op is a small reducer
// struct (state, step, combine, finish) and three drivers share them:
//  - row: one output at a time, its runs folded into kLanes interleaved partial states that are
//    combined at the end, which breaks the add dependency chain so the loop vectorises;
//  - columns: when neighbouring outputs are neighbours in memory (reducing over a leading dim),
//    a block of outputs is folded together, innermost loop over the block;
//  - split: when there are too few outputs to occupy the pool and many elements each, every
//    output is cut into fixed kChunk pieces folded in parallel and combined in piece order.
// Which driver runs, and so the summation order, depends only on the shapes and strides, never
// on the thread count or timing: results are deterministic.
//
// Float sums, products, means, variances and logsumexp accumulate in double (f32/bf16 too); i32
// sums and products wrap as int32 (computed in uint32). Max/min and the arg reductions propagate
// NaN as PyTorch does (the first NaN wins an arg reduction); ties give the first index.
// var is two-pass (mean, then squared deviations) and divides by max(0, n - correction);
// logsumexp subtracts the max first (an infinite max is replaced by 0, as PyTorch does).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>

#include "../kernels.h"
#include "../thread_pool.h"
#include "lanes.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

constexpr int kLanes = 8;                // interleaved partial states in the row driver
constexpr int64_t kBlock = 64;           // outputs folded together by the column driver
constexpr int64_t kChunk = 32768;        // elements per piece in the split driver
constexpr int64_t kSplitBelow = 32;      // the split driver runs when there are fewer outputs
constexpr int64_t kGrainWork = 32768;    // elements worth handing to one thread at a time

const char* op_name(ReduceOp op) {
  static const char* const names[] = {"sum", "mean", "max", "min", "prod", "argmax",
                                      "argmin", "all", "any", "var", "logsumexp"};
  int i = int(op);
  return i >= 0 && i < int(ReduceOp::Count) ? names[i] : "reduce";
}

template <class V>
inline bool is_nan(V x) { return x != x; }  // false for integers, no call for floats

// ---- Reducers -------------------------------------------------------------------------------
// A reducer folds the elements of one output into a state S, in one pass or two (passes == 2:
// mid(s, n) turns the finished pass-0 state into the pass-1 start). step<P>(s, x, i) takes the
// element x with flat index i (row-major over the reduced dims) in pass P; combine<P>(a, b)
// merges two partial states of pass P; finish(s, n) gives the output value.

template <class A, bool kMean>  // A: the accumulator (double, or uint32 for wrapping i32 sums)
struct SumR {
  using S = A;
  static constexpr int passes = 1;
  S init() const { return S(0); }
  template <int P, class X> void step(S& s, X x, int64_t) const { s += S(x); }
  template <int P> void combine(S& a, const S& b) const { a += b; }
  auto finish(const S& s, int64_t n) const {
    if constexpr (kMean) return s / double(n);
    else return s;
  }
};

template <class A>
struct ProdR {
  using S = A;
  static constexpr int passes = 1;
  S init() const { return S(1); }
  template <int P, class X> void step(S& s, X x, int64_t) const { s *= S(x); }
  template <int P> void combine(S& a, const S& b) const { a *= b; }
  S finish(const S& s, int64_t) const { return s; }
};

// The start value of a max (kMax) or min: -inf / +inf, or the extreme i32.
template <class V, bool kMax>
constexpr V extreme_start() {
  if constexpr (std::numeric_limits<V>::has_infinity)
    return kMax ? -std::numeric_limits<V>::infinity() : std::numeric_limits<V>::infinity();
  else
    return kMax ? std::numeric_limits<V>::lowest() : std::numeric_limits<V>::max();
}

// x replaces s if it is NaN or strictly better; a NaN s is never replaced (NaN propagates).
template <bool kMax, class V>
inline bool better(V x, V s) { return is_nan(x) || (kMax ? x > s : x < s); }

template <class V, bool kMax>
struct ExtremeR {
  using S = V;
  static constexpr int passes = 1;
  S init() const { return extreme_start<V, kMax>(); }
  template <int P> void step(S& s, V x, int64_t) const { s = better<kMax>(x, s) ? x : s; }
  template <int P> void combine(S& a, const S& b) const { a = better<kMax>(b, a) ? b : a; }
  S finish(const S& s, int64_t) const { return s; }
};

// Arg reductions start at (extreme, index 0): that start only survives when every element
// equals the extreme, and then index 0 is the right answer.
template <class V, bool kMax>
struct ArgR {
  struct S {
    V v;
    int64_t i;
  };
  static constexpr int passes = 1;
  S init() const { return {extreme_start<V, kMax>(), 0}; }
  template <int P> void step(S& s, V x, int64_t i) const {
    // Indices reach one state in increasing order, so "strictly better" keeps the first one.
    if (is_nan(x) ? !is_nan(s.v) : (kMax ? x > s.v : x < s.v)) s = {x, i};
  }
  template <int P> void combine(S& a, const S& b) const {
    const bool an = is_nan(a.v), bn = is_nan(b.v);
    bool take;
    if (an || bn) take = bn && (!an || b.i < a.i);
    else take = (kMax ? b.v > a.v : b.v < a.v) || (b.v == a.v && b.i < a.i);
    if (take) a = b;
  }
  int32_t finish(const S& s, int64_t) const { return int32_t(s.i); }
};

template <bool kAll>
struct LogicR {
  using S = bool;
  static constexpr int passes = 1;
  S init() const { return kAll; }
  template <int P, class X> void step(S& s, X x, int64_t) const {
    s = kAll ? (s && x != X(0)) : (s || x != X(0));  // NaN counts as true
  }
  template <int P> void combine(S& a, const S& b) const { a = kAll ? (a && b) : (a || b); }
  S finish(const S& s, int64_t) const { return s; }
};

// Two-pass reducers keep the pass-0 result (mean or max) in m, beside the pass-1 sum.
struct TwoPass {
  double m, acc;
};

struct VarR {
  using S = TwoPass;
  static constexpr int passes = 2;
  double correction;
  S init() const { return {0.0, 0.0}; }
  template <int P, class X> void step(S& s, X x, int64_t) const {
    if constexpr (P == 0) {
      s.acc += double(x);
    } else {
      const double d = double(x) - s.m;
      s.acc += d * d;
    }
  }
  template <int P> void combine(S& a, const S& b) const { a.acc += b.acc; }
  void mid(S& s, int64_t n) const { s = {s.acc / double(n), 0.0}; }
  double finish(const S& s, int64_t n) const {
    const double dof = double(n) - correction;
    return s.acc / (dof > 0 ? dof : 0.0);  // 0/0 = NaN, x/0 = inf, as PyTorch
  }
};

struct LogSumExpR {
  using S = TwoPass;
  static constexpr int passes = 2;
  S init() const { return {-std::numeric_limits<double>::infinity(), 0.0}; }
  template <int P, class X> void step(S& s, X x, int64_t) const {
    if constexpr (P == 0) s.m = better<true>(double(x), s.m) ? double(x) : s.m;
    else s.acc += std::exp(double(x) - s.m);
  }
  template <int P> void combine(S& a, const S& b) const {
    if constexpr (P == 0) a.m = better<true>(b.m, a.m) ? b.m : a.m;
    else a.acc += b.acc;
  }
  // An infinite max would give inf - inf = NaN; 0 gives log(sum) = +inf or -inf instead.
  void mid(S& s, int64_t) const { s = {std::isinf(s.m) ? 0.0 : s.m, 0.0}; }
  double finish(const S& s, int64_t) const { return std::log(s.acc) + s.m; }
};

// ---- Layout ---------------------------------------------------------------------------------

// The kept and the reduced dims of `in`, each collapsed; never empty (a lone size-1 dim stands
// for none).
struct Plan {
  int nk = 0, nr = 0;
  int64_t kshape[kMaxDims], kstride[kMaxDims];
  int64_t rshape[kMaxDims], rstride[kMaxDims];
  int64_t nout = 1, rnumel = 1;
};

int collapse(const int64_t* shape, const int64_t* strides, int n, int64_t* oshape, int64_t* ostrides) {
  int m = 0;
  for (int d = 0; d < n; d++) {
    if (shape[d] == 1) continue;
    if (m > 0 && ostrides[m - 1] == strides[d] * shape[d]) {
      oshape[m - 1] *= shape[d];
      ostrides[m - 1] = strides[d];
    } else {
      oshape[m] = shape[d];
      ostrides[m] = strides[d];
      m++;
    }
  }
  if (m == 0) {
    oshape[0] = 1;
    ostrides[0] = 0;
    m = 1;
  }
  return m;
}

Plan make_plan(const View& in, int nkeep) {
  Plan pl;
  pl.nk = collapse(in.shape, in.strides, nkeep, pl.kshape, pl.kstride);
  pl.nr = collapse(in.shape + nkeep, in.strides + nkeep, in.ndim - nkeep, pl.rshape, pl.rstride);
  for (int d = 0; d < in.ndim; d++) (d < nkeep ? pl.nout : pl.rnumel) *= in.shape[d];
  return pl;
}

// Walks output indices in order from `o`, tracking the input offset of each output.
struct KeptWalker {
  const Plan& pl;
  int64_t coord[kMaxDims];
  int64_t off = 0;
  KeptWalker(const Plan& p, int64_t o) : pl(p) {
    for (int d = pl.nk - 1; d >= 0; d--) {
      coord[d] = o % pl.kshape[d];
      o /= pl.kshape[d];
      off += coord[d] * pl.kstride[d];
    }
  }
  void next() {
    for (int d = pl.nk - 1; d >= 0; d--) {
      off += pl.kstride[d];
      if (++coord[d] < pl.kshape[d]) return;
      off -= pl.kshape[d] * pl.kstride[d];
      coord[d] = 0;
    }
  }
};

// Walks the runs covering flat reduced indices [begin, end): next() gives a run's offset, the
// flat index of its first element and its length; its elements sit at offset + i * (innermost
// reduced stride). A plain loop rather than a callback, so the callers' accumulators stay local
// (and in registers: this code is built with -fno-strict-aliasing).
struct RunWalker {
  const Plan& pl;
  int64_t coord[kMaxDims];
  int64_t off = 0, idx, end;
  RunWalker(const Plan& p, int64_t begin, int64_t stop) : pl(p), idx(begin), end(stop) {
    for (int d = pl.nr - 1; d >= 0; d--) {
      coord[d] = begin % pl.rshape[d];
      begin /= pl.rshape[d];
      off += coord[d] * pl.rstride[d];
    }
  }
  bool next(int64_t& offset, int64_t& first, int64_t& n) {
    if (idx >= end) return false;
    const int last = pl.nr - 1;
    offset = off;
    first = idx;
    n = std::min(pl.rshape[last] - coord[last], end - idx);
    idx += n;
    off -= coord[last] * pl.rstride[last];
    coord[last] = 0;
    for (int d = last - 1; d >= 0; d--) {
      off += pl.rstride[d];
      if (++coord[d] < pl.rshape[d]) break;
      off -= pl.rshape[d] * pl.rstride[d];
      coord[d] = 0;
    }
    return true;
  }
};

// ---- Drivers --------------------------------------------------------------------------------

// Folds flat reduced indices [begin, end) of the output whose elements start at p, from `start`.
// Element i of a run goes to lane i % kLanes (a run's tail to lane 0), so every lane still sees
// increasing indices; the lanes are combined at the end in a fixed pairwise tree.
template <int P, class R, class T>
typename R::S fold(const R& r, const Plan& pl, const T* p, const typename R::S& start, int64_t begin, int64_t end) {
  typename R::S lane[kLanes];
  for (auto& s : lane) s = start;
  const int64_t st = pl.rstride[pl.nr - 1];
  RunWalker runs(pl, begin, end);
  for (int64_t off, first, n; runs.next(off, first, n);) {
    const T* q = p + off;
    int64_t i = 0;
    if (st == 1) {
      for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; l++) r.template step<P>(lane[l], load(q[i + l]), first + i + l);
    } else {
      for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; l++) r.template step<P>(lane[l], load(q[(i + l) * st]), first + i + l);
    }
    for (; i < n; i++) r.template step<P>(lane[0], load(q[i * st]), first + i);
  }
  for (int w = 1; w < kLanes; w *= 2)  // a pairwise tree: 3 dependent steps, not 7
    for (int l = 0; l < kLanes; l += 2 * w) r.template combine<P>(lane[l], lane[l + w]);
  return lane[0];
}

// Folds all reduced elements of `blk` neighbouring outputs (unit stride apart) starting at p.
template <int P, class R, class T>
void fold_columns(const R& r, const Plan& pl, const T* p, typename R::S* st, int64_t blk) {
  const int64_t rs = pl.rstride[pl.nr - 1];
  RunWalker runs(pl, 0, pl.rnumel);
  for (int64_t off, first, n; runs.next(off, first, n);) {
    for (int64_t i = 0; i < n; i++) {
      const T* q = p + off + i * rs;
      for (int64_t j = 0; j < blk; j++) r.template step<P>(st[j], load(q[j]), first + i);
    }
  }
}

template <class R, class T, class TO>
void reduce_split(const R& r, const Plan& pl, const T* in, TO* out) {
  using S = typename R::S;
  const int64_t n = pl.rnumel, chunks = (n + kChunk - 1) / kChunk;
  // Plain arrays, not std::vector: S may be bool, and std::vector<bool> packs bits, which
  // threads writing neighbouring pieces would race on.
  std::unique_ptr<S[]> part(new S[size_t(pl.nout * chunks)]), state(new S[size_t(pl.nout)]);
  std::fill(state.get(), state.get() + pl.nout, r.init());
  auto pass = [&](auto pass_index) {
    constexpr int P = decltype(pass_index)::value;
    parallel_for(pl.nout * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t w = begin; w < end; w++) {
        const int64_t o = w / chunks, c = w % chunks;
        part[w] = fold<P>(r, pl, in + KeptWalker(pl, o).off, state[o], c * kChunk, std::min(n, (c + 1) * kChunk));
      }
    });
    for (int64_t o = 0; o < pl.nout; o++) {
      S s = part[o * chunks];
      for (int64_t c = 1; c < chunks; c++) r.template combine<P>(s, part[o * chunks + c]);
      state[o] = s;
    }
  };
  pass(std::integral_constant<int, 0>{});
  if constexpr (R::passes == 2) {
    for (int64_t o = 0; o < pl.nout; o++) r.mid(state[o], n);
    pass(std::integral_constant<int, 1>{});
  }
  for (int64_t o = 0; o < pl.nout; o++) out[o] = store<TO>(r.finish(state[o], n));
}

template <class R, class T, class TO>
void run_reducer(const R& r, const Plan& pl, const T* in, TO* out) {
  using S = typename R::S;
  const int64_t n = pl.rnumel;
  if (pl.nout < kSplitBelow && n >= 2 * kChunk) return reduce_split(r, pl, in, out);
  const int64_t grain = std::max<int64_t>(1, kGrainWork / n);
  const int kin = pl.nk - 1;
  const bool columns = pl.kstride[kin] == 1 && pl.kshape[kin] >= 8 && pl.rstride[pl.nr - 1] != 1;
  parallel_for(pl.nout, grain, [&](int64_t begin, int64_t end) {
    if (columns) {
      S st[kBlock];
      for (int64_t o = begin; o < end;) {
        const KeptWalker w(pl, o);
        const int64_t blk = std::min({end - o, kBlock, pl.kshape[kin] - w.coord[kin]});
        for (int64_t j = 0; j < blk; j++) st[j] = r.init();
        fold_columns<0>(r, pl, in + w.off, st, blk);
        if constexpr (R::passes == 2) {
          for (int64_t j = 0; j < blk; j++) r.mid(st[j], n);
          fold_columns<1>(r, pl, in + w.off, st, blk);
        }
        for (int64_t j = 0; j < blk; j++) out[o + j] = store<TO>(r.finish(st[j], n));
        o += blk;
      }
      return;
    }
    KeptWalker w(pl, begin);
    for (int64_t o = begin; o < end; o++, w.next()) {
      const T* p = in + w.off;
      S s = fold<0>(r, pl, p, r.init(), 0, n);
      if constexpr (R::passes == 2) {
        r.mid(s, n);
        s = fold<1>(r, pl, p, s, 0, n);
      }
      out[o] = store<TO>(r.finish(s, n));
    }
  });
}

// Output of a reduction over zero elements; max/min and the arg reductions have none.
void reduce_empty(ReduceOp op, const View& out, int64_t nout) {
  double v;
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Any: v = 0; break;
    case ReduceOp::Prod: case ReduceOp::All: v = 1; break;
    case ReduceOp::Mean: case ReduceOp::Var: v = std::numeric_limits<double>::quiet_NaN(); break;
    case ReduceOp::LogSumExp: v = -std::numeric_limits<double>::infinity(); break;
    default: fail(ErrorKind::Value, std::string(op_name(op)) + ": cannot reduce over an empty dimension");
  }
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.ptr<T>();
    for (int64_t i = 0; i < nout; i++) o[i] = convert<T>(v);
  });
}

// Which input dtypes each op takes: all/any any dtype; sum, prod, max, min and the arg
// reductions also i32; the rest float only.
bool supported(ReduceOp op, DType d) {
  if (op == ReduceOp::All || op == ReduceOp::Any) return true;
  if (d == DType::Bool) return false;
  if (d == DType::I32) return op != ReduceOp::Mean && op != ReduceOp::Var && op != ReduceOp::LogSumExp;
  return true;
}

// Lines of `in` and `out` (same shape) along `dim`: f(x, x_stride, y, y_stride, length) for each,
// lines spread over the pool. A 0-d tensor is one line of length 1.
template <class T, class F>
void for_each_line(const View& out, const View& in, int dim, F f) {
  const int64_t len = in.ndim ? in.shape[dim] : 1;
  const int64_t sx = in.ndim ? in.strides[dim] : 0, sy = out.ndim ? out.strides[dim] : 0;
  int n = 0;
  int64_t shape[kMaxDims], xs[kMaxDims], ys[kMaxDims];
  int64_t lines = 1;
  for (int d = 0; d < in.ndim; d++) {
    if (d == dim) continue;
    shape[n] = in.shape[d];
    xs[n] = in.strides[d];
    ys[n] = out.strides[d];
    lines *= shape[n++];
  }
  if (len == 0 || lines == 0) return;
  const T* x = in.ptr<T>();
  T* y = out.ptr<T>();
  parallel_for(lines, std::max<int64_t>(1, kGrainWork / len), [&](int64_t begin, int64_t end) {
    int64_t coord[kMaxDims], ox = 0, oy = 0, rem = begin;
    for (int d = n - 1; d >= 0; d--) {
      coord[d] = rem % shape[d];
      rem /= shape[d];
      ox += coord[d] * xs[d];
      oy += coord[d] * ys[d];
    }
    for (int64_t l = begin; l < end; l++) {
      f(x + ox, sx, y + oy, sy, len);
      for (int d = n - 1; d >= 0; d--) {
        ox += xs[d];
        oy += ys[d];
        if (++coord[d] < shape[d]) break;
        ox -= shape[d] * xs[d];
        oy -= shape[d] * ys[d];
        coord[d] = 0;
      }
    }
  });
}

void check_line_op(const char* op, const View& out, const View& in, int dim) {
  if (dim < 0 || dim >= std::max(in.ndim, 1))
    fail(ErrorKind::Shape, std::string(op) + ": dim " + std::to_string(dim) + " is out of range for " +
                               std::to_string(in.ndim) + " dims");
  bool same = out.ndim == in.ndim && out.dtype == in.dtype;
  for (int d = 0; same && d < in.ndim; d++) same = out.shape[d] == in.shape[d];
  if (!same) fail(ErrorKind::Shape, std::string(op) + ": output must have the input's shape and dtype");
}

}  // namespace

void reduce(ReduceOp op, const View& out, const View& in, int nkeep, double correction) {
  if (int(op) < 0 || int(op) >= int(ReduceOp::Count))
    fail(ErrorKind::Value, "reduce: unknown op code " + std::to_string(int(op)));
  const std::string name = op_name(op);
  if (nkeep < 0 || nkeep > in.ndim)
    fail(ErrorKind::Value, name + ": nkeep " + std::to_string(nkeep) + " is out of range");
  if (!supported(op, in.dtype)) fail(ErrorKind::DType, name + ": not defined for " + dtype_name(in.dtype));
  const bool arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
  const bool logic = op == ReduceOp::All || op == ReduceOp::Any;
  const DType want = arg ? DType::I32 : logic ? DType::Bool : in.dtype;
  if (out.dtype != want)
    fail(ErrorKind::DType, name + ": output must be " + dtype_name(want) + ", got " + dtype_name(out.dtype));
  const Plan pl = make_plan(in, nkeep);
  if (out.numel() != pl.nout) fail(ErrorKind::Shape, name + ": output has the wrong size");
  if (arg && pl.rnumel > std::numeric_limits<int32_t>::max())
    fail(ErrorKind::Value, name + ": too many elements for an i32 index");
  if (pl.rnumel == 0) return reduce_empty(op, out, pl.nout);
  if (pl.nout == 0) return;

  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    using V = C<T>;
    const T* x = in.ptr<T>();
    if (op == ReduceOp::All) return run_reducer(LogicR<true>{}, pl, x, out.ptr<bool>());
    if (op == ReduceOp::Any) return run_reducer(LogicR<false>{}, pl, x, out.ptr<bool>());
    if constexpr (!std::is_same_v<T, bool>) {  // supported() let only all/any through for bool
      // Float sums and products accumulate in double; i32 ones wrap in uint32.
      using A = std::conditional_t<std::is_same_v<T, int32_t>, uint32_t, double>;
      T* o = out.ptr<T>();
      switch (op) {
        case ReduceOp::Sum: return run_reducer(SumR<A, false>{}, pl, x, o);
        case ReduceOp::Prod: return run_reducer(ProdR<A>{}, pl, x, o);
        case ReduceOp::Max: return run_reducer(ExtremeR<V, true>{}, pl, x, o);
        case ReduceOp::Min: return run_reducer(ExtremeR<V, false>{}, pl, x, o);
        case ReduceOp::ArgMax: return run_reducer(ArgR<V, true>{}, pl, x, out.ptr<int32_t>());
        case ReduceOp::ArgMin: return run_reducer(ArgR<V, false>{}, pl, x, out.ptr<int32_t>());
        default: break;
      }
      if constexpr (std::is_floating_point_v<V>) {  // supported() kept i32 out of these
        switch (op) {
          case ReduceOp::Mean: return run_reducer(SumR<double, true>{}, pl, x, o);
          case ReduceOp::Var: return run_reducer(VarR{correction}, pl, x, o);
          case ReduceOp::LogSumExp: return run_reducer(LogSumExpR{}, pl, x, o);
          default: break;
        }
      }
    }
  });
}

// One contiguous f32 line of softmax or log-softmax on vectors (lanes.h): max, exp(x - max) with
// its sum in f32 lanes, then the scaling. A NaN, a +inf or a line of -inf makes the sum NaN, so
// the line comes out NaN as on the general path below.
// Log-softmax's exponentials go to scratch (n floats), since y = x - shift reads x again.
inline void softmax_row(const float* x, float* y, float* scratch, int64_t n, bool log) {
  const float m = max_row(x, n);
  const float sum = exp_shift_sum(log ? scratch : y, x, n, m);
  if (log) {
    const float shift = m + std::log(sum);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - shift;
    return;
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

// Stable softmax: exp(x - max) / sum. An all -inf line gives NaN (-inf - -inf), as PyTorch does;
// so does a line holding NaN or +inf. Exponentials are computed in the compute type (f32 for
// f32/bf16, f64 for f64), the sum and the final scaling in double.
void softmax(const View& out, const View& in, int dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_line_op(op, out, in, dim);
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    using V = C<T>;
    for_each_line<T>(out, in, dim, [log](const T* x, int64_t sx, T* y, int64_t sy, int64_t n) {
      thread_local std::unique_ptr<V[]> e;  // the line's exponentials, kept for the scaling pass
      thread_local int64_t capacity = 0;
      if (capacity < n) {
        e.reset(new V[size_t(n)]);
        capacity = n;
      }
      if constexpr (std::is_same_v<T, float>) {
        if (sx == 1 && sy == 1) {  // contiguous f32 lines: the vectorised row passes (lanes.h)
          softmax_row(x, y, e.get(), n, log);
          return;
        }
      }
      V m = extreme_start<V, true>();
      for (int64_t i = 0; i < n; i++) {
        const V v = load(x[i * sx]);
        m = better<true>(v, m) ? v : m;
      }
      double sum = 0;
      if (log) {
        for (int64_t i = 0; i < n; i++) sum += double(std::exp(load(x[i * sx]) - m));
        const double shift = double(m) + std::log(sum);
        for (int64_t i = 0; i < n; i++) y[i * sy] = store<T>(V(double(load(x[i * sx])) - shift));
        return;
      }
      for (int64_t i = 0; i < n; i++) {
        e[i] = std::exp(load(x[i * sx]) - m);
        sum += double(e[i]);
      }
      const double inv = 1.0 / sum;
      for (int64_t i = 0; i < n; i++) y[i * sy] = store<T>(V(double(e[i]) * inv));
    });
  });
}

// Inclusive prefix sum along dim; floats accumulate in double, i32 wraps.
void cumsum(const View& out, const View& in, int dim) {
  check_line_op("cumsum", out, in, dim);
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, bool>) {
      fail(ErrorKind::DType, "cumsum: not defined for bool");
    } else {
      using A = std::conditional_t<std::is_same_v<T, int32_t>, uint32_t, double>;
      for_each_line<T>(out, in, dim, [](const T* x, int64_t sx, T* y, int64_t sy, int64_t n) {
        A acc = 0;
        for (int64_t i = 0; i < n; i++) {
          acc += A(load(x[i * sx]));
          y[i * sy] = store<T>(acc);
        }
      });
    }
  });
}

}  // namespace emu::cpu::EMU_ISA
