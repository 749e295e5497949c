// runtime_absent.cpp: the `cuda` half of runtime.h for a build without nvcc (or with EMU_CUDA=OFF).
#include "core/errors.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "sim/selftest.h"

namespace emu::cuda {

namespace {
constexpr const char* kWhy = "no CUDA device: this build of emu-engine was compiled without CUDA (nvcc not found, or EMU_CUDA=OFF)";
}

bool built_with_cuda() { return false; }

int device_count(std::string* why) {
  if (why) *why = kWhy;
  return 0;
}

std::string device_name(int) { return ""; }

DeviceRuntime& runtime() { fail(ErrorKind::Device, std::string("cuda: ") + kWhy); }

// Without nvcc there are no op kernels (and no cuda tensors to run them on: device_count is 0).
const cpu::KernelTable& kernel_table() {
  static const cpu::KernelTable none{};
  return none;
}

const cpu::FusedKernels& fused_table() {
  static const cpu::FusedKernels none{};
  return none;
}

// The nvcc build of native/sim/selftest.cu defines the real list; without nvcc there is none.
const std::vector<SelfTest>& self_tests() {
  static const std::vector<SelfTest> none;
  return none;
}

}  // namespace emu::cuda
