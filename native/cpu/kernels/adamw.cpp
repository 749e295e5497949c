// adamw.cpp: one AdamW step of one parameter in a single pass over p, g, m and v (each read
// once, p, m and v written once), the same arithmetic as src/nn/optim/adamw.ts's composed
// update, in the same order:
//   p = p (1 - lr wd);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p - (m / (sqrt(v) / bias2 + eps)) step_size     (bias2 = sqrt(1 - b2^t), step_size = lr / (1 - b1^t))
// Any strides (strided.h walks the four views together). f32 and f64: bf16 parameters are
// stepped through their f32 master copy by the optimizer.
#include <cmath>
#include <string>

#include "../../core/errors.h"
#include "../fused.h"
#include "strided.h"

namespace emu::cpu::EMU_ISA {
namespace {

template <class T>
void step(const View& p, const View& g, const View& m, const View& v, const AdamWHyper& h) {
  const T decay = T(1 - h.lr * h.weight_decay), b1 = T(h.beta1), b2 = T(h.beta2), c1 = T(1 - h.beta1), c2 = T(1 - h.beta2);
  const T bias2 = T(h.bias2), eps = T(h.eps), size = T(h.step_size);
  const bool decays = h.weight_decay != 0;
  const View* views[4] = {&p, &g, &m, &v};
  RowLoop<4>(views).run([&](int64_t n, char* const* ptr, const int64_t* s) {
    T* pp = reinterpret_cast<T*>(ptr[0]);
    const T* gp = reinterpret_cast<const T*>(ptr[1]);
    T* mp = reinterpret_cast<T*>(ptr[2]);
    T* vp = reinterpret_cast<T*>(ptr[3]);
    auto one = [&](T& pi, T gi, T& mi, T& vi) {
      const T pd = decays ? pi * decay : pi;
      mi = b1 * mi + c1 * gi;
      vi = b2 * vi + c2 * (gi * gi);
      pi = pd - (mi / (std::sqrt(vi) / bias2 + eps)) * size;
    };
    if (s[0] == 1 && s[1] == 1 && s[2] == 1 && s[3] == 1) {
      for (int64_t i = 0; i < n; i++) one(pp[i], gp[i], mp[i], vp[i]);
    } else {
      for (int64_t i = 0; i < n; i++) one(pp[i * s[0]], gp[i * s[1]], mp[i * s[2]], vp[i * s[3]]);
    }
  });
}

}  // namespace

void adamw(const View& p, const View& g, const View& m, const View& v, const AdamWHyper& h) {
  if (p.dtype == DType::F32) step<float>(p, g, m, v, h);
  else if (p.dtype == DType::F64) step<double>(p, g, m, v, h);
  else fail(ErrorKind::DType, std::string("adamw: f32 or f64 only, got ") + dtype_name(p.dtype));
}

}  // namespace emu::cpu::EMU_ISA
