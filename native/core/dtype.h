// dtype.h: the element types every backend understands, and the bf16 conversions.
//
// The numeric codes are shared with src/tensor/dtype.ts (DTYPE_CODE there); keep them in step.
// bf16 is stored as the upper 16 bits of an IEEE f32. Conversion from f32 rounds to nearest
// even and keeps NaN a quiet NaN, as PyTorch and the CUDA intrinsics do, so a value rounds the
// same way on every device.
#pragma once
#include <cstdint>
#include <cstring>

namespace emu {

enum class DType : int32_t { F32 = 0, F64 = 1, BF16 = 2, I32 = 3, Bool = 4 };

inline int dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::Bool: return 1;
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
  }
  return "?";
}

inline bool dtype_valid(int32_t code) { return code >= 0 && code <= 4; }

// Trivially default-constructible on purpose: arrays of it (shared memory in the emulator,
// scratch buffers here) must not get constructors.
struct bf16 {
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

}  // namespace emu
