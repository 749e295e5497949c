// v1_tiled.cu: GEMM version 1, the baseline: one 16x16 output tile per block of 16x16 threads.
//
// Per 16-deep slice of K, the block stages a 16x16 tile of a and of b in shared memory (converted
// to the compute type), synchronises, and each thread adds its row-times-column products with
// fma, k in order. Any strides, any float dtype (f32, f64, bf16, f16).
//
// What it buys on an H100/H200: it is the baseline the others are measured against. For each k a
// warp issues two shared loads (as[ty][k], a broadcast, and bs[k][tx]) for one FMA instruction,
// so the shared-memory pipe (one 128-byte wavefront per clock per SM) bounds it: ~16 FMAs = 32
// FLOPs per clock per SM, 1/8 of the f32 peak (128 FMA lanes per SM: 132 SMs x 1.98 GHz x 256 =
// 67 TFLOP/s), i.e. at most ~8 TFLOP/s, less with only 8 warps per block hiding latency. Global
// traffic is (16 + 16) * K elements per 2 * 16 * 16 * K FLOPs: 4 FLOPs per f32 byte, which L2
// serves; from HBM (4.8 TB/s) the tiles re-read by other blocks mostly hit L2. Expect 3-6 TFLOP/s.
#include "cuda/gemm/gemm.cuh"

namespace emu::EMU_DEVICE_NS::gemm::v1 {

constexpr int kTile = 16;

__device__ __forceinline__ float m_fma(float a, float b, float c) { return ::fmaf(a, b, c); }
__device__ __forceinline__ double m_fma(double a, double b, double c) { return ::fma(a, b, c); }

template <class T, bool kEpilogue>
__global__ void tiled_kernel(Problem p, Epilogue e, const T* a, const T* b, T* out) {
  using V = C<T>;
  EMU_SHARED(V, as, [kTile][kTile + 1]);  // +1: no bank conflicts on the column reads
  EMU_SHARED(V, bs, [kTile][kTile + 1]);
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const long long row = (long long)blockIdx.y * kTile + ty, col = (long long)blockIdx.x * kTile + tx;
  for (long long n = blockIdx.z; n < p.batch; n += gridDim.z) {
    const T* an = a + n * p.sa[0];
    const T* bn = b + n * p.sb[0];
    V acc = V(0);
    for (long long k0 = 0; k0 < p.K; k0 += kTile) {
      as[ty][tx] = row < p.M && k0 + tx < p.K ? load(an[row * p.sa[1] + (k0 + tx) * p.sa[2]]) : V(0);
      bs[ty][tx] = k0 + ty < p.K && col < p.N ? load(bn[(k0 + ty) * p.sb[1] + col * p.sb[2]]) : V(0);
      __syncthreads();
      const int depth = p.K - k0 < kTile ? int(p.K - k0) : kTile;
      for (int k = 0; k < depth; k++) acc = m_fma(as[ty][k], bs[k][tx], acc);
      __syncthreads();
    }
    if (row < p.M && col < p.N) {
      if constexpr (kEpilogue) acc = epilogue_value<T>(e, p, acc, n, row, col);
      out[(n * p.M + row) * p.N + col] = cvt<T>(acc);
    }
  }
}

void run(const Problem& p, DType dtype, void* out, const void* a, const void* b, const Epilogue* e) {
  const long long tiles_m = (p.M + kTile - 1) / kTile, tiles_n = (p.N + kTile - 1) / kTile;
  if (tiles_m > 65535) fail(ErrorKind::Shape, "matmul: version 1 takes at most 65535 tiles of 16 rows");
  const dim3 grid(unsigned(tiles_n), unsigned(tiles_m), batch_blocks(p.batch));
  dispatch_float(dtype, "matmul", [&](auto t) {
    using T = decltype(t);
    const T *ta = static_cast<const T*>(a), *tb = static_cast<const T*>(b);
    if (e) {
      launch<tiled_kernel<T, true>>(grid, dim3(kTile, kTile), 0, Stream{}, p, *e, ta, tb, static_cast<T*>(out));
    } else {
      launch<tiled_kernel<T, false>>(grid, dim3(kTile, kTile), 0, Stream{}, p, Epilogue{}, ta, tb, static_cast<T*>(out));
    }
  });
}

}  // namespace emu::EMU_DEVICE_NS::gemm::v1
