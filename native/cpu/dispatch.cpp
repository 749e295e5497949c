// dispatch.cpp: picks the CPU kernel table for this machine from CPUID (see kernels.h).
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace emu::cpu {
namespace {

const KernelTable& choose() {
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (const char* want = std::getenv("EMU_CPU_ISA")) {
    if (!std::strcmp(want, "generic")) return generic::kernel_table();
    if (!std::strcmp(want, "avx2") && has2) return avx2::kernel_table();
    if (!std::strcmp(want, "avx512") && has512) return avx512::kernel_table();
  }
  if (has512) return avx512::kernel_table();
  if (has2) return avx2::kernel_table();
  return generic::kernel_table();
}

}  // namespace

const KernelTable& kernels() {
  static const KernelTable& table = choose();
  return table;
}

}  // namespace emu::cpu
