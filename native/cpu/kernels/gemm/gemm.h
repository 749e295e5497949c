// gemm.h: the BLIS-style GEMM driver, C (+)= A @ B, that matmul (gemm/v3_microkernel.cpp) and
// conv2d's forward and backward passes (image.cpp, image_backward.cpp) are built on.
//
// The caller does not hand over matrices but two packers: pack_a fills MR-row micro-panels of A,
// pack_b NR-column micro-panels of B, each k-major ([k][MR] / [k][NR]), zero-padded and already
// in the compute type. So a strided, transposed or broadcast operand, a bf16 one, or a matrix
// that only exists implicitly (conv2d's im2col patches) is read once, while packing, and never
// materialised. The loops, from the outside in (BLIS's five loops):
//
//   jc: NC columns of C      pc: KC-deep slice of k      pack B[pc:+KC, jc:+NC] (shared, in L3)
//     ic: MC rows of C (per thread)                       pack A[ic:+MC, pc:+KC] (private, in L2)
//       jr: NR columns       the B micro-panel (KC x NR) stays in L1 while
//         ir: MR rows        the micro-kernel sweeps the A micro-panels
//
// The micro-kernel holds an MR x NR tile of C in vector registers (MR * NV accumulators) and for
// each k adds a broadcast A element times NV vectors of the B row, one FMA each. Its first slice
// starts from zero (or from C when the caller asks to accumulate), later slices start from the C
// that the previous slice stored: so every element of C is ONE chain of FMAs over k = 0, 1, ...,
// K-1 in order, whatever the block sizes, the split over threads or the order tasks run in. The
// result is bit-identical for any thread count and run to run.
//
// Threads: two drivers, kept side by side (matmul v3 and v4, bench/ times both). run_shared_b
// packs each slice of B with all threads together and then splits its rows (BLIS's way: two pool
// round trips per slice); run, the default, gives each thread one rectangle of C that it packs
// and computes alone (one round trip per product, at the price of packing one operand once per
// thread). Either way no element of C is written by two threads.
//
// Register tiles and block sizes per instruction set (L1d 48 KiB, L2 2 MiB per core here):
//   AVX-512: 14 x 32 f32 (28 zmm accumulators + 2 for the B row), 14 x 16 f64; KC 1024, MC 112
//   AVX2:     6 x 16 f32 (12 ymm + 2), 6 x 8 f64;                                KC 512,  MC 96
//   plain:    6 x 8 f32 in SSE2 vectors through GCC vector extensions (x86-64 baseline), as AVX2
// Why such deep slices. The micro-kernel alone, with A streaming from L2, runs at the FMA peak;
// what the whole product lost (80% of peak at KC 384, 0.93-0.95x OpenBLAS on one core) went to
// C: each KC slice loads and stores every C tile once more, and at n = 2048 a tile's 14 rows are
// 8 KiB apart, so they fall into the same two L1 sets, more lines than the L1 has ways (the
// macro-kernel ran at 155 GFLOP/s with such rows, 169 with rows 1 KiB apart). A 1024-deep slice
// touches C a third as often; its micro-panels (A 56 KiB, B 128 KiB) no longer fit in L1, so the
// micro-kernel prefetches both kPrefetchK steps ahead from L2, and MC shrinks so that the A block
// (448 KiB) and a B micro-panel stay there. Measured in one process against OpenBLAS, alternating
// (one thread, n = 1024 and 2048): 0.94-0.95x before, 1.00-1.03x after; KC 512 or 2048, MC 168,
// or prefetching 16 or 64 steps ahead measured lower or level. AVX2 (run on this machine):
// KC 512 / MC 96 with the prefetch 1.01x OpenBLAS's Haswell kernels, KC 384 / MC 144 0.94-0.98x.
// NC bounds the packed B slice (KC x NC: 8 MiB, in L3).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "../../thread_pool.h"
#include "../scalar.h"

namespace emu::cpu::EMU_ISA {
namespace gemm {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

// One vector register of V (GCC/Clang vector extensions), and the same type at V's alignment
// for unaligned loads and stores of C.
template <class V> struct VecOf;
template <> struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
  typedef float unaligned __attribute__((vector_size(kVecBytes), aligned(4), may_alias));
};
template <> struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
  typedef double unaligned __attribute__((vector_size(kVecBytes), aligned(8), may_alias));
};
template <class V> using Vec = typename VecOf<V>::type;
template <class V> using VecU = typename VecOf<V>::unaligned;
template <class V> constexpr int kLanes = kVecBytes / int(sizeof(V));

// The register tile: kMR rows by kNV vectors of columns.
#if defined(__AVX512F__)
constexpr int kMR = 14;
#else
constexpr int kMR = 6;
#endif
constexpr int kNV = 2;
template <class V> constexpr int kNR = kNV * kLanes<V>;
#if defined(__AVX512F__)
constexpr int64_t kKC = 1024;
constexpr int64_t kMC = 8 * kMR;
#else
constexpr int64_t kKC = 512;
constexpr int64_t kMC = 16 * kMR;
#endif
constexpr int64_t kNC = 2048;
// How many k steps ahead the micro-kernel prefetches its A and B micro-panels (a KC-deep panel
// outgrows L1: see above). 32 steps are 448 cycles of FMAs on AVX-512, several L2 latencies.
constexpr int64_t kPrefetchK = 32;

// c + a * b, fused where the hardware can: explicit, because -std=c++17 turns off the
// compiler's own contraction of a * b + c.
inline Vec<float> madd(Vec<float> a, Vec<float> b, Vec<float> c) {
#if defined(__AVX512F__)
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fmadd_ps(a, b, c);
#else
  return a * b + c;
#endif
}
inline Vec<double> madd(Vec<double> a, Vec<double> b, Vec<double> c) {
#if defined(__AVX512F__)
  return _mm512_fmadd_pd(a, b, c);
#elif defined(__FMA__)
  return _mm256_fmadd_pd(a, b, c);
#else
  return a * b + c;
#endif
}

// What the micro-kernel does per k step and row: bcast reads the packed A element into every
// lane, madd adds its product with a B vector to an accumulator. Fma is the plain f32/f64 one;
// v5_bf16_dot.cpp's DotBf16 reads each packed "element" as a pair of bf16 values (two k steps)
// and adds both products with one avx512_bf16 instruction. The drivers below pass it through.
template <class V>
struct Fma {
  // The broadcast `x - Vec{}` is exact (keeps -0) and folds into the FMA's memory operand.
  __attribute__((always_inline)) static Vec<V> bcast(const V* p) { return *p - Vec<V>{}; }
  __attribute__((always_inline)) static Vec<V> madd(Vec<V> a, Vec<V> b, Vec<V> c) { return gemm::madd(a, b, c); }
};

// c[0:MR, 0:kNR] = (accumulate ? c : 0) + sum over k of ap[k][r] * bp[k][j]. ap is a packed A
// micro-panel [kc][kMR] (of which the first MR rows are used), bp a packed, 64-byte aligned B
// micro-panel [kc][kNR]; c has rows ldc apart. MR < kMR serves the last rows of a block (64 rows
// are 4 tiles of 14 and one of 8) at the cost of its own rows only: through the full tile and a
// buffer, conv2d's 8-row tile cost as much as a 14-row one. The loops have constant bounds and
// are unrolled, so acc[][] lives in registers.
template <class V, int MR = kMR, class Op = Fma<V>>
__attribute__((always_inline)) inline void micro_kernel(int64_t kc, const V* __restrict ap, const V* __restrict bp,
                                                        V* c, int64_t ldc, bool accumulate, const V* c_next) {
  using W = Vec<V>;
  constexpr int L = kLanes<V>, NR = kNR<V>;
  // The next tile's rows of C are kMR far-apart lines (4 KiB apart at n = 1024, so no hardware
  // prefetcher follows them): fetch them now, while this tile computes.
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) {
    __builtin_prefetch(c_next + r * ldc, 1);
    __builtin_prefetch(c_next + r * ldc + NR - 1, 1);
  }
  W acc[MR][kNV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) acc[r][v] = accumulate ? W(*reinterpret_cast<const VecU<V>*>(c + r * ldc + v * L)) : W{};
  for (int64_t k = 0; k < kc; k++) {
    // Past the panel's end these touch the next panel or nothing: a prefetch never faults.
    __builtin_prefetch(ap + (k + kPrefetchK) * kMR);
#pragma GCC unroll 4
    for (int line = 0; line < (int(NR * sizeof(V)) + 63) / 64; line++) __builtin_prefetch(bp + (k + kPrefetchK) * NR + line * 64 / int(sizeof(V)));
    W b[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) b[v] = *reinterpret_cast<const W*>(bp + k * NR + v * L);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const W a = Op::bcast(ap + k * kMR + r);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; v++) acc[r][v] = Op::madd(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) *reinterpret_cast<VecU<V>*>(c + r * ldc + v * L) = acc[r][v];
}

// The micro-kernel on mr < kMR rows of full width: the instantiation for exactly mr rows.
template <class V, class Op, int MR = kMR - 1>
void micro_kernel_rows(int64_t kc, const V* ap, const V* bp, V* c, int64_t ldc, int64_t mr, bool accumulate) {
  if constexpr (MR >= 1) {
    if (mr == MR) return micro_kernel<V, MR, Op>(kc, ap, bp, c, ldc, accumulate, c + kNR<V>);
    micro_kernel_rows<V, Op, MR - 1>(kc, ap, bp, c, ldc, mr, accumulate);
  }
}

// The micro-kernel on a partial tile (mr <= kMR rows, nr < kNR columns of c), through a
// register-tile-sized buffer.
template <class V, class Op>
void micro_kernel_edge(int64_t kc, const V* ap, const V* bp, V* c, int64_t ldc, int64_t mr, int64_t nr,
                       bool accumulate) {
  constexpr int NR = kNR<V>;
  alignas(64) V tile[kMR * NR];
  if (accumulate) {
    for (int64_t r = 0; r < mr; r++)
      for (int64_t j = 0; j < nr; j++) tile[r * NR + j] = c[r * ldc + j];
  }
  micro_kernel<V, kMR, Op>(kc, ap, bp, tile, NR, accumulate, tile);
  for (int64_t r = 0; r < mr; r++)
    for (int64_t j = 0; j < nr; j++) c[r * ldc + j] = tile[r * NR + j];
}

// Per-thread packing space that only grows, 64-byte aligned.
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  ~Scratch() { std::free(p); }
  template <class V>
  V* get(int64_t n) {
    const size_t want = (size_t(n) * sizeof(V) + 63) / 64 * 64;
    if (want > bytes) {
      std::free(p);
      p = std::aligned_alloc(64, want);
      bytes = p ? want : 0;
      if (!p) fail(ErrorKind::Memory, "gemm: cannot allocate " + std::to_string(want) + " bytes of packing space");
    }
    return static_cast<V*>(p);
  }
};

// ---- packers for operands held as strided matrices ----

#if defined(__AVX512F__)
// Transposes a 16 x 16 block of floats held in r[0..15] (row i in r[i]) in place, so that r[j]
// holds column j: the usual four rounds of 2x2 exchanges of growing size (single floats, pairs,
// 128-bit quarters, halves). Packing a row-major A or a transposed B is such a transpose; done
// one element at a time it cost as much as the product itself at n = 256. (GCC 12's unpack and
// shuffle intrinsics pass _mm512_undefined_ps() as the unused merge source, which -Wall reports
// as maybe-uninitialized wherever this is inlined; hence the pragmas.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xDD);
    }
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}
#pragma GCC diagnostic pop
#endif

// A[i][k] = a[i * sm + k * sk]: packs rows [i0, i0 + mc) and depth [p0, p0 + kc) into
// ceil(mc / kMR) micro-panels [kc][kMR] at dst, rows past mc zero.
template <class V, class T>
void pack_a_strided(const T* a, int64_t sm, int64_t sk, int64_t i0, int64_t mc, int64_t p0, int64_t kc, V* dst) {
  for (int64_t i = 0; i < mc; i += kMR, dst += kc * kMR) {
    const int64_t mr = std::min<int64_t>(kMR, mc - i);
    const T* src = a + (i0 + i) * sm + p0 * sk;
    if (sk == 1 && mr == kMR) {  // rows contiguous in k: kMR row streams, 8 k at a time
      int64_t k = 0;
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float> && std::is_same_v<V, float> && kMR <= 16) {
        for (; k + 16 <= kc; k += 16) {  // 16 k of every row at once, transposed in registers
          __m512 r[16];
          for (int row = 0; row < 16; row++) r[row] = row < kMR ? _mm512_loadu_ps(src + row * sm + k) : _mm512_setzero_ps();
          transpose16(r);
          for (int kk = 0; kk < 16; kk++) _mm512_mask_storeu_ps(dst + (k + kk) * kMR, __mmask16((1u << kMR) - 1), r[kk]);
        }
      }
#endif
      for (; k + 8 <= kc; k += 8)
        for (int64_t r = 0; r < kMR; r++)
#pragma GCC unroll 8
          for (int64_t kk = 0; kk < 8; kk++) dst[(k + kk) * kMR + r] = load(src[r * sm + k + kk]);
      for (; k < kc; k++)
        for (int64_t r = 0; r < kMR; r++) dst[k * kMR + r] = load(src[r * sm + k]);
    } else if (sm == 1 && mr == kMR) {  // A transposed: each k's kMR values are contiguous
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float> && std::is_same_v<V, float> && kMR <= 16) {
        const __mmask16 rows = __mmask16((1u << kMR) - 1);  // one masked load and store per k
        for (int64_t k = 0; k < kc; k++) _mm512_mask_storeu_ps(dst + k * kMR, rows, _mm512_maskz_loadu_ps(rows, src + k * sk));
        continue;
      }
#endif
      for (int64_t k = 0; k < kc; k++)
        for (int64_t r = 0; r < kMR; r++) dst[k * kMR + r] = load(src[k * sk + r]);
    } else {
      for (int64_t k = 0; k < kc; k++)
        for (int64_t r = 0; r < kMR; r++) dst[k * kMR + r] = r < mr ? load(src[r * sm + k * sk]) : V(0);
    }
  }
}

// B[k][j] = b[k * sk + j * sn]: packs depth [p0, p0 + kc) and columns [j0, j0 + nc) into
// ceil(nc / kNR) micro-panels [kc][kNR] at dst, columns past nc zero.
template <class V, class T>
void pack_b_strided(const T* b, int64_t sk, int64_t sn, int64_t j0, int64_t nc, int64_t p0, int64_t kc, V* dst) {
  constexpr int NR = kNR<V>;
  for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - j);
    const T* src = b + p0 * sk + (j0 + j) * sn;
    if (sn == 1) {  // rows of B contiguous: copy them
      for (int64_t k = 0; k < kc; k++) {
        for (int64_t c = 0; c < nr; c++) dst[k * NR + c] = load(src[k * sk + c]);
        for (int64_t c = nr; c < NR; c++) dst[k * NR + c] = V(0);
      }
    } else {  // B transposed (sk == 1) or general: read along columns
      int64_t k0 = 0;
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float> && std::is_same_v<V, float>) {
        if (sk == 1 && nr == NR) {  // 16 columns x 16 k at a time, transposed in registers
          for (; k0 + 16 <= kc; k0 += 16) {
            for (int c0 = 0; c0 < NR; c0 += 16) {
              __m512 r[16];
              for (int c = 0; c < 16; c++) r[c] = _mm512_loadu_ps(src + (c0 + c) * sn + k0);
              transpose16(r);
              for (int kk = 0; kk < 16; kk++) _mm512_storeu_ps(dst + (k0 + kk) * NR + c0, r[kk]);
            }
          }
        }
      }
#endif
      for (int64_t c = 0; c < NR; c++)
        for (int64_t k = k0; k < kc; k++) dst[k * NR + c] = c < nr ? load(src[k * sk + c * sn]) : V(0);
    }
  }
}

// ---- the drivers ----

// BLIS's two innermost loops: C[0:mc, 0:nc] (+)= the packed A block ap (mc rows) times the packed
// B panels bp (nc columns), depth kc. Each B micro-panel stays in L1 while the micro-kernel
// sweeps the A micro-panels down the block.
template <class V, class Op = Fma<V>>
void macro_kernel(int64_t kc, const V* ap, int64_t mc, const V* bp, int64_t nc, V* c, int64_t ldc, bool accumulate) {
  constexpr int NR = kNR<V>;
  for (int64_t j = 0; j < nc; j += NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - j);
    const V* b = bp + j * kc;  // panel j / NR
    for (int64_t i = 0; i < mc; i += kMR) {
      V* cij = c + i * ldc + j;
      const int64_t mr = std::min<int64_t>(kMR, mc - i);
      if (mr == kMR && nr == NR) micro_kernel<V, kMR, Op>(kc, ap + i * kc, b, cij, ldc, accumulate, i + kMR < mc ? cij + kMR * ldc : cij + NR);
      else if (nr == NR) micro_kernel_rows<V, Op>(kc, ap + i * kc, b, cij, ldc, mr, accumulate);
      else micro_kernel_edge<V, Op>(kc, ap + i * kc, b, cij, ldc, mr, nr, accumulate);
    }
  }
}

// C[0:M, 0:N] (+)= A @ B, C row-major with rows ldc apart, in compute type V. pack_a(i0, mc, p0,
// kc, dst) and pack_b(j0, nc, p0, kc, dst) pack as pack_a_strided / pack_b_strided do (i0 is a
// multiple of kMR, j0 of kNR) and may be called from several threads at once. parallel says
// whether to spread the work over the pool (the result is the same either way).
//
// run_shared_b (matmul v3): BLIS's threading. All threads pack each KC x NC slice of B together,
// then split its row panels: no operand is packed twice, but every slice costs two pool
// round trips (pack, compute), and on a shared, oversubscribed machine each round trip waits for
// the slowest thread to be scheduled again.
template <class V, class Op = Fma<V>, class PackA, class PackB>
void run_shared_b(int64_t M, int64_t N, int64_t K, const PackA& pack_a, const PackB& pack_b, V* c, int64_t ldc,
         bool accumulate, bool parallel) {
  constexpr int NR = kNR<V>;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; i++) std::fill(c + i * ldc, c + i * ldc + N, V(0));
    return;
  }
  const int threads = parallel ? num_threads() : 1;
  thread_local Scratch b_scratch;
  const int64_t nc_max = std::min<int64_t>(kNC, (N + NR - 1) / NR * NR);
  V* bp = b_scratch.get<V>(std::min<int64_t>(kKC, K) * nc_max);
  const int64_t mpanels = (M + kMR - 1) / kMR;

  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc), npanels = (nc + NR - 1) / NR;
    // Row panels that do not go round evenly (64 rows = 5 panels of 14 over 2 threads): split
    // the column panels too, so that every thread gets the same share.
    const int64_t nsplit = mpanels % threads == 0 || mpanels >= 8 * threads ? 1 : std::min<int64_t>(threads, npanels);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const bool acc = accumulate || pc > 0;
      auto pack_panels = [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; p++) pack_b(jc + p * NR, std::min<int64_t>(NR, nc - p * NR), pc, kc, bp + p * kc * NR);
      };
      if (threads > 1) parallel_for(npanels, 1, pack_panels);
      else pack_panels(0, npanels);

      // Task u = split s (a share of the column panels) x row panel ip.
      auto compute = [&](int64_t u0, int64_t u1) {
        thread_local Scratch a_scratch;
        V* ap = a_scratch.get<V>(kMC * kc);
        while (u0 < u1) {
          const int64_t s = u0 / mpanels, ip_begin = u0 % mpanels, ip_end = std::min(mpanels, ip_begin + (u1 - u0));
          const int64_t jp_begin = npanels * s / nsplit, jp_end = npanels * (s + 1) / nsplit;
          for (int64_t ib = ip_begin; ib < ip_end; ib += kMC / kMR) {
            const int64_t i0 = ib * kMR, mc = std::min({kMC, M - i0, (ip_end - ib) * kMR});
            pack_a(i0, mc, pc, kc, ap);
            if (jp_begin < jp_end)
              macro_kernel<V, Op>(kc, ap, mc, bp + jp_begin * kc * NR, std::min(nc, jp_end * NR) - jp_begin * NR,
                           c + i0 * ldc + jc + jp_begin * NR, ldc, acc);
          }
          u0 += ip_end - ip_begin;
        }
      };
      if (threads > 1) parallel_for(nsplit * mpanels, 1, compute);
      else compute(0, nsplit * mpanels);
    }
  }
}

// One rectangle of C, rows [i_begin, i_end) and columns [j_begin, j_end) (i_begin a multiple of
// kMR, j_begin of kNR), computed by the calling thread with its own packed A and B.
template <class V, class Op, class PackA, class PackB>
void run_block(int64_t i_begin, int64_t i_end, int64_t j_begin, int64_t j_end, int64_t K, const PackA& pack_a,
               const PackB& pack_b, V* c, int64_t ldc, bool accumulate) {
  constexpr int NR = kNR<V>;
  thread_local Scratch a_scratch, b_scratch;
  const int64_t kc_max = std::min(kKC, K);
  V* ap = a_scratch.get<V>(kMC * kc_max);
  V* bp = b_scratch.get<V>(kc_max * std::min<int64_t>(kNC, (j_end - j_begin + NR - 1) / NR * NR));
  for (int64_t jc = j_begin; jc < j_end; jc += kNC) {
    const int64_t nc = std::min(kNC, j_end - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const bool acc = accumulate || pc > 0;
      pack_b(jc, nc, pc, kc, bp);
      for (int64_t i0 = i_begin; i0 < i_end; i0 += kMC) {
        const int64_t mc = std::min(kMC, i_end - i0);
        pack_a(i0, mc, pc, kc, ap);
        macro_kernel<V, Op>(kc, ap, mc, bp, nc, c + i0 * ldc + jc, ldc, acc);
      }
    }
  }
}

// run (matmul v4, the default): C is cut into one rectangle per thread, along the columns or the
// rows, whichever divides into the thread count more evenly (on a tie: columns when M <= N, so the
// operand every thread packs in full is the smaller one). Each thread packs what its rectangle
// reads, so A (or B) is packed once per thread, and the whole product is ONE pool round trip.
template <class V, class Op = Fma<V>, class PackA, class PackB>
void run(int64_t M, int64_t N, int64_t K, const PackA& pack_a, const PackB& pack_b, V* c, int64_t ldc,
         bool accumulate, bool parallel) {
  constexpr int NR = kNR<V>;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; i++) std::fill(c + i * ldc, c + i * ldc + N, V(0));
    return;
  }
  const int64_t threads = parallel ? num_threads() : 1;
  const int64_t mpanels = (M + kMR - 1) / kMR, npanels = (N + NR - 1) / NR;
  if (threads == 1 || (mpanels < threads && npanels < threads)) return run_block<V, Op>(0, M, 0, N, K, pack_a, pack_b, c, ldc, accumulate);
  // Slots the busiest thread's share takes over an even share: 1 is a perfect split.
  auto imbalance = [&](int64_t panels) {
    return panels < threads ? 1e9 : double((panels + threads - 1) / threads * threads) / double(panels);
  };
  const double by_rows = imbalance(mpanels), by_columns = imbalance(npanels);
  const bool columns = by_columns < by_rows * 0.99 || (by_columns <= by_rows * 1.01 && M <= N);
  parallel_for(threads, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      if (columns) {
        const int64_t j0 = npanels * t / threads * NR, j1 = std::min(N, npanels * (t + 1) / threads * NR);
        if (j0 < j1) run_block<V, Op>(0, M, j0, j1, K, pack_a, pack_b, c, ldc, accumulate);
      } else {
        const int64_t i0 = mpanels * t / threads * kMR, i1 = std::min(M, mpanels * (t + 1) / threads * kMR);
        if (i0 < i1) run_block<V, Op>(i0, i1, 0, N, K, pack_a, pack_b, c, ldc, accumulate);
      }
    }
  });
}

// Runs `units` independent GEMMs of `macs` multiply-adds each as gemm(i, parallel): under 2^22
// multiply-adds in all (about 30 us on one core) all on the caller, since waking the pool costs
// more than it saves (on this shared machine a 128^3 product took 150 us on one thread and
// 540 us on two, waiting for the second to be scheduled); one unit per task when the units divide evenly over the
// threads or are many (no synchronisation inside); otherwise one after another, each spread over
// the pool. The results are the same either way.
template <class F>
void for_each_gemm(int64_t units, double macs, const F& gemm) {
  const int64_t threads = num_threads();
  if (threads == 1 || double(units) * macs < double(1 << 22)) {
    for (int64_t i = 0; i < units; i++) gemm(i, false);
  } else if (units >= threads && (units % threads == 0 || units >= 4 * threads)) {
    parallel_for(units, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) gemm(i, false);
    });
  } else {
    for (int64_t i = 0; i < units; i++) gemm(i, true);
  }
}

}  // namespace gemm
}  // namespace emu::cpu::EMU_ISA
