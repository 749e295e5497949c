// elementwise.cpp: copy/cast, fill, unary and binary math, where, on any strided Views.
//
// Each op is a small functor mapped over rows by strided.h; the functors compute in the
// dtype's compute type (f32 for bf16). exp, sigmoid, silu and silu's gradient (SiluGradMul) on
// contiguous f32 rows take the vectorised exp (lanes.h: within 2 ulp of std::exp, so their
// results may differ from the scalar formula's by a few ulp). gelu follows PyTorch exactly: the
// erf form 0.5 x (1 + erf(x / sqrt 2)) and the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include <cmath>
#include <string>

#include "../kernels.h"
#include "lanes.h"
#include "scalar.h"
#include "strided.h"

namespace emu::cpu::EMU_ISA {

void copy(const View& out, const View& in) {
  dispatch(out.dtype, [&](auto o) {
    using TO = decltype(o);
    dispatch(in.dtype, [&](auto i) {
      using TI = decltype(i);
      map1<TO, TI>(out, in, [](TI x) { return convert<TO>(x); });
    });
  });
}

void fill(const View& out, double value) {
  dispatch(out.dtype, [&](auto o) {
    using T = decltype(o);
    const T v = convert<T>(value);
    const View* views[1] = {&out};
    RowLoop<1>(views).run([&](int64_t n, char* const* p, const int64_t* s) {
      T* dst = reinterpret_cast<T*>(p[0]);
      if (s[0] == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] = v;
      } else {
        for (int64_t i = 0; i < n; i++) dst[i * s[0]] = v;
      }
    });
  });
}

namespace {

template <class V>
inline V unary_float(UnaryOp op, V x, double a, double b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Log1p: return std::log1p(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return V(1) / std::sqrt(x);
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return V(1) / (V(1) + std::exp(-x));
    case UnaryOp::Relu: return x > V(0) ? x : V(0);
    case UnaryOp::GeluErf: return V(0.5) * x * (V(1) + std::erf(x * V(0.70710678118654752440)));
    case UnaryOp::GeluTanh: {
      const V k = V(0.79788456080286535588);  // sqrt(2/pi)
      return V(0.5) * x * (V(1) + std::tanh(k * (x + V(0.044715) * x * x * x)));
    }
    case UnaryOp::Silu: return x / (V(1) + std::exp(-x));
    case UnaryOp::Softplus: {  // log(1 + e^x) without overflow; PyTorch's threshold 20
      return x > V(20) ? x : std::log1p(std::exp(x));
    }
    case UnaryOp::Clamp: {
      V r = x;
      if (!std::isnan(a) && r < V(a)) r = V(a);
      if (!std::isnan(b) && r > V(b)) r = V(b);
      return r;
    }
    case UnaryOp::PowScalar: {
      if (a == 2.0) return x * x;
      if (a == 0.5) return std::sqrt(x);
      return std::pow(x, V(a));
    }
    case UnaryOp::Sign: return x > V(0) ? V(1) : (x < V(0) ? V(-1) : x);
    case UnaryOp::Floor: return std::floor(x);
    case UnaryOp::Ceil: return std::ceil(x);
    case UnaryOp::Round: return std::nearbyint(x);  // ties to even, as torch.round
    case UnaryOp::Reciprocal: return V(1) / x;
    case UnaryOp::Square: return x * x;
    case UnaryOp::Erf: return std::erf(x);
    default: return x;
  }
}

inline int32_t unary_int(UnaryOp op, int32_t x, double a, double b) {
  switch (op) {
    case UnaryOp::Neg: return int32_t(0u - uint32_t(x));
    case UnaryOp::Abs: return x < 0 ? int32_t(0u - uint32_t(x)) : x;
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::Sign: return (x > 0) - (x < 0);
    case UnaryOp::Square: return int32_t(uint32_t(x) * uint32_t(x));
    case UnaryOp::Clamp: {
      int64_t r = x;
      if (!std::isnan(a) && double(r) < a) r = int64_t(std::ceil(a));
      if (!std::isnan(b) && double(r) > b) r = int64_t(std::floor(b));
      return int32_t(r);
    }
    default: fail(ErrorKind::DType, "unary op is not defined for i32");
  }
}

// The vector forms of sigmoid, silu and SiluGradMul for exp_lanes_row (their scalar forms are
// unary_float's and arith's); lambdas, so its instantiations inline them.
constexpr auto sigmoid_vec = [](vf32 x, vf32) { return 1.0f / (1.0f + exp_vec(-x)); };
constexpr auto silu_vec = [](vf32 x, vf32) { return x / (1.0f + exp_vec(-x)); };
constexpr auto silu_grad_mul_vec = [](vf32 x, vf32 y) {
  const vf32 s = 1.0f / (1.0f + exp_vec(-x));
  return y * s * (1.0f + x * (1.0f - s));
};

}  // namespace

void unary(UnaryOp op, const View& out, const View& in, double a, double b) {
  if (op == UnaryOp::LogicalNot) {
    dispatch(in.dtype, [&](auto i) {
      using TI = decltype(i);
      map1<bool, TI>(out, in, [](TI x) { return !convert<bool>(x); });
    });
    return;
  }
  if (op == UnaryOp::IsFinite || op == UnaryOp::IsNaN) {
    const bool finite = op == UnaryOp::IsFinite;
    dispatch(in.dtype, [&](auto i) {
      using TI = decltype(i);
      map1<bool, TI>(out, in, [finite](TI x) {
        if constexpr (std::is_same_v<TI, int32_t> || std::is_same_v<TI, bool>) {
          return finite;
        } else {
          auto v = load(x);
          return finite ? bool(std::isfinite(v)) : bool(std::isnan(v));
        }
      });
    });
    return;
  }
  if (in.dtype == DType::I32) {
    map1<int32_t, int32_t>(out, in, [=](int32_t x) { return unary_int(op, x, a, b); });
    return;
  }
  dispatch_float(in.dtype, "unary", [&](auto i) {
    using T = decltype(i);
    if constexpr (std::is_same_v<T, float>) {
      if (op == UnaryOp::Exp || op == UnaryOp::Sigmoid || op == UnaryOp::Silu) {
        // Contiguous rows take the vectorised exp (lanes.h), strided ones the scalar formula.
        const View* views[2] = {&out, &in};
        RowLoop<2>(views).run([op](int64_t n, char* const* p, const int64_t* s) {
          float* o = reinterpret_cast<float*>(p[0]);
          const float* x = reinterpret_cast<const float*>(p[1]);
          auto scalar = [op](float v, float) { return unary_float<float>(op, v, 0, 0); };
          if (s[0] != 1 || s[1] != 1) for (int64_t k = 0; k < n; k++) o[k * s[0]] = scalar(x[k * s[1]], 0.0f);
          else if (op == UnaryOp::Exp) exp_row(o, x, n);
          else if (op == UnaryOp::Sigmoid) exp_lanes_row(o, x, nullptr, n, sigmoid_vec, scalar);
          else exp_lanes_row(o, x, nullptr, n, silu_vec, scalar);
        });
        return;
      }
    }
    // Switch outside the loop: one instantiation of the row loop per op keeps it vectorisable.
    switch (op) {
#define EMU_UNARY_CASE(NAME)                                                                         \
  case UnaryOp::NAME:                                                                                \
    map1<T, T>(out, in, [=](T x) { return store<T>(unary_float<C<T>>(UnaryOp::NAME, load(x), a, b)); }); \
    return;
      EMU_UNARY_CASE(Neg) EMU_UNARY_CASE(Abs) EMU_UNARY_CASE(Exp) EMU_UNARY_CASE(Log) EMU_UNARY_CASE(Log1p)
      EMU_UNARY_CASE(Sqrt) EMU_UNARY_CASE(Rsqrt) EMU_UNARY_CASE(Sin) EMU_UNARY_CASE(Cos) EMU_UNARY_CASE(Tanh)
      EMU_UNARY_CASE(Sigmoid) EMU_UNARY_CASE(Relu) EMU_UNARY_CASE(GeluErf) EMU_UNARY_CASE(GeluTanh)
      EMU_UNARY_CASE(Silu) EMU_UNARY_CASE(Softplus) EMU_UNARY_CASE(Clamp) EMU_UNARY_CASE(PowScalar)
      EMU_UNARY_CASE(Sign) EMU_UNARY_CASE(Floor) EMU_UNARY_CASE(Ceil) EMU_UNARY_CASE(Round)
      EMU_UNARY_CASE(Reciprocal) EMU_UNARY_CASE(Square) EMU_UNARY_CASE(Erf)
#undef EMU_UNARY_CASE
      default: fail(ErrorKind::Value, "unary: unknown op code " + std::to_string(int(op)));
    }
  });
}

namespace {

template <class V>
inline V arith(BinaryOp op, V x, V y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Pow: return std::pow(x, y);
    case BinaryOp::Maximum: return (x != x || x > y) ? x : y;  // NaN propagates, as torch.maximum
    case BinaryOp::Minimum: return (x != x || x < y) ? x : y;
    case BinaryOp::Remainder: {  // Python semantics: result has the divisor's sign
      V r = std::fmod(x, y);
      return (r != V(0) && ((r < V(0)) != (y < V(0)))) ? r + y : r;
    }
    case BinaryOp::FloorDivide: return std::floor(x / y);
    case BinaryOp::Atan2: return std::atan2(x, y);
    case BinaryOp::SiluGradMul: {  // d/dx x s(x) = s(x) (1 + x (1 - s(x)))
      const V s = V(1) / (V(1) + std::exp(-x));
      return y * s * (V(1) + x * (V(1) - s));
    }
    default: return x;
  }
}

inline int32_t arith_int(BinaryOp op, int32_t x, int32_t y) {
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
      if (y == 0) fail(ErrorKind::Value, "integer division by zero");
      if (x == INT32_MIN && y == -1) return op == BinaryOp::FloorDivide ? INT32_MIN : 0;
      int32_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) { q -= 1; r += y; }
      return op == BinaryOp::FloorDivide ? q : r;
    }
    default: fail(ErrorKind::DType, "binary op is not defined for i32");
  }
}

template <class V>
inline bool compare(BinaryOp op, V x, V y) {
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

bool is_predicate(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge || op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr ||
         op == BinaryOp::LogicalXor;
}

}  // namespace

void binary(BinaryOp op, const View& out, const View& a, const View& b) {
  if (is_predicate(op)) {
    dispatch(a.dtype, [&](auto t) {
      using T = decltype(t);
      switch (op) {
#define EMU_CMP_CASE(NAME) \
  case BinaryOp::NAME: map2<bool, T, T>(out, a, b, [](T x, T y) { return compare(BinaryOp::NAME, load(x), load(y)); }); return;
        EMU_CMP_CASE(Eq) EMU_CMP_CASE(Ne) EMU_CMP_CASE(Lt) EMU_CMP_CASE(Le) EMU_CMP_CASE(Gt) EMU_CMP_CASE(Ge)
        EMU_CMP_CASE(LogicalAnd) EMU_CMP_CASE(LogicalOr) EMU_CMP_CASE(LogicalXor)
#undef EMU_CMP_CASE
        default: return;
      }
    });
    return;
  }
  if (a.dtype == DType::I32) {
    map2<int32_t, int32_t, int32_t>(out, a, b, [op](int32_t x, int32_t y) { return arith_int(op, x, y); });
    return;
  }
  if (a.dtype == DType::Bool) fail(ErrorKind::DType, "binary: arithmetic is not defined for bool");
  dispatch_float(a.dtype, "binary", [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, float>) {
      if (op == BinaryOp::SiluGradMul) {  // contiguous rows take the vectorised exp, as unary's silu
        const View* views[3] = {&out, &a, &b};
        RowLoop<3>(views).run([](int64_t n, char* const* p, const int64_t* s) {
          float* o = reinterpret_cast<float*>(p[0]);
          const float *x = reinterpret_cast<const float*>(p[1]), *y = reinterpret_cast<const float*>(p[2]);
          auto scalar = [](float u, float v) { return arith(BinaryOp::SiluGradMul, u, v); };
          if (s[0] == 1 && s[1] == 1 && s[2] == 1) exp_lanes_row(o, x, y, n, silu_grad_mul_vec, scalar);
          else for (int64_t k = 0; k < n; k++) o[k * s[0]] = scalar(x[k * s[1]], y[k * s[2]]);
        });
        return;
      }
    }
    switch (op) {
#define EMU_ARITH_CASE(NAME)                                                                         \
  case BinaryOp::NAME:                                                                               \
    map2<T, T, T>(out, a, b, [](T x, T y) { return store<T>(arith(BinaryOp::NAME, load(x), load(y))); }); \
    return;
      EMU_ARITH_CASE(Add) EMU_ARITH_CASE(Sub) EMU_ARITH_CASE(Mul) EMU_ARITH_CASE(Div) EMU_ARITH_CASE(Pow)
      EMU_ARITH_CASE(Maximum) EMU_ARITH_CASE(Minimum) EMU_ARITH_CASE(Remainder) EMU_ARITH_CASE(FloorDivide)
      EMU_ARITH_CASE(Atan2) EMU_ARITH_CASE(SiluGradMul)
#undef EMU_ARITH_CASE
      default: fail(ErrorKind::Value, "binary: unknown op code " + std::to_string(int(op)));
    }
  });
}

void where(const View& out, const View& cond, const View& a, const View& b) {
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    map3<T, bool, T, T>(out, cond, a, b, [](bool c, T x, T y) { return c ? x : y; });
  });
}

// Walks the eight half-views (both halves of out, x, cos, sin) together over [..., D/2], so
// RowLoop's stride handling and threading serve as for any element-wise op.
void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse) {
  const View h[8] = {out.last_half(0), out.last_half(1), x.last_half(0), x.last_half(1),
                     cos.last_half(0), cos.last_half(1), sin.last_half(0), sin.last_half(1)};
  const View* v[8] = {&h[0], &h[1], &h[2], &h[3], &h[4], &h[5], &h[6], &h[7]};
  dispatch_float(out.dtype, "rope", [&](auto t) {
    using T = decltype(t);
    using V = C<T>;
    RowLoop<8>(v).run([&](int64_t n, char* const* p, const int64_t* s) {
      T* o1 = reinterpret_cast<T*>(p[0]);
      T* o2 = reinterpret_cast<T*>(p[1]);
      const T *x1 = reinterpret_cast<const T*>(p[2]), *x2 = reinterpret_cast<const T*>(p[3]);
      const T *c1 = reinterpret_cast<const T*>(p[4]), *c2 = reinterpret_cast<const T*>(p[5]);
      const T *s1 = reinterpret_cast<const T*>(p[6]), *s2 = reinterpret_cast<const T*>(p[7]);
      for (int64_t i = 0; i < n; i++) {
        const V a = load(x1[i * s[2]]), b = load(x2[i * s[3]]);
        const V ca = load(c1[i * s[4]]), cb = load(c2[i * s[5]]), sa = load(s1[i * s[6]]), sb = load(s2[i * s[7]]);
        o1[i * s[0]] = store<T>(inverse ? a * ca + b * sb : a * ca - b * sa);
        o2[i * s[1]] = store<T>(inverse ? b * cb - a * sa : b * cb + a * sb);
      }
    });
  });
}

}  // namespace emu::cpu::EMU_ISA
