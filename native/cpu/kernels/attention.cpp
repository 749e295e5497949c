// attention.cpp: fused scaled-dot-product attention, forward and backward, flash-style.
//
//   out = softmax(scale * q k^T + bias + mask) v     q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv]
//
// on any strides (broadcast operands arrive with stride 0), without the Lq x Lk matrix in
// memory. mask: key j is hidden from query i when causal and j > i (top-left aligned, as
// PyTorch's is_causal, also when Lq != Lk) or when kpm[b][j] is true (key padding). bias is
// [B,H,Lq,Lk] with any strides. A query row that sees no key at all gets zeros, not NaN.
//
// Forward (FlashAttention's online softmax): for a block of 64 query rows, walk the keys 64 at
// a time: S = (scale Q) K_j^T on register-blocked tiles (lanes.h; the scale is folded into Q as
// it is packed), the running row max m and sum l, P = exp(S - m), O = O * exp(m_old - m) + P V_j. At the end O / l is the output and
// lse = m + log l (the log-sum-exp of each row) is saved for the backward, so the backward
// recomputes P = exp(S - lse) exactly instead of storing it.
//
// Backward (FlashAttention-2): first Dr_i = sum(dO_i * O_i) per row. Then per key block j and
// query block i: P (recomputed), dV_j += P^T dO_i, dP = dO_i V_j^T, dS = P * (dP - Dr),
// dK_j += dS^T (scale Q_i), dQ_i += scale dS K_j. One task owns one (b, h) pair and all its
// blocks, so dQ is summed in a fixed order with no atomics: results do not depend on the
// thread count (the design's determinism rule). When the bias needs a gradient, dS is also
// written out (that gradient is an Lq x Lk tensor anyway).
//
// Versions: v1 is the composed path in src/nn/functional.ts (matmul, softmax, matmul: the
// reference the tests compare against); this file is v2. Blocks are 64 x 64: the S tile and the
// packed K and V blocks (16 KiB each in f32 at D = 64) stay in L1/L2.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../../core/errors.h"
#include "../fused.h"
#include "../thread_pool.h"
#include "lanes.h"

namespace emu::cpu::EMU_ISA {
namespace {

constexpr int64_t kBlockQ = 64, kBlockK = 64;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Scratch buffers that live on each pool thread, so a block never allocates (or touches fresh
// pages) once the first call has sized them.
template <class T>
T* scratch(int which, int64_t n) {
  thread_local std::vector<T> buf[8];
  if (int64_t(buf[which].size()) < n) buf[which].resize(size_t(n));
  return buf[which].data();
}

template <class T>
struct Args {
  const View *q, *k, *v, *bias, *kpm;
  T scale;
  bool causal;
  int64_t B, H, Lq, Lk, D, Dv;
};

// The [b, h] slice of a 4-d (or [B, H, L] 3-d) view.
template <class T>
T* at(const View& x, int64_t b, int64_t h) {
  return x.ptr<T>() + b * x.strides[0] + h * x.strides[1];
}

template <class T>
Args<T> args_of(const View& q, const View& k, const View& v, const View* bias, const View* kpm, double scale,
                bool causal) {
  return {&q, &k, &v, bias, kpm, T(scale), causal, q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3]};
}

// rows x cols of a strided 2-d slice (row stride rs, column stride cs) into a dense buffer with
// row stride ld, zero-filling up to prows x ld.
template <class T>
void pack(const T* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, T* dst, int64_t prows, int64_t ld) {
  for (int64_t r = 0; r < prows; r++) {
    T* d = dst + r * ld;
    if (r >= rows) {
      std::fill(d, d + ld, T(0));
      continue;
    }
    const T* s = src + r * rs;
    if (cs == 1) std::copy(s, s + cols, d);
    else for (int64_t c = 0; c < cols; c++) d[c] = s[c * cs];
    std::fill(d + cols, d + ld, T(0));
  }
}

// The same, transposed: dst[c][r] = src[r][c], dst row stride ld (>= prows), zero-padded.
template <class T>
void pack_t(const T* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, T* dst, int64_t prows, int64_t ld) {
  for (int64_t c = 0; c < cols; c++) {
    T* d = dst + c * ld;
    const T* s = src + c * cs;
    for (int64_t r = 0; r < rows; r++) d[r] = s[r * rs];
    std::fill(d + rows, d + prows, T(0));
  }
}

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Turns a score row S[j] = (scale q_i) . k_j (j < n, padded to np) into the logits: bias added,
// hidden keys at -inf. Returns the row max.
template <class T>
T logits_row(const Args<T>& a, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t n, int64_t np, T* s) {
  const int64_t visible = a.causal ? std::min(n, std::max<int64_t>(i - j0 + 1, 0)) : n;
  if (a.bias) {
    const View& bv = *a.bias;
    const int64_t bs = bv.strides[3];
    const T* br = at<T>(bv, b, h) + i * bv.strides[2] + j0 * bs;
    if (bs == 1) for (int64_t j = 0; j < visible; j++) s[j] += br[j];
    else for (int64_t j = 0; j < visible; j++) s[j] += br[j * bs];
  }
  if (a.kpm) {
    const View& pm = *a.kpm;
    const bool* pad = pm.ptr<bool>() + b * pm.strides[0] + j0 * pm.strides[1];
    for (int64_t j = 0; j < visible; j++)
      if (pad[j * pm.strides[1]]) s[j] = T(kNegInf);
  }
  for (int64_t j = visible; j < np; j++) s[j] = T(kNegInf);
  return max_row(s, np);
}

template <class T>
void forward_block(const Args<T>& a, const View& out, const View& lse, int64_t b, int64_t h, int64_t i0) {
  constexpr int W = kLanes<T>;
  const int64_t D = a.D, Dv = a.Dv, Dvp = round_up(Dv, W), rows = std::min(kBlockQ, a.Lq - i0);
  T* q = scratch<T>(0, kBlockQ * D);
  T* kt = scratch<T>(1, D * kBlockK);
  T* vp = scratch<T>(2, kBlockK * Dvp);
  T* s = scratch<T>(3, kBlockQ * kBlockK);
  T* o = scratch<T>(4, kBlockQ * Dvp);
  T* m = scratch<T>(5, 2 * kBlockQ);
  T* l = m + kBlockQ;
  const View &Q = *a.q, &K = *a.k, &V = *a.v;
  pack(at<T>(Q, b, h) + i0 * Q.strides[2], rows, D, Q.strides[2], Q.strides[3], q, rows, D);
  for (int64_t x = 0; x < rows * D; x++) q[x] *= a.scale;
  std::fill(o, o + rows * Dvp, T(0));
  std::fill(m, m + rows, T(kNegInf));
  std::fill(l, l + rows, T(0));
  // Causal: keys past the block's last row are hidden from every row of it.
  const int64_t kend = a.causal ? std::min(a.Lk, i0 + rows) : a.Lk;
  for (int64_t j0 = 0; j0 < kend; j0 += kBlockK) {
    const int64_t n = std::min(kBlockK, a.Lk - j0), np = round_up(n, W);
    pack_t(at<T>(K, b, h) + j0 * K.strides[2], n, D, K.strides[2], K.strides[3], kt, np, np);
    pack(at<T>(V, b, h) + j0 * V.strides[2], n, Dv, V.strides[2], V.strides[3], vp, np, Dvp);
    madd_tile<T>(rows, np, D, q, D, 1, kt, np, s, np, false);
    for (int64_t r = 0; r < rows; r++) {
      T* sr = s + r * np;
      const T mrow = logits_row(a, b, h, i0 + r, j0, n, np, sr);
      const T mnew = std::max(m[r], mrow);
      if (mnew == T(kNegInf)) {  // nothing visible yet: this block adds nothing
        std::fill(sr, sr + np, T(0));
        continue;
      }
      const T sum = exp_shift_sum(sr, sr, np, mnew);
      const T alpha = m[r] == T(kNegInf) ? T(0) : T(std::exp(m[r] - mnew));
      l[r] = l[r] * alpha + sum;
      m[r] = mnew;
      if (alpha != T(1)) {
        T* orow = o + r * Dvp;
        for (int64_t c = 0; c < Dvp; c++) orow[c] *= alpha;
      }
    }
    madd_tile<T>(rows, Dvp, np, s, np, 1, vp, Dvp, o, Dvp, true);
  }
  T* ob = at<T>(out, b, h) + i0 * out.strides[2];
  T* lb = at<T>(lse, b, h) + i0 * lse.strides[2];
  for (int64_t r = 0; r < rows; r++) {
    const T inv = l[r] > T(0) ? T(1) / l[r] : T(0);
    for (int64_t c = 0; c < Dv; c++) ob[r * out.strides[2] + c * out.strides[3]] = o[r * Dvp + c] * inv;
    lb[r * lse.strides[2]] = l[r] > T(0) ? m[r] + T(std::log(l[r])) : T(kNegInf);
  }
}

template <class T>
void forward(const View& out, const View& lse, const Args<T>& a) {
  const int64_t nq = (a.Lq + kBlockQ - 1) / kBlockQ;
  parallel_for(a.B * a.H * nq, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) forward_block(a, out, lse, t / (a.H * nq), t / nq % a.H, t % nq * kBlockQ);
  });
}

struct Grads {
  const View *dq, *dk, *dv, *dbias;
};

template <class T>
void backward_head(const Args<T>& a, const View& dout, const View& out, const View& lse, const Grads& g, int64_t b,
                   int64_t h) {
  constexpr int W = kLanes<T>;
  const int64_t Lq = a.Lq, D = a.D, Dv = a.Dv, Dp = round_up(D, W), Dvp = round_up(Dv, W);
  const View &Q = *a.q, &K = *a.k, &V = *a.v;
  T* q = scratch<T>(0, Lq * Dp);       // all of this head's queries, packed and scaled
  T* dop = scratch<T>(1, Lq * Dvp);    // and its output gradient
  T* dq = scratch<T>(2, Lq * Dp);      // dQ / scale, summed over key blocks in a fixed order
  T* stat = scratch<T>(3, 2 * Lq);     // lse and Dr per row
  T* kp = scratch<T>(4, kBlockK * Dp + D * kBlockK + Dv * kBlockK);
  T* kt = kp + kBlockK * Dp;
  T* vt = kt + D * kBlockK;
  T* tiles = scratch<T>(5, 2 * kBlockQ * kBlockK + kBlockK * (Dp + Dvp));
  T* p = tiles;
  T* ds = p + kBlockQ * kBlockK;
  T* dk = ds + kBlockQ * kBlockK;
  T* dv = dk + kBlockK * Dp;
  T *lr = stat, *dr = stat + Lq;
  pack(at<T>(Q, b, h), Lq, D, Q.strides[2], Q.strides[3], q, Lq, Dp);
  for (int64_t x = 0; x < Lq * Dp; x++) q[x] *= a.scale;
  pack(at<T>(dout, b, h), Lq, Dv, dout.strides[2], dout.strides[3], dop, Lq, Dvp);
  std::fill(dq, dq + Lq * Dp, T(0));
  const T* ob = at<T>(out, b, h);
  const T* lb = at<T>(lse, b, h);
  for (int64_t i = 0; i < Lq; i++) {
    T acc = 0;
    for (int64_t c = 0; c < Dv; c++) acc += dop[i * Dvp + c] * ob[i * out.strides[2] + c * out.strides[3]];
    dr[i] = acc;
    lr[i] = lb[i * lse.strides[2]];
  }
  for (int64_t j0 = 0; j0 < a.Lk; j0 += kBlockK) {
    const int64_t n = std::min(kBlockK, a.Lk - j0), np = round_up(n, W);
    pack(at<T>(K, b, h) + j0 * K.strides[2], n, D, K.strides[2], K.strides[3], kp, np, Dp);
    pack_t(at<T>(K, b, h) + j0 * K.strides[2], n, D, K.strides[2], K.strides[3], kt, np, np);
    pack_t(at<T>(V, b, h) + j0 * V.strides[2], n, Dv, V.strides[2], V.strides[3], vt, np, np);
    std::fill(dk, dk + np * Dp, T(0));
    std::fill(dv, dv + np * Dvp, T(0));
    // Causal: query rows before j0 see none of these keys.
    for (int64_t i0 = a.causal ? j0 / kBlockQ * kBlockQ : 0; i0 < Lq; i0 += kBlockQ) {
      const int64_t rows = std::min(kBlockQ, Lq - i0);
      madd_tile<T>(rows, np, D, q + i0 * Dp, Dp, 1, kt, np, p, np, false);
      madd_tile<T>(rows, np, Dv, dop + i0 * Dvp, Dvp, 1, vt, np, ds, np, false);
      for (int64_t r = 0; r < rows; r++) {
        const int64_t i = i0 + r;
        T* pr = p + r * np;
        T* dsr = ds + r * np;
        logits_row(a, b, h, i, j0, n, np, pr);
        if (lr[i] == T(kNegInf)) std::fill(pr, pr + np, T(0));
        else exp_shift_sum(pr, pr, np, lr[i]);
        for (int64_t j = 0; j < np; j++) dsr[j] = pr[j] * (dsr[j] - dr[i]);
        if (g.dbias) {
          const View& gb = *g.dbias;
          T* row = at<T>(gb, b, h) + i * gb.strides[2] + j0 * gb.strides[3];
          for (int64_t j = 0; j < n; j++) row[j * gb.strides[3]] = dsr[j];
        }
      }
      madd_tile<T>(np, Dvp, rows, p, 1, np, dop + i0 * Dvp, Dvp, dv, Dvp, true);
      madd_tile<T>(np, Dp, rows, ds, 1, np, q + i0 * Dp, Dp, dk, Dp, true);
      madd_tile<T>(rows, Dp, np, ds, np, 1, kp, Dp, dq + i0 * Dp, Dp, true);
    }
    const View &gk = *g.dk, &gv = *g.dv;
    T* dkb = at<T>(gk, b, h) + j0 * gk.strides[2];
    T* dvb = at<T>(gv, b, h) + j0 * gv.strides[2];
    for (int64_t j = 0; j < n; j++) {
      for (int64_t c = 0; c < D; c++) dkb[j * gk.strides[2] + c * gk.strides[3]] = dk[j * Dp + c];
      for (int64_t c = 0; c < Dv; c++) dvb[j * gv.strides[2] + c * gv.strides[3]] = dv[j * Dvp + c];
    }
  }
  const View& gq = *g.dq;
  T* dqb = at<T>(gq, b, h);
  for (int64_t i = 0; i < Lq; i++)
    for (int64_t c = 0; c < D; c++) dqb[i * gq.strides[2] + c * gq.strides[3]] = dq[i * Dp + c] * a.scale;
}

template <class T>
void backward(const View& dout, const View& out, const View& lse, const Grads& g, const Args<T>& a) {
  if (g.dbias) {  // the causal walk skips blocks wholly above the diagonal: zero them first
    const View& gb = *g.dbias;
    for (int64_t b = 0; b < a.B; b++)
      for (int64_t h = 0; h < a.H; h++)
        for (int64_t i = 0; i < a.Lq; i++)
          for (int64_t j = 0; j < a.Lk; j++) at<T>(gb, b, h)[i * gb.strides[2] + j * gb.strides[3]] = T(0);
  }
  parallel_for(a.B * a.H, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) backward_head(a, dout, out, lse, g, t / a.H, t % a.H);
  });
}

}  // namespace

void attention(const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
               const View* kpm, double scale, bool causal) {
  if (q.dtype == DType::F32) forward(out, lse, args_of<float>(q, k, v, bias, kpm, scale, causal));
  else if (q.dtype == DType::F64) forward(out, lse, args_of<double>(q, k, v, bias, kpm, scale, causal));
  else fail(ErrorKind::DType, std::string("attention: f32 or f64 only, got ") + dtype_name(q.dtype));
}

void attention_backward(const View& dq, const View& dk, const View& dv, const View* dbias, const View& dout,
                        const View& out, const View& lse, const View& q, const View& k, const View& v,
                        const View* bias, const View* kpm, double scale, bool causal) {
  const Grads g{&dq, &dk, &dv, dbias};
  if (q.dtype == DType::F32) backward(dout, out, lse, g, args_of<float>(q, k, v, bias, kpm, scale, causal));
  else if (q.dtype == DType::F64) backward(dout, out, lse, g, args_of<double>(q, k, v, bias, kpm, scale, causal));
  else fail(ErrorKind::DType, std::string("attention: f32 or f64 only, got ") + dtype_name(q.dtype));
}

}  // namespace emu::cpu::EMU_ISA
