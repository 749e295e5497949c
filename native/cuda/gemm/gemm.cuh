// gemm.cuh: what the CUDA GEMM versions (gemm/v1_tiled.cu, v2_simt.cu, v3_mma.cu) and their
// dispatcher (cuda/matmul.cu) share: the problem description, how an operand is read, the
// device traits the dispatcher decides by, and each version's launcher.
//
// Every version computes out[n] = a[n] @ b[n] for a [batch,M,K], b [batch,K,N] and a contiguous
// out [batch,M,N], reading a and b through their strides: a transposed view or a stride-0
// broadcast batch is never copied. Each output element is accumulated over k = 0..K-1 in order
// (v3: in 16-deep tensor-core steps, in order), in f32 for f32, bf16 and f16 (the 16-bit ones
// rounded once, at the end) and in f64 for f64, as the CPU reference (cpu/kernels/matmul.cpp) does; results are
// deterministic and do not depend on the tile a version runs with.
//
// Each version also takes an optional fused epilogue (Epilogue, below: bias, activation,
// residual), applied to the accumulator where the tile is stored. The kernels are templated on
// whether there is one, so a plain product compiles to the same code as without this feature.
#pragma once
#include <cstdint>

#include "cuda/activation.cuh"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS::gemm {

// One batched product; strides in elements. `out` is contiguous.
struct Problem {
  long long batch, M, N, K;
  long long sa[3], sb[3];
};

// A fused epilogue (matmul.cu's linear): instead of out = a b, each version stores
// out = act(a b + bias) + residual, computed on the accumulator (f32, f64 for f64) and rounded to
// the element type once, where the unfused ops would round after each of the three steps. bias
// [N] (stride sbias) is broadcast over rows and batches; residual [batch, M, N] is read through
// its strides sr; pre, when not null, receives a b + bias (contiguous like out), the activation's
// input that the backward needs. Every pointer holds out's dtype; act is a UnaryOp that
// is_activation accepts, or -1 for none. What it saves on a GPU: the bias add, the activation and
// the residual add each read and write the whole output once more when run as separate kernels;
// fused, the output is written once (twice with pre) and the residual read once.
struct Epilogue {
  const void* bias;
  long long sbias;
  const void* residual;
  long long sr[3];
  void* pre;
  int act;
};

// The epilogue's value for output element (n, row, col) from the accumulated product `acc`;
// writes pre's element on the way.
template <class T, class V>
__device__ __forceinline__ V epilogue_value(const Epilogue& e, const Problem& p, V acc, long long n, long long row, long long col) {
  if (e.bias) acc += load(static_cast<const T*>(e.bias)[col * e.sbias]);
  if (e.pre) static_cast<T*>(e.pre)[(n * p.M + row) * p.N + col] = cvt<T>(acc);
  if (e.act >= 0) acc = activation(cpu::UnaryOp(e.act), acc);
  if (e.residual) acc += load(static_cast<const T*>(e.residual)[n * e.sr[0] + row * e.sr[1] + col * e.sr[2]]);
  return acc;
}

// An operand as the tiled versions see it: element (x, k) of matrix n, with x < X the row of a
// (X = M) or the column of b (X = N), is at base[n * sn + x * sx + k * sk]. `chunked` says whether
// runs of `chunk` elements along the stride-1 dimension may be read as one aligned vector (set by
// operand_of); `k_inner` whether that dimension is k (else x, or neither when !chunked).
struct Operand {
  long long sn, sx, sk, X;
  bool k_inner, chunked;
};

// a (x = m) or b (x = n) of a problem, with vector reads of `chunk` elements of `elem_bytes`
// allowed when one of x, k has stride 1, the other strides are multiples of `chunk` and the base is
// aligned to the vector (`align` bytes).
inline Operand operand_of(const void* base, long long sn, long long sx, long long sk, long long X, int chunk, int align) {
  Operand o{sn, sx, sk, X, sk == 1 || sx != 1, false};
  const long long outer = o.k_inner ? sx : sk, inner = o.k_inner ? sk : sx;
  o.chunked = inner == 1 && outer % chunk == 0 && sn % chunk == 0 && reinterpret_cast<uintptr_t>(base) % unsigned(align) == 0;
  return o;
}
inline Operand operand_a(const Problem& p, const void* a, int chunk, int align) {
  return operand_of(a, p.sa[0], p.sa[1], p.sa[2], p.M, chunk, align);
}
inline Operand operand_b(const Problem& p, const void* b, int chunk, int align) {
  return operand_of(b, p.sb[0], p.sb[2], p.sb[1], p.N, chunk, align);
}

// What the dispatcher decides by: the compute capability (major * 10 + minor) and the number of
// multiprocessors. Under sim these are an H100/H200's (sm_90, 132), so the dispatcher picks on the
// emulator what it would pick there.
struct DeviceTraits {
  int sm;
  int multiprocessors;
};
DeviceTraits device_traits();

// Blocks the grid's z dimension runs over the batch with (the kernels loop over the rest).
inline unsigned batch_blocks(long long batch) { return unsigned(batch > 65535 ? 65535 : batch); }

// The first row and column of the bm x bn output tile this block computes, of tiles_m x tiles_n,
// in grouped order: bands of 8 tile rows are walked column by column, so the blocks running at the
// same time share the rows of a and the columns of b they read, and those come from L2, not HBM.
__device__ __forceinline__ void tile_origin(int tiles_m, int tiles_n, int bm, int bn, long long* m0, long long* n0) {
  constexpr int kGroup = 8;
  const int tile = int(blockIdx.x), per_group = kGroup * tiles_n, first_m = tile / per_group * kGroup;
  const int group_m = tiles_m - first_m < kGroup ? tiles_m - first_m : kGroup;
  *m0 = (long long)(first_m + tile % per_group % group_m) * bm;
  *n0 = (long long)(tile % per_group / group_m) * bn;
}

// The number of output tiles of a problem for a tile of tm x tn, checked to fit the grid's x.
inline int tile_count(const Problem& p, int tm, int tn, int* tiles_m, int* tiles_n) {
  const long long m = (p.M + tm - 1) / tm, n = (p.N + tn - 1) / tn;
  if (m * n > 0x7fffffffLL) fail(ErrorKind::Shape, "matmul: more than 2^31 - 1 output tiles");
  *tiles_m = int(m);
  *tiles_n = int(n);
  return int(m * n);
}

// The versions' launchers (matmul.cu's header lists them). Each takes a checked, non-empty problem
// (batch, M, N > 0; K may be 0) and an optional epilogue (null: out = a b).
namespace v1 {
void run(const Problem& p, DType dtype, void* out, const void* a, const void* b, const Epilogue* e);
}
namespace v2 {
enum class Tile { Large, Small };  // 128x128, 8x8 per thread / 64x64, 4x4 per thread
void run(const Problem& p, Tile tile, DType dtype, void* out, const void* a, const void* b, const Epilogue* e);
}
namespace v3 {
enum class Tile { Large, Small };  // 128x128x32 / 64x64x32, both 4 warps and 3 cp.async stages
void run(const Problem& p, Tile tile, DType dtype, void* out, const void* a, const void* b, const Epilogue* e);  // bf16 and f16 only
}

}  // namespace emu::EMU_DEVICE_NS::gemm
