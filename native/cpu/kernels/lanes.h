// lanes.h: SIMD vectors of f32 and f64 for the fused kernels, as wide as the instruction set
// this file is compiled for (AVX-512: 64 bytes, AVX2: 32, plain x86-64: SSE2's 16), written
// with GCC's vector extensions so one source serves all three builds (see kernels.h), and a
// vectorised exp.
//
// What is here:
//  - Vec<T>: the vector type of T; kLanes<T> its width; load/store (unaligned), splat.
//  - exp_row: exp of a row of f32, exp_vec with std::exp where it is out of range;
//    exp_lanes_row: the same for any formula built on exp_vec (sigmoid, silu).
//  - max_row, sum_row, dot_row, sqdev_row, exp_shift_sum, exp_shift_total,
//    exp_shift_affine: row passes (softmax, norms), any length.
//  - exp_vec: exp of a vector of f32, Cephes' expf (range reduction to r in [-ln2/2, ln2/2], a
//    degree-6 polynomial, 2^n built in the exponent bits), within 2 ulp of the correctly rounded
//    value; arguments below -87.3 give exactly 0 (so -inf gives 0, which masked softmax entries
//    rely on). f64, used for references and gradcheck, calls std::exp per element.
//  - dense_row: a row of a strided 2-d View as a dense array.
//  - madd_tile: C (+)= A B on small tiles, the one matrix product the fused kernels need.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../../core/view.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace emu::cpu::EMU_ISA {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX2__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

typedef float vf32 __attribute__((vector_size(kVecBytes)));
typedef double vf64 __attribute__((vector_size(kVecBytes)));
typedef int32_t vi32 __attribute__((vector_size(kVecBytes)));

template <class T> struct VecOf;
template <> struct VecOf<float> { using type = vf32; };
template <> struct VecOf<double> { using type = vf64; };
template <class T> using Vec = typename VecOf<T>::type;
template <class T> constexpr int kLanes = kVecBytes / int(sizeof(T));

template <class T>
inline Vec<T> vload(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void vstore(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}
template <class T>
inline Vec<T> splat(T s) {
  return Vec<T>{} + s;
}

inline vf32 exp_vec(vf32 x) {
  const vf32 hi = splat(88.3762626647949f), lo = splat(-87.33654475f);
  const vi32 dead = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  // n = round(x / ln2); t + 128.5 is positive here, so truncation rounds it.
  const vi32 ni = __builtin_convertvector(x * 1.44269504088896341f + 128.5f, vi32) - 128;
  const vf32 n = __builtin_convertvector(ni, vf32);
  const vf32 r = x - n * 0.693359375f - n * -2.12194440e-4f;
  vf32 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const vf32 y = p * r * r + r + 1.0f;
  const vi32 bits = (ni + 127) << 23;
  vf32 pow2n;
  std::memcpy(&pow2n, &bits, sizeof pow2n);
  const vf32 e = y * pow2n;
  return dead ? splat(0.0f) : e;
}

// out[i] = vf(x[i], y[i]) on a contiguous f32 row (y may be null), for a formula vf built on
// exp_vec of x or -x. Whole vectors take vf, except those with a lane where exp of +-x leaves
// exp_vec's range (|x| > 87, or NaN), which take the scalar formula sf lane by lane, as does the
// tail: infinities, subnormals and NaN come out as sf gives them.
template <class VF, class SF>
inline void exp_lanes_row(float* out, const float* x, const float* y, int64_t n, VF vf, SF sf) {
  constexpr int W = kLanes<float>;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vf32 v = vload(x + i);
    const vi32 odd = (v > 87.0f) | (v < -87.0f) | (v != v);
    bool any = false;
    for (int l = 0; l < W; l++) any |= odd[l] != 0;
    if (!any) {
      vstore(out + i, vf(v, y ? vload(y + i) : vf32{}));
    } else {
      for (int l = 0; l < W; l++) out[i + l] = sf(x[i + l], y ? y[i + l] : 0.0f);
    }
  }
  for (; i < n; i++) out[i] = sf(x[i], y ? y[i] : 0.0f);
}

// out[i] = exp(x[i]) for i < n, std::exp's results to within 2 ulp.
inline void exp_row(float* out, const float* x, int64_t n) {
  exp_lanes_row(out, x, nullptr, n, [](vf32 v, vf32) { return exp_vec(v); }, [](float v, float) { return std::exp(v); });
}

// Row r of a 2-d view as a dense array: the view's own memory when its rows are contiguous,
// else a copy into buf (which holds shape[1] elements).
template <class T>
const T* dense_row(const View& x, int64_t r, T* buf) {
  const T* p = x.ptr<T>() + r * x.strides[0];
  const int64_t n = x.shape[1], s = x.strides[1];
  if (s == 1 || n <= 1) return p;
  for (int64_t j = 0; j < n; j++) buf[j] = p[j * s];
  return buf;
}

// Row reductions over x[i], i < n (any n: whole vectors, then the tail one by one). The order
// of the additions depends only on n, so results are the same bits on every run.
template <class T>
inline T max_row(const T* x, int64_t n) {
  constexpr int W = kLanes<T>;
  Vec<T> m = splat(-std::numeric_limits<T>::infinity());
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const Vec<T> v = vload(x + i);
    m = v > m ? v : m;
  }
  T r = m[0];
  for (int l = 1; l < W; l++) r = m[l] > r ? m[l] : r;
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

template <class T>
inline T sum_row(const T* x, int64_t n) {
  constexpr int W = kLanes<T>;
  Vec<T> acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) acc += vload(x + i);
  T r = 0;
  for (int l = 0; l < W; l++) r += acc[l];
  for (; i < n; i++) r += x[i];
  return r;
}

template <class T>
inline T dot_row(const T* x, const T* y, int64_t n) {
  constexpr int W = kLanes<T>;
  Vec<T> acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) acc += vload(x + i) * vload(y + i);
  T r = 0;
  for (int l = 0; l < W; l++) r += acc[l];
  for (; i < n; i++) r += x[i] * y[i];
  return r;
}

// sum of (x[i] - c)^2.
template <class T>
inline T sqdev_row(const T* x, int64_t n, T c) {
  constexpr int W = kLanes<T>;
  Vec<T> acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const Vec<T> d = vload(x + i) - c;
    acc += d * d;
  }
  T r = 0;
  for (int l = 0; l < W; l++) r += acc[l];
  for (; i < n; i++) r += (x[i] - c) * (x[i] - c);
  return r;
}

// out[i] = exp(x[i] - shift) for i < n (out may be x); returns their sum.
inline float exp_shift_sum(float* out, const float* x, int64_t n, float shift) {
  constexpr int W = kLanes<float>;
  vf32 acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vf32 e = exp_vec(vload(x + i) - shift);
    vstore(out + i, e);
    acc += e;
  }
  float r = 0;
  for (int l = 0; l < W; l++) r += acc[l];
  if (i < n) {  // the tail through one padded vector, so every element takes the same exp
    const int64_t rest = n - i;
    float tail[W];
    for (int l = 0; l < W; l++) tail[l] = l < rest ? x[i + l] - shift : -std::numeric_limits<float>::infinity();
    vstore(tail, exp_vec(vload(tail)));
    for (int64_t l = 0; l < rest; l++) r += (out[i + l] = tail[l]);
  }
  return r;
}

// sum of exp(x[i] - shift), nothing stored (a log-sum-exp's pass).
inline float exp_shift_total(const float* x, int64_t n, float shift) {
  constexpr int W = kLanes<float>;
  vf32 acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) acc += exp_vec(vload(x + i) - shift);
  float r = 0;
  for (int l = 0; l < W; l++) r += acc[l];
  for (; i < n; i++) r += exp_vec(splat(x[i] - shift))[0];
  return r;
}

inline double exp_shift_total(const double* x, int64_t n, double shift) {
  double r = 0;
  for (int64_t i = 0; i < n; i++) r += std::exp(x[i] - shift);
  return r;
}

// out[i] = (exp(x[i] - shift) - sub) * scale: softmax minus a constant, scaled (cross-entropy's
// gradient) in one pass.
inline void exp_shift_affine(float* out, const float* x, int64_t n, float shift, float sub, float scale) {
  constexpr int W = kLanes<float>;
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(out + i, (exp_vec(vload(x + i) - shift) - sub) * scale);
  for (; i < n; i++) out[i] = (exp_vec(splat(x[i] - shift))[0] - sub) * scale;
}

inline void exp_shift_affine(double* out, const double* x, int64_t n, double shift, double sub, double scale) {
  for (int64_t i = 0; i < n; i++) out[i] = (std::exp(x[i] - shift) - sub) * scale;
}

inline double exp_shift_sum(double* out, const double* x, int64_t n, double shift) {
  double r = 0;
  for (int64_t i = 0; i < n; i++) r += (out[i] = std::exp(x[i] - shift));
  return r;
}

// The register block of madd_tile: MR rows by NV vectors of C, kept in registers over all k.
template <class T, int MR, int NV>
inline void madd_block(int64_t k, const T* a, int64_t ai, int64_t ap, const T* b, int64_t ldb, T* c, int64_t ldc,
                       bool accumulate) {
  constexpr int W = kLanes<T>;
  Vec<T> acc[MR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? vload(c + r * ldc + v * W) : Vec<T>{};
  for (int64_t p = 0; p < k; p++) {
    Vec<T> bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = vload(b + p * ldb + v * W);
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
      const Vec<T> s = splat(a[r * ai + p * ap]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] += s * bv[v];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) vstore(c + r * ldc + v * W, acc[r][v]);
}

template <class T, int NV>
inline void madd_rows(int64_t m, int64_t k, const T* a, int64_t ai, int64_t ap, const T* b, int64_t ldb, T* c,
                      int64_t ldc, bool accumulate) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) madd_block<T, 4, NV>(k, a + i * ai, ai, ap, b, ldb, c + i * ldc, ldc, accumulate);
  for (; i < m; i++) madd_block<T, 1, NV>(k, a + i * ai, ai, ap, b, ldb, c + i * ldc, ldc, accumulate);
}

// C[i][j] (+)= sum_p A(i, p) B[p][j] for i < m, j < n, p < k. A(i, p) = a[i * ai + p * ap] is
// read one scalar at a time, so a transposed operand is used in place; B and C are row-major
// (row strides ldb, ldc) and n must be a multiple of kLanes<T> (callers pad their buffers).
template <class T>
inline void madd_tile(int64_t m, int64_t n, int64_t k, const T* a, int64_t ai, int64_t ap, const T* b, int64_t ldb, T* c,
                      int64_t ldc, bool accumulate) {
  constexpr int W = kLanes<T>;
  int64_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) madd_rows<T, 4>(m, k, a, ai, ap, b + j, ldb, c + j, ldc, accumulate);
  const int64_t rest = (n - j) / W;
  if (rest == 3) madd_rows<T, 3>(m, k, a, ai, ap, b + j, ldb, c + j, ldc, accumulate);
  if (rest == 2) madd_rows<T, 2>(m, k, a, ai, ap, b + j, ldb, c + j, ldc, accumulate);
  if (rest == 1) madd_rows<T, 1>(m, k, a, ai, ap, b + j, ldb, c + j, ldc, accumulate);
}

}  // namespace emu::cpu::EMU_ISA
