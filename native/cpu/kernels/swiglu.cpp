// swiglu.cpp: the SwiGLU gate of a LLaMA MLP, silu(a) * b, forward and backward in one pass each
// (the composed path is silu, then mul, and five element-wise ops for the backward):
//   out = silu(a) b,  silu(a) = a s,  s = 1 / (1 + exp(-a))
//   da = dout b s (1 + a (1 - s)),  db = dout silu(a)
// silu is computed as a / (1 + exp(-a)), the unary op's formula, so the forward matches the
// composed path bit for bit. Any strides (strided.h walks the views together). f32 and f64.
#include <cmath>
#include <string>

#include "../../core/errors.h"
#include "../fused.h"
#include "strided.h"

namespace emu::cpu::EMU_ISA {
namespace {

template <class T>
void forward(const View& out, const View& a, const View& b) {
  const View* views[3] = {&out, &a, &b};
  RowLoop<3>(views).run([&](int64_t n, char* const* ptr, const int64_t* s) {
    T* o = reinterpret_cast<T*>(ptr[0]);
    const T* x = reinterpret_cast<const T*>(ptr[1]);
    const T* y = reinterpret_cast<const T*>(ptr[2]);
    for (int64_t i = 0; i < n; i++) {
      const T ai = x[i * s[1]];
      o[i * s[0]] = ai / (T(1) + std::exp(-ai)) * y[i * s[2]];
    }
  });
}

template <class T>
void backward(const View& da, const View& db, const View& dout, const View& a, const View& b) {
  const View* views[5] = {&da, &db, &dout, &a, &b};
  RowLoop<5>(views).run([&](int64_t n, char* const* ptr, const int64_t* s) {
    T* ga = reinterpret_cast<T*>(ptr[0]);
    T* gb = reinterpret_cast<T*>(ptr[1]);
    const T* g = reinterpret_cast<const T*>(ptr[2]);
    const T* x = reinterpret_cast<const T*>(ptr[3]);
    const T* y = reinterpret_cast<const T*>(ptr[4]);
    for (int64_t i = 0; i < n; i++) {
      const T ai = x[i * s[3]], gi = g[i * s[2]];
      const T sig = T(1) / (T(1) + std::exp(-ai));
      ga[i * s[0]] = gi * y[i * s[4]] * (sig * (T(1) + ai * (T(1) - sig)));
      gb[i * s[1]] = gi * (ai / (T(1) + std::exp(-ai)));
    }
  });
}

}  // namespace

void swiglu(const View& out, const View& a, const View& b) {
  if (a.dtype == DType::F32) forward<float>(out, a, b);
  else if (a.dtype == DType::F64) forward<double>(out, a, b);
  else fail(ErrorKind::DType, std::string("swiglu: f32 or f64 only, got ") + dtype_name(a.dtype));
}

void swiglu_backward(const View& da, const View& db, const View& dout, const View& a, const View& b) {
  if (a.dtype == DType::F32) backward<float>(da, db, dout, a, b);
  else if (a.dtype == DType::F64) backward<double>(da, db, dout, a, b);
  else fail(ErrorKind::DType, std::string("swiglu: f32 or f64 only, got ") + dtype_name(a.dtype));
}

}  // namespace emu::cpu::EMU_ISA
