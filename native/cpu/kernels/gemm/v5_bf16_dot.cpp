// gemm/v5_bf16_dot.cpp: matmul version 5, bf16 x bf16 with f32 accumulation on the avx512_bf16
// dot-product instruction, VDPBF16PS, where the CPU has it. Not the default: bf16 matmul takes v4,
// which widens both operands to f32 while packing, unless EMU_CPU_BF16_DOT=1 (matmul.cpp).
//
// VDPBF16PS multiplies 16 pairs of bf16 by 16 pairs and adds each pair's two products to one f32
// lane: 32 multiply-adds per instruction where an f32 FMA does 16. So the operands are packed
// in k-pairs: every 32-bit slot of a packed panel holds two bf16 values, k = 2p (low half) and
// k = 2p + 1 (high half), and the panels are exactly v4's f32 panels in shape, with half the
// depth. gemm.h's drivers, block sizes and micro-kernel then run unchanged on "floats" that are
// really pairs; only the per-step multiply-add differs (DotBf16 below, passed as gemm.h's Op).
// The bytes per packed slot, hence the cache footprint of every block, are those of v4, while
// each slot now carries two multiply-adds; packing also reads half the bytes v4's widening did.
//
// What differs in the results: each instruction adds a pair's two products (each exact in f32,
// a bf16 product having 16 significant bits) to the accumulator, in the order and with the
// roundings the CPU implements (Intel's pseudocode: k = 2p + 1, then k = 2p), and treats
// subnormal inputs, accumulators and results as zero (DAZ/FTZ). Every C element is still one
// chain over the pairs in order, so results are identical for any thread count and run to run;
// against v4 they differ by f32 rounding, which the final rounding to bf16 mostly hides
// (test/gemm.test.ts measures both against f64).
//
// Why it is not the default: on the only avx512_bf16 machine measured (an Intel Xeon VM, two
// vCPUs; /tmp microbenchmark of 24 independent accumulators) VDPBF16PS zmm issued once per
// 0.82 ns against 0.23 ns for VFMADD231PS zmm, so its 32 multiply-adds per instruction ran at
// 0.57x of the FMA's 16; v5 then ran 0.6x of v4's speed at n = 256 to 2048 (bench/RESULTS.md).
// On a CPU whose dot product issues as fast as its FMA it would do twice the work per
// instruction; `npm run bench` times both (the gemm versions rows) and EMU_CPU_BF16_DOT=1 makes
// v5 the bf16 default. The choice is fixed per process, never timed at run time, so a given
// machine and setting always gives the same bits.
//
// Why inline assembly for the one instruction: the file is compiled for plain AVX-512 (the
// kernel table is chosen per instruction set, kernels.h) and this path is taken only after a
// CPUID check, so the whole file cannot be built with -mavx512bf16; and GCC refuses to inline a
// function compiled for more features (target("avx512bf16")) into gemm.h's micro-kernel. An asm
// statement with register operands needs neither and leaves register allocation to GCC.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../kernels.h"
#include "../scalar.h"
#include "gemm.h"

namespace emu::cpu::EMU_ISA {

#if defined(__AVX512F__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge source, which -Wall
// reports as maybe-uninitialized where they are inlined (gemm.h's transpose16 says the same).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

// gemm.h's Op for packed bf16 pairs: bcast copies one 32-bit pair into all 16 lanes (a move,
// so the bits are kept; an arithmetic broadcast could quiet a NaN-looking pair), madd is c +=
// the pairwise dot product of a and b.
struct DotBf16 {
  using W = gemm::Vec<float>;
  __attribute__((always_inline)) static W bcast(const float* p) { return _mm512_set1_ps(*p); }
  __attribute__((always_inline)) static W madd(W a, W b, W c) {
    asm("vdpbf16ps %2, %1, %0" : "+v"(c) : "v"(a), "v"(b));
    return c;
  }
};

// Writes the pair (lo at k = 2p, hi at k = 2p + 1) into a packed slot, as bits (never as a
// float value, which a NaN-looking pair must not pass through).
inline void put_pair(float* slot, uint16_t lo, uint16_t hi) {
  const uint32_t bits = uint32_t(lo) | uint32_t(hi) << 16;
  std::memcpy(slot, &bits, 4);
}

// 16 pair slots from 16 bf16 values at k = 2p (lo) and 16 at k = 2p + 1 (hi): each widened to
// 32 bits, hi shifted into the upper half.
inline __m512i interleave16(__m256i lo, __m256i hi) {
  return _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
}

// A[i][k] = a[i * sm + k * sk] (K columns): packs rows [i0, i0 + mc) and pairs [p0, p0 + kp)
// into micro-panels [kp][kMR] of pair slots, as gemm::pack_a_strided packs single values. Rows
// past mc and the k = K half of a last, odd pair are zero.
void pack_a_pairs(const bf16* a, int64_t sm, int64_t sk, int64_t K, int64_t i0, int64_t mc, int64_t p0, int64_t kp,
                  float* dst) {
  constexpr int MR = gemm::kMR;
  // The vector paths take the pairs that lie wholly inside K: all of them, or all but a last,
  // odd one (K odd, and this the last slice), which the scalar loop packs with its zero half.
  const int64_t kv = 2 * (p0 + kp) <= K ? kp : kp - 1;
  for (int64_t i = 0; i < mc; i += MR, dst += kp * MR) {
    const int64_t mr = std::min<int64_t>(MR, mc - i);
    const bf16* src = a + (i0 + i) * sm + 2 * p0 * sk;
    int64_t p = 0;
    if (sk == 1 && mr == MR) {
      // Rows contiguous in k: a pair is one 32-bit word, so 16 rows x 16 pairs are a 16 x 16
      // transpose of 32-bit words, the f32 packer's.
      for (; p + 16 <= kv; p += 16) {
        __m512 r[16];
        for (int row = 0; row < 16; row++)
          r[row] = row < MR ? _mm512_loadu_ps(reinterpret_cast<const float*>(src + row * sm + 2 * p)) : _mm512_setzero_ps();
        gemm::transpose16(r);
        for (int q = 0; q < 16; q++) _mm512_mask_storeu_ps(dst + (p + q) * MR, __mmask16((1u << MR) - 1), r[q]);
      }
    } else if (sm == 1 && mr == MR) {
      // A transposed: k = 2p and 2p + 1 are two rows of MR contiguous values; interleave them.
      const __mmask16 rows = __mmask16((1u << MR) - 1);
      for (; p < kv; p++)
        _mm512_mask_storeu_epi32(dst + p * MR, rows, interleave16(_mm256_maskz_loadu_epi16(rows, src + 2 * p * sk),
                                                                  _mm256_maskz_loadu_epi16(rows, src + (2 * p + 1) * sk)));
    }
    for (; p < kp; p++) {
      const int64_t k = 2 * (p0 + p);
      for (int64_t r = 0; r < MR; r++) {
        const bf16* row = r < mr ? src + r * sm + 2 * p * sk : nullptr;
        put_pair(dst + p * MR + r, row ? row[0].bits : 0, row && k + 1 < K ? row[sk].bits : 0);
      }
    }
  }
}

// B[k][j] = b[k * sk + j * sn] (K rows): packs pairs [p0, p0 + kp) and columns [j0, j0 + nc)
// into micro-panels [kp][kNR] of pair slots; columns past nc and the k = K half are zero.
void pack_b_pairs(const bf16* b, int64_t sk, int64_t sn, int64_t K, int64_t j0, int64_t nc, int64_t p0, int64_t kp,
                  float* dst) {
  constexpr int NR = gemm::kNR<float>;
  const int64_t kv = 2 * (p0 + kp) <= K ? kp : kp - 1;  // as in pack_a_pairs
  for (int64_t j = 0; j < nc; j += NR, dst += kp * NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - j);
    const bf16* src = b + 2 * p0 * sk + (j0 + j) * sn;
    int64_t p = 0;
    if (sn == 1 && nr == NR) {
      // Rows of B contiguous: widen 16 columns of rows 2p and 2p + 1 to 32 bits, interleave.
      for (; p < kv; p++)
        for (int c0 = 0; c0 < NR; c0 += 16)
          _mm512_storeu_si512(dst + p * NR + c0, interleave16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * p * sk + c0)),
                                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + (2 * p + 1) * sk + c0))));
    } else if (sk == 1 && nr == NR) {
      // B transposed: a column's pair is one 32-bit word; 16 columns x 16 pairs at a time.
      for (; p + 16 <= kv; p += 16)
        for (int c0 = 0; c0 < NR; c0 += 16) {
          __m512 r[16];
          for (int c = 0; c < 16; c++) r[c] = _mm512_loadu_ps(reinterpret_cast<const float*>(src + (c0 + c) * sn + 2 * p));
          gemm::transpose16(r);
          for (int q = 0; q < 16; q++) _mm512_storeu_ps(dst + (p + q) * NR + c0, r[q]);
        }
    }
    for (; p < kp; p++) {
      const int64_t k = 2 * (p0 + p);
      for (int64_t c = 0; c < NR; c++) {
        const bf16* col = c < nr ? src + 2 * p * sk + c * sn : nullptr;
        put_pair(dst + p * NR + c, col ? col[0].bits : 0, col && k + 1 < K ? col[sk].bits : 0);
      }
    }
  }
}

// One [M,K] x [K,N] product: f32 C in a scratch block, rounded to bf16 once at the end.
void matmul_one(bf16* out, const bf16* a, int64_t sam, int64_t sak, const bf16* b, int64_t sbk, int64_t sbn, int64_t M,
                int64_t N, int64_t K, bool parallel) {
  auto pack_a = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kp, float* dst) {
    pack_a_pairs(a, sam, sak, K, i0, mc, p0, kp, dst);
  };
  auto pack_b = [&](int64_t j0, int64_t nc, int64_t p0, int64_t kp, float* dst) {
    pack_b_pairs(b, sbk, sbn, K, j0, nc, p0, kp, dst);
  };
  std::vector<float> c(size_t(M * N));
  gemm::run<float, DotBf16>(M, N, (K + 1) / 2, pack_a, pack_b, c.data(), N, false, parallel);
  for (int64_t i = 0; i < M * N; i++) out[i] = store<bf16>(c[size_t(i)]);
}

}  // namespace

int bf16_dot() {
  static const int state = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) return 0;
    const char* want = std::getenv("EMU_CPU_BF16_DOT");
    return want && !std::strcmp(want, "1") ? 2 : 1;
  }();
  return state;
}

void matmul_v5_bf16_dot(const View& out, const View& a, const View& b) {
  if (!bf16_dot()) fail(ErrorKind::Value, "matmulVersion: version 5 needs the avx512_bf16 instructions, which this CPU lacks");
  if (out.dtype != DType::BF16)  // a ValueError, as native/cuda's versions refuse a dtype they were not made for
    fail(ErrorKind::Value, std::string("matmulVersion: version 5 (avx512_bf16 dot products) does not take ") + dtype_name(out.dtype));
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  gemm::for_each_gemm(batch, double(M) * double(N) * double(K), [&](int64_t i, bool parallel) {
    matmul_one(out.ptr<bf16>() + i * M * N, a.ptr<bf16>() + i * a.strides[0], a.strides[1], a.strides[2],
               b.ptr<bf16>() + i * b.strides[0], b.strides[1], b.strides[2], M, N, K, parallel);
  });
}

#else  // the AVX2 and plain builds have no AVX-512, hence no avx512_bf16

int bf16_dot() { return 0; }

void matmul_v5_bf16_dot(const View&, const View&, const View&) {
  fail(ErrorKind::Value, "matmulVersion: version 5 needs the avx512_bf16 instructions; the AVX2 or plain "
                         "x86-64 kernels in use have none");
}

#endif

}  // namespace emu::cpu::EMU_ISA
