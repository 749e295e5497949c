// kernels.cpp: the host-compiler build of CUDA kernel sources for the device `sim`.
//
// Each .cu file included here is also compiled by nvcc (native/sources.json "cuda"); here the
// host compiler sees it through cuda/device.cuh's emulator branch, in namespace emu::sim.
#include "sim/selftest.cu"
#include "cuda/elementwise.cu"
#include "cuda/reduce.cu"
#include "cuda/gemm/v1_tiled.cu"
#include "cuda/gemm/v2_simt.cu"
#include "cuda/gemm/v3_mma.cu"
#include "cuda/matmul.cu"
#include "cuda/index.cu"
#include "cuda/image.cu"
#include "cuda/random.cu"
#include "cuda/norm.cu"
#include "cuda/cross_entropy.cu"
#include "cuda/adamw.cu"
#include "cuda/swiglu.cu"
#include "cuda/kernel_table.cu"
