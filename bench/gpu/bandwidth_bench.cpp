// bandwidth_bench.cpp: the machine's memory-bandwidth reference, measured in the same run as the
// kernels: a large device-to-device copy through the runtime (cudaMemcpyAsync on `cuda`),
// counting the bytes read plus the bytes written. bench/gpu/report.py divides every
// memory-bound kernel's TB/s by this figure for its "% of peak" (an H200's HBM3e is 4.8 TB/s
// by the datasheet; a copy reaches about 4.3 here). The small case checks that the copy
// copies.
#include "bench.h"

using namespace emu;
using namespace emu::bench;

int main(int argc, char** argv) {
  return main_of("bandwidth", argc, argv, [](Bench& bench) {
    for (const int64_t n : {int64_t(1001), int64_t(1) << 28}) {  // 4 KB; 1 GiB of f32, far beyond the L2
      const bool timed = n > 100000;
      Case c{"device copy (memcpy D2D)", DType::F32, std::to_string(n * 4 / (timed ? 1 << 20 : 1)) + (timed ? " MiB" : " B"),
             format("{\"op\":\"copy\",\"shapes\":[[%lld]],\"dtype\":\"f32\"}", (long long)n), 0, 2.0 * n * 4, timed, "bandwidth"};
      if (!bench.wants(timed)) continue;
      bench.run(c, true, [&](Measure& m) {
        HostTensor x = HostTensor::uniform({n}, 1);
        DeviceTensor src = bench.upload(x, DType::F32), dst = bench.tensor({n}, DType::F32);
        dst.poison();
        bench.rt().copy_on_device(dst.view().data, src.view().data, src.bytes(), Stream{});
        m.check("copy", dst.download(), x, 0);
        m.time([&] { bench.rt().copy_on_device(dst.view().data, src.view().data, src.bytes(), Stream{}); });
      });
    }
  });
}
