// adamw_bench.cpp: the device's fused AdamW step (FusedKernels::adamw: p, m and v updated in
// place from g in one pass), checked against the CPU's step from the same p, g, m, v and timed
// over 100M f32 parameters (the optimizer keeps f32 master weights for bf16 models, so f32 is
// the case that matters). Bytes: 28 per parameter (g read; p, m, v read and written). The
// timed launches keep stepping the same tensors, which stay finite (lr 1e-3). Then the same step
// for bf16 parameters through their f32 master (FusedKernels::adamw_mixed), 30 bytes per parameter.
#include <cmath>

#include "bench.h"

using namespace emu;
using namespace emu::bench;

int main(int argc, char** argv) {
  return main_of("adamw", argc, argv, [](Bench& bench) {
    const int t = 10;  // the step number, for the bias corrections
    cpu::AdamWHyper h{1e-3, 0.9, 0.999, 1e-8, 0.01, std::sqrt(1 - std::pow(0.999, t)), 1e-3 / (1 - std::pow(0.9, t))};
    for (const int64_t n : {int64_t(1001), int64_t(100000000)}) {
      const bool timed = n > 100000;
      const std::vector<int64_t> s{n};
      TableCall<cpu::FusedKernels> call{
          "adamw", DType::F32, "", format("{\"op\":\"adamw\",\"numel\":%lld,\"dtype\":\"f32\"}", (long long)n), 0,
          {{s, DType::F32}},
          {{s, DType::F32, -1, 1, true}, {s, DType::F32, -1e-2, 1e-2, true}, {s, DType::F32, 1e-6, 1e-3, true}},
          bench.fused().adamw != nullptr,
          [h](const cpu::FusedKernels& k, const std::vector<View>& o, const std::vector<View>& i) { k.adamw(o[0], i[0], o[1], o[2], h); }};
      run_call(bench, call, cpu::fused_kernels(), bench.fused(), timed);
      // bf16 parameters with their f32 master copy (FusedKernels::adamw_mixed): 16 bytes read and
      // 14 written per parameter in one pass. The CPU, without the entry, steps the master and
      // copies it into the parameter (rounded to bf16 when the check compares).
      TableCall<cpu::FusedKernels> mixed{
          "adamw bf16 params + f32 master (one pass)", DType::BF16, "",
          format("{\"op\":\"adamw_mixed\",\"numel\":%lld,\"dtype\":\"bf16\"}", (long long)n), 0,
          {{s, DType::BF16, -1e-2, 1e-2}},
          {{s, DType::BF16, -1, 1, true}, {s, DType::F32, -1, 1, true}, {s, DType::F32, -1e-2, 1e-2, true},
           {s, DType::F32, 1e-6, 1e-3, true}},
          bench.fused().adamw_mixed != nullptr,
          [h](const cpu::FusedKernels& k, const std::vector<View>& o, const std::vector<View>& i) {
            if (k.adamw_mixed) {
              k.adamw_mixed(o[0], o[1], i[0], o[2], o[3], h);
            } else {
              k.adamw(o[1], i[0], o[2], o[3], h);
              cpu::kernels().copy(o[0], o[1]);
            }
          }};
      run_call(bench, mixed, cpu::fused_kernels(), bench.fused(), timed);
    }
  });
}
