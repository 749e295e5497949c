// device.cuh: the one header CUDA kernel sources include; the same source then compiles with nvcc
// (device `cuda`) and with the host C++ compiler against the SIMT emulator (device `sim`).
//
// What a kernel file gets:
//  - CUDA's device surface: built-in variables, barriers, shuffles, votes, atomics, math
//    intrinsics, bf16/half, vector types (nvcc: the real ones; host compiler: sim/device_sim.h).
//  - EMU_SHARED(type, name, dims) declares a static shared array, EMU_DYNAMIC_SHARED(type, name) a
//    pointer to the dynamic shared area; `__shared__` itself cannot be emulated by a macro.
//  - The tensor-core and async-copy instructions as small device functions: inline PTX under
//    nvcc, warp-collective emulations under sim (fragment layouts: shared/reference/kernels.md):
//      mma_m16n8k16_bf16 / _f16   D(16x8,f32) = A(16x16) * B(16x8) + C, row.col; mma_m16n8k16<T>
//                                 picks one by the element type (bf16, f16) of a templated kernel
//      ldmatrix_x1/_x2/_x4[_trans] 1, 2 or 4 8x8 b16 matrices from shared memory
//      cp_async_4/_8/_16, cp_async_commit, cp_async_wait<N>, cp_async_wait_all
//  - launch<kernel>(grid, block, shared_bytes, stream, args...): the real launch (checked) under
//    nvcc, the emulator under sim; the kernel's name (from the template argument) goes in errors.
//  - EMU_NOINLINE keeps a device function out of line (`__noinline__` cannot be a macro under sim).
//  - EMU_DEVICE_NS: `cuda` under nvcc, `sim` otherwise. Kernel files put everything in
//    namespace emu::EMU_DEVICE_NS, so both builds link into one addon.
// Never build kernels with -ffast-math, and compare the two builds with tolerances only: FMA
// contraction and the fast intrinsics round differently.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/dtype.h"
#include "core/errors.h"
#include "cuda/runtime.h"

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define EMU_DEVICE_NS cuda
#define EMU_NOINLINE __noinline__
#define EMU_SHARED(type, name, dims) __shared__ __align__(16) type name dims
#define EMU_DYNAMIC_SHARED(type, name)                        \
  extern __shared__ __align__(16) unsigned char emu_dynamic_shared_[]; \
  type* name = reinterpret_cast<type*>(emu_dynamic_shared_)
#else
#include "sim/device_sim.h"
#define EMU_DEVICE_NS sim
#define EMU_NOINLINE __attribute__((noinline))
#define EMU_SHARED(type, name, dims)                                                             \
  using name##_emu_shared_t = type dims;                                                         \
  static const char name##_emu_shared_tag = 0;                                                   \
  name##_emu_shared_t& name = *static_cast<name##_emu_shared_t*>(::emu::sim::static_shared(       \
      &name##_emu_shared_tag, sizeof(name##_emu_shared_t), alignof(name##_emu_shared_t), ::emu::sim::here()))
#define EMU_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::emu::sim::dynamic_shared())
#endif

namespace emu {

#ifdef __CUDACC__

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

template <class T>
__device__ __forceinline__ void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, f16>, "mma.sync m16n8k16 takes bf16 or f16");
  if constexpr (std::is_same_v<T, bf16>) {
    mma_m16n8k16_bf16(d, a, b, c);
  } else {
    mma_m16n8k16_f16(d, a, b, c);
  }
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(shared_dst)), "l"(global_src) : "memory");
}
__device__ __forceinline__ void cp_async_8(void* shared_dst, const void* global_src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(shared_address(shared_dst)), "l"(global_src) : "memory");
}
__device__ __forceinline__ void cp_async_4(void* shared_dst, const void* global_src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(shared_address(shared_dst)), "l"(global_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

#else  // the emulator

inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], sim::Site s = sim::here()) {
  sim::warp_mma_m16n8k16(sim::MmaType::BF16, d, a, b, c, s);
}
inline void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], sim::Site s = sim::here()) {
  sim::warp_mma_m16n8k16(sim::MmaType::F16, d, a, b, c, s);
}
template <class T>
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], sim::Site s = sim::here()) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, f16>, "mma.sync m16n8k16 takes bf16 or f16");
  sim::warp_mma_m16n8k16(std::is_same_v<T, bf16> ? sim::MmaType::BF16 : sim::MmaType::F16, d, a, b, c, s);
}
inline void ldmatrix_x1(uint32_t r[1], const void* row, sim::Site s = sim::here()) { sim::warp_ldmatrix(1, false, r, row, s); }
inline void ldmatrix_x2(uint32_t r[2], const void* row, sim::Site s = sim::here()) { sim::warp_ldmatrix(2, false, r, row, s); }
inline void ldmatrix_x4(uint32_t r[4], const void* row, sim::Site s = sim::here()) { sim::warp_ldmatrix(4, false, r, row, s); }
inline void ldmatrix_x1_trans(uint32_t r[1], const void* row, sim::Site s = sim::here()) { sim::warp_ldmatrix(1, true, r, row, s); }
inline void ldmatrix_x2_trans(uint32_t r[2], const void* row, sim::Site s = sim::here()) { sim::warp_ldmatrix(2, true, r, row, s); }
inline void ldmatrix_x4_trans(uint32_t r[4], const void* row, sim::Site s = sim::here()) { sim::warp_ldmatrix(4, true, r, row, s); }
inline void cp_async_16(void* dst, const void* src, sim::Site s = sim::here()) { sim::async_copy(dst, src, 16, s); }
inline void cp_async_8(void* dst, const void* src, sim::Site s = sim::here()) { sim::async_copy(dst, src, 8, s); }
inline void cp_async_4(void* dst, const void* src, sim::Site s = sim::here()) { sim::async_copy(dst, src, 4, s); }
inline void cp_async_commit() { sim::async_commit(); }
template <int N>
void cp_async_wait() {
  sim::async_wait(N);
}
inline void cp_async_wait_all() {
  sim::async_commit();
  sim::async_wait(0);
}

#endif

// The kernel's name as the compiler spells the template argument ("emu::sim::selftest::reduce").
template <auto Kernel>
const char* kernel_name() {
  static const std::string name = [](std::string pretty) {  // "... [with auto Kernel = NAME]"
    size_t begin = pretty.find("Kernel = ");
    if (begin == std::string::npos) return pretty;
    begin += 9;
    std::string n = pretty.substr(begin, pretty.find_first_of(";]", begin) - begin);
    if (n.rfind("(& ", 0) == 0 && n.back() == ')') n = n.substr(3, n.size() - 4);
    if (n.rfind("&", 0) == 0) n = n.substr(1);
    return n;
  }(__PRETTY_FUNCTION__);
  return name.c_str();
}

// Launches Kernel over grid x block threads with `shared_bytes` of dynamic shared memory.
template <auto Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t shared_bytes, Stream stream, Args... args) {
#ifdef __CUDACC__
  cudaError_t err = cudaSuccess;
  if (shared_bytes > 48 * 1024) {  // beyond 48 KiB a kernel must opt in (sim allows up to 227 KiB too)
    err = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_bytes));
  }
  if (err == cudaSuccess) {
    Kernel<<<grid, block, shared_bytes, static_cast<cudaStream_t>(stream.handle)>>>(args...);
    err = cudaGetLastError();
  }
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it, so the next launch's check starts clean
    fail(ErrorKind::Device, std::string("cuda: launch of kernel ") + kernel_name<Kernel>() + ": " + cudaGetErrorString(err));
  }
#else
  (void)stream;  // sim streams run in order on the calling thread
  sim::launch_grid(kernel_name<Kernel>(), sim::Dim{grid.x, grid.y, grid.z}, sim::Dim{block.x, block.y, block.z},
                   shared_bytes, [&] { Kernel(args...); });
#endif
}

}  // namespace emu
