// scalar.h: element conversions and the dtype switch shared by the CPU kernels.
//
// Kernels compute bf16 and f16 in f32 (load widens, store rounds to nearest even), f32 in f32, f64 in
// f64, i32 in i32. `convert<TO>(x)` is the one place a value changes type: float to int
// truncates toward zero and saturates (NaN becomes 0), anything to bool is `x != 0`.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "../../core/dtype.h"
#include "../../core/errors.h"

namespace emu::cpu::EMU_ISA {

template <class T> struct compute_type { using type = T; };
template <> struct compute_type<bf16> { using type = float; };
template <> struct compute_type<f16> { using type = float; };
template <> struct compute_type<bool> { using type = int32_t; };
template <class T> using C = typename compute_type<T>::type;

template <class T> inline C<T> load(T v) { return C<T>(v); }
template <> inline float load<bf16>(bf16 v) { return bf16_to_float(v); }
template <> inline float load<f16>(f16 v) { return f16_to_float(v); }

template <class TO, class TI>
inline TO convert(TI v) {
  if constexpr (std::is_same_v<TI, bf16>) {
    return convert<TO>(bf16_to_float(v));
  } else if constexpr (std::is_same_v<TI, f16>) {
    return convert<TO>(f16_to_float(v));
  } else if constexpr (std::is_same_v<TO, TI>) {
    return v;
  } else if constexpr (std::is_same_v<TO, bool>) {
    return v != TI(0);
  } else if constexpr (std::is_same_v<TO, bf16>) {
    return float_to_bf16(float(v));
  } else if constexpr (std::is_same_v<TO, f16>) {
    return float_to_f16(float(v));
  } else if constexpr (std::is_same_v<TO, int32_t> && std::is_floating_point_v<TI>) {
    if (!(v == v)) return 0;
    if (v >= TI(2147483647.0)) return std::numeric_limits<int32_t>::max();
    if (v <= TI(-2147483648.0)) return std::numeric_limits<int32_t>::min();
    return int32_t(v);
  } else {
    return TO(v);
  }
}

// Store a compute-type value into element type T.
template <class T, class V> inline T store(V v) { return convert<T>(v); }

// Calls f(T{}) with T the C++ type of dtype d.
template <class F>
inline void dispatch(DType d, F&& f) {
  switch (d) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::Bool: f(bool{}); return;
  }
  fail(ErrorKind::DType, "unknown dtype code");
}

// Same for float dtypes only; `op` names the caller in the error.
template <class F>
inline void dispatch_float(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: fail(ErrorKind::DType, std::string(op) + ": expected a float dtype, got " + dtype_name(d));
  }
}

}  // namespace emu::cpu::EMU_ISA
