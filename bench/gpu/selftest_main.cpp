// selftest_main.cpp: the emulator's feature self-tests (native/sim/selftest.cu) run on a real GPU,
// without Node.js: a standalone driver in the llm.c dev/cuda style, built with the bench drivers
// (CMake target gpu_selftest) and run by bench/gpu/run.sh before them:
//
//   build/gpu/gpu_bench/gpu_selftest [--device cuda|sim]
//
// It runs every feature self-test (the deliberately broken kernels are for the emulator only),
// prints one line per test and exits non-zero if any fails or there is no usable GPU. The same
// checks pass on `sim` (test/sim/emulator.test.ts; `--device sim` runs them here too), so a
// failure on the GPU that sim does not show points at the emulator's model of the hardware
// (fragment layouts, rounding), or at the kernel.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cuda/runtime.h"
#include "sim/selftest.h"

int main(int argc, char** argv) {
  const bool sim = argc == 3 && !std::strcmp(argv[1], "--device") && !std::strcmp(argv[2], "sim");
  if (argc != 1 && !(argc == 3 && !std::strcmp(argv[1], "--device") && (sim || !std::strcmp(argv[2], "cuda")))) {
    std::fprintf(stderr, "usage: %s [--device cuda|sim]\n", argv[0]);
    return 2;
  }
  if (!sim) {
    std::string why;
    if (emu::cuda::device_count(&why) == 0) {
      std::fprintf(stderr, "selftest: %s\n", why.c_str());
      return 2;
    }
    std::printf("== emulator feature self-tests on %s\n", emu::cuda::device_name(0).c_str());
  }
  int failed = 0, ran = 0;
  for (const emu::SelfTest& t : sim ? emu::sim::self_tests() : emu::cuda::self_tests()) {
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
  return failed || ran == 0 ? 1 : 0;
}
