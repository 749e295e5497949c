// matmul.cu: batched matrix multiply out[i] = a[i] @ b[i], [B,M,K] x [B,K,N] -> [B,M,N], as a
// simple shared-memory tiled kernel (the tensor-core GEMM comes with the next issue).
//
// a and b may have any strides (a transposed view, a stride-0 broadcast batch: the TypeScript op
// layer has already broadcast the batch dims); out is contiguous. Each block computes one 16x16
// tile of one batch's output: per 16-deep slice of K, its threads stage a 16x16 tile of a and of
// b in shared memory (converted to the compute type), synchronise, and each thread adds its
// row-times-column products with fma, k in order. f32 and bf16 accumulate in f32 (bf16 rounded
// once, at the end), f64 in f64, as cpu/kernels/matmul.cpp (the reference) does; the sums run in
// one fixed order, so results are deterministic.
#include <cstdint>
#include <string>

#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace matmul_tiled {

constexpr int kTile = 16;

struct Dims {
  long long batch, M, N, K;
  long long sa[3], sb[3], so[3];  // strides in elements of a, b and out
};

__device__ __forceinline__ float m_fma(float a, float b, float c) { return ::fmaf(a, b, c); }
__device__ __forceinline__ double m_fma(double a, double b, double c) { return ::fma(a, b, c); }

template <class T>
__global__ void matmul_kernel(Dims p, const T* a, const T* b, T* out) {
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
    if (row < p.M && col < p.N) out[n * p.so[0] + row * p.so[1] + col * p.so[2]] = cvt<T>(acc);
  }
}

}  // namespace matmul_tiled

void matmul(const View& out, const View& a, const View& b) {
  using namespace matmul_tiled;
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(ErrorKind::Shape, "matmul: expected 3-d views");
  Dims p{out.shape[0], out.shape[1], out.shape[2], a.shape[2], {}, {}, {}};
  if (a.shape[0] != p.batch || b.shape[0] != p.batch || a.shape[1] != p.M || b.shape[1] != p.K || b.shape[2] != p.N)
    fail(ErrorKind::Shape, "matmul: the operand shapes do not match the output");
  if (!out.contiguous()) fail(ErrorKind::Shape, "matmul: output must be contiguous");
  if (a.dtype != out.dtype || b.dtype != out.dtype) fail(ErrorKind::DType, "matmul: operand dtypes differ");
  const long long tiles_m = (p.M + kTile - 1) / kTile, tiles_n = (p.N + kTile - 1) / kTile;
  if (tiles_m > 65535) fail(ErrorKind::Shape, "matmul: more than 65535 tiles of 16 rows");
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  for (int d = 0; d < 3; d++) {
    p.sa[d] = a.strides[d];
    p.sb[d] = b.strides[d];
    p.so[d] = out.strides[d];
  }
  const dim3 grid(unsigned(tiles_n), unsigned(tiles_m), unsigned(p.batch > 65535 ? 65535 : p.batch));
  dispatch_float(out.dtype, "matmul", [&](auto t) {
    using T = decltype(t);
    launch<matmul_kernel<T>>(grid, dim3(kTile, kTile), 0, Stream{}, p, static_cast<const T*>(a.data),
                             static_cast<const T*>(b.data), static_cast<T*>(out.data));
  });
}

}  // namespace emu::EMU_DEVICE_NS
