// gemm/v1_naive.cpp: matmul version 1, the textbook triple loop. out[b][i][j] = sum over k of
// a[b][i][k] * b[b][k][j], one dot product per output element, k in order, read straight from the
// strided views; rows of out spread over the pool.
//
// What it is for: the correctness baseline the faster versions are checked against, and the
// bench's floor. What it costs: each dot product walks a column of B with stride N, so every
// step misses L1 once N is a few hundred; about 2-5 GFLOP/s at n = 1024 on this machine (under
// 2% of the FMA peak). Signature as matmul (see matmul.cpp); out is contiguous.
#include "../../kernels.h"
#include "../../thread_pool.h"
#include "../scalar.h"

namespace emu::cpu::EMU_ISA {

void matmul_v1_naive(const View& out, const View& a, const View& b) {
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  dispatch_float(out.dtype, "matmul", [&](auto t) {
    using T = decltype(t);
    using V = C<T>;
    parallel_for(batch * M, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const int64_t bi = r / M, i = r % M;
        const T* arow = a.ptr<T>() + bi * a.strides[0] + i * a.strides[1];
        const T* bmat = b.ptr<T>() + bi * b.strides[0];
        T* orow = out.ptr<T>() + (bi * M + i) * N;
        for (int64_t j = 0; j < N; j++) {
          V sum = V(0);
          for (int64_t k = 0; k < K; k++) sum += load(arow[k * a.strides[2]]) * load(bmat[k * b.strides[1] + j * b.strides[2]]);
          orow[j] = store<T>(sum);
        }
      }
    });
  });
}

}  // namespace emu::cpu::EMU_ISA
