// gemm/v2_packed.cpp: matmul version 2, packing and cache blocking (the matmul of the Foundation
// issue, kept as it was apart from sharing gemm.h's vector types).
//
// What it changes over v1: the output is cut into tasks of (batch, kMC-row block, kNC-column
// block), spread over the pool. A task walks K in kKC-deep slices; for each slice it packs its
// block of A into kMR-row micro-panels and its block of B into NR-column micro-panels (k-major,
// zero-padded, converted to the compute type, so strides and bf16 are dealt with once, here). A
// 6 x NR register tile (NR = two vectors) adds a broadcast a[r][k] times the row bpack[k][0:NR].
// What it bought: from about 2-5 GFLOP/s (v1) to about 200 at n = 1024 on 2 threads (55-60% of
// the FMA peak). What it leaves: every task packs its own B block, so B is packed M / kMC times
// over; 12 accumulators per k-step feed 8 loads to 12 FMAs; each slice's sum is added to C
// (c + tile) rather than continued from it. v3 (v3_microkernel.cpp) fixes all three.
// Each output element is a sum over k in order, whatever the block sizes or thread count.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "../../kernels.h"
#include "../../thread_pool.h"
#include "../scalar.h"
#include "gemm.h"

namespace emu::cpu::EMU_ISA {
namespace {

using gemm::madd;
using gemm::Scratch;
template <class V> using Vec = gemm::Vec<V>;
template <class V> constexpr int kLanes = gemm::kLanes<V>;

constexpr int kMR = 6;         // rows of the register tile
constexpr int64_t kKC = 256;   // depth of a packed slice
constexpr int64_t kMC = 96;    // rows per task (a multiple of kMR)
constexpr int64_t kNC = 512;   // columns per task (a multiple of every NR)
template <class V> constexpr int kNR = 2 * kLanes<V>;  // columns of the register tile: two vectors

template <class V>
inline Vec<V> broadcast(V x) {
  return x - Vec<V>{};  // x - 0 is exactly x (even -0), so this folds to a plain broadcast
}

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

void matmul_v2_packed(const View& out, const View& a, const View& b) {
  dispatch_float(out.dtype, "matmul", [&](auto t) { matmul_typed<decltype(t)>(out, a, b); });
}

}  // namespace emu::cpu::EMU_ISA
