// selftest.h: the emulator's self-tests (selftest.cu), reached from the addon.
//
// selftest.cu is a kernel file like any in native/cuda: nvcc compiles it for sm_80 and sm_90
// (namespace emu::cuda) and the host compiler against the emulator (emu::sim, through
// sim/kernels.cpp). Each test launches one small kernel and compares with a plain reference:
//   feature        one emulated feature; must pass in every thread order
//   broken-result  a deliberately broken kernel (a missing barrier or cp.async wait) whose
//                  result must come out wrong in at least one order
//   broken-error   a deliberately broken kernel (divergent barrier, warp collective with
//                  missing lanes) that the emulator must report as an error
#pragma once
#include <string>
#include <vector>

namespace emu {

struct SelfTest {
  enum Kind { Feature, BrokenResult, BrokenError };
  const char* name;
  Kind kind;
  const char* description;
  // "" when the result matches the reference, else the first mismatch. Errors the device
  // reports (and broken-error tests must make it report) are thrown as emu::Error.
  std::string (*run)();
};

namespace sim {
const std::vector<SelfTest>& self_tests();
// Average cost of resuming one emulated thread at a barrier: launches `blocks` blocks of
// `threads` threads that pass `rounds` __syncthreads each, and returns ns per thread-resume.
double barrier_resume_ns(int threads, int rounds, int blocks);
}  // namespace sim

namespace cuda {
const std::vector<SelfTest>& self_tests();  // nvcc's build of selftest.cu; empty without nvcc
}  // namespace cuda

}  // namespace emu
