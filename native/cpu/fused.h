// fused.h: the fused CPU kernels (attention, norms, GroupNorm, cross-entropy, AdamW, SwiGLU), one table of
// function pointers per instruction set like kernels.h's, kept in a table of their own.
//
// Each file in native/cpu/kernels/ that implements these is compiled once per instruction set
// (see kernels.h); fused_kernels() returns the table of the set kernels() chose, so both tables
// always agree. Views carry strides in elements; the N-API glue has checked shapes and dtypes.
#pragma once
#include <cstdint>

#include "../core/view.h"

namespace emu::cpu {

// One AdamW step's numbers (adamw.cpp): bias2 = sqrt(1 - beta2^t), step_size = lr / (1 - beta1^t).
struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay, bias2, step_size;
};

struct FusedKernels {
  // Attention (attention.cpp): q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv], out [B,H,Lq,Dv],
  // lse [B,H,Lq] (the log-sum-exp of each row's logits, saved for the backward), optional bias
  // [B,H,Lq,Lk] and key-padding mask kpm (bool [B,Lk], true = hidden). f32 or f64; sim and cuda
  // also take bf16, with lse in f32.
  void (*attention)(const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
                    const View* kpm, double scale, bool causal);
  // Its backward: dq, dk, dv (and dbias [B,H,Lq,Lk] when not null) fully overwritten.
  void (*attention_backward)(const View& dq, const View& dk, const View& dv, const View* dbias, const View& dout,
                             const View& out, const View& lse, const View& q, const View& k, const View& v,
                             const View* bias, const View* kpm, double scale, bool causal);
  // LayerNorm (mean given) or RMSNorm (mean null) over the rows of x [N, D] (norm.cpp); w, b
  // [D] optional; mean and rstd [N] are written by the forward and read by the backward, which
  // fully overwrites dx and, when not null, dw and db. f32 or f64; sim and cuda also take bf16
  // and f16 (computed in f32), with mean and rstd in f32.
  void (*norm_forward)(const View& y, const View* mean, const View& rstd, const View& x, const View* w, const View* b,
                       double eps);
  void (*norm_backward)(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                        const View* mean, const View& rstd);
  // Softmax cross-entropy of logits [N, V] against i32 targets [N] (cross_entropy.cpp): loss and
  // lse [N]; targets equal to `ignore` give 0. The backward writes dlogits [N, V] from dloss [N].
  // f32 or f64; sim and cuda also take bf16 and f16 logits, with loss, lse and dloss in f32.
  void (*cross_entropy)(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore,
                        double smoothing);
  void (*cross_entropy_backward)(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                                 const View& targets, int64_t ignore, double smoothing);
  // One AdamW step of p in place, with m and v (adamw.cpp); p, g, m, v of one shape and dtype.
  void (*adamw)(const View& p, const View& g, const View& m, const View& v, const AdamWHyper& h);
  // SwiGLU (swiglu.cpp): out = silu(a) b elementwise, silu(a) = a / (1 + exp(-a)) (the unary op's
  // formula); a, b and out of one shape and dtype (f32, f64; sim and cuda also bf16 and f16), any
  // strides. The backward overwrites da = dout b silu'(a) and db = dout silu(a), with
  // silu'(a) = s (1 + a (1 - s)), s = 1 / (1 + exp(-a)).
  void (*swiglu)(const View& out, const View& a, const View& b);
  void (*swiglu_backward)(const View& da, const View& db, const View& dout, const View& a, const View& b);
  // Forces attention version `version` for every later call on the device (0: the dispatcher's
  // choice again); an unknown version is a ValueError. The CPU, with one version, leaves it null.
  void (*attention_version)(int version);
  // GroupNorm's rows with its per-channel affine (norm.cpp): x [R, D] is x [N, C, ...] folded
  // into R = N G rows of a group each, D = (C / G) inner, so a row holds C / G channels of
  // `inner` contiguous elements each; w and b [C] optional (row r, channel k of the row: w[(r %
  // G) (C / G) + k]). Otherwise as norm_forward / norm_backward with mean always given; dw and db
  // [C] are summed over the rows in row order. Devices without it take the composed path.
  void (*group_norm_forward)(const View& y, const View& mean, const View& rstd, const View& x, const View* w,
                             const View* b, double eps, int64_t inner);
  void (*group_norm_backward)(const View& dx, const View* dw, const View* db, const View& dy, const View& x,
                              const View* w, const View& mean, const View& rstd, int64_t inner);
  // Linear with the GEMM's fused epilogue (sim and cuda: cuda/matmul.cu): out [R, N] =
  // act(x [R, K] w^T + bias) + residual, w [N, K], bias [N] and residual [R, N] optional, act a
  // UnaryOp (Relu, GeluErf, GeluTanh, Silu) or -1 for none; pre [R, N], when not null, receives
  // x w^T + bias, the activation's input for the backward. One dtype throughout; out and pre
  // contiguous. version 0 is the GEMM dispatcher's choice, 1-5 force one (as matmul_version).
  // The CPU leaves it null: there the ops compose (F.linear), each pass staying in cache.
  void (*linear)(const View& out, const View* pre, const View& x, const View& w, const View* bias, const View* residual,
                 int act, int version);
  // AdamW for a bf16 or f16 parameter p16 through its f32 master copy, in one pass (sim and cuda:
  // adamw.cu): g16 is p16's gradient (p16's dtype), master, m and v f32, all of one shape. master,
  // m and v are stepped exactly as adamw steps them (the gradient widened exactly), and p16
  // receives the new master rounded to its dtype. The CPU leaves it null: the optimizer then
  // widens the gradient, runs adamw on the master and rounds it back, three passes.
  void (*adamw_mixed)(const View& p16, const View& master, const View& g16, const View& m, const View& v,
                      const AdamWHyper& h);
  // Forces LayerNorm / RMSNorm version `version` (norm_forward, norm_backward) for every later call
  // on the device (sim and cuda: norm.cu's v1 thread per row, v2 block per row; 0: the default);
  // an unknown version is a ValueError. The CPU, with one version, leaves it null.
  void (*norm_version)(int version);
};

namespace avx512 { const FusedKernels& fused_table(); }
namespace avx2 { const FusedKernels& fused_table(); }
namespace generic { const FusedKernels& fused_table(); }

const FusedKernels& fused_kernels();

}  // namespace emu::cpu
