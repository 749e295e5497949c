// runtime.h: what the addon asks of the CUDA runtime.
//
// runtime.cu implements it with the real CUDA runtime (linked statically, so the addon loads on
// a machine without a driver); runtime_absent.cpp implements it for builds without nvcc, where
// every query answers "not built with CUDA". The CUDA backend issue grows this into the full
// runtime layer (memory, copies, streams, events, launch) shared with the emulator.
#pragma once
#include <string>

namespace emu::cuda {

bool built_with_cuda();
// Number of usable devices; 0 with `why` set when there is no driver, no device, or no CUDA build.
int device_count(std::string* why);
std::string device_name(int index);

}  // namespace emu::cuda
