// matmul.cpp: batched matrix multiply out[i] = a[i] @ b[i], [B,M,K] x [B,K,N] -> [B,M,N], and the
// choice between the kernel versions that live side by side in gemm/ (the llm.c dev/cuda way):
//
//   v1 gemm/v1_naive.cpp        the triple loop: the correctness and speed baseline
//   v2 gemm/v2_packed.cpp       packing and cache blocking, a 6 x 2-vector register tile
//   v3 gemm/v3_microkernel.cpp  BLIS-style: shared packed B, 14 x 32 AVX-512 tile
//   v4 gemm/v3_microkernel.cpp  v3's kernel, one C rectangle per thread, no barrier (the default)
//   v5 gemm/v5_bf16_dot.cpp     bf16 only: v4's drivers on k-pairs, avx512_bf16 dot products; the bf16
//                               default only with EMU_CPU_BF16_DOT=1 (slower than v4 where measured)
//
// a and b may have any strides (a transposed view, a stride-0 broadcast batch): every version
// reads them through their strides, none materialises a transpose; out is contiguous. Every
// version sums each output element over k = 0..K-1 in order, so results do not depend on the
// thread count. bench/ times each version through matmulVersion.
#include <string>

#include "../kernels.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {

void matmul_v1_naive(const View& out, const View& a, const View& b);
void matmul_v2_packed(const View& out, const View& a, const View& b);
void matmul_v3_microkernel(const View& out, const View& a, const View& b);
void matmul_v4_tiles(const View& out, const View& a, const View& b);
void matmul_v5_bf16_dot(const View& out, const View& a, const View& b);
int bf16_dot();

namespace {

void check_matmul(const View& out, const View& a, const View& b) {
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(ErrorKind::Shape, "matmul: expected 3-d views");
  const int64_t batch = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  if (a.shape[0] != batch || b.shape[0] != batch || a.shape[1] != M || b.shape[1] != K || b.shape[2] != N)
    fail(ErrorKind::Shape, "matmul: shapes [" + std::to_string(a.shape[0]) + "," + std::to_string(M) + "," +
                               std::to_string(K) + "] and [" + std::to_string(b.shape[0]) + "," +
                               std::to_string(b.shape[1]) + "," + std::to_string(b.shape[2]) +
                               "] do not match the output");
  if (!out.contiguous()) fail(ErrorKind::Shape, "matmul: output must be contiguous");
  if (a.dtype != out.dtype || b.dtype != out.dtype) fail(ErrorKind::DType, "matmul: operand dtypes differ");
}

}  // namespace

void matmul(const View& out, const View& a, const View& b) {
  check_matmul(out, a, b);
  if (out.dtype == DType::BF16 && bf16_dot() == 2) matmul_v5_bf16_dot(out, a, b);
  else matmul_v4_tiles(out, a, b);
}

void matmul_version(int version, const View& out, const View& a, const View& b) {
  check_matmul(out, a, b);
  switch (version) {
    case 1: matmul_v1_naive(out, a, b); return;
    case 2: matmul_v2_packed(out, a, b); return;
    case 3: matmul_v3_microkernel(out, a, b); return;
    case 4: matmul_v4_tiles(out, a, b); return;
    case 5: matmul_v5_bf16_dot(out, a, b); return;
  }
  fail(ErrorKind::Value, "matmulVersion: no version " + std::to_string(version) + " (there are 1 to 5)");
}

}  // namespace emu::cpu::EMU_ISA
