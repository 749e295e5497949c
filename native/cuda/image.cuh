// image.cuh: what the NCHW image kernels (image.cu: pooling, upsampling; conv.cu: convolution)
// share: a 4-d view's sizes and strides, a window's geometry, the grid-stride output loop and the
// launchers' shape checks (PyTorch's window rules: out = (in + 2 pad - dilation (k - 1) - 1) /
// stride + 1).
#pragma once
#include <cstdint>
#include <string>

#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace image {

#define EMU_OUTPUT_LOOP(i, n) \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

struct Nchw {  // a 4-d view's sizes and strides
  long long n, c, h, w, sn, sc, sh, sw;
  __device__ long long at(long long a, long long b, long long y, long long x) const { return a * sn + b * sc + y * sh + x * sw; }
};

inline Nchw nchw(const View& v) {
  return {v.shape[0], v.shape[1], v.shape[2], v.shape[3], v.strides[0], v.strides[1], v.strides[2], v.strides[3]};
}

struct Window {  // kernel, stride, padding, dilation (rows, then columns)
  long long kh, kw, sh, sw, ph, pw, dh, dw;
};

// The (n, c, oy, ox) of output element i in row-major order.
__device__ __forceinline__ void position(long long i, const Nchw& o, long long* n, long long* c, long long* y, long long* x) {
  *x = i % o.w;
  *y = i / o.w % o.h;
  *c = i / o.w / o.h % o.c;
  *n = i / o.w / o.h / o.c;
}

inline void check_4d(const char* op, const char* name, const View& v) {
  if (v.ndim != 4)
    fail(ErrorKind::Shape, std::string(op) + ": " + name + " must be 4-d (NCHW), got " + std::to_string(v.ndim) + " dims");
}

inline long long window_count(const char* op, long long size, long long kernel, long long stride, long long pad,
                              long long dilation) {
  if (kernel < 1 || stride < 1 || dilation < 1 || pad < 0)
    fail(ErrorKind::Shape, std::string(op) + ": kernel, stride and dilation must be positive and padding non-negative");
  const long long span = size + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) fail(ErrorKind::Shape, std::string(op) + ": the window is larger than the padded input");
  return span / stride + 1;
}

inline void check_shape(const char* op, const char* name, const View& v, long long n, long long c, long long h, long long w) {
  if (v.shape[0] != n || v.shape[1] != c || v.shape[2] != h || v.shape[3] != w)
    fail(ErrorKind::Shape, std::string(op) + ": " + name + " must have shape [" + std::to_string(n) + ", " + std::to_string(c) +
                               ", " + std::to_string(h) + ", " + std::to_string(w) + "]");
}

// Checks conv2d's views (image [N,C,H,W], weight [O,C/groups,KH,KW], out [N,O,OH,OW]); returns the window.
inline Window conv_window(const char* op, const View& image, const View& weight, const View& out, const int64_t* stride,
                          const int64_t* padding, const int64_t* dilation, int64_t groups) {
  check_4d(op, "input", image);
  check_4d(op, "weight", weight);
  check_4d(op, "output", out);
  if (weight.dtype != image.dtype || out.dtype != image.dtype)
    fail(ErrorKind::DType, std::string(op) + ": input, weight, bias and output must share a dtype");
  const long long c = image.shape[1], o = weight.shape[0];
  if (groups < 1 || c % groups != 0 || o % groups != 0 || weight.shape[1] != c / groups)
    fail(ErrorKind::Shape, std::string(op) + ": weight [" + std::to_string(o) + ", " + std::to_string(weight.shape[1]) +
                               ", ...] does not fit " + std::to_string(c) + " input channels in " + std::to_string(groups) + " groups");
  const Window w{weight.shape[2], weight.shape[3], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]};
  check_shape(op, "output", out, image.shape[0], o, window_count(op, image.shape[2], w.kh, w.sh, w.ph, w.dh),
              window_count(op, image.shape[3], w.kw, w.sw, w.pw, w.dw));
  return w;
}

}  // namespace image
}  // namespace emu::EMU_DEVICE_NS
