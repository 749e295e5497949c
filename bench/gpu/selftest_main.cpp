// selftest_main.cpp: the emulator's feature self-tests (native/sim/selftest.cu) on a real GPU,
// without Node.js: a standalone driver in the llm.c dev/cuda style. On a machine with an NVIDIA
// GPU and the CUDA toolkit, from the repository root:
//
//   nvcc -std=c++17 -O2 -Inative -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
//     native/sim/selftest.cu native/cuda/runtime.cu native/cuda/caching_allocator.cpp \
//     bench/gpu/selftest_main.cpp -o gpu_selftest && ./gpu_selftest
//
// It runs every feature self-test (the deliberately broken kernels are for the emulator only),
// prints one line per test and exits non-zero if any fails or there is no usable GPU. The same
// checks pass on `sim` (test/sim/emulator.test.ts), so a failure here that sim does not show
// points at the emulator's model of the hardware (fragment layouts, rounding), or at the kernel.
#include <cstdio>
#include <exception>

#include "sim/selftest.h"

int main() {
  int failed = 0, ran = 0;
  for (const emu::SelfTest& t : emu::cuda::self_tests()) {
    if (t.kind != emu::SelfTest::Feature) continue;
    std::string result;
    try {
      result = t.run();
    } catch (const std::exception& e) {
      result = std::string("error: ") + e.what();
    }
    ran++;
    failed += !result.empty();
    std::printf("%-20s %s\n", t.name, result.empty() ? "ok" : result.c_str());
  }
  std::printf("%d passed, %d failed\n", ran - failed, failed);
  return failed ? 1 : 0;
}
