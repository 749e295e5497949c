// device_sim.h: the CUDA device surface for the host compiler, implemented on the emulator.
//
// Included by native/cuda/device.cuh when the compiler is not nvcc, so a kernel source compiles
// unchanged with g++: the execution-space keywords vanish, the built-in variables are
// thread_locals that the scheduler rewrites at every switch, and each waiting intrinsic (barrier,
// shuffle, vote, __syncwarp) is a call into sim.h that records its call site (file:line, through
// a defaulted __builtin_FILE/__builtin_LINE argument) for error messages. Everything else (math,
// atomics, bf16/half, vector types) is plain C++ with CUDA's names and semantics.
//
// Kernels use this surface only through device.cuh; nothing here is meant for host code.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "sim/sim.h"

// ---- execution spaces ------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

// ---- vector types (aligned like CUDA's, so 16-byte loads through float4 keep their meaning) ----
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// ---- built-in variables ----------------------------------------------------------------------
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- barriers and warp collectives -------------------------------------------------------------
inline void __syncthreads(emu::sim::Site s = emu::sim::here()) { emu::sim::block_barrier(emu::sim::BarrierKind::Plain, 0, s); }
inline int __syncthreads_count(int p, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::block_barrier(emu::sim::BarrierKind::Count, p, s);
}
inline int __syncthreads_and(int p, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::block_barrier(emu::sim::BarrierKind::And, p, s);
}
inline int __syncthreads_or(int p, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::block_barrier(emu::sim::BarrierKind::Or, p, s);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, emu::sim::Site s = emu::sim::here()) { emu::sim::warp_sync(mask, s); }
// The emulator has no notion of convergence: __activemask() is the lanes that have not exited.
inline unsigned __activemask() { return emu::sim::active_mask(); }
inline unsigned __ballot_sync(unsigned mask, int p, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::warp_ballot(mask, p, "__ballot_sync", s);
}
inline int __any_sync(unsigned mask, int p, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::warp_ballot(mask, p, "__any_sync", s) != 0;
}
inline int __all_sync(unsigned mask, int p, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::warp_ballot(mask, p, "__all_sync", s) == mask;  // every lane of the mask takes part
}

namespace emu::sim {
template <typename T>
T shuffle(ShuffleMode mode, unsigned mask, T v, int arg, int width, Site s) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move values of up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_shuffle(mode, mask, bits, arg, width, s);
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}
}  // namespace emu::sim

template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = warpSize, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::shuffle(emu::sim::ShuffleMode::Index, mask, v, src_lane, width, s);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::shuffle(emu::sim::ShuffleMode::Up, mask, v, int(delta), width, s);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::shuffle(emu::sim::ShuffleMode::Down, mask, v, int(delta), width, s);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize, emu::sim::Site s = emu::sim::here()) {
  return emu::sim::shuffle(emu::sim::ShuffleMode::Xor, mask, v, lane_mask, width, s);
}

// ---- atomics (blocks run concurrently on OS threads: real atomics, relaxed like CUDA's) ------
#define EMU_SIM_ATOMIC_INT(T)                                                                            \
  inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }                 \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }                 \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }               \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }                 \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                   \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }                 \
  inline T atomicCAS(T* p, T expected, T desired) {                                                      \
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);       \
    return expected;                                                                                     \
  }                                                                                                      \
  inline T atomicMax(T* p, T v) {                                                                        \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                        \
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                  \
    return old;                                                                                          \
  }                                                                                                      \
  inline T atomicMin(T* p, T v) {                                                                        \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                        \
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                  \
    return old;                                                                                          \
  }
EMU_SIM_ATOMIC_INT(int)
EMU_SIM_ATOMIC_INT(unsigned)
EMU_SIM_ATOMIC_INT(unsigned long long)
EMU_SIM_ATOMIC_INT(long long)
#undef EMU_SIM_ATOMIC_INT

namespace emu::sim {
// Floating-point read-modify-write as a compare-and-swap loop on the bits.
template <typename F, typename Bits, typename Op>
F atomic_float(F* p, Op op) {
  auto* bits = reinterpret_cast<Bits*>(p);
  Bits old = __atomic_load_n(bits, __ATOMIC_RELAXED), desired;
  F value, next;
  do {
    std::memcpy(&value, &old, sizeof(F));
    next = op(value);
    std::memcpy(&desired, &next, sizeof(F));
  } while (!__atomic_compare_exchange_n(bits, &old, desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return value;
}
}  // namespace emu::sim

inline float atomicAdd(float* p, float v) { return emu::sim::atomic_float<float, uint32_t>(p, [v](float x) { return x + v; }); }
inline double atomicAdd(double* p, double v) {
  return emu::sim::atomic_float<double, uint64_t>(p, [v](double x) { return x + v; });
}
inline float atomicExch(float* p, float v) { return emu::sim::atomic_float<float, uint32_t>(p, [v](float) { return v; }); }
// CUDA's atomicInc/atomicDec: wrap to 0 past `limit`, and to `limit` below 0 or above it.
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, old >= limit ? 0u : old + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
  return old;
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, (old == 0 || old > limit) ? limit : old - 1, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED))
    ;
  return old;
}

// ---- math: the fast intrinsics run at full precision here (compare with tolerances) -----------
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; }  // NaN -> 0
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline int __float2int_rn(float x) { return int(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline int __float2int_rd(float x) { return int(std::floor(x)); }
inline int __float2int_ru(float x) { return int(std::ceil(x)); }
inline float __int2float_rn(int x) { return float(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline int __mulhi(int a, int b) { return int((int64_t(a) * b) >> 32); }
template <typename T>
T __ldg(const T* p) { return *p; }

// CUDA's global min/max overloads.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// ---- bf16 and half (CUDA's names; trivially default-constructible so shared arrays of them
// need no constructors; their rounding is emu::float_to_bf16 and emu::float_to_f16, the one every
// device uses) -------------------------------------------------------------------------------------
struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(emu::float_to_bf16(f).bits) {}
  operator float() const { return emu::bf16_to_float(emu::bf16{__x}); }
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
struct __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(emu::float_to_f16(f).bits) {}
  operator float() const { return emu::f16_to_float(emu::f16{__x}); }
};
struct alignas(4) __half2 {
  __half x, y;
};
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return float(b); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return {a, b}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {float(v.x), float(v.y)}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 b; b.__x = u; return b; }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline __half2 __halves2half2(__half a, __half b) { return {a, b}; }
inline float2 __half22float2(__half2 v) { return {float(v.x), float(v.y)}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
