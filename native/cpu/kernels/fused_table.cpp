// fused_table.cpp: gathers this instruction set's fused kernels into its FusedKernels (fused.h).
#include "../fused.h"

namespace emu::cpu::EMU_ISA {

void attention(const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
               const View* kpm, double scale, bool causal);
void attention_backward(const View& dq, const View& dk, const View& dv, const View* dbias, const View& dout,
                        const View& out, const View& lse, const View& q, const View& k, const View& v,
                        const View* bias, const View* kpm, double scale, bool causal);

void norm_forward(const View& y, const View* mean, const View& rstd, const View& x, const View* w, const View* b,
                  double eps);
void norm_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                   const View* mean, const View& rstd);
void group_norm_forward(const View& y, const View& mean, const View& rstd, const View& x, const View* w, const View* b,
                        double eps, int64_t inner);
void group_norm_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                         const View& mean, const View& rstd, int64_t inner);
void cross_entropy(const View& loss, const View& lse, const View& logits, const View& targets, int64_t ignore,
                   double smoothing);
void cross_entropy_backward(const View& dlogits, const View& dloss, const View& logits, const View& lse,
                            const View& targets, int64_t ignore, double smoothing);
void adamw(const View& p, const View& g, const View& m, const View& v, const AdamWHyper& h);
void swiglu(const View& out, const View& a, const View& b);
void swiglu_backward(const View& da, const View& db, const View& dout, const View& a, const View& b);

const FusedKernels& fused_table() {
  static const FusedKernels table = {
      attention, attention_backward, norm_forward, norm_backward, cross_entropy, cross_entropy_backward, adamw,
      swiglu, swiglu_backward,
      nullptr,  // attention_version: the CPU has one attention version
      group_norm_forward, group_norm_backward,
      nullptr,  // linear: the CPU composes matmul, bias, activation and residual (F.linear)
      nullptr,  // adamw_mixed: the optimizer composes it from adamw and two casts
      nullptr,  // norm_version: the CPU has one norm version
  };
  return table;
}

}  // namespace emu::cpu::EMU_ISA
