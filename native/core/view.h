// view.h: how a tensor reaches a kernel.
//
// A View is a typed window on a storage buffer: base pointer (already advanced by the view's
// offset), dtype, shape and strides in elements. Every kernel entry point takes Views, so any
// kernel can be handed a permuted, sliced or broadcast (stride 0) tensor; a kernel that needs
// contiguous memory says so and the caller makes it contiguous first. This is the one backend
// interface (in the spirit of candle's BackendStorage): the CPU, CUDA and emulator kernels all
// consume the same struct; `device` says whose memory `data` points into.
#pragma once
#include <cstdint>
#include "dtype.h"

namespace emu {

constexpr int kMaxDims = 8;

// Where a View's memory lives; the codes are shared with src/tensor/storage.ts (DEVICE_CODE).
enum class DeviceKind : int32_t { Cpu = 0, Sim = 1, Cuda = 2 };

struct View {
  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  DeviceKind device = DeviceKind::Cpu;

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
  }
  // The first (which = 0) or second (1) half of the last dim: rotary embeddings pair the halves.
  View last_half(int which) const {
    View h = *this;
    const int64_t half = shape[ndim - 1] / 2;
    h.shape[ndim - 1] = half;
    if (which) h.data = static_cast<char*>(data) + half * strides[ndim - 1] * dtype_size(dtype);
    return h;
  }
  bool contiguous() const {
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; i--) {
      if (shape[i] != 1 && strides[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
  template <class T>
  T* ptr() const { return static_cast<T*>(data); }
};

}  // namespace emu
