// gemm/v3_microkernel.cpp: matmul versions 3 and 4, on gemm.h's BLIS-style drivers (v4, the
// default, differs from v3 only in how the threads share the work: see the end of this comment).
//
// What it changes over v2: (1) B's KC x NC slice is packed once, by all threads together, and
// shared, instead of once per row block; (2) the AVX-512 register tile grows from 6 x 32 to
// 14 x 32 (28 accumulators: 28 FMAs per 16 loads instead of 12 per 8), written so that GCC keeps
// it in registers and folds the broadcasts into the FMAs; (3) each slice continues C's FMA chain
// (acc starts from C) instead of adding a separately summed slice, so the result no longer
// depends on KC either; (4) the row panels are split evenly over the threads, with a share of
// the column panels when rows are few. Batched products whose batch can be spread evenly run one
// matrix per task, each packed privately, with no synchronisation inside.
// What it bought: see bench/RESULTS.md (gemm versions rows, v2 vs v3 in the same run).
//
// v4 (gemm::run instead of gemm::run_shared_b): each thread computes one rectangle of C with its
// own packed operands, so a product is one pool round trip instead of two per KC slice. It packs
// one operand once per thread (a few % of the flops at n = 512), and wins wherever a thread may
// be descheduled: on this shared 2-core machine, a barrier waits for the slowest thread.
//
// bf16 operands are widened to f32 while packing and accumulated in f32 into a scratch C, which
// is rounded to bf16 once at the end (v5_bf16_dot.cpp keeps them bf16 for avx512_bf16's dot
// product, and says why that is not the default); f64 runs the same tile in f64 lanes.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../../kernels.h"
#include "../../thread_pool.h"
#include "../scalar.h"
#include "gemm.h"

namespace emu::cpu::EMU_ISA {
namespace {

// One [M,K] x [K,N] product of the batch: out (row-major [M,N]) = a @ b.
template <bool kSharedB, class T>
void matmul_one(T* out, const T* a, int64_t sam, int64_t sak, const T* b, int64_t sbk, int64_t sbn, int64_t M,
                int64_t N, int64_t K, bool parallel) {
  using V = C<T>;
  auto pack_a = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kc, V* dst) {
    gemm::pack_a_strided(a, sam, sak, i0, mc, p0, kc, dst);
  };
  auto pack_b = [&](int64_t j0, int64_t nc, int64_t p0, int64_t kc, V* dst) {
    gemm::pack_b_strided(b, sbk, sbn, j0, nc, p0, kc, dst);
  };
  auto run = [&](V* c) {
    if constexpr (kSharedB) gemm::run_shared_b<V>(M, N, K, pack_a, pack_b, c, N, false, parallel);
    else gemm::run<V>(M, N, K, pack_a, pack_b, c, N, false, parallel);
  };
  if constexpr (std::is_same_v<T, V>) {
    run(out);
  } else {
    std::vector<V> c(size_t(M * N));
    run(c.data());
    for (int64_t i = 0; i < M * N; i++) out[i] = store<T>(c[size_t(i)]);
  }
}

template <bool kSharedB, class T>
void matmul_typed(const View& out, const View& a, const View& b) {
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  gemm::for_each_gemm(batch, double(M) * double(N) * double(K), [&](int64_t i, bool parallel) {
    matmul_one<kSharedB, T>(out.ptr<T>() + i * M * N, a.ptr<T>() + i * a.strides[0], a.strides[1], a.strides[2],
                  b.ptr<T>() + i * b.strides[0], b.strides[1], b.strides[2], M, N, K, parallel);
  });
}

}  // namespace

void matmul_v3_microkernel(const View& out, const View& a, const View& b) {
  dispatch_float(out.dtype, "matmul", [&](auto t) { matmul_typed<true, decltype(t)>(out, a, b); });
}

void matmul_v4_tiles(const View& out, const View& a, const View& b) {
  dispatch_float(out.dtype, "matmul", [&](auto t) { matmul_typed<false, decltype(t)>(out, a, b); });
}

}  // namespace emu::cpu::EMU_ISA
