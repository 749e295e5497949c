// runtime_absent.cpp: runtime.h for a build without nvcc (or with EMU_CUDA=OFF).
#include "runtime.h"

namespace emu::cuda {

bool built_with_cuda() { return false; }

int device_count(std::string* why) {
  if (why) *why = "no CUDA device: this build of emu-engine was compiled without CUDA (nvcc not found, or EMU_CUDA=OFF)";
  return 0;
}

std::string device_name(int) { return ""; }

}  // namespace emu::cuda
