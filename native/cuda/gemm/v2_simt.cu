// v2_simt.cu: GEMM version 2, register tiling on the CUDA cores (SIMT): the f32 and f64 default.
//
// What changes from v1: each thread computes a TM x TN block of outputs (8x8 in the 128x128 block
// tile, 4x4 in the 64x64 one) instead of one, so per k it loads TM + TN values from shared memory
// for TM * TN FMAs: 16 loads per 64 FMAs at 8x8, as 4 16-byte loads (LDS.128), against v1's 2
// loads per FMA. The block tile (BM x BN, BK deep) is double buffered: the next slice of a and b
// is read from global memory into registers while the current one is multiplied, then stored to
// the other shared buffer, so there is one barrier per slice. Global reads are 16-byte vectors
// (4 f32, 2x2 f64, 4 bf16 or f16 as 8 bytes) along whichever of a's (b's) dims has stride 1, when the
// strides and the base allow (gemm.cuh, operand_of); otherwise, and at the tails of M, N and K,
// they are scalar and bounds-checked, with zeros filling the tile. Shared tiles are stored k-major
// (tile[k][x]) with rows padded by 4 elements, so the 4 scalar stores of a k-contiguous run land
// in different banks and the compute loop reads 4 consecutive x values as one vector.
// Each thread's outputs are split in groups of 4 rows (columns) spaced by BM/TM*4 (BN/TN*4), so a
// warp's 16-byte shared reads cover consecutive addresses: no bank conflicts.
//
// What it should buy on an H100/H200 (f32): per k, a warp issues TM/4 + TN/4 = 4 LDS.128 for
// 64 FFMA instructions at 8x8 (a broadcast for a, 2 wavefronts for b), so shared memory no longer
// bounds it and the FMA pipe can: 64 FFMAs per 4 loads is 16:1, enough to keep the 4 schedulers
// issuing FFMA most cycles. Global/L2 intensity of a 128x128x8 step: 2 * 128 * 128 * 8 FLOPs per
// (128 + 128) * 8 * 4 bytes = 32 FLOP/B, 2.1 TB/s of L2 reads at 67 TFLOP/s, well within L2.
// Resources (ptxas, sm_90, f32): 187 registers at 128x128 (64 accumulators, 16 fragment values,
// 8 prefetched values, 64-bit addressing) and 17 KiB of shared memory, so one 256-thread block
// (8 warps) per SM, each thread with 64 independent FMA chains per k for latency hiding (capping
// it at 128 registers for 2 blocks per SM spills); 63 registers at 64x64. Such kernels reach
// 60-80% of the f32 FMA peak: expect ~40-50 TFLOP/s of 67 on large f32 problems, and the 64x64
// tile (4x4 per thread, 8 loads per 16 FMAs) ~50-60% of that, for problems too small to fill the
// SMs with 128x128 tiles. f64 runs the same code at the f64 FMA rate (34 TFLOP/s on the CUDA
// cores, 255 registers with a small spill at 128x128); bf16 and f16 inputs (only where tensor cores
// are missing, below sm_80) are widened to f32.
#include "cuda/gemm/gemm.cuh"

namespace emu::EMU_DEVICE_NS::gemm::v2 {

// ---- 4-element vectors ----------------------------------------------------------------------------

__device__ __forceinline__ void load4_global(const float* p, float r[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
}
__device__ __forceinline__ void load4_global(const double* p, double r[4]) {
  const double2 v0 = reinterpret_cast<const double2*>(p)[0], v1 = reinterpret_cast<const double2*>(p)[1];
  r[0] = v0.x, r[1] = v0.y, r[2] = v1.x, r[3] = v1.y;
}
template <class T, std::enable_if_t<kIsHalf<T>, int> = 0>
__device__ __forceinline__ void load4_global(const T* p, float r[4]) {  // 8 bytes: 4 bf16 or f16
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  r[0] = load(T{uint16_t(v.x)}), r[1] = load(T{uint16_t(v.x >> 16)});
  r[2] = load(T{uint16_t(v.y)}), r[3] = load(T{uint16_t(v.y >> 16)});
}
__device__ __forceinline__ void store4_global(float* p, const float r[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
}
__device__ __forceinline__ void store4_global(double* p, const double r[4]) {
  reinterpret_cast<double2*>(p)[0] = double2{r[0], r[1]};
  reinterpret_cast<double2*>(p)[1] = double2{r[2], r[3]};
}
template <class T, std::enable_if_t<kIsHalf<T>, int> = 0>
__device__ __forceinline__ void store4_global(T* p, const float r[4]) {
  *reinterpret_cast<uint2*>(p) = uint2{pack_half2<T>(r[0], r[1]), pack_half2<T>(r[2], r[3])};
}
__device__ __forceinline__ void load4_shared(const float* p, float r[4]) { load4_global(p, r); }
__device__ __forceinline__ void load4_shared(const double* p, double r[4]) { load4_global(p, r); }
__device__ __forceinline__ void store4_shared(float* p, const float r[4]) { store4_global(p, r); }
__device__ __forceinline__ void store4_shared(double* p, const double r[4]) { store4_global(p, r); }

__device__ __forceinline__ float m_fma(float a, float b, float c) { return ::fmaf(a, b, c); }
__device__ __forceinline__ double m_fma(double a, double b, double c) { return ::fma(a, b, c); }

// ---- the operand tiles -------------------------------------------------------------------------------

// Which 4 elements of a BX x BK operand tile thread `tid` moves: a run along k (x fixed) when the
// operand is k-contiguous, else a run along x.
template <int BX, int BK>
__device__ __forceinline__ void run_of(const Operand& o, int tid, int* xi, int* ki) {
  if (o.k_inner) {
    *xi = tid / (BK / 4), *ki = tid % (BK / 4) * 4;
  } else {
    *ki = tid / (BX / 4), *xi = tid % (BX / 4) * 4;
  }
}

// Reads this thread's run of the tile at (x0, k0) of matrix `base` into r, zeros outside X x K.
template <int BX, int BK, class T>
__device__ __forceinline__ void fetch(const T* base, const Operand& o, long long K, long long x0, long long k0, int tid,
                                      C<T> r[4]) {
  int xi, ki;
  run_of<BX, BK>(o, tid, &xi, &ki);
  const long long x = x0 + xi, k = k0 + ki;
  const long long step = o.k_inner ? o.sk : o.sx;
  const long long in_run = o.k_inner ? (x < o.X ? K - k : 0) : (k < K ? o.X - x : 0);  // elements of the run in range
  if (o.chunked && in_run >= 4) {
    load4_global(base + x * o.sx + k * o.sk, r);
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; j++) r[j] = j < in_run ? load(base[x * o.sx + k * o.sk + j * step]) : C<T>(0);
}

// Stores a run read by fetch into the k-major shared tile.
template <int BX, int BK, class V>
__device__ __forceinline__ void store(V (*tile)[BX + 4], const Operand& o, int tid, const V r[4]) {
  int xi, ki;
  run_of<BX, BK>(o, tid, &xi, &ki);
  if (o.k_inner) {
#pragma unroll
    for (int j = 0; j < 4; j++) tile[ki + j][xi] = r[j];
  } else {
    store4_shared(&tile[ki][xi], r);
  }
}

// ---- the kernel ----------------------------------------------------------------------------------

// A block computes a BM x BN tile of out with (BM / TM) x (BN / TN) threads, each TM x TN outputs.
template <class T, int BM, int BN, int BK, int TM, int TN, bool kEpilogue>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    simt_kernel(Problem p, Epilogue e, Operand oa, Operand ob, bool vector_out, int tiles_m, int tiles_n, const T* a, const T* b,
                T* out) {
  using V = C<T>;
  constexpr int kThreads = (BM / TM) * (BN / TN);
  static_assert(BM * BK == 4 * kThreads && BN * BK == 4 * kThreads, "each thread moves one run of 4 per operand");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "outputs come in groups of 4");
  EMU_SHARED(V, as, [2][BK][BM + 4]);
  EMU_SHARED(V, bs, [2][BK][BN + 4]);
  const int tid = int(threadIdx.x), tx = tid % (BN / TN), ty = tid / (BN / TN);
  long long m0, n0;
  tile_origin(tiles_m, tiles_n, BM, BN, &m0, &n0);
  const long long slices = (p.K + BK - 1) / BK;
  for (long long n = blockIdx.z; n < p.batch; n += gridDim.z) {
    const T* an = a + n * oa.sn;
    const T* bn = b + n * ob.sn;
    V acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
      for (int j = 0; j < TN; j++) acc[i][j] = V(0);
    V ra[4], rb[4];
    if (slices > 0) {
      fetch<BM, BK>(an, oa, p.K, m0, 0, tid, ra);
      fetch<BN, BK>(bn, ob, p.K, n0, 0, tid, rb);
      store<BM, BK>(as[0], oa, tid, ra);
      store<BN, BK>(bs[0], ob, tid, rb);
      __syncthreads();
    }
    for (long long s = 0; s < slices; s++) {
      const int buf = int(s & 1);
      if (s + 1 < slices) {  // the next slice travels while this one is multiplied
        fetch<BM, BK>(an, oa, p.K, m0, (s + 1) * BK, tid, ra);
        fetch<BN, BK>(bn, ob, p.K, n0, (s + 1) * BK, tid, rb);
      }
#pragma unroll
      for (int k = 0; k < BK; k++) {
        V af[TM], bf[TN];
#pragma unroll
        for (int g = 0; g < TM / 4; g++) load4_shared(&as[buf][k][g * (BM / TM) * 4 + ty * 4], &af[g * 4]);
#pragma unroll
        for (int g = 0; g < TN / 4; g++) load4_shared(&bs[buf][k][g * (BN / TN) * 4 + tx * 4], &bf[g * 4]);
#pragma unroll
        for (int i = 0; i < TM; i++)
#pragma unroll
          for (int j = 0; j < TN; j++) acc[i][j] = m_fma(af[i], bf[j], acc[i][j]);
      }
      if (s + 1 < slices) {
        store<BM, BK>(as[buf ^ 1], oa, tid, ra);
        store<BN, BK>(bs[buf ^ 1], ob, tid, rb);
      }
      __syncthreads();  // the stores above are read next slice; this slice's buffer is refilled after
    }
    T* on = out + n * p.M * p.N;
#pragma unroll
    for (int i = 0; i < TM; i += 4) {
#pragma unroll
      for (int r = 0; r < 4; r++) {
        const long long row = m0 + i / 4 * (BM / TM) * 4 + ty * 4 + r;
        if (row >= p.M) continue;
#pragma unroll
        for (int j = 0; j < TN; j += 4) {
          const long long col = n0 + j / 4 * (BN / TN) * 4 + tx * 4;
          T* o = on + row * p.N + col;
          V v[4];
#pragma unroll
          for (int c = 0; c < 4; c++) {
            v[c] = acc[i + r][j + c];
            if constexpr (kEpilogue) {
              if (col + c < p.N) v[c] = epilogue_value<T>(e, p, v[c], n, row, col + c);
            }
          }
          if (vector_out && col + 3 < p.N) {
            store4_global(o, v);
          } else {
#pragma unroll
            for (int c = 0; c < 4; c++)
              if (col + c < p.N) o[c] = cvt<T>(v[c]);
          }
        }
      }
    }
  }
}

template <class T, int BM, int BN, int BK, int TM, int TN>
void launch_tile(const Problem& p, void* out, const void* a, const void* b, const Epilogue* e) {
  constexpr int align = 4 * sizeof(T) < 16 ? 4 * int(sizeof(T)) : 16;
  const Operand oa = operand_a(p, a, 4, align), ob = operand_b(p, b, 4, align);
  const bool vector_out = p.N % 4 == 0 && reinterpret_cast<uintptr_t>(out) % align == 0;
  int tiles_m, tiles_n;
  const int tiles = tile_count(p, BM, BN, &tiles_m, &tiles_n);
  const dim3 grid(unsigned(tiles), 1, batch_blocks(p.batch)), block((BM / TM) * (BN / TN));
  const T *ta = static_cast<const T*>(a), *tb = static_cast<const T*>(b);
  if (e) {
    launch<simt_kernel<T, BM, BN, BK, TM, TN, true>>(grid, block, 0, Stream{}, p, *e, oa, ob, vector_out, tiles_m, tiles_n, ta, tb,
                                                     static_cast<T*>(out));
  } else {
    launch<simt_kernel<T, BM, BN, BK, TM, TN, false>>(grid, block, 0, Stream{}, p, Epilogue{}, oa, ob, vector_out, tiles_m, tiles_n,
                                                      ta, tb, static_cast<T*>(out));
  }
}

void run(const Problem& p, Tile tile, DType dtype, void* out, const void* a, const void* b, const Epilogue* e) {
  dispatch_float(dtype, "matmul", [&](auto t) {
    using T = decltype(t);
    if (tile == Tile::Large) {
      launch_tile<T, 128, 128, 8, 8, 8>(p, out, a, b, e);
    } else {
      launch_tile<T, 64, 64, 16, 4, 4>(p, out, a, b, e);
    }
  });
}

}  // namespace emu::EMU_DEVICE_NS::gemm::v2
