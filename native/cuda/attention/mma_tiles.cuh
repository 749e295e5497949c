// mma_tiles.cuh: the tensor-core building blocks of the bf16 and f16 attention versions
// (v2_mma.cu, v3_pipelined.cu): 16-bit tiles in shared memory, products on mma.sync m16n8k16 fed
// by ldmatrix (fragment layouts: shared/reference/kernels.md), the online softmax in registers,
// and the launch configurations (one per padded head width). The element type T (bf16 or f16) is
// a template parameter: it picks the mma instruction and the roundings (P and dS to T as mma
// operands, the outputs), nothing else.
//
// A block is 4 warps; a tile row holds kHead elements (the head dim zero-padded to the width of
// its configuration) plus 8 of padding, so the 8 rows an ldmatrix reads fall in distinct banks.
#pragma once
#include <type_traits>

#include "cuda/attention/common.cuh"

namespace emu::EMU_DEVICE_NS::attention::mma {

constexpr int kWarps = 4, kThreadsPerBlock = 32 * kWarps;
constexpr int kQueries = 16 * kWarps, kKeys = 64;  // forward and dQ tiles: 16 rows per warp
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// Whether each operand's rows can be fetched as 16-byte cp.async copies (vector_rows).
struct Vector {
  bool q, k, v, dout;
};

template <int kHead> constexpr int kStride = kHead + 8;  // a tile's row stride, in elements

// Rows [r0, r0 + rows) of a [.., L, X] operand's (b, h) slice into dst [rows][kStride]:
// columns past X and rows past L zeroed. `vector`: 16-byte cp.async copies (the caller waits).
template <int kHead, class T>
__device__ void load_tile(T* dst, const T* src, const Strides4& s, long long b, long long h, long long r0,
                          long long L, long long X, int rows, bool vector) {
  constexpr int kChunks = kHead / 8;  // 16-byte chunks per row
  for (int x = threadIdx.x; x < rows * kChunks; x += kThreadsPerBlock) {
    const int r = x / kChunks, c = (x % kChunks) * 8;
    T* d = dst + r * kStride<kHead> + c;
    const long long row = r0 + r;
    if (row >= L || c >= X) {
      for (int e = 0; e < 8; e++) d[e] = T{0};
    } else if (vector) {
      cp_async_16(d, src + s.at(b, h, row, c));
    } else {
      for (int e = 0; e < 8; e++) d[e] = c + e < X ? src[s.at(b, h, row, c + e)] : T{0};
    }
  }
}

// acc[n] (16 x 8, n-tile n of a 16 x 8*kN block) += A(16 x 16*kK, fragments a) * B, with B
// read by ldmatrix from shared memory, two n-tiles per ldmatrix.x4: stored as N x K rows (K
// contiguous, kStride apart; mma_nk) or as K x N rows (N contiguous; mma_kn, through .trans).
template <bool kTransposed, int kHead, int kN, int kK, class T>
__device__ __forceinline__ void mma_b(float (&acc)[kN][4], const uint32_t (&a)[kK][4], const T* b) {
  const int lane = threadIdx.x % 32;
  #pragma unroll
  for (int n = 0; n < kN; n += 2) {
    #pragma unroll
    for (int k = 0; k < kK; k++) {
      uint32_t r[4];
      if constexpr (kTransposed) {
        ldmatrix_x4_trans(r, b + (k * 16 + ((lane / 8) % 2) * 8 + lane % 8) * kStride<kHead> + n * 8 + (lane / 16) * 8);
      } else {
        ldmatrix_x4(r, b + (n * 8 + (lane / 16) * 8 + lane % 8) * kStride<kHead> + k * 16 + ((lane / 8) % 2) * 8);
      }
      const uint32_t b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
      mma_m16n8k16<T>(acc[n], a[k], b0, acc[n]);
      mma_m16n8k16<T>(acc[n + 1], a[k], b1, acc[n + 1]);
    }
  }
}
template <int kHead, int kN, int kK, class T>
__device__ __forceinline__ void mma_nk(float (&acc)[kN][4], const uint32_t (&a)[kK][4], const T* b) {
  mma_b<false, kHead>(acc, a, b);
}
template <int kHead, int kN, int kK, class T>
__device__ __forceinline__ void mma_kn(float (&acc)[kN][4], const uint32_t (&a)[kK][4], const T* b) {
  mma_b<true, kHead>(acc, a, b);
}

// The A fragments of 16 rows x 16*kK columns of a row-major tile (rows kStride apart).
template <int kHead, int kK, class T>
__device__ __forceinline__ void load_a(uint32_t (&a)[kK][4], const T* rows) {
  const int lane = threadIdx.x % 32;
  #pragma unroll
  for (int k = 0; k < kK; k++) ldmatrix_x4(a[k], rows + (lane % 16) * kStride<kHead> + k * 16 + (lane / 16) * 8);
}

// An accumulator block (16 x 8*kN, f32) as the A fragments of the next product (in T): n-tiles
// 2k and 2k+1 are k-step k's columns 0-7 and 8-15 (FlashAttention-2's register reuse of P).
template <int kN, class T>
__device__ __forceinline__ void to_a(uint32_t (&a)[kN / 2][4], const float (&acc)[kN][4]) {
  #pragma unroll
  for (int k = 0; k < kN / 2; k++) {
    a[k][0] = pack_half2<T>(acc[2 * k][0], acc[2 * k][1]);
    a[k][1] = pack_half2<T>(acc[2 * k][2], acc[2 * k][3]);
    a[k][2] = pack_half2<T>(acc[2 * k + 1][0], acc[2 * k + 1][1]);
    a[k][3] = pack_half2<T>(acc[2 * k + 1][2], acc[2 * k + 1][3]);
  }
}

template <int kN>
__device__ __forceinline__ void zero(float (&acc)[kN][4]) {
  #pragma unroll
  for (int n = 0; n < kN; n++)
    #pragma unroll
    for (int e = 0; e < 4; e++) acc[n][e] = 0.0f;
}

// Element e of n-tile n of an accumulator sits at row (e < 2 ? g : g + 8), column n*8 + 2t + e%2.
__device__ __forceinline__ int acc_row(int e) { return (threadIdx.x % 32) / 4 + (e >= 2 ? 8 : 0); }
__device__ __forceinline__ int acc_col(int n, int e) { return n * 8 + 2 * (threadIdx.x % 4) + (e & 1); }

// The sum or max over the four lanes (a quad) that hold one accumulator row.
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// Every cp.async of this thread landed, and every thread's is visible.
__device__ __forceinline__ void wait_tiles() {
  cp_async_wait_all();
  __syncthreads();
}

// FlashAttention's online softmax over one warp's 16 query rows, in registers: each thread holds
// two rows (g and g + 8 of its accumulators) and, for each, the running max m (log2 units) and
// its own part of the running sum l (the quad's parts are added once, at the end).
struct OnlineSoftmax {
  float m[2], l[2];

  __device__ OnlineSoftmax() {
    m[0] = m[1] = neg_inf<float>();
    l[0] = l[1] = 0.0f;
  }

  // Folds a tile of logits s (log2 units, -inf where hidden) in: s becomes P = exp2(s - m_new)
  // and the output accumulator is rescaled by exp2(m_old - m_new).
  template <int kS, int kN>
  __device__ __forceinline__ void step(float (&s)[kS][4], float (&out)[kN][4]) {
    float mx[2] = {m[0], m[1]}, alpha[2], base[2];
    #pragma unroll
    for (int n = 0; n < kS; n++)
      #pragma unroll
      for (int e = 0; e < 4; e++) mx[e / 2] = fmaxf(mx[e / 2], s[n][e]);
    #pragma unroll
    for (int r = 0; r < 2; r++) {
      const float mnew = quad_max(mx[r]);
      base[r] = mnew == neg_inf<float>() ? 0.0f : mnew;  // a row with nothing visible: exp2(-inf - 0) = 0
      alpha[r] = exp2f(m[r] - base[r]);
      m[r] = mnew;
      l[r] *= alpha[r];
    }
    #pragma unroll
    for (int n = 0; n < kS; n++) {
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        s[n][e] = exp2f(s[n][e] - base[e / 2]);
        l[e / 2] += s[n][e];
      }
    }
    #pragma unroll
    for (int n = 0; n < kN; n++)
      #pragma unroll
      for (int e = 0; e < 4; e++) out[n][e] *= alpha[e / 2];
  }

  // Writes out / l and lse = m + log l (natural units) for the warp's rows starting at query
  // `row0`; a row that saw no key gets 0 and -inf.
  template <class T, int kN>
  __device__ __forceinline__ void finish(const Params& p, const Operands<T>& o, long long b, long long h, long long row0,
                                         const float (&out)[kN][4]) {
    #pragma unroll
    for (int r = 0; r < 2; r++) l[r] = quad_sum(l[r]);
    #pragma unroll
    for (int n = 0; n < kN; n++) {
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        const long long i = row0 + acc_row(e), c = acc_col(n, e);
        if (i < p.Lq && c < p.Dv) o.out[p.out.at(b, h, i, c)] = cvt<T>(l[e / 2] > 0.0f ? out[n][e] / l[e / 2] : 0.0f);
      }
    }
    if (threadIdx.x % 4 == 0) {
      #pragma unroll
      for (int r = 0; r < 2; r++) {
        const long long i = row0 + acc_row(2 * r);
        if (i < p.Lq) o.lse[p.lse.at(b, h, i, 0)] = l[r] > 0.0f ? m[r] * kLn2 + logf(l[r]) : neg_inf<float>();
      }
    }
  }
};


// ---- host side ----------------------------------------------------------------------------------

// The padded head width of a call: the smallest configuration holding D (in 16-wide k-steps)
// and Dv.
inline int head_width(const Params& p) {
  const long long need = ((p.D + 15) / 16 * 16) > p.Dv ? (p.D + 15) / 16 * 16 : (p.Dv + 15) / 16 * 16;
  for (int w : {32, 64, 80, 96, 128})
    if (need <= w) return w;
  return 0;
}

// Rows of a [.., L, X] operand can go by 16-byte copies: contiguous, with every row start 16-byte aligned.
inline bool vector_rows(const void* data, const Strides4& s) {
  return s.x == 1 && s.b % 8 == 0 && s.h % 8 == 0 && s.l % 8 == 0 && reinterpret_cast<uintptr_t>(data) % 16 == 0;
}

template <class F>
void by_width(int width, F&& f) {
  switch (width) {
    case 32: return f(std::integral_constant<int, 32>{});
    case 64: return f(std::integral_constant<int, 64>{});
    case 80: return f(std::integral_constant<int, 80>{});
    case 96: return f(std::integral_constant<int, 96>{});
    case 128: return f(std::integral_constant<int, 128>{});
    default: fail(ErrorKind::Internal, "attention: no tensor-core configuration for head width " + std::to_string(width));
  }
}

// Tiles along the grid's x, (b, h) pairs along its y.
inline dim3 grid_of(long long tiles, const Params& p) { return dim3(unsigned(tiles), unsigned(p.B * p.H)); }


}  // namespace emu::EMU_DEVICE_NS::attention::mma
