// block_reduce.cuh: the block-wide reduction the row kernels share (reduce.cu's reductions and
// softmax, norm.cu, cross_entropy.cu), and the launch shape of one block per row.
//
// A reducer R has a state type S, init(), shfl(s, delta) (moves a state down the warp, field by
// field) and combine<P>(a, b) (P: the pass, for two-pass reducers). block_reduce combines every
// thread's state in a fixed tree: warp shuffles, then the warps' results in shared memory, again
// a fixed tree in warp 0. The order depends only on blockDim, never on timing or thread order, so
// the result is deterministic and the emulator's thread orders all give the same bits.
#pragma once
#include <type_traits>

#include "cuda/device.cuh"

namespace emu::EMU_DEVICE_NS {

template <class T>
__device__ __forceinline__ T shfl_down(T v, unsigned delta) {
  if constexpr (std::is_same_v<T, bool>) {
    return __shfl_down_sync(0xffffffffu, int(v), delta) != 0;
  } else {
    return __shfl_down_sync(0xffffffffu, v, delta);
  }
}

// Every thread gets the block's total. blockDim.x is a multiple of 32 (whole warps), at most 1024.
// Two calls in a row are safe: the second writes `partial` only after every thread has passed its
// first barrier, that is after every thread has read the first call's `total`.
template <int P, class R>
__device__ typename R::S block_reduce(const R& r, typename R::S s) {
  using S = typename R::S;
  EMU_SHARED(S, partial, [32]);
  EMU_SHARED(S, total, [1]);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (unsigned d = 16; d > 0; d >>= 1) {
    const S other = r.shfl(s, d);
    if (lane + d < 32) r.template combine<P>(s, other);
  }
  if (lane == 0) partial[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < warps ? partial[lane] : r.init();
    for (unsigned d = 16; d > 0; d >>= 1) {
      const S other = r.shfl(s, d);
      if (lane + d < 32 && lane + d < warps) r.template combine<P>(s, other);
    }
    if (lane == 0) total[0] = s;
  }
  __syncthreads();
  return total[0];
}

// Threads for a block that walks n items: whole warps, up to 256, fewer for short rows.
inline unsigned threads_for(long long n) {
  const long long warps = (n + 31) / 32;
  return unsigned(32 * (warps < 1 ? 1 : warps > 8 ? 8 : warps));
}

// Blocks for one block per item in a grid-stride loop (the grid's x dimension is capped here).
inline unsigned grid_for(long long items) { return unsigned(items < 1 ? 1 : items > 65535 ? 65535 : items); }

}  // namespace emu::EMU_DEVICE_NS
