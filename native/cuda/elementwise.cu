// elementwise.cu: fill, copy/cast, unary and binary math, where, on any strided Views; one kernel
// family per arity (candle's way): a grid-stride loop over the output's flat indices, each thread
// turning its index into every operand's offset through Strided<N> (broadcast dims have stride 0).
// fill, copy/cast, unary, binary and where also have a vector path, taken when every operand is
// contiguous and aligned: 16-byte packs of the widest operand per thread, no offset arithmetic
// (below, "the vector path").
//
// The CPU kernels (cpu/kernels/elementwise.cpp) are the reference: the same op codes, the same
// formulas in the same compute types (f32 for bf16), so on `sim`, where the math library is the
// CPU's, results are bit-identical; on `cuda` the device math library rounds its own way.
// Integer division by zero cannot throw on a GPU: the kernel raises a DeviceFlag and the launcher
// throws the CPU's ValueError.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/activation.cuh"
#include "cuda/strided.cuh"
#include "cpu/kernels.h"

namespace emu::EMU_DEVICE_NS {
namespace elementwise {

using cpu::BinaryOp;
using cpu::UnaryOp;

#define EMU_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void fill_kernel(Strided<1> s, int64_t n, T* out, double value) {
  const T v = cvt<T>(value);
  EMU_GRID_STRIDE(i, n) {
    int64_t off[1];
    s.offsets(i, off);
    out[off[0]] = v;
  }
}

template <class TO, class TA, class F>
__global__ void map1_kernel(Strided<2> s, int64_t n, TO* out, const TA* a, F f) {
  EMU_GRID_STRIDE(i, n) {
    int64_t off[2];
    s.offsets(i, off);
    out[off[0]] = f(a[off[1]]);
  }
}

template <class TO, class TA, class TB, class F>
__global__ void map2_kernel(Strided<3> s, int64_t n, TO* out, const TA* a, const TB* b, F f) {
  EMU_GRID_STRIDE(i, n) {
    int64_t off[3];
    s.offsets(i, off);
    out[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

template <class T>
__global__ void where_kernel(Strided<4> s, int64_t n, T* out, const bool* cond, const T* a, const T* b) {
  EMU_GRID_STRIDE(i, n) {
    int64_t off[4];
    s.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

// ---- the vector path ------------------------------------------------------------------------------
// When every operand is contiguous (so element i sits at offset i in each) and aligned, a thread
// moves L elements per operand with one load or store: L is chosen so the widest operand's pack
// is 16 bytes (LDG.128 / STG.128: 4 f32, 8 bf16 or f16, 2 f64), the narrower operands' packs then
// 8, 4 or 2 bytes. That cuts the memory instructions 2-8x and drops the per-element offset
// arithmetic of the strided kernels above, which matters most for 2-byte types, whose scalar
// accesses move half the bytes per instruction. The values are computed by the same f, so the
// results are the same bits as the strided path's.

template <class... Ts>
constexpr int pack_length() {
  constexpr size_t widest = std::max({sizeof(Ts)...});
  return widest >= 16 ? 1 : int(16 / widest);
}

// Whether out and the inputs take the vector path with packs of L.
template <int L, class... Ts>
bool vectorisable(const View& out, const Ts&... in) {
  for (const View* v : {&out, &in...})
    if (!v->contiguous() || v->numel() != out.numel() || reinterpret_cast<uintptr_t>(v->data) % (L * dtype_size(v->dtype)) != 0)
      return false;
  return true;
}

// Chunks of L, then the n % L tail one element per thread.
template <class TO, class TA, class F, int L>
__global__ void map1_vec_kernel(int64_t n, TO* out, const TA* a, F f) {
  const int64_t chunks = n / L;
  EMU_GRID_STRIDE(c, chunks) {
    const Pack<TA, L> x = reinterpret_cast<const Pack<TA, L>*>(a)[c];
    Pack<TO, L> y;
#pragma unroll
    for (int k = 0; k < L; k++) y.v[k] = f(x.v[k]);
    reinterpret_cast<Pack<TO, L>*>(out)[c] = y;
  }
  EMU_GRID_STRIDE(i, n - chunks * L) out[chunks * L + i] = f(a[chunks * L + i]);
}

template <class TO, class TA, class TB, class F, int L>
__global__ void map2_vec_kernel(int64_t n, TO* out, const TA* a, const TB* b, F f) {
  const int64_t chunks = n / L;
  EMU_GRID_STRIDE(c, chunks) {
    const Pack<TA, L> x = reinterpret_cast<const Pack<TA, L>*>(a)[c];
    const Pack<TB, L> y = reinterpret_cast<const Pack<TB, L>*>(b)[c];
    Pack<TO, L> z;
#pragma unroll
    for (int k = 0; k < L; k++) z.v[k] = f(x.v[k], y.v[k]);
    reinterpret_cast<Pack<TO, L>*>(out)[c] = z;
  }
  EMU_GRID_STRIDE(i, n - chunks * L) out[chunks * L + i] = f(a[chunks * L + i], b[chunks * L + i]);
}

template <class T, int L>
__global__ void where_vec_kernel(int64_t n, T* out, const bool* cond, const T* a, const T* b) {
  const int64_t chunks = n / L;
  EMU_GRID_STRIDE(c, chunks) {
    const Pack<bool, L> m = reinterpret_cast<const Pack<bool, L>*>(cond)[c];
    const Pack<T, L> x = reinterpret_cast<const Pack<T, L>*>(a)[c], y = reinterpret_cast<const Pack<T, L>*>(b)[c];
    Pack<T, L> z;
#pragma unroll
    for (int k = 0; k < L; k++) z.v[k] = m.v[k] ? x.v[k] : y.v[k];
    reinterpret_cast<Pack<T, L>*>(out)[c] = z;
  }
  EMU_GRID_STRIDE(i, n - chunks * L) out[chunks * L + i] = cond[chunks * L + i] ? a[chunks * L + i] : b[chunks * L + i];
}

template <class T, int L>
__global__ void fill_vec_kernel(int64_t n, T* out, double value) {
  const T v = cvt<T>(value);
  Pack<T, L> p;
#pragma unroll
  for (int k = 0; k < L; k++) p.v[k] = v;
  const int64_t chunks = n / L;
  EMU_GRID_STRIDE(c, chunks) reinterpret_cast<Pack<T, L>*>(out)[c] = p;
  EMU_GRID_STRIDE(i, n - chunks * L) out[chunks * L + i] = v;
}

// Rotary embedding over the half-views (cpu::KernelTable::rope): element i of [..., D/2] reads
// both halves of x, cos and sin and writes both halves of out.
template <class T>
__global__ void rope_kernel(Strided<8> s, int64_t n, T* o1, T* o2, const T* x1, const T* x2, const T* c1, const T* c2,
                            const T* s1, const T* s2, bool inverse) {
  using V = C<T>;
  EMU_GRID_STRIDE(i, n) {
    int64_t off[8];
    s.offsets(i, off);
    const V a = load(x1[off[2]]), b = load(x2[off[3]]);
    const V ca = load(c1[off[4]]), cb = load(c2[off[5]]), sa = load(s1[off[6]]), sb = load(s2[off[7]]);
    o1[off[0]] = cvt<T>(inverse ? a * ca + b * sb : a * ca - b * sa);
    o2[off[1]] = cvt<T>(inverse ? b * cb - a * sa : b * cb + a * sb);
  }
}

template <class TO, class TA, class F>
void map1(const View& out, const View& a, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int L = pack_length<TO, TA>();
  if (vectorisable<L>(out, a)) {
    launch<map1_vec_kernel<TO, TA, F, L>>(dim3(blocks_for((n + L - 1) / L)), dim3(kThreads), 0, Stream{}, n,
                                          static_cast<TO*>(out.data), static_cast<const TA*>(a.data), f);
    return;
  }
  const View* v[2] = {&out, &a};
  launch<map1_kernel<TO, TA, F>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, Strided<2>::make(v), n,
                                 static_cast<TO*>(out.data), static_cast<const TA*>(a.data), f);
}

template <class TO, class TA, class TB, class F>
void map2(const View& out, const View& a, const View& b, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  constexpr int L = pack_length<TO, TA, TB>();
  if (vectorisable<L>(out, a, b)) {
    launch<map2_vec_kernel<TO, TA, TB, F, L>>(dim3(blocks_for((n + L - 1) / L)), dim3(kThreads), 0, Stream{}, n,
                                              static_cast<TO*>(out.data), static_cast<const TA*>(a.data),
                                              static_cast<const TB*>(b.data), f);
    return;
  }
  const View* v[3] = {&out, &a, &b};
  launch<map2_kernel<TO, TA, TB, F>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, Strided<3>::make(v), n,
                                     static_cast<TO*>(out.data), static_cast<const TA*>(a.data),
                                     static_cast<const TB*>(b.data), f);
}

// ---- the per-element functions (cpu/kernels/elementwise.cpp is the reference) ------------------

template <class TO, class TI>
struct Cast {
  __device__ TO operator()(TI x) const { return cvt<TO>(x); }
};

template <class V>
__device__ V unary_float(UnaryOp op, V x, double a, double b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return m_fabs(x);
    case UnaryOp::Exp: return m_exp(x);
    case UnaryOp::Log: return m_log(x);
    case UnaryOp::Log1p: return m_log1p(x);
    case UnaryOp::Sqrt: return m_sqrt(x);
    case UnaryOp::Rsqrt: return V(1) / m_sqrt(x);
    case UnaryOp::Sin: return m_sin(x);
    case UnaryOp::Cos: return m_cos(x);
    case UnaryOp::Tanh: return m_tanh(x);
    case UnaryOp::Sigmoid: return V(1) / (V(1) + m_exp(-x));
    case UnaryOp::Relu:
    case UnaryOp::GeluErf:
    case UnaryOp::GeluTanh:
    case UnaryOp::Silu: return activation(op, x);
    case UnaryOp::Softplus: return x > V(20) ? x : m_log1p(m_exp(x));
    case UnaryOp::Clamp: {
      V r = x;
      if (!is_nan(a) && r < V(a)) r = V(a);
      if (!is_nan(b) && r > V(b)) r = V(b);
      return r;
    }
    case UnaryOp::PowScalar: {
      if (a == 2.0) return x * x;
      if (a == 0.5) return m_sqrt(x);
      return m_pow(x, V(a));
    }
    case UnaryOp::Sign: return x > V(0) ? V(1) : (x < V(0) ? V(-1) : x);
    case UnaryOp::Floor: return m_floor(x);
    case UnaryOp::Ceil: return m_ceil(x);
    case UnaryOp::Round: return m_nearbyint(x);  // ties to even, as torch.round
    case UnaryOp::Reciprocal: return V(1) / x;
    case UnaryOp::Square: return x * x;
    case UnaryOp::Erf: return m_erf(x);
    default: return x;
  }
}

template <class T>
struct UnaryFloat {
  UnaryOp op;
  double a, b;
  __device__ T operator()(T x) const { return cvt<T>(unary_float<C<T>>(op, load(x), a, b)); }
};

struct UnaryInt {
  UnaryOp op;
  double a, b;
  __device__ int32_t operator()(int32_t x) const {
    switch (op) {
      case UnaryOp::Neg: return int32_t(0u - uint32_t(x));
      case UnaryOp::Abs: return x < 0 ? int32_t(0u - uint32_t(x)) : x;
      case UnaryOp::Relu: return x > 0 ? x : 0;
      case UnaryOp::Sign: return (x > 0) - (x < 0);
      case UnaryOp::Square: return int32_t(uint32_t(x) * uint32_t(x));
      case UnaryOp::Clamp: {
        int64_t r = x;
        if (!is_nan(a) && double(r) < a) r = int64_t(::ceil(a));
        if (!is_nan(b) && double(r) > b) r = int64_t(::floor(b));
        return int32_t(r);
      }
      default: return x;  // the launcher let only the ops above through
    }
  }
};

template <class TI>
struct Predicate {  // logical_not, isfinite, isnan: bool out of any dtype
  UnaryOp op;
  __device__ bool operator()(TI x) const {
    if (op == UnaryOp::LogicalNot) return !cvt<bool>(x);
    if constexpr (std::is_same_v<TI, int32_t> || std::is_same_v<TI, bool>) {
      return op == UnaryOp::IsFinite;
    } else {
      const auto v = load(x);
      return op == UnaryOp::IsFinite ? (v - v) == decltype(v)(0) : is_nan(v);
    }
  }
};

template <class V>
__device__ V arith(BinaryOp op, V x, V y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Pow: return m_pow(x, y);
    case BinaryOp::Maximum: return (x != x || x > y) ? x : y;  // NaN propagates, as torch.maximum
    case BinaryOp::Minimum: return (x != x || x < y) ? x : y;
    case BinaryOp::Remainder: {  // Python semantics: the result has the divisor's sign
      const V r = m_fmod(x, y);
      return (r != V(0) && ((r < V(0)) != (y < V(0)))) ? r + y : r;
    }
    case BinaryOp::FloorDivide: return m_floor(x / y);
    case BinaryOp::Atan2: return m_atan2(x, y);
    case BinaryOp::SiluGradMul: {  // d/dx x s(x) = s(x) (1 + x (1 - s(x)))
      const V s = V(1) / (V(1) + m_exp(-x));
      return y * s * (V(1) + x * (V(1) - s));
    }
    default: return x;
  }
}

template <class T>
struct BinaryFloat {
  BinaryOp op;
  __device__ T operator()(T x, T y) const { return cvt<T>(arith(op, load(x), load(y))); }
};

struct BinaryInt {
  BinaryOp op;
  DeviceFlag division_by_zero;  // raised when y == 0 in floor_divide / remainder
  __device__ int32_t operator()(int32_t x, int32_t y) const {
    switch (op) {
      case BinaryOp::Add: return int32_t(uint32_t(x) + uint32_t(y));
      case BinaryOp::Sub: return int32_t(uint32_t(x) - uint32_t(y));
      case BinaryOp::Mul: return int32_t(uint32_t(x) * uint32_t(y));
      case BinaryOp::Maximum: return x > y ? x : y;
      case BinaryOp::Minimum: return x < y ? x : y;
      case BinaryOp::Pow: {
        if (y < 0) return x == 1 ? 1 : (x == -1 ? ((y & 1) ? -1 : 1) : 0);
        uint32_t r = 1, base = uint32_t(x);
        for (int32_t e = y; e; e >>= 1, base *= base)
          if (e & 1) r *= base;
        return int32_t(r);
      }
      case BinaryOp::FloorDivide:
      case BinaryOp::Remainder: {
        if (y == 0) {
          division_by_zero.raise(0);
          return 0;
        }
        if (x == -2147483647 - 1 && y == -1) return op == BinaryOp::FloorDivide ? x : 0;
        int32_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          q -= 1;
          r += y;
        }
        return op == BinaryOp::FloorDivide ? q : r;
      }
      default: return 0;  // the launcher let only the ops above through
    }
  }
};

template <class T>
struct Compare {
  BinaryOp op;
  __device__ bool operator()(T a, T b) const {
    const auto x = load(a), y = load(b);
    using V = decltype(x);
    switch (op) {
      case BinaryOp::Eq: return x == y;
      case BinaryOp::Ne: return x != y;
      case BinaryOp::Lt: return x < y;
      case BinaryOp::Le: return x <= y;
      case BinaryOp::Gt: return x > y;
      case BinaryOp::Ge: return x >= y;
      case BinaryOp::LogicalAnd: return (x != V(0)) && (y != V(0));
      case BinaryOp::LogicalOr: return (x != V(0)) || (y != V(0));
      case BinaryOp::LogicalXor: return (x != V(0)) != (y != V(0));
      default: return false;
    }
  }
};

bool int_unary(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu || op == UnaryOp::Sign ||
         op == UnaryOp::Square || op == UnaryOp::Clamp;
}

bool int_binary(BinaryOp op) {
  return op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul || op == BinaryOp::Maximum ||
         op == BinaryOp::Minimum || op == BinaryOp::Pow || op == BinaryOp::FloorDivide || op == BinaryOp::Remainder;
}

bool predicate(BinaryOp op) { return int(op) >= int(BinaryOp::Eq) && int(op) <= int(BinaryOp::LogicalXor); }

}  // namespace elementwise

// ---- the kernel-table entries -------------------------------------------------------------------

void fill(const View& out, double value) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    constexpr int L = elementwise::pack_length<T>();
    if (elementwise::vectorisable<L>(out)) {
      launch<elementwise::fill_vec_kernel<T, L>>(dim3(blocks_for((n + L - 1) / L)), dim3(kThreads), 0, Stream{}, n,
                                                 static_cast<T*>(out.data), value);
      return;
    }
    const View* v[1] = {&out};
    launch<elementwise::fill_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, Strided<1>::make(v), n,
                                        static_cast<T*>(out.data), value);
  });
}

void copy(const View& out, const View& in) {
  dispatch(out.dtype, [&](auto o) {
    using TO = decltype(o);
    dispatch(in.dtype, [&](auto i) {
      using TI = decltype(i);
      elementwise::map1<TO, TI>(out, in, elementwise::Cast<TO, TI>{});
    });
  });
}

void unary(cpu::UnaryOp op, const View& out, const View& in, double a, double b) {
  using cpu::UnaryOp;
  if (int(op) < 0 || int(op) >= int(UnaryOp::Count)) fail(ErrorKind::Value, "unary: unknown op code " + std::to_string(int(op)));
  if (op == UnaryOp::LogicalNot || op == UnaryOp::IsFinite || op == UnaryOp::IsNaN) {
    dispatch(in.dtype, [&](auto i) {
      using TI = decltype(i);
      elementwise::map1<bool, TI>(out, in, elementwise::Predicate<TI>{op});
    });
    return;
  }
  if (in.dtype == DType::I32) {
    if (!elementwise::int_unary(op)) fail(ErrorKind::DType, "unary op is not defined for i32");
    elementwise::map1<int32_t, int32_t>(out, in, elementwise::UnaryInt{op, a, b});
    return;
  }
  dispatch_float(in.dtype, "unary", [&](auto i) {
    using T = decltype(i);
    elementwise::map1<T, T>(out, in, elementwise::UnaryFloat<T>{op, a, b});
  });
}

void binary(cpu::BinaryOp op, const View& out, const View& a, const View& b) {
  using cpu::BinaryOp;
  if (int(op) < 0 || int(op) >= int(BinaryOp::Count)) fail(ErrorKind::Value, "binary: unknown op code " + std::to_string(int(op)));
  if (elementwise::predicate(op)) {
    dispatch(a.dtype, [&](auto t) {
      using T = decltype(t);
      elementwise::map2<bool, T, T>(out, a, b, elementwise::Compare<T>{op});
    });
    return;
  }
  if (a.dtype == DType::I32) {
    if (!elementwise::int_binary(op)) fail(ErrorKind::DType, "binary op is not defined for i32");
    const FlagBuffer flag;
    elementwise::map2<int32_t, int32_t, int32_t>(out, a, b, elementwise::BinaryInt{op, flag.flag()});
    int unused;
    if (flag.raised(&unused)) fail(ErrorKind::Value, "integer division by zero");
    return;
  }
  if (a.dtype == DType::Bool) fail(ErrorKind::DType, "binary: arithmetic is not defined for bool");
  dispatch_float(a.dtype, "binary", [&](auto t) {
    using T = decltype(t);
    elementwise::map2<T, T, T>(out, a, b, elementwise::BinaryFloat<T>{op});
  });
}

void where(const View& out, const View& cond, const View& a, const View& b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    constexpr int L = elementwise::pack_length<T>();
    if (elementwise::vectorisable<L>(out, cond, a, b)) {  // no broadcast: every operand out's shape
      launch<elementwise::where_vec_kernel<T, L>>(dim3(blocks_for((n + L - 1) / L)), dim3(kThreads), 0, Stream{}, n,
                                                  static_cast<T*>(out.data), static_cast<const bool*>(cond.data),
                                                  static_cast<const T*>(a.data), static_cast<const T*>(b.data));
      return;
    }
    const View* v[4] = {&out, &cond, &a, &b};
    launch<elementwise::where_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, Strided<4>::make(v), n,
                                         static_cast<T*>(out.data), static_cast<const bool*>(cond.data),
                                         static_cast<const T*>(a.data), static_cast<const T*>(b.data));
  });
}

void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse) {
  const View h[8] = {out.last_half(0), out.last_half(1), x.last_half(0), x.last_half(1),
                     cos.last_half(0), cos.last_half(1), sin.last_half(0), sin.last_half(1)};
  const int64_t n = h[0].numel();
  if (n == 0) return;
  const View* v[8] = {&h[0], &h[1], &h[2], &h[3], &h[4], &h[5], &h[6], &h[7]};
  dispatch_float(out.dtype, "rope", [&](auto t) {
    using T = decltype(t);
    auto in = [&](int k) { return static_cast<const T*>(h[k].data); };
    launch<elementwise::rope_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, Strided<8>::make(v), n,
                                        static_cast<T*>(h[0].data), static_cast<T*>(h[1].data), in(2), in(3), in(4),
                                        in(5), in(6), in(7), inverse);
  });
}

}  // namespace emu::EMU_DEVICE_NS
