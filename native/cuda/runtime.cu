// runtime.cu: the real CUDA runtime behind runtime.h (compiled by nvcc, static cudart).
#include <cuda_runtime.h>

#include "runtime.h"

namespace emu::cuda {

bool built_with_cuda() { return true; }

int device_count(std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = std::string("no CUDA device: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device: the driver reports none";
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

}  // namespace emu::cuda
