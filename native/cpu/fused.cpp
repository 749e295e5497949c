// fused.cpp: picks the fused kernel table of the instruction set kernels() chose (fused.h).
#include "fused.h"

#include <cstring>

#include "kernels.h"

namespace emu::cpu {

const FusedKernels& fused_kernels() {
  static const FusedKernels& table = !std::strcmp(kernels().isa, "avx512") ? avx512::fused_table()
                                     : !std::strcmp(kernels().isa, "avx2") ? avx2::fused_table()
                                                                            : generic::fused_table();
  return table;
}

}  // namespace emu::cpu
