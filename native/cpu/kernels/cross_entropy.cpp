// cross_entropy.cpp: softmax cross-entropy over the rows of logits [N, V], forward and backward,
// fused: the probabilities are never stored.
//
// Forward, per row i with target t: lse = log sum_j exp(x_j) (max-shifted), and
//   loss_i = (1 - s) (lse - x_t) + s (lse - mean_j x_j)      (s = label smoothing)
// or 0 where t is the ignore index. lse is saved per row. Backward, for the loss gradient g_i:
//   dx_ij = g_i (exp(x_ij - lse_i) - s / V - (1 - s) [j = t])     (0 on ignored rows)
// so the forward reads the logits once and the backward reads them once and writes dx once.
// Each row is independent, so results do not depend on the thread count. An out-of-range
// target raises IndexError. f32 and f64 (bf16 callers compute in f32).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../../core/errors.h"
#include "../fused.h"
#include "../thread_pool.h"
#include "lanes.h"

namespace emu::cpu::EMU_ISA {
namespace {

int64_t target_of(const View& targets, int64_t r, int64_t ignore, int64_t V) {
  const int64_t t = targets.ptr<int32_t>()[r * targets.strides[0]];
  if (t != ignore && (t < 0 || t >= V))
    fail(ErrorKind::Index, "crossEntropy: target " + std::to_string(t) + " is out of range for " + std::to_string(V) + " classes");
  return t;
}

template <class T>
void forward(const View& loss, const View& lse, const View& x, const View& targets, int64_t ignore, double smoothing) {
  const int64_t N = x.shape[0], V = x.shape[1];
  const T s = T(smoothing);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(static_cast<size_t>(V));
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = dense_row(x, r, buf.data());
      const int64_t t = target_of(targets, r, ignore, V);
      const T m = max_row(xr, V);
      const T l = m + T(std::log(exp_shift_total(xr, V, m)));
      T out = 0;
      if (t != ignore) {
        out = (T(1) - s) * (l - xr[t]);
        if (s != T(0)) out += s * (l - sum_row(xr, V) / T(V));
      }
      loss.ptr<T>()[r * loss.strides[0]] = out;
      lse.ptr<T>()[r * lse.strides[0]] = l;
    }
  });
}

template <class T>
void backward(const View& dx, const View& dloss, const View& x, const View& lse, const View& targets, int64_t ignore,
              double smoothing) {
  const int64_t N = x.shape[0], V = x.shape[1];
  const T s = T(smoothing);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(size_t(2 * V));
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = target_of(targets, r, ignore, V);
      // Written in place when dlogits' rows are contiguous, else through buf.
      T* d = dx.ptr<T>() + r * dx.strides[0];
      T* out = dx.strides[1] == 1 ? d : buf.data() + V;
      if (t == ignore) {
        std::fill(out, out + V, T(0));
      } else {
        const T* xr = dense_row(x, r, buf.data());
        const T g = dloss.ptr<T>()[r * dloss.strides[0]];
        exp_shift_affine(out, xr, V, lse.ptr<T>()[r * lse.strides[0]], s / T(V), g);
        out[t] -= (T(1) - s) * g;
      }
      if (out != d)
        for (int64_t j = 0; j < V; j++) d[j * dx.strides[1]] = out[j];
    }
  });
}

}  // namespace

void cross_entropy(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore,
                   double smoothing) {
  if (logits.dtype == DType::F32) forward<float>(loss, lse, logits, targets, ignore, smoothing);
  else if (logits.dtype == DType::F64) forward<double>(loss, lse, logits, targets, ignore, smoothing);
  else fail(ErrorKind::DType, std::string("crossEntropy: f32 or f64 only, got ") + dtype_name(logits.dtype));
}

void cross_entropy_backward(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                            const View& targets, int64_t ignore, double smoothing) {
  if (logits.dtype == DType::F32) backward<float>(dlogits, dloss, logits, lse, targets, ignore, smoothing);
  else if (logits.dtype == DType::F64) backward<double>(dlogits, dloss, logits, lse, targets, ignore, smoothing);
  else fail(ErrorKind::DType, std::string("crossEntropy: f32 or f64 only, got ") + dtype_name(logits.dtype));
}

}  // namespace emu::cpu::EMU_ISA
