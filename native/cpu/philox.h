// philox.h: the Philox 4x32-10 counter-based generator, and the one specification of how every
// device turns its output into random tensors.
//
// Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) is the
// generator of Random123, PyTorch and cuRAND: a 128-bit counter and a 64-bit key go through ten
// rounds of two 32x32->64 multiplies, giving four 32-bit words per counter value. Any block can be
// computed on its own, so a kernel may split its output over threads (or GPU blocks) in any way
// and still produce the same numbers. philox4x32_10_block() is the exact Random123 function,
// checked against its known-answer vectors; philox4x32_10() is the form the kernels use.
//
// Stream layout (every device follows this; results are bit-identical across devices except
// where noted):
//   A generator is (seed, offset). A random op that fills n elements reads the blocks
//   philox4x32_10(offset + j, seed), j = 0, 1, ..., i.e. counter words (low 32 bits of
//   offset + j, high 32 bits, 0, 0) and key (low 32 bits of seed, high 32 bits), and the
//   generator's offset then advances by the number of blocks the op used. The TypeScript side
//   does the advancing; kernels receive seed and offset. Element i is the flat (row-major) index
//   of the contiguous output. w[0..3] are the block's four words. Arithmetic below is IEEE
//   double; fma(a, b, c) is the fused a * b + c with one rounding (std::fma, CUDA fma), spelled
//   out so that no compiler's contraction choice changes a result. "Rounded to the dtype" is
//   round-to-nearest-even, and bf16 goes through f32 (double -> f32 -> bf16), as convert<bf16>
//   does on the CPU.
//   uniform(low, high):
//     f32, bf16: element i uses block offset + i/4, word w = w[i%4]; u = (w >> 8) * 2^-24.
//     f64:       element i uses block offset + i/2, words a = w[2(i%2)], b = w[2(i%2)+1];
//                u = ((uint64(a) << 21) | (b >> 11)) * 2^-53.
//     u is in [0, 1). value = fma(u, high - low, low) rounded to the dtype; a value equal to
//     high (rounded to the dtype) becomes low (rounded), as in PyTorch's CUDA kernels, so
//     results stay in [low, high) even in bf16, where u near 1 rounds up.
//     Blocks used: ceil(n/4), ceil(n/2) for f64.
//   normal(mean, std), all float dtypes:
//     element i uses block offset + i/2, words a = w[2(i%2)], b = w[2(i%2)+1];
//     u1 = (uint64(a) + 1) * 2^-32 in (0, 1], u2 = b * 2^-32 in [0, 1);
//     z = sqrt(-2 ln u1) * cos(2 pi u2) in double (2 pi: the double 6.283185307179586);
//     value = fma(std, z, mean) rounded to the dtype.
//     Blocks used: ceil(n/2). (log and cos come from each device's math library, so f64 results
//     may differ in the last bit between devices; after rounding to f32/bf16 that is rare.)
//   randint(low, high), range = high - low in [1, 2^32]:
//     element i uses block offset + i/4, word w = w[i%4]; value = low + ((uint64(w) * range) >> 32).
//     Blocks used: ceil(n/4).
//   randperm(n):
//     key_i = word i%4 of block offset + i/4; the permutation lists 0..n-1 sorted by (key_i, i)
//     ascending. Blocks used: ceil(n/4).
//
// Plain C++ on purpose, so CUDA code can include it: EMU_HD becomes __host__ __device__ there.
// The functions are static (internal linkage): the CPU kernels including this header are built
// once per instruction set, and a shared inline symbol could let the linker hand the plain
// x86-64 build an AVX-512 copy.
#pragma once
#include <cstdint>

#ifndef EMU_HD
#define EMU_HD
#endif

namespace emu {

struct PhiloxOut {
  uint32_t x[4];
};

// Random123's philox4x32 with 10 rounds: counter words ctr[0..3], key words key[0..1].
EMU_HD static inline PhiloxOut philox4x32_10_block(const uint32_t ctr[4], const uint32_t key[2]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    if (round > 0) {  // the key is bumped before every round but the first
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return PhiloxOut{{c0, c1, c2, c3}};
}

// Block `counter` of stream `seed`: counter words (low, high, 0, 0), key (low, high).
EMU_HD static inline PhiloxOut philox4x32_10(uint64_t counter, uint64_t seed) {
  const uint32_t ctr[4] = {uint32_t(counter), uint32_t(counter >> 32), 0u, 0u};
  const uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  return philox4x32_10_block(ctr, key);
}

}  // namespace emu
