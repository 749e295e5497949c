// kernels.h: the op kernels of the CUDA backend, as a kernel table per device.
//
// Each device fills the same cpu::KernelTable (cpu/kernels.h) that the CPU kernels fill, so the
// addon picks a table by the device a tensor's storage lives on and calls it the same way. The
// op launchers (native/cuda/*.cu: elementwise, reduce, matmul, random) are host code shared by
// both devices: compiled by nvcc they run on `cuda`, compiled by the host compiler against
// native/sim they run on `sim` (sim/kernels.cpp). An op without a kernel on a device yet has a
// null entry in that device's table; the addon turns it into a DeviceError naming the op.
// Every View handed to these entries points at memory of the table's device.
#pragma once
#include "cpu/fused.h"
#include "cpu/kernels.h"

// The fused kernels (cpu/fused.h: attention, norms, cross-entropy, AdamW) likewise have a table per
// device, filled in native/cuda/kernel_table.cu; a null entry sends the TypeScript layer down the
// composed path on that device (the addon's fusedKernels(device) lists the entries present).
namespace emu::sim {
const cpu::KernelTable& kernel_table();
const cpu::FusedKernels& fused_table();
}  // namespace emu::sim

namespace emu::cuda {
const cpu::KernelTable& kernel_table();  // all null in builds without nvcc (runtime_absent.cpp)
const cpu::FusedKernels& fused_table();  // likewise
}  // namespace emu::cuda
