// norm.cpp: LayerNorm, RMSNorm and GroupNorm over the rows of x [N, D], forward and backward, fused.
//
//   LayerNorm: y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance)
//   RMSNorm:   y = x * rstd * w,               rstd = 1 / sqrt(mean(x^2) + eps)
//
// (RMSNorm is LayerNorm without the mean: `mean` is null.) The forward reads each row once from
// memory: the statistics pass leaves the row in L1 for the normalising pass. It saves mean and
// rstd per row for the backward, which is one pass too. With xhat = (x - mean) * rstd and
// gx = dy * w:
//   dx = rstd * (gx - mean(gx) - xhat * mean(gx * xhat))   (RMSNorm: no mean(gx) term)
//   dw = sum over rows of dy * xhat,  db = sum over rows of dy.
// dw and db are summed per block of 32 rows, then the blocks in order, so the result does not
// depend on the thread count (the design's determinism rule). Strided x, dy and y are packed
// row by row; w and b may be strided too. f32 and f64 (bf16 callers compute in f32).
//
// GroupNorm (group_norm_forward / group_norm_backward) is LayerNorm over rows that each hold a
// group's C / G channels of `inner` contiguous elements, with a weight and bias per channel:
// within a row the affine is a scalar per run of `inner` elements, so the rows are walked run by
// run. Its backward sums, per row and channel, dy xhat and dy over the run (these give the row
// constants, weighted by the channel's w, and are the channel's share of dw and db), keeps them
// in a [R, C / G] buffer, and adds them over the samples in sample order: deterministic.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include "../../core/errors.h"
#include "../fused.h"
#include "../thread_pool.h"
#include "lanes.h"

namespace emu::cpu::EMU_ISA {
namespace {

constexpr int64_t kRowBlock = 32;

// A [D] vector as a dense array (w, b), or null.
template <class T>
std::vector<T> dense(const View* v) {
  std::vector<T> out;
  if (!v) return out;
  out.resize(size_t(v->shape[0]));
  for (int64_t j = 0; j < v->shape[0]; j++) out[size_t(j)] = v->ptr<T>()[j * v->strides[0]];
  return out;
}

// The element-wise row loops, on restrict pointers in a function of their own: the build uses
// -fno-strict-aliasing, so in the kernels' lambdas every store could alias the captured
// pointers and the loops would neither hoist their loads nor vectorise.
template <class T>
void normalize_row(T* __restrict out, const T* __restrict x, const T* __restrict w, const T* __restrict b, T mu, T rs,
                   int64_t n) {
  if (w && b) for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mu) * rs * w[j] + b[j];
  else if (w) for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mu) * rs * w[j];
  else if (b) for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mu) * rs + b[j];
  else for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mu) * rs;
}

// xhat = (x - mu) rs and gx = dy w (dy when there is no weight), in one pass that also returns
// sum(gx xhat) and sum(gx) (the backward's two row constants, before dividing by D).
template <class T>
void xhat_gx_row(T* __restrict xh, T* __restrict gx, const T* __restrict x, const T* __restrict dy, const T* __restrict w,
                 T mu, T rs, int64_t n, T* dot, T* sum) {
  constexpr int W = kLanes<T>;
  Vec<T> vd{}, vs{};
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    const Vec<T> h = (vload(x + j) - mu) * rs;
    const Vec<T> gv = w ? vload(dy + j) * vload(w + j) : vload(dy + j);
    vstore(xh + j, h);
    vstore(gx + j, gv);
    vd += gv * h;
    vs += gv;
  }
  T d = 0, s = 0;
  for (int l = 0; l < W; l++) {
    d += vd[l];
    s += vs[l];
  }
  for (; j < n; j++) {
    xh[j] = (x[j] - mu) * rs;
    gx[j] = w ? dy[j] * w[j] : dy[j];
    d += gx[j] * xh[j];
    s += gx[j];
  }
  *dot = d;
  *sum = s;
}

// dx = rs (gx - c2 - xhat c1); dw += dy xhat; db += dy (dw, db may be null).
template <class T>
void dx_row(T* __restrict dx, T* __restrict dw, T* __restrict db, const T* __restrict gx, const T* __restrict xh,
            const T* __restrict dy, T rs, T c1, T c2, int64_t n) {
  if (dw && db) {  // one pass (LayerNorm with weight and bias)
    for (int64_t j = 0; j < n; j++) {
      dx[j] = rs * (gx[j] - c2 - xh[j] * c1);
      dw[j] += dy[j] * xh[j];
      db[j] += dy[j];
    }
    return;
  }
  for (int64_t j = 0; j < n; j++) dx[j] = rs * (gx[j] - c2 - xh[j] * c1);
  if (dw) for (int64_t j = 0; j < n; j++) dw[j] += dy[j] * xh[j];
  if (db) for (int64_t j = 0; j < n; j++) db[j] += dy[j];
}

// Where row r of the 2-d output y is written: y's own memory when its rows are contiguous, else
// buf, which store_row then scatters.
template <class T>
T* out_row(const View& y, int64_t r, T* buf) {
  return y.strides[1] == 1 ? y.ptr<T>() + r * y.strides[0] : buf;
}

template <class T>
void store_row(const View& y, int64_t r, const T* row) {
  if (y.strides[1] == 1) return;  // written in place (out_row)
  T* p = y.ptr<T>() + r * y.strides[0];
  for (int64_t j = 0; j < y.shape[1]; j++) p[j * y.strides[1]] = row[j];
}

template <class T>
void forward(const View& y, const View* mean, const View& rstd, const View& x, const View* w, const View* b, double eps) {
  const int64_t N = x.shape[0], D = x.shape[1];
  const std::vector<T> wd = dense<T>(w), bd = dense<T>(b);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(size_t(2 * D));
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = dense_row(x, r, buf.data());
      T* out = out_row(y, r, buf.data() + D);
      const T mu = mean ? sum_row(xr, D) / T(D) : T(0);
      const T var = sqdev_row(xr, D, mu) / T(D);  // two passes over the row in L1: no cancellation
      const T rs = T(1) / std::sqrt(var + T(eps));
      normalize_row(out, xr, w ? wd.data() : nullptr, b ? bd.data() : nullptr, mu, rs, D);
      store_row(y, r, out);
      rstd.ptr<T>()[r * rstd.strides[0]] = rs;
      if (mean) mean->ptr<T>()[r * mean->strides[0]] = mu;
    }
  });
}

template <class T>
void backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
              const View* mean, const View& rstd) {
  const int64_t N = x.shape[0], D = x.shape[1], blocks = (N + kRowBlock - 1) / kRowBlock;
  const std::vector<T> wd = dense<T>(w);
  // Per-block partial sums of dw and db, kept between calls so no call touches fresh pages.
  thread_local std::vector<T> partial;
  const bool sums = dw || db;
  if (sums && partial.size() < size_t(2 * blocks * D)) partial.resize(size_t(2 * blocks * D));
  T* pw = partial.data();
  T* pb = pw + blocks * D;
  parallel_for(blocks, 1, [&](int64_t k0, int64_t k1) {
    std::vector<T> buf(size_t(4 * D));
    T *xb = buf.data(), *gb = xb + D, *xh = gb + D, *gx = xh + D;
    for (int64_t k = k0; k < k1; k++) {
      if (sums) {
        std::fill(pw + k * D, pw + (k + 1) * D, T(0));
        std::fill(pb + k * D, pb + (k + 1) * D, T(0));
      }
      for (int64_t r = k * kRowBlock; r < std::min(N, (k + 1) * kRowBlock); r++) {
        const T* xr = dense_row(x, r, xb);
        const T* gr = dense_row(dy, r, gb);
        const T mu = mean ? mean->ptr<T>()[r * mean->strides[0]] : T(0);
        const T rs = rstd.ptr<T>()[r * rstd.strides[0]];
        T dot, sum;
        xhat_gx_row(xh, gx, xr, gr, w ? wd.data() : nullptr, mu, rs, D, &dot, &sum);
        const T c1 = dot / T(D);
        const T c2 = mean ? sum / T(D) : T(0);
        // A strided dx goes through xb: x is not read again once xhat is made.
        T* out = out_row(dx, r, xb);
        dx_row(out, dw ? pw + k * D : nullptr, db ? pb + k * D : nullptr, gx, xh, gr, rs, c1, c2, D);
        store_row(dx, r, out);
      }
    }
  });
  if (!sums) return;
  parallel_for(D, 256, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
      T sw = 0, sb = 0;
      for (int64_t k = 0; k < blocks; k++) {
        sw += pw[k * D + j];
        sb += pb[k * D + j];
      }
      if (dw) dw->ptr<T>()[j * dw->strides[0]] = sw;
      if (db) db->ptr<T>()[j * db->strides[0]] = sb;
    }
  });
}

// GroupNorm's runs (one channel within a row): out = (x - mu) scale + shift.
template <class T>
void affine_run(T* __restrict out, const T* __restrict x, T mu, T scale, T shift, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = (x[j] - mu) * scale + shift;
}

// The run's sum of dy xhat (xhat = (x - mu) rs) and of dy.
template <class T>
void run_sums(const T* __restrict x, const T* __restrict dy, T mu, T rs, int64_t n, T* dy_xhat, T* dy_sum) {
  constexpr int W = kLanes<T>;
  Vec<T> vd{}, vs{};
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    const Vec<T> g = vload(dy + j);
    vd += g * ((vload(x + j) - mu) * rs);
    vs += g;
  }
  T d = 0, s = 0;
  for (int l = 0; l < W; l++) {
    d += vd[l];
    s += vs[l];
  }
  for (; j < n; j++) {
    d += dy[j] * ((x[j] - mu) * rs);
    s += dy[j];
  }
  *dy_xhat = d;
  *dy_sum = s;
}

// dx = rs (w dy - c2 - xhat c1) over a run, as a dy - kx (x - mu) - shift with a = rs w,
// kx = rs^2 c1, shift = rs c2.
template <class T>
void dx_run(T* __restrict dx, const T* __restrict x, const T* __restrict dy, T a, T kx, T mu, T shift, int64_t n) {
  for (int64_t j = 0; j < n; j++) dx[j] = a * dy[j] - kx * (x[j] - mu) - shift;
}

// GroupNorm's row geometry: D = channels (per row) x inner; G groups, found from the [C] vector
// the caller passed (any of w, b, dw, db; none: one group, as nothing is per channel).
struct Groups {
  int64_t channels, groups;
  Groups(int64_t D, int64_t inner, std::initializer_list<const View*> per_channel) : channels(D / inner), groups(1) {
    for (const View* v : per_channel)
      if (v) groups = v->shape[0] / channels;
  }
};

template <class T>
void group_forward(const View& y, const View& mean, const View& rstd, const View& x, const View* w, const View* b,
                   double eps, int64_t inner) {
  const int64_t R = x.shape[0], D = x.shape[1];
  const Groups geo(D, inner, {w, b});
  const std::vector<T> wd = dense<T>(w), bd = dense<T>(b);
  parallel_for(R, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(size_t(2 * D));
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = dense_row(x, r, buf.data());
      T* out = out_row(y, r, buf.data() + D);
      const T mu = sum_row(xr, D) / T(D);
      const T rs = T(1) / std::sqrt(sqdev_row(xr, D, mu) / T(D) + T(eps));
      const int64_t c0 = (r % geo.groups) * geo.channels;
      for (int64_t k = 0; k < geo.channels; k++) {
        const T scale = w ? rs * wd[size_t(c0 + k)] : rs, shift = b ? bd[size_t(c0 + k)] : T(0);
        affine_run(out + k * inner, xr + k * inner, mu, scale, shift, inner);
      }
      store_row(y, r, out);
      rstd.ptr<T>()[r * rstd.strides[0]] = rs;
      mean.ptr<T>()[r * mean.strides[0]] = mu;
    }
  });
}

template <class T>
void group_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                    const View& mean, const View& rstd, int64_t inner) {
  const int64_t R = x.shape[0], D = x.shape[1];
  const Groups geo(D, inner, {w, dw, db});
  const int64_t K = geo.channels;
  const std::vector<T> wd = dense<T>(w);
  // Per row and channel: sum dy xhat at [r K + k], sum dy at [R K + r K + k].
  std::vector<T> sums(size_t(2 * R * K));
  parallel_for(R, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(size_t(3 * D));
    T *xb = buf.data(), *gb = xb + D, *ob = gb + D;
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = dense_row(x, r, xb);
      const T* gr = dense_row(dy, r, gb);
      const T mu = mean.ptr<T>()[r * mean.strides[0]], rs = rstd.ptr<T>()[r * rstd.strides[0]];
      const int64_t c0 = (r % geo.groups) * K;
      T* s_xhat = sums.data() + r * K;
      T* s_dy = s_xhat + R * K;
      T dot = 0, sum = 0;  // the row's sums of gx xhat and gx, gx = dy w
      for (int64_t k = 0; k < K; k++) {
        run_sums(xr + k * inner, gr + k * inner, mu, rs, inner, s_xhat + k, s_dy + k);
        const T wk = w ? wd[size_t(c0 + k)] : T(1);
        dot += wk * s_xhat[k];
        sum += wk * s_dy[k];
      }
      const T kx = rs * rs * (dot / T(D)), shift = rs * (sum / T(D));
      T* out = out_row(dx, r, ob);
      for (int64_t k = 0; k < K; k++) {
        const T a = w ? rs * wd[size_t(c0 + k)] : rs;
        dx_run(out + k * inner, xr + k * inner, gr + k * inner, a, kx, mu, shift, inner);
      }
      store_row(dx, r, out);
    }
  });
  if (!dw && !db) return;
  const int64_t G = geo.groups, C = G * K, samples = R / G;
  for (int64_t c = 0; c < C; c++) {  // N C additions: not worth threads
    const int64_t g = c / K, k = c % K;
    T sw = 0, sb = 0;
    for (int64_t n = 0; n < samples; n++) {
      sw += sums[size_t((n * G + g) * K + k)];
      sb += sums[size_t(R * K + (n * G + g) * K + k)];
    }
    if (dw) dw->ptr<T>()[c * dw->strides[0]] = sw;
    if (db) db->ptr<T>()[c * db->strides[0]] = sb;
  }
}

}  // namespace

void norm_forward(const View& y, const View* mean, const View& rstd, const View& x, const View* w, const View* b,
                  double eps) {
  if (x.dtype == DType::F32) forward<float>(y, mean, rstd, x, w, b, eps);
  else if (x.dtype == DType::F64) forward<double>(y, mean, rstd, x, w, b, eps);
  else fail(ErrorKind::DType, std::string("norm: f32 or f64 only, got ") + dtype_name(x.dtype));
}

void norm_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                   const View* mean, const View& rstd) {
  if (x.dtype == DType::F32) backward<float>(dx, dw, db, dy, x, w, mean, rstd);
  else if (x.dtype == DType::F64) backward<double>(dx, dw, db, dy, x, w, mean, rstd);
  else fail(ErrorKind::DType, std::string("norm: f32 or f64 only, got ") + dtype_name(x.dtype));
}

void group_norm_forward(const View& y, const View& mean, const View& rstd, const View& x, const View* w, const View* b,
                        double eps, int64_t inner) {
  if (x.dtype == DType::F32) group_forward<float>(y, mean, rstd, x, w, b, eps, inner);
  else if (x.dtype == DType::F64) group_forward<double>(y, mean, rstd, x, w, b, eps, inner);
  else fail(ErrorKind::DType, std::string("groupNorm: f32 or f64 only, got ") + dtype_name(x.dtype));
}

void group_norm_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                         const View& mean, const View& rstd, int64_t inner) {
  if (x.dtype == DType::F32) group_backward<float>(dx, dw, db, dy, x, w, mean, rstd, inner);
  else if (x.dtype == DType::F64) group_backward<double>(dx, dw, db, dy, x, w, mean, rstd, inner);
  else fail(ErrorKind::DType, std::string("groupNorm: f32 or f64 only, got ") + dtype_name(x.dtype));
}

}  // namespace emu::cpu::EMU_ISA
