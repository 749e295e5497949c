// fused.h: the fused CPU kernels (attention, norms, cross-entropy, AdamW), one table of
// function pointers per instruction set like kernels.h's, kept in a table of their own.
//
// Each file in native/cpu/kernels/ that implements these is compiled once per instruction set
// (see kernels.h); fused_kernels() returns the table of the set kernels() chose, so both tables
// always agree. Views carry strides in elements; the N-API glue has checked shapes and dtypes.
#pragma once
#include <cstdint>

#include "../core/view.h"

namespace emu::cpu {

struct FusedKernels {
  // Attention (attention.cpp): q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv], out [B,H,Lq,Dv],
  // lse [B,H,Lq] (the log-sum-exp of each row's logits, saved for the backward), optional bias
  // [B,H,Lq,Lk] and key-padding mask kpm (bool [B,Lk], true = hidden). f32 or f64.
  void (*attention)(const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
                    const View* kpm, double scale, bool causal);
  // Its backward: dq, dk, dv (and dbias [B,H,Lq,Lk] when not null) fully overwritten.
  void (*attention_backward)(const View& dq, const View& dk, const View& dv, const View* dbias, const View& dout,
                             const View& out, const View& lse, const View& q, const View& k, const View& v,
                             const View* bias, const View* kpm, double scale, bool causal);
};

namespace avx512 { const FusedKernels& fused_table(); }
namespace avx2 { const FusedKernels& fused_table(); }
namespace generic { const FusedKernels& fused_table(); }

const FusedKernels& fused_kernels();

}  // namespace emu::cpu
