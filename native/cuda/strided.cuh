// strided.cuh: what the op kernels of native/cuda share: element types and conversions, device
// math by overload, strided indexing, the launch shape, and the dtype switch of their launchers.
//
// Element types are those of core/dtype.h: float, double, emu::bf16 and emu::f16 (bits), int32_t,
// bool. As on the CPU (cpu/kernels/scalar.h, the reference), kernels compute bf16 and f16 in f32,
// bool in i32, and cvt<TO>(x) is the one place a value changes type: float to int truncates toward
// zero and saturates (NaN becomes 0), anything to bool is x != 0, to bf16 and f16 rounds to nearest
// even. The conversions are bit manipulations (f16's are core/dtype.h's own, compiled for the
// device), so both compilers round exactly as the CPU does.
//
// Strided<N> is candle's way of handling any layout in one kernel: the host collapses the dims of
// N same-shaped operands (size-1 dims dropped, dims contiguous in every operand merged) and the
// kernel turns a flat row-major index into each operand's element offset.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/dtype.h"
#include "core/errors.h"
#include "core/view.h"
#include "cuda/device.cuh"

namespace emu::EMU_DEVICE_NS {

// ---- element types and conversions ------------------------------------------------------------

__device__ __forceinline__ float bf16_load(bf16 v) { return __uint_as_float(uint32_t(v.bits) << 16); }
__device__ __forceinline__ bf16 bf16_store(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{uint16_t(u >> 16)};
}

__device__ __forceinline__ float f16_load(f16 v) { return f16_to_float(v); }
__device__ __forceinline__ f16 f16_store(float f) { return float_to_f16(f); }

template <class T> struct Compute { using type = T; };
template <> struct Compute<bf16> { using type = float; };
template <> struct Compute<f16> { using type = float; };
template <> struct Compute<bool> { using type = int32_t; };
template <class T> using C = typename Compute<T>::type;

template <class T> __device__ __forceinline__ C<T> load(T v) { return C<T>(v); }
template <> __device__ __forceinline__ float load<bf16>(bf16 v) { return bf16_load(v); }
template <> __device__ __forceinline__ float load<f16>(f16 v) { return f16_load(v); }

template <class TO, class TI>
__device__ __forceinline__ TO cvt(TI v) {
  if constexpr (std::is_same_v<TI, bf16>) {
    return cvt<TO>(bf16_load(v));
  } else if constexpr (std::is_same_v<TI, f16>) {
    return cvt<TO>(f16_load(v));
  } else if constexpr (std::is_same_v<TO, TI>) {
    return v;
  } else if constexpr (std::is_same_v<TO, bool>) {
    return v != TI(0);
  } else if constexpr (std::is_same_v<TO, bf16>) {
    return bf16_store(float(v));
  } else if constexpr (std::is_same_v<TO, f16>) {
    return f16_store(float(v));
  } else if constexpr (std::is_same_v<TO, int32_t> && std::is_floating_point_v<TI>) {
    if (!(v == v)) return 0;
    if (v >= TI(2147483647.0)) return 2147483647;
    if (v <= TI(-2147483648.0)) return -2147483647 - 1;
    return int32_t(v);
  } else {
    return TO(v);
  }
}

// ---- the 16-bit floats of the tensor-core kernels ------------------------------------------------
// Those kernels take their element type T (bf16 or f16) as a template parameter; besides
// mma_m16n8k16<T> (device.cuh) and cvt<T> they need two values rounded to T and packed into one
// 32-bit register, the low half first, as mma's A and B fragments and the paired stores hold them.
// ldmatrix and cp.async move b16 bits whatever they mean.
template <class T> constexpr bool kIsHalf = std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

template <class T>
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  static_assert(kIsHalf<T>, "bf16 or f16");
  return uint32_t(cvt<T>(lo).bits) | uint32_t(cvt<T>(hi).bits) << 16;
}

// ---- vector accesses ---------------------------------------------------------------------------

// L elements of T, aligned to their size, so one load or store moves them (L sizeof(T) = 16: one
// 128-bit access). The vector paths of elementwise.cu and reduce.cu read and write through it.
template <class T, int L>
struct alignas(sizeof(T) * L) Pack {
  T v[L];
};

// ---- math by overload (float and double) --------------------------------------------------------

#define EMU_MATH1(NAME, F32, F64)                                              \
  __device__ __forceinline__ float NAME(float x) { return ::F32(x); }          \
  __device__ __forceinline__ double NAME(double x) { return ::F64(x); }
EMU_MATH1(m_exp, expf, exp)
EMU_MATH1(m_log, logf, log)
EMU_MATH1(m_log1p, log1pf, log1p)
EMU_MATH1(m_sqrt, sqrtf, sqrt)
EMU_MATH1(m_sin, sinf, sin)
EMU_MATH1(m_cos, cosf, cos)
EMU_MATH1(m_tanh, tanhf, tanh)
EMU_MATH1(m_erf, erff, erf)
EMU_MATH1(m_fabs, fabsf, fabs)
EMU_MATH1(m_floor, floorf, floor)
EMU_MATH1(m_ceil, ceilf, ceil)
EMU_MATH1(m_nearbyint, nearbyintf, nearbyint)
#undef EMU_MATH1
#define EMU_MATH2(NAME, F32, F64)                                                      \
  __device__ __forceinline__ float NAME(float x, float y) { return ::F32(x, y); }      \
  __device__ __forceinline__ double NAME(double x, double y) { return ::F64(x, y); }
EMU_MATH2(m_pow, powf, pow)
EMU_MATH2(m_fmod, fmodf, fmod)
EMU_MATH2(m_atan2, atan2f, atan2)
#undef EMU_MATH2

template <class V> __device__ __forceinline__ bool is_nan(V x) { return x != x; }  // false for integers

// The start of a max (kMax) or min: -inf / +inf for floats, the extreme i32 otherwise.
template <class V, bool kMax>
__device__ __forceinline__ V extreme_start() {
  if constexpr (std::is_same_v<V, float>) {
    return __int_as_float(kMax ? int(0xff800000u) : 0x7f800000);
  } else if constexpr (std::is_same_v<V, double>) {
    return __longlong_as_double(kMax ? (long long)0xfff0000000000000ull : 0x7ff0000000000000ll);
  } else {
    return kMax ? V(-2147483647 - 1) : V(2147483647);
  }
}

// x replaces s if it is NaN or strictly better; a NaN s is never replaced (NaN propagates).
template <bool kMax, class V>
__device__ __forceinline__ bool better(V x, V s) { return is_nan(x) || (kMax ? x > s : x < s); }

// ---- strided indexing ---------------------------------------------------------------------------

template <int N>
struct Strided {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];

  // Collapses N views of one shape (the first one's); offsets are in elements of each operand.
  static Strided make(const View* const* views) {
    Strided s{};
    const View& ref = *views[0];
    for (int d = 0; d < ref.ndim; d++) {
      if (ref.shape[d] == 1) continue;
      bool merge = s.ndim > 0;
      for (int k = 0; k < N && merge; k++) merge = s.strides[k][s.ndim - 1] == views[k]->strides[d] * ref.shape[d];
      if (merge) {
        s.shape[s.ndim - 1] *= ref.shape[d];
        for (int k = 0; k < N; k++) s.strides[k][s.ndim - 1] = views[k]->strides[d];
      } else {
        s.shape[s.ndim] = ref.shape[d];
        for (int k = 0; k < N; k++) s.strides[k][s.ndim] = views[k]->strides[d];
        s.ndim++;
      }
    }
    return s;
  }

  // The element offsets of flat (row-major) index i in every operand.
  __device__ __forceinline__ void offsets(int64_t i, int64_t* off) const {
    for (int k = 0; k < N; k++) off[k] = 0;
    for (int d = ndim - 1; d >= 0; d--) {
      const int64_t c = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < N; k++) off[k] += c * strides[k][d];
    }
  }
};

// ---- errors raised inside kernels ---------------------------------------------------------------

// A kernel cannot throw on a GPU, so it reports a bad input (an index out of range, an integer
// division by zero) through two ints of device memory: raise(value) sets the flag and records
// one offending value; after the launch the host reads both back and throws.
struct DeviceFlag {
  int* cells;  // [raised, value]
  __device__ void raise(int value) const {
    if (atomicCAS(cells, 0, 1) == 0) cells[1] = value;
  }
};

// Owns the two ints of a DeviceFlag for one launch.
class FlagBuffer {
 public:
  FlagBuffer() : rt_(runtime()), cells_(static_cast<int*>(rt_.allocate(2 * sizeof(int), Stream{}))) {
    rt_.fill_bytes(cells_, 0, 2 * sizeof(int), Stream{});
  }
  ~FlagBuffer() { rt_.deallocate(cells_); }
  FlagBuffer(const FlagBuffer&) = delete;
  FlagBuffer& operator=(const FlagBuffer&) = delete;
  DeviceFlag flag() const { return DeviceFlag{cells_}; }
  // Whether a kernel raised the flag; *value is the value it recorded.
  bool raised(int* value) const {
    int host[2];
    rt_.copy_to_host(host, cells_, sizeof(host), Stream{});
    *value = host[1];
    return host[0] != 0;
  }

 private:
  DeviceRuntime& rt_;
  int* cells_;
};

// ---- launch shape and dtype switch --------------------------------------------------------------

constexpr unsigned kThreads = 256;  // threads per block of the grid-stride kernels

// Blocks for a grid-stride loop over n items (capped: each thread then takes several items).
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

// Calls f(T{}) with T the element type of dtype d.
template <class F>
void dispatch(DType d, F&& f) {
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
void dispatch_float(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: fail(ErrorKind::DType, std::string(op) + ": expected a float dtype, got " + dtype_name(d));
  }
}

}  // namespace emu::EMU_DEVICE_NS
