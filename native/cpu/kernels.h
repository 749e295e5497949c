// kernels.h: the CPU kernel interface, one table of function pointers.
//
// Every file in native/cpu/kernels/ is compiled three times, once per instruction set
// (AVX-512, AVX2+FMA, plain x86-64), each time into its own namespace
// (emu::cpu::avx512, emu::cpu::avx2, emu::cpu::generic; the build defines EMU_ISA). At load,
// dispatch.cpp reads CPUID and picks one table, so a build is correct on any x86-64 machine and
// still uses the widest vectors the machine has. Never build with -march=native.
//
// Conventions: Views carry strides in elements; outputs are Views too, so a kernel can write
// into a slice of a larger tensor. The TypeScript op layer has already checked shapes, dtypes and
// devices; kernels re-check only what memory safety depends on (index ranges, sizes).
#pragma once
#include <cstdint>

#include "../core/view.h"

namespace emu::cpu {

// Unary ops: out = f(in), same shape. Float ops on float dtypes; abs/neg also on i32;
// logical_not, isfinite and isnan write bool.
enum class UnaryOp : int32_t {
  Neg, Abs, Exp, Log, Log1p, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Relu, GeluErf, GeluTanh, Silu,
  Softplus, Clamp /* a = min, b = max (NaN = none) */, PowScalar /* a = exponent */,
  LogicalNot, IsFinite, IsNaN, Sign, Floor, Ceil, Round, Reciprocal, Square, Erf,
  Count
};

// Binary ops: out = f(a, b); a and b have out's shape (broadcast dims have stride 0) and the
// same dtype. Comparisons and logical ops write bool. SiluGradMul is b * silu'(a): silu's
// backward in one pass.
enum class BinaryOp : int32_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
  LogicalXor, Remainder, FloorDivide, Atan2, SiluGradMul,
  Count
};

// Reductions over the trailing `ndim - nkeep` dims of `in`; out holds prod(in.shape[:nkeep])
// elements. Arg reductions write i32 indices into the flattened reduced sub-shape.
enum class ReduceOp : int32_t { Sum, Mean, Max, Min, Prod, ArgMax, ArgMin, All, Any, Var, LogSumExp, Count };

struct KernelTable {
  const char* isa;
  // Element-wise.
  void (*copy)(const View& out, const View& in);  // any dtype to any dtype, strided both sides
  void (*fill)(const View& out, double value);
  void (*unary)(UnaryOp op, const View& out, const View& in, double a, double b);
  void (*binary)(BinaryOp op, const View& out, const View& a, const View& b);
  void (*where)(const View& out, const View& cond, const View& a, const View& b);
  // Rotary embedding, rotate-half form, in one pass: with x = [x1, x2] split along the last dim
  // (even), out = [x1 c1 - x2 s1, x2 c2 + x1 s2] for cos = [c1, c2], sin = [s1, s2]; x, cos and
  // sin have out's shape (broadcast dims stride 0). `inverse` applies the transpose, the backward:
  // out = [x1 c1 + x2 s2, x2 c2 - x1 s1] (the inverse rotation when the halves of cos and sin agree).
  void (*rope)(const View& out, const View& x, const View& cos, const View& sin, bool inverse);
  // Reductions and scans. `correction` is for Var (Bessel's correction = 1).
  void (*reduce)(ReduceOp op, const View& out, const View& in, int nkeep, double correction);
  void (*softmax)(const View& out, const View& in, int dim, bool log);
  void (*cumsum)(const View& out, const View& in, int dim);
  // Linear algebra: out[b] = a[b] @ bm[b] for 3-d views [B,M,K] x [B,K,N] -> [B,M,N].
  void (*matmul)(const View& out, const View& a, const View& b);
  // Indexing. Index views are i32; out-of-range indices raise IndexError.
  void (*gather)(const View& out, const View& in, int dim, const View& index);
  void (*scatter_add)(const View& out, int dim, const View& index, const View& src);  // out += ...
  void (*index_select)(const View& out, const View& in, int dim, const View& index);
  void (*triangle)(const View& out, const View& in, int64_t k, bool upper);  // tril / triu
  // Random numbers from Philox 4x32-10 (philox.h documents the stream layout).
  void (*rand_uniform)(const View& out, uint64_t seed, uint64_t offset, double low, double high);
  void (*rand_normal)(const View& out, uint64_t seed, uint64_t offset, double mean, double std);
  void (*rand_int)(const View& out, uint64_t seed, uint64_t offset, int64_t low, int64_t high);
  void (*randperm)(const View& out, uint64_t seed, uint64_t offset);
  // Images (NCHW).
  void (*conv2d)(const View& out, const View& in, const View& weight, const View* bias, const int64_t* stride,
                 const int64_t* padding, const int64_t* dilation, int64_t groups);
  void (*max_pool2d)(const View& out, const View* indices, const View& in, const int64_t* kernel,
                     const int64_t* stride, const int64_t* padding, const int64_t* dilation);
  void (*avg_pool2d)(const View& out, const View& in, const int64_t* kernel, const int64_t* stride,
                     const int64_t* padding, bool count_include_pad);
  void (*upsample_nearest2d)(const View& out, const View& in);
  // Their adjoints (image_backward.cpp); grad_in / grad_w are fully overwritten.
  void (*conv2d_backward_input)(const View& grad_in, const View& grad_out, const View& weight, const int64_t* stride,
                                const int64_t* padding, const int64_t* dilation, int64_t groups);
  void (*conv2d_backward_weight)(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                                 const int64_t* stride, const int64_t* padding, const int64_t* dilation, int64_t groups);
  void (*avg_pool2d_backward)(const View& grad_in, const View& grad_out, const int64_t* kernel, const int64_t* stride,
                              const int64_t* padding, bool count_include_pad);
  void (*upsample_nearest2d_backward)(const View& grad_in, const View& grad_out);
  // The roofline (peak.cpp): f32 FMA GFLOP/s on all pool threads; triad GB/s over n floats.
  double (*peak_gflops)(int64_t iters);
  double (*triad_gbps)(int64_t n, int reps);
  // matmul through one of the kernel versions kept side by side (matmul.cpp lists them), for bench/.
  void (*matmul_version)(int version, const View& out, const View& a, const View& b);
  // matmul version 5 (avx512_bf16 dot products): 0 the CPU or build has none, 1 available to
  // matmul_version, 2 also what bf16 matmul runs (EMU_CPU_BF16_DOT=1).
  int (*bf16_dot)();
  // The GPU convolution's kernel versions (cuda/conv.cu; null on the CPU): the conv entries run
  // `version` from now on (0 = the dispatcher's choice, 1 = direct, 2 = implicit GEMM; others are
  // a ValueError), and the name of the kernel the last conv call launched, for tests and bench/.
  void (*set_conv2d_version)(int version);
  const char* (*conv2d_last_kernel)();
};

namespace avx512 { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace generic { const KernelTable& kernel_table(); }

// The table chosen for this machine (EMU_CPU_ISA=avx512|avx2|generic overrides, for testing).
const KernelTable& kernels();

}  // namespace emu::cpu
