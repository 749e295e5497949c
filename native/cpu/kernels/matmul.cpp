// matmul.cpp: batched matrix multiply out[i] = a[i] @ b[i], [B,M,K] x [B,K,N] -> [B,M,N].
//
// a and b may have any strides (a transposed view, a stride-0 broadcast batch); out is
// contiguous. The foundation of a BLIS-style GEMM, written with GCC/Clang vector extensions
// (sized per instruction set) plus the FMA intrinsic where the set has one:
//  - The output is cut into tasks of (batch, kMC-row block, kNC-column block), spread over the
//    pool. A task walks K in kKC-deep slices; for each slice it packs its block of A into
//    kMR-row micro-panels and its block of B into NR-column micro-panels (k-major, zero-padded,
//    converted to the compute type, so strides and bf16 are dealt with once, here).
//  - The micro-kernel keeps a kMR x NR tile of C in registers (NR = two vector registers) and,
//    for each k, adds a broadcast a[r][k] times the contiguous row bpack[k][0:NR]. The B
//    micro-panel (kKC x NR) stays in L1 while the kernel sweeps the A panels (L2).
// Each output element is a sum over k = 0..K-1 in order, each kKC-deep slice summed in a
// register and then added to C, whatever the block sizes or thread count: results are
// deterministic (block sizes only shrink to make more tasks when there are few). f32 and bf16
// accumulate in f32 (bf16 is rounded once, at the end), f64 in f64.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "../kernels.h"
#include "../thread_pool.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

// One vector register of V (GCC/Clang vector extensions: +, * and scalar broadcast work on it).
template <class V> struct VecOf;
template <> struct VecOf<float> { typedef float type __attribute__((vector_size(kVecBytes))); };
template <> struct VecOf<double> { typedef double type __attribute__((vector_size(kVecBytes))); };
template <class V> using Vec = typename VecOf<V>::type;
template <class V> constexpr int kLanes = kVecBytes / int(sizeof(V));

constexpr int kMR = 6;         // rows of the register tile
constexpr int64_t kKC = 256;   // depth of a packed slice
constexpr int64_t kMC = 96;    // rows per task (a multiple of kMR)
constexpr int64_t kNC = 512;   // columns per task (a multiple of every NR)
template <class V> constexpr int kNR = 2 * kLanes<V>;  // columns of the register tile: two vectors

template <class V>
inline Vec<V> broadcast(V x) {
  return x - Vec<V>{};  // x - 0 is exactly x (even -0), so this folds to a plain broadcast
}

// c + a * b, fused where the hardware can: explicit, because -std=c++17 (the node-gyp build)
// turns off the compiler's own contraction of a * b + c.
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

// Per-thread scratch that only grows, cache-line aligned.
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
      if (!p) fail(ErrorKind::Memory, "matmul: cannot allocate " + std::to_string(want) + " bytes of packing space");
    }
    return static_cast<V*>(p);
  }
};

// ap[panel][k][r] = a[i + r][k] for the kMR-row panels of rows [0, mc), zero beyond mc.
template <class T, class V>
void pack_a(const T* a, int64_t sm, int64_t sk, int64_t mc, int64_t kc, V* ap) {
  for (int64_t i = 0; i < mc; i += kMR, ap += kc * kMR) {
    const int64_t mr = std::min<int64_t>(kMR, mc - i);
    for (int64_t k = 0; k < kc; k++)
      for (int64_t r = 0; r < kMR; r++) ap[k * kMR + r] = r < mr ? load(a[(i + r) * sm + k * sk]) : V(0);
  }
}

// bp[panel][k][j] = b[k][j0 + j] for the NR-column panels of columns [0, nc), zero beyond nc.
template <class T, class V>
void pack_b(const T* b, int64_t sk, int64_t sn, int64_t kc, int64_t nc, V* bp) {
  constexpr int NR = kNR<V>;
  for (int64_t j = 0; j < nc; j += NR, bp += kc * NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - j);
    for (int64_t k = 0; k < kc; k++)
      for (int64_t c = 0; c < NR; c++) bp[k * NR + c] = c < nr ? load(b[k * sk + (j + c) * sn]) : V(0);
  }
}

// c[0:mr, 0:nr] = (accumulate ? c : 0) + ap^T bp over kc, for one kMR x NR tile held in
// 2 * kMR vector registers. bp is 64-byte aligned and NR * sizeof(V) = two vectors, so every
// row of the B micro-panel is an aligned pair of vectors.
template <class V>
void micro_kernel(int64_t kc, const V* ap, const V* bp, V* c, int64_t ldc, int64_t mr, int64_t nr, bool accumulate) {
  using W = Vec<V>;
  constexpr int L = kLanes<V>, NR = kNR<V>;
  W acc[kMR][2] = {};
  for (int64_t k = 0; k < kc; k++) {
    const W b0 = *reinterpret_cast<const W*>(bp + k * NR), b1 = *reinterpret_cast<const W*>(bp + k * NR + L);
    for (int r = 0; r < kMR; r++) {
      const W a = broadcast<V>(ap[k * kMR + r]);
      acc[r][0] = madd(a, b0, acc[r][0]);
      acc[r][1] = madd(a, b1, acc[r][1]);
    }
  }
  alignas(64) V tile[kMR][NR];
  for (int r = 0; r < kMR; r++) {
    *reinterpret_cast<W*>(&tile[r][0]) = acc[r][0];
    *reinterpret_cast<W*>(&tile[r][L]) = acc[r][1];
  }
  for (int64_t r = 0; r < mr; r++)
    for (int64_t j = 0; j < nr; j++) c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r][j] : tile[r][j];
}

template <class T>
void matmul_typed(const View& out, const View& a, const View& b) {
  using V = C<T>;  // f32 for bf16
  constexpr int NR = kNR<V>;
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  T* o = out.ptr<T>();
  if (batch == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0, n = batch * M * N; i < n; i++) o[i] = store<T>(V(0));
    return;
  }

  // Shrink the blocks (never below a few register tiles) until there are tasks for every thread.
  int64_t mc = kMC, nc = kNC;
  auto tasks = [&] { return batch * ((M + mc - 1) / mc) * ((N + nc - 1) / nc); };
  const int64_t want = 2 * int64_t(num_threads());
  while (tasks() < want && (nc > 4 * NR || mc > 4 * kMR)) {
    if (nc > 4 * NR && nc >= 4 * mc) nc /= 2;
    else if (mc > 4 * kMR) mc /= 2;
    else nc /= 2;
  }
  const int64_t mblocks = (M + mc - 1) / mc, nblocks = (N + nc - 1) / nc;

  parallel_for(batch * mblocks * nblocks, 1, [&](int64_t begin, int64_t end) {
    thread_local Scratch a_buf, b_buf, c_buf;
    V* ap = a_buf.get<V>(mc * kKC);
    V* bp = b_buf.get<V>(kKC * nc);
    // f32/f64 accumulate straight into out; bf16 into an f32 block rounded at the end.
    V* cb = std::is_same_v<T, V> ? nullptr : c_buf.get<V>(mc * nc);
    for (int64_t w = begin; w < end; w++) {
      const int64_t bi = w / (mblocks * nblocks), ib = w / nblocks % mblocks, jb = w % nblocks;
      const int64_t i0 = ib * mc, j0 = jb * nc;
      const int64_t mcur = std::min(mc, M - i0), ncur = std::min(nc, N - j0);
      const T* ab = a.ptr<T>() + bi * a.strides[0] + i0 * a.strides[1];
      const T* bb = b.ptr<T>() + bi * b.strides[0] + j0 * b.strides[2];
      V* c;
      int64_t ldc;
      if constexpr (std::is_same_v<T, V>) {
        c = o + (bi * M + i0) * N + j0;
        ldc = N;
      } else {
        c = cb;
        ldc = ncur;
      }
      for (int64_t pc = 0; pc < K; pc += kKC) {
        const int64_t kc = std::min(kKC, K - pc);
        pack_a(ab + pc * a.strides[2], a.strides[1], a.strides[2], mcur, kc, ap);
        pack_b(bb + pc * b.strides[1], b.strides[1], b.strides[2], kc, ncur, bp);
        for (int64_t jr = 0; jr < ncur; jr += NR)
          for (int64_t ir = 0; ir < mcur; ir += kMR)
            micro_kernel(kc, ap + ir * kc, bp + jr * kc, c + ir * ldc + jr, ldc, std::min<int64_t>(kMR, mcur - ir),
                         std::min<int64_t>(NR, ncur - jr), pc > 0);
      }
      if constexpr (!std::is_same_v<T, V>) {
        for (int64_t i = 0; i < mcur; i++)
          for (int64_t j = 0; j < ncur; j++) o[(bi * M + i0 + i) * N + j0 + j] = store<T>(c[i * ldc + j]);
      }
    }
  });
}

}  // namespace

void matmul(const View& out, const View& a, const View& b) {
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(ErrorKind::Shape, "matmul: expected 3-d views");
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  if (a.shape[0] != batch || b.shape[0] != batch || a.shape[1] != M || b.shape[1] != K || b.shape[2] != N)
    fail(ErrorKind::Shape, "matmul: shapes [" + std::to_string(a.shape[0]) + "," + std::to_string(M) + "," +
                               std::to_string(K) + "] and [" + std::to_string(b.shape[0]) + "," +
                               std::to_string(b.shape[1]) + "," + std::to_string(b.shape[2]) +
                               "] do not match the output");
  if (!out.contiguous()) fail(ErrorKind::Shape, "matmul: output must be contiguous");
  if (a.dtype != out.dtype || b.dtype != out.dtype) fail(ErrorKind::DType, "matmul: operand dtypes differ");
  dispatch_float(out.dtype, "matmul", [&](auto t) { matmul_typed<decltype(t)>(out, a, b); });
}

}  // namespace emu::cpu::EMU_ISA
