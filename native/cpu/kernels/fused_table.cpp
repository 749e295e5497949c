// fused_table.cpp: gathers this instruction set's fused kernels into its FusedKernels (fused.h).
#include "../fused.h"

namespace emu::cpu::EMU_ISA {

void attention(const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
               const View* kpm, double scale, bool causal);
void attention_backward(const View& dq, const View& dk, const View& dv, const View* dbias, const View& dout,
                        const View& out, const View& lse, const View& q, const View& k, const View& v,
                        const View* bias, const View* kpm, double scale, bool causal);

const FusedKernels& fused_table() {
  static const FusedKernels table = {attention, attention_backward};
  return table;
}

}  // namespace emu::cpu::EMU_ISA
