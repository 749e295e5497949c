// v3_mma.cu: GEMM version 3, bf16 and f16 on the tensor cores: mma.sync m16n8k16 (f32 accumulate)
// fed by ldmatrix from swizzled shared memory, filled by a 3-stage cp.async pipeline. The bf16 and
// f16 default. One kernel for both: the element type T is a template parameter, and only the mma
// instruction (mma_m16n8k16<T>) and the final rounding (cvt<T>) depend on it.
//
// What changes from v2: the multiply-adds run on the tensor cores, one warp-wide mma.sync doing a
// 16x8x16 product (4096 FLOPs); everything else exists to feed them.
//  - Block tile BM x BN (128x128, or 64x64 when a problem has too few tiles to fill the GPU),
//    32 deep per stage, 4 warps in a 2x2 grid, each warp a (BM/2) x (BN/2) tile: 4x8 (2x4)
//    mma tiles of 16x8, kept in 128 (32) f32 accumulator registers per thread.
//  - Global -> shared with cp.async (16 bytes, bypassing registers and L1), 3 stages in flight:
//    stage s+2 is loading while stage s is multiplied; one commit group per stage, wait_group 1,
//    then a barrier.
//  - Operand layouts without copies: a tile is stored "k-inner" ([x][32], for a row-major a and a
//    b stored N x K, e.g. linear's weight) or "x-inner" ([32][x], for a transposed a and a
//    row-major K x N b), whichever dimension has stride 1 in global memory, so every 16-byte
//    cp.async reads 8 consecutive elements. ldmatrix.x4 turns a k-inner tile into fragments
//    directly and ldmatrix.x4.trans an x-inner one (fragment layouts: shared/reference/kernels.md).
//  - Swizzle: chunk c (16 bytes) of row r is stored at chunk c ^ f(r) (f(r) = r mod 8 for rows
//    of 8 or more chunks, (r / 2) mod 4 for the 4-chunk rows of a k-inner tile), so the 8 rows one
//    ldmatrix phase reads fall in 8 different 16-byte bank groups: no bank conflicts, no padding.
//  - Tails, odd strides and non-contiguous views: a 16-byte chunk that is not wholly inside the
//    matrix, or an operand whose strides or base rule out aligned 16-byte reads, is read with
//    scalar bounds-checked loads and stored to the same place (zeros outside), in the same
//    pipeline; only the full, aligned chunks take cp.async.
//  - Blocks walk the output tiles in grouped order (gemm.cuh) for L2 reuse.
// Epilogue: the f32 accumulators (after the fused epilogue, if any: gemm.cuh) are rounded once to
// T and stored as pairs (4 bytes) when the row length is even, one element otherwise.
//
// What it should buy on an H100/H200: the dense bf16 rate is ~4096 FLOP/clock/SM (989 TFLOP/s at
// 1.83 GHz boost over 132 SMs; f16 the same), reached in full only by wgmma; mma.sync on Hopper is reported at
// roughly 60-70% of it. Per 16-deep step a 64x64 warp tile issues 8 ldmatrix.x4 (4 KiB of shared
// reads) for 32 mma (131 kFLOP): 32 FLOP/B, and shared memory delivers 128 B/clock/SM, so its
// bandwidth matches the full tensor rate with no headroom; the 32x32 warp tile of the small
// block has half that ratio (16 FLOP/B) and is bound by shared memory at <= 50% of peak. From L2,
// a 128x128x32 stage is 16 KiB for 1 MFLOP (64 FLOP/B): ~9 TB/s of L2 reads at 600 TFLOP/s,
// near what L2 delivers, which is why the best mma.sync kernels use 128x256 tiles. Resources
// (ptxas, sm_90): 48 KiB of shared memory and 254-255 registers at 128x128 (8-28 bytes of spill
// in the layouts other than k-inner x k-inner), so 2 blocks (8 warps) per SM, which the 3-stage
// pipeline must hide L2/HBM latency with; 24 KiB and 128-136 registers at 64x64 (3 blocks). Expected at
// 4096^3 on an H200: ~350-450 TFLOP/s (0.45-0.6x cuBLAS's ~750-800); the 64x64 tile ~200-250.
// Reaching 0.6x reliably would need a 128x256 tile with 8 warps, 4 stages and double-buffered
// fragments; 0.9x needs wgmma + TMA (a Hopper-only version behind the same dispatcher).
#include "cuda/gemm/gemm.cuh"

namespace emu::EMU_DEVICE_NS::gemm::v3 {

constexpr int kBK = 32;       // k per stage
constexpr int kStages = 3;    // stages of the cp.async pipeline
constexpr int kThreads = 128; // 4 warps, 2 x 2 over the block tile

// Element offset of 16-byte chunk c of row r in a shared tile with kChunks chunks per row.
template <int kChunks>
__device__ __forceinline__ int swizzled(int r, int c) {
  static_assert(kChunks == 4 || kChunks % 8 == 0, "rows of 4 chunks or of a multiple of 8");
  if constexpr (kChunks == 4) {
    return r * 32 + (c ^ ((r >> 1) & 3)) * 8;
  } else {
    return r * kChunks * 8 + (c ^ (r & 7)) * 8;
  }
}

// The slow path of load_tile: the first `count` of 8 elements `step` apart, zeros after them, as
// one 16-byte store. Not inlined, so the main loop keeps its registers for the accumulators.
template <class T>
__device__ EMU_NOINLINE void load_chunk_scalar(T* dst, const T* src, long long step, int count) {
  uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
  for (int j = 0; j < 8; j++)
    if (j < count) w[j / 2] |= uint32_t(src[j * step].bits) << (16 * (j & 1));
  *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
}

// Starts loading the BX x kBK tile at (x0, k0) of one operand into `tile` (k-inner: [BX][kBK],
// else [kBK][BX]), zeros outside X x K.
template <class T, int BX, bool kKInner>
__device__ __forceinline__ void load_tile(T* tile, const T* base, const Operand& o, long long K, long long x0,
                                          long long k0, int tid) {
  constexpr int kChunks = kKInner ? kBK / 8 : BX / 8;
  constexpr int kPerThread = BX * kBK / 8 / kThreads;
  static_assert(BX * kBK / 8 % kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int i = 0; i < kPerThread; i++) {
    const int q = tid + i * kThreads, r = q / kChunks, c = q % kChunks;
    const long long x = x0 + (kKInner ? r : c * 8), k = k0 + (kKInner ? c * 8 : r);
    T* dst = tile + swizzled<kChunks>(r, c);
    const long long in_run = kKInner ? (x < o.X ? K - k : 0) : (k < K ? o.X - x : 0);  // elements of the chunk in range
    if (o.chunked && in_run >= 8) {
      cp_async_16(dst, base + x * o.sx + k * o.sk);
      continue;
    }
    load_chunk_scalar(dst, base + (in_run > 0 ? x * o.sx + k * o.sk : 0), kKInner ? o.sk : o.sx, int(in_run < 8 ? in_run : 8));
  }
}

// The A fragment (mma's 16x16 row-major operand) of rows m..m+15, k kk..kk+15 of a's tile.
template <class T, int BM, bool kKInner>
__device__ __forceinline__ void load_a(uint32_t r[4], const T* tile, int m, int kk, int lane) {
  const int matrix = lane / 8, row = lane % 8;  // matrices: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
  if constexpr (kKInner) {
    ldmatrix_x4(r, tile + swizzled<kBK / 8>(m + matrix % 2 * 8 + row, kk / 8 + matrix / 2));
  } else {
    ldmatrix_x4_trans(r, tile + swizzled<BM / 8>(kk + matrix / 2 * 8 + row, m / 8 + matrix % 2));
  }
}

// The B fragments (mma's 16x8 "col" operand) of columns n..n+7 (r[0], r[1]) and n+8..n+15 (r[2],
// r[3]), k kk..kk+15 of b's tile.
template <class T, int BN, bool kKInner>
__device__ __forceinline__ void load_b(uint32_t r[4], const T* tile, int n, int kk, int lane) {
  const int matrix = lane / 8, row = lane % 8;  // matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
  if constexpr (kKInner) {
    ldmatrix_x4(r, tile + swizzled<kBK / 8>(n + matrix / 2 * 8 + row, kk / 8 + matrix % 2));
  } else {
    ldmatrix_x4_trans(r, tile + swizzled<BN / 8>(kk + matrix % 2 * 8 + row, n / 8 + matrix / 2));
  }
}

template <class T, int BM, int BN, bool kAKInner, bool kBKInner, bool kEpilogue>
__global__ void __launch_bounds__(kThreads)
    mma_kernel(Problem p, Epilogue e, Operand oa, Operand ob, bool pair_out, int tiles_m, int tiles_n, const T* a, const T* b,
               T* out) {
  constexpr int kWarpM = BM / 2, kWarpN = BN / 2, kTilesM = kWarpM / 16, kTilesN = kWarpN / 8;
  constexpr int kStageElems = (BM + BN) * kBK;
  static_assert(kTilesN % 2 == 0, "B fragments come in pairs of n8 tiles");
  EMU_DYNAMIC_SHARED(T, stages);  // kStages x (a tile, b tile)
  const int tid = int(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int wm = warp / 2 * kWarpM, wn = warp % 2 * kWarpN;
  long long m0, n0;
  tile_origin(tiles_m, tiles_n, BM, BN, &m0, &n0);
  const long long slices = (p.K + kBK - 1) / kBK;
  for (long long n = blockIdx.z; n < p.batch; n += gridDim.z) {
    const auto load_stage = [&](long long s) {  // slice s of matrix n into its stage
      T* stage = stages + s % kStages * kStageElems;
      load_tile<T, BM, kAKInner>(stage, a + n * oa.sn, oa, p.K, m0, s * kBK, tid);
      load_tile<T, BN, kBKInner>(stage + BM * kBK, b + n * ob.sn, ob, p.K, n0, s * kBK, tid);
    };
    float acc[kTilesM][kTilesN][4];
#pragma unroll
    for (int i = 0; i < kTilesM; i++)
#pragma unroll
      for (int j = 0; j < kTilesN; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
    for (int s = 0; s < kStages - 1; s++) {
      if (s < slices) load_stage(s);
      cp_async_commit();  // one group per stage, empty or not, so wait_group counts stages
    }
    for (long long s = 0; s < slices; s++) {
      cp_async_wait<kStages - 2>();  // this thread's copies of slice s have landed
      __syncthreads();               // everyone's have; and slice s - 1 is no longer being read
      if (s + kStages - 1 < slices) load_stage(s + kStages - 1);
      cp_async_commit();
      const T* ta = stages + s % kStages * kStageElems;
      const T* tb = ta + BM * kBK;
#pragma unroll
      for (int kk = 0; kk < kBK; kk += 16) {
        uint32_t af[kTilesM][4], bfr[kTilesN / 2][4];
#pragma unroll
        for (int i = 0; i < kTilesM; i++) load_a<T, BM, kAKInner>(af[i], ta, wm + i * 16, kk, lane);
#pragma unroll
        for (int j = 0; j < kTilesN / 2; j++) load_b<T, BN, kBKInner>(bfr[j], tb, wn + j * 16, kk, lane);
#pragma unroll
        for (int i = 0; i < kTilesM; i++)
#pragma unroll
          for (int j = 0; j < kTilesN; j++) mma_m16n8k16<T>(acc[i][j], af[i], &bfr[j / 2][j % 2 * 2], acc[i][j]);
      }
    }
    __syncthreads();  // the next batch's first stages overwrite what slow warps may still read
    T* on = out + n * p.M * p.N;
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < kTilesM; i++) {
#pragma unroll
      for (int j = 0; j < kTilesN; j++) {
        const long long col = n0 + wn + j * 8 + 2 * t;
#pragma unroll
        for (int h = 0; h < 2; h++) {  // c0, c1 at row g; c2, c3 at row g + 8
          const long long row = m0 + wm + i * 16 + g + h * 8;
          if (row >= p.M || col >= p.N) continue;
          T* o = on + row * p.N + col;
          float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
          if constexpr (kEpilogue) {
            v0 = epilogue_value<T>(e, p, v0, n, row, col);
            if (col + 1 < p.N) v1 = epilogue_value<T>(e, p, v1, n, row, col + 1);
          }
          if (pair_out && col + 1 < p.N) {
            *reinterpret_cast<uint32_t*>(o) = pack_half2<T>(v0, v1);
          } else {
            o[0] = cvt<T>(v0);
            if (col + 1 < p.N) o[1] = cvt<T>(v1);
          }
        }
      }
    }
  }
}

template <class T, int BM, int BN, bool kAKInner, bool kBKInner>
void launch_layout(const Problem& p, const Operand& oa, const Operand& ob, void* out, const void* a, const void* b, const Epilogue* e) {
  int tiles_m, tiles_n;
  const int tiles = tile_count(p, BM, BN, &tiles_m, &tiles_n);
  const bool pair_out = p.N % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 4 == 0;
  const size_t shared_bytes = size_t(kStages) * (BM + BN) * kBK * sizeof(T);
  const dim3 grid(unsigned(tiles), 1, batch_blocks(p.batch));
  const T *ta = static_cast<const T*>(a), *tb = static_cast<const T*>(b);
  if (e) {
    launch<mma_kernel<T, BM, BN, kAKInner, kBKInner, true>>(grid, dim3(kThreads), shared_bytes, Stream{}, p, *e, oa, ob, pair_out,
                                                            tiles_m, tiles_n, ta, tb, static_cast<T*>(out));
  } else {
    launch<mma_kernel<T, BM, BN, kAKInner, kBKInner, false>>(grid, dim3(kThreads), shared_bytes, Stream{}, p, Epilogue{}, oa, ob,
                                                             pair_out, tiles_m, tiles_n, ta, tb, static_cast<T*>(out));
  }
}

template <class T, int BM, int BN>
void launch_tile(const Problem& p, void* out, const void* a, const void* b, const Epilogue* e) {
  const Operand oa = operand_a(p, a, 8, 16), ob = operand_b(p, b, 8, 16);
  if (oa.k_inner && ob.k_inner) {
    launch_layout<T, BM, BN, true, true>(p, oa, ob, out, a, b, e);
  } else if (oa.k_inner) {
    launch_layout<T, BM, BN, true, false>(p, oa, ob, out, a, b, e);
  } else if (ob.k_inner) {
    launch_layout<T, BM, BN, false, true>(p, oa, ob, out, a, b, e);
  } else {
    launch_layout<T, BM, BN, false, false>(p, oa, ob, out, a, b, e);
  }
}

template <class T>
void run_typed(const Problem& p, Tile tile, void* out, const void* a, const void* b, const Epilogue* e) {
  if (tile == Tile::Large) {
    launch_tile<T, 128, 128>(p, out, a, b, e);
  } else {
    launch_tile<T, 64, 64>(p, out, a, b, e);
  }
}

void run(const Problem& p, Tile tile, DType dtype, void* out, const void* a, const void* b, const Epilogue* e) {
  if (dtype == DType::BF16) {
    run_typed<bf16>(p, tile, out, a, b, e);
  } else if (dtype == DType::F16) {
    run_typed<f16>(p, tile, out, a, b, e);
  } else {
    fail(ErrorKind::DType, std::string("matmul: the tensor-core GEMM takes bf16 or f16, got ") + dtype_name(dtype));
  }
}

}  // namespace emu::EMU_DEVICE_NS::gemm::v3
