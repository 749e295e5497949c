// dtype.h: the element types every backend understands, and the bf16 and f16 conversions.
//
// The numeric codes are shared with src/tensor/dtype.ts (DTYPE_CODE there); keep them in step.
// bf16 is stored as the upper 16 bits of an IEEE f32; f16 is IEEE 754 binary16 (5 exponent bits,
// 10 mantissa bits, subnormals down to 2^-24, largest finite 65504). Conversion from f32 rounds to
// nearest even (f16 also into the subnormals; 65520 and above overflow to inf) and keeps NaN a
// quiet NaN with its upper payload bits, as PyTorch and the CUDA intrinsics do. Both are integer
// bit manipulations (bf16's mirrored in cuda/strided.cuh, f16's compiled for the device too) and
// again in src/tensor/dtype.ts for the host, so a value rounds the same way on every device.
#pragma once
#include <cstdint>
#include <cstring>

// The f16 conversions also compile as device functions under nvcc (cuda/strided.cuh calls them).
#ifdef __CUDACC__
#define EMU_HOST_DEVICE __host__ __device__
#else
#define EMU_HOST_DEVICE
#endif

namespace emu {

enum class DType : int32_t { F32 = 0, F64 = 1, BF16 = 2, I32 = 3, Bool = 4, F16 = 5 };

inline int dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::Bool: return 1;
    case DType::F16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::Bool: return "bool";
    case DType::F16: return "f16";
  }
  return "?";
}

inline bool dtype_valid(int32_t code) { return code >= 0 && code <= 5; }

// Trivially default-constructible on purpose: arrays of it (shared memory in the emulator,
// scratch buffers here) must not get constructors.
struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

inline float bf16_to_float(bf16 v) {
  uint32_t u = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16 float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{uint16_t(u >> 16)};
}

EMU_HOST_DEVICE inline float f16_to_float(f16 v) {
  const uint32_t sign = uint32_t(v.bits & 0x8000u) << 16, exponent = (v.bits >> 10) & 0x1fu, mantissa = v.bits & 0x3ffu;
  uint32_t u;
  if (exponent == 0x1f) {
    u = sign | 0x7f800000u | mantissa << 13;  // inf, NaN (payload kept)
  } else if (exponent == 0) {
    const float magnitude = float(mantissa) * 5.9604644775390625e-8f;  // subnormal: mantissa * 2^-24, exact
    return sign ? -magnitude : magnitude;
  } else {
    u = sign | (exponent + 112) << 23 | mantissa << 13;  // rebias 15 -> 127
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

EMU_HOST_DEVICE inline f16 float_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu))};  // NaN: quiet, upper payload kept
  if (a >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00u)};  // >= 65520 (halfway past 65504) and inf
  if (a >= 0x38800000u) {  // normal in f16 (>= 2^-14): rebias 127 -> 15, round away 13 bits
    const uint32_t r = a - 0x38000000u;
    return f16{uint16_t(sign | (r + 0xfffu + ((r >> 13) & 1u)) >> 13)};
  }
  // Subnormal in f16: round(|f| / 2^-24) = round(m * 2^-shift) with m the 24-bit significand. A
  // result of 0x400 is the smallest normal, which is also its encoding.
  const int shift = 126 - int(a >> 23);
  if (shift > 24) return f16{uint16_t(sign)};
  const uint32_t m = (a & 0x7fffffu) | 0x800000u, halfway = 1u << (shift - 1);
  const uint32_t rest = m & ((halfway << 1) - 1);
  uint32_t r = m >> shift;
  if (rest > halfway || (rest == halfway && (r & 1u))) r++;
  return f16{uint16_t(sign | r)};
}

}  // namespace emu
