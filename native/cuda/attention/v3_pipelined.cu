// v3_pipelined.cu: fused attention version 3, the bf16/f16 tensor-core forward of v2 with two
// changes aimed at the time v2 spends not issuing mma.sync (its backward stays v2's):
//  - K and V tiles are double-buffered: the cp.async copies of tile j+1 are issued before tile j
//    is computed (commit groups, wait_group 1), so the copy latency (L2 or HBM, ~1 us) hides
//    behind a tile's 2 x 64 x 64 x kHead MACs instead of stalling the block every tile.
//  - Only the tiles that need it are masked: a tile whose keys all lie below every row's diagonal
//    and inside Lk, with no bias and no key padding, skips the per-element logit rule (index
//    arithmetic, compares) and only scales; in a long sequence that is every tile but the
//    diagonal one (FlashAttention-2 masks the diagonal block only, too).
// Same launch configurations as v2 (4 warps, 64 queries per block, 64-key tiles, one per padded
// head width); shared memory (64 + 4 * 64) * (kHead + 8) 2-byte elements = 87 KiB at kHead 128, so two
// blocks per SM on an H100/H200, the same as v2's register limit (~194 registers per thread).
#include "cuda/attention/mma_tiles.cuh"

namespace emu::EMU_DEVICE_NS::attention::v3 {
namespace {

using namespace mma;

template <class T, int kHead>
__global__ void __launch_bounds__(kThreadsPerBlock) forward_kernel(Params p, Operands<T> o, Vector vec) {
  constexpr int kK = kHead / 16, kN = kHead / 8, kS = kKeys / 8, kTile = kKeys * kStride<kHead>;
  EMU_DYNAMIC_SHARED(T, smem);
  T* qs = smem;                           // [kQueries][kStride]
  T* kv = qs + kQueries * kStride<kHead>;  // buffer t: K at kv + 2t kTile, V at kv + (2t + 1) kTile
  const int warp = int(threadIdx.x) / 32;
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, i0 = (long long)blockIdx.x * kQueries;
  const long long rows = p.Lq - i0 < kQueries ? p.Lq - i0 : kQueries;
  const long long kend = p.causal && i0 + rows < p.Lk ? i0 + rows : p.Lk;
  const long long tiles = (kend + kKeys - 1) / kKeys;
  auto load_keys = [&](long long t) {
    T* buf = kv + (t % 2) * 2 * kTile;
    load_tile<kHead>(buf, o.k, p.k, b, h, t * kKeys, p.Lk, p.D, kKeys, vec.k);
    load_tile<kHead>(buf + kTile, o.v, p.v, b, h, t * kKeys, p.Lk, p.Dv, kKeys, vec.v);
  };
  load_tile<kHead>(qs, o.q, p.q, b, h, i0, p.Lq, p.D, kQueries, vec.q);
  cp_async_commit();
  if (tiles > 0) load_keys(0);
  cp_async_commit();
  cp_async_wait<1>();  // Q has landed (tile 0 may be in flight)
  __syncthreads();
  uint32_t qf[kK][4];
  load_a<kHead>(qf, qs + warp * 16 * kStride<kHead>);
  float out[kN][4];
  zero(out);
  OnlineSoftmax softmax;
  const bool plain = !o.bias && !o.kpm;  // no per-key rule but causality and Lk
  for (long long t = 0; t < tiles; t++) {
    if (t + 1 < tiles) load_keys(t + 1);  // into the other buffer, freed by the last iteration's barrier
    cp_async_commit();
    cp_async_wait<1>();  // tile t has landed
    __syncthreads();
    const T* ks = kv + (t % 2) * 2 * kTile;
    const long long j0 = t * kKeys;
    float s[kS][4];
    zero(s);
    mma_nk<kHead>(s, qf, ks);
    if (plain && j0 + kKeys <= p.Lk && (!p.causal || j0 + kKeys - 1 <= i0)) {
      const float scale2 = float(p.scale) * kLog2e;
      #pragma unroll
      for (int n = 0; n < kS; n++)
        #pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] *= scale2;
    } else {
      #pragma unroll
      for (int n = 0; n < kS; n++) {
        #pragma unroll
        for (int e = 0; e < 4; e++) {
          const long long i = i0 + warp * 16 + acc_row(e), j = j0 + acc_col(n, e);
          s[n][e] = logit(p, o, b, h, i, j, s[n][e] * float(p.scale)) * kLog2e;
        }
      }
    }
    softmax.step(s, out);
    uint32_t pf[kS / 2][4];
    to_a<kS, T>(pf, s);
    mma_kn<kHead>(out, pf, ks + kTile);
    __syncthreads();  // every warp is done with this buffer before tile t + 2 is copied into it
  }
  softmax.finish(p, o, b, h, i0 + warp * 16, out);
}

}  // namespace

template <class T>
void forward(const Params& p, const Operands<T>& o) {
  const Vector vec{vector_rows(o.q, p.q), vector_rows(o.k, p.k), vector_rows(o.v, p.v), false};
  by_width(head_width(p), [&](auto width) {
    constexpr int kHead = decltype(width)::value;
    const size_t bytes = size_t(kQueries + 4 * kKeys) * kStride<kHead> * sizeof(T);
    if (p.Lq > 0)
      launch<forward_kernel<T, kHead>>(grid_of((p.Lq + kQueries - 1) / kQueries, p), dim3(kThreadsPerBlock), bytes, Stream{}, p, o, vec);
  });
}

template void forward<bf16>(const Params&, const Operands<bf16>&);
template void forward<f16>(const Params&, const Operands<f16>&);

}  // namespace emu::EMU_DEVICE_NS::attention::v3
