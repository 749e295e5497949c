// image.cu: the NCHW pooling and upsampling kernels, max_pool2d, avg_pool2d and upsample_nearest2d
// and their gradients, on any strided Views (convolution has a file of its own, conv.cu). One
// thread per output element (a grid-stride loop over the output's row-major positions), each
// folding its window in a fixed order, so results are deterministic. cpu/kernels/image.cpp is the
// reference: the same window rules (PyTorch's), the same accumulation types (f32 for f32/bf16, f64
// for f64), max pooling's index choice (the first element, then larger or NaN) and nearest
// upsampling's source index floor(i * (in / out)) computed in f32.
//
// The gradients (cpu/kernels/image_backward.cpp is the reference) are gathers, one thread per
// element of the gradient: an input pixel sums the outputs whose window (or nearest source)
// covers it; no two threads write one element and every sum runs in a fixed order: deterministic.
#include <cstdint>
#include <string>

#include "cuda/image.cuh"

namespace emu::EMU_DEVICE_NS {
namespace image {

template <class T>
__global__ void max_pool2d_kernel(Nchw out, Nchw in, Window win, const T* x, T* y, int32_t* indices, Nchw idx) {
  using A = C<T>;
  EMU_OUTPUT_LOOP(i, out.n * out.c * out.h * out.w) {
    long long n, c, oy, ox;
    position(i, out, &n, &c, &oy, &ox);
    A best = extreme_start<A, true>();
    long long arg = -1;
    for (long long r = 0; r < win.kh; r++) {
      const long long iy = oy * win.sh - win.ph + r * win.dh;
      if (iy < 0 || iy >= in.h) continue;
      for (long long s = 0; s < win.kw; s++) {
        const long long ix = ox * win.sw - win.pw + s * win.dw;
        if (ix < 0 || ix >= in.w) continue;
        const A v = load(x[in.at(n, c, iy, ix)]);
        if (arg < 0 || v > best || is_nan(v)) {  // as PyTorch: the first element, then larger or NaN
          best = v;
          arg = iy * in.w + ix;
        }
      }
    }
    y[out.at(n, c, oy, ox)] = cvt<T>(best);
    if (indices) indices[idx.at(n, c, oy, ox)] = int32_t(arg);
  }
}

template <class T>
__global__ void avg_pool2d_kernel(Nchw out, Nchw in, Window win, bool count_include_pad, const T* x, T* y) {
  using A = C<T>;
  EMU_OUTPUT_LOOP(i, out.n * out.c * out.h * out.w) {
    long long n, c, oy, ox;
    position(i, out, &n, &c, &oy, &ox);
    // The window clipped to the padded input gives the count_include_pad divisor, clipped to the
    // input the summed range and the other divisor.
    long long y0 = oy * win.sh - win.ph, x0 = ox * win.sw - win.pw;
    long long y1 = y0 + win.kh < in.h + win.ph ? y0 + win.kh : in.h + win.ph;
    long long x1 = x0 + win.kw < in.w + win.pw ? x0 + win.kw : in.w + win.pw;
    const long long padded_size = (y1 - y0) * (x1 - x0);
    y0 = y0 > 0 ? y0 : 0;
    x0 = x0 > 0 ? x0 : 0;
    y1 = y1 < in.h ? y1 : in.h;
    x1 = x1 < in.w ? x1 : in.w;
    A result = A(0);
    if (y0 < y1 && x0 < x1) {
      A sum = A(0);
      for (long long yy = y0; yy < y1; yy++)
        for (long long xx = x0; xx < x1; xx++) sum += load(x[in.at(n, c, yy, xx)]);
      result = sum / A(count_include_pad ? padded_size : (y1 - y0) * (x1 - x0));
    }
    y[out.at(n, c, oy, ox)] = cvt<T>(result);
  }
}

// PyTorch's legacy 'nearest': source index floor(i * (in / out)) in f32, clamped to the input.
__device__ __forceinline__ long long nearest_source(long long i, long long in_size, long long out_size) {
  const float scale = float(in_size) / float(out_size);
  const long long s = (long long)::floorf(float(i) * scale);
  return s < in_size - 1 ? s : in_size - 1;
}

template <class T>
__global__ void upsample_nearest2d_kernel(Nchw out, Nchw in, const T* x, T* y) {
  EMU_OUTPUT_LOOP(i, out.n * out.c * out.h * out.w) {
    long long n, c, oy, ox;
    position(i, out, &n, &c, &oy, &ox);
    y[out.at(n, c, oy, ox)] = x[in.at(n, c, nearest_source(oy, in.h, out.h), nearest_source(ox, in.w, out.w))];
  }
}

// Checks a pooling op's views; returns its window (dilation 1 where the op has none).
Window pool_window(const char* op, const View& out, const View& in, const int64_t* kernel, const int64_t* stride,
                   const int64_t* padding, const int64_t* dilation) {
  check_4d(op, "input", in);
  check_4d(op, "output", out);
  if (out.dtype != in.dtype) fail(ErrorKind::DType, std::string(op) + ": output and input dtypes differ");
  const Window w{kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], dilation ? dilation[0] : 1, dilation ? dilation[1] : 1};
  check_shape(op, "output", out, in.shape[0], in.shape[1], window_count(op, in.shape[2], w.kh, w.sh, w.ph, w.dh),
              window_count(op, in.shape[3], w.kw, w.sw, w.pw, w.dw));
  return w;
}

// ---- gradients ----------------------------------------------------------------------------------

// The outputs [lo, hi) of a pooling axis whose window covers input position y, and an output's divisor.
struct PoolAxis {
  long long size, out, k, st, pad;
  __device__ long long lo(long long y) const { return y + pad - k < 0 ? 0 : (y + pad - k) / st + 1; }
  __device__ long long hi(long long y) const { return (y + pad) / st + 1 < out ? (y + pad) / st + 1 : out; }
  __device__ long long divisor(long long o, bool count_include_pad) const {
    const long long a = o * st - pad, b = a + k < size + pad ? a + k : size + pad;
    return count_include_pad ? b - a : (b < size ? b : size) - (a > 0 ? a : 0);
  }
};

template <class T>
__global__ void avg_pool2d_backward_kernel(Nchw gin, Nchw gout, PoolAxis rows, PoolAxis cols, bool count_include_pad,
                                           const T* gy, T* gx) {
  using A = C<T>;
  EMU_OUTPUT_LOOP(i, gin.n * gin.c * gin.h * gin.w) {
    long long n, c, y, x;
    position(i, gin, &n, &c, &y, &x);
    A sum = A(0);
    for (long long oy = rows.lo(y); oy < rows.hi(y); oy++)
      for (long long ox = cols.lo(x); ox < cols.hi(x); ox++)
        sum += load(gy[gout.at(n, c, oy, ox)]) / A(rows.divisor(oy, count_include_pad) * cols.divisor(ox, count_include_pad));
    gx[gin.at(n, c, y, x)] = cvt<T>(sum);
  }
}

// The first output index whose nearest source is at least s (sources never decrease with the index).
__device__ __forceinline__ long long first_reading(long long s, long long in_size, long long out_size) {
  long long lo = 0, hi = out_size;
  while (lo < hi) {
    const long long mid = (lo + hi) / 2;
    if (nearest_source(mid, in_size, out_size) < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

template <class T>
__global__ void upsample_nearest2d_backward_kernel(Nchw gin, Nchw gout, const T* gy, T* gx) {
  using A = C<T>;
  EMU_OUTPUT_LOOP(i, gin.n * gin.c * gin.h * gin.w) {
    long long n, c, y, x;
    position(i, gin, &n, &c, &y, &x);
    const long long y1 = first_reading(y + 1, gin.h, gout.h), x0 = first_reading(x, gin.w, gout.w);
    const long long x1 = first_reading(x + 1, gin.w, gout.w);
    A sum = A(0);
    for (long long oy = first_reading(y, gin.h, gout.h); oy < y1; oy++)
      for (long long ox = x0; ox < x1; ox++) sum += load(gy[gout.at(n, c, oy, ox)]);
    gx[gin.at(n, c, y, x)] = cvt<T>(sum);
  }
}

}  // namespace image

void max_pool2d(const View& out, const View* indices, const View& in, const int64_t* kernel, const int64_t* stride,
                const int64_t* padding, const int64_t* dilation) {
  using namespace image;
  const char* op = "maxPool2d";
  const Window w = pool_window(op, out, in, kernel, stride, padding, dilation);
  if (indices) {
    check_4d(op, "indices", *indices);
    if (indices->dtype != DType::I32) fail(ErrorKind::DType, "maxPool2d: indices must be i32");
    check_shape(op, "output", *indices, out.shape[0], out.shape[1], out.shape[2], out.shape[3]);
  }
  const long long n = out.numel();
  if (n == 0) return;
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    launch<max_pool2d_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(out), nchw(in), w,
                                 static_cast<const T*>(in.data), static_cast<T*>(out.data),
                                 indices ? static_cast<int32_t*>(indices->data) : nullptr, indices ? nchw(*indices) : Nchw{});
  });
}

void avg_pool2d(const View& out, const View& in, const int64_t* kernel, const int64_t* stride, const int64_t* padding,
                bool count_include_pad) {
  using namespace image;
  const Window w = pool_window("avgPool2d", out, in, kernel, stride, padding, nullptr);
  const long long n = out.numel();
  if (n == 0) return;
  dispatch_float(in.dtype, "avgPool2d", [&](auto t) {
    using T = decltype(t);
    launch<avg_pool2d_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(out), nchw(in), w, count_include_pad,
                                 static_cast<const T*>(in.data), static_cast<T*>(out.data));
  });
}

void upsample_nearest2d(const View& out, const View& in) {
  using namespace image;
  const char* op = "upsampleNearest2d";
  check_4d(op, "input", in);
  check_4d(op, "output", out);
  if (out.dtype != in.dtype) fail(ErrorKind::DType, "upsampleNearest2d: output and input dtypes differ");
  if (out.shape[0] != in.shape[0] || out.shape[1] != in.shape[1]) fail(ErrorKind::Shape, "upsampleNearest2d: batch and channel sizes must match");
  const long long n = out.numel();
  if (n == 0) return;
  if (in.shape[2] == 0 || in.shape[3] == 0) fail(ErrorKind::Shape, "upsampleNearest2d: cannot upsample an empty image");
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    launch<upsample_nearest2d_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(out), nchw(in),
                                         static_cast<const T*>(in.data), static_cast<T*>(out.data));
  });
}

}  // namespace emu::EMU_DEVICE_NS

namespace emu::EMU_DEVICE_NS {

void avg_pool2d_backward(const View& grad_in, const View& grad_out, const int64_t* kernel, const int64_t* stride,
                         const int64_t* padding, bool count_include_pad) {
  using namespace image;
  const char* op = "avgPool2dBackward";
  pool_window(op, grad_out, grad_in, kernel, stride, padding, nullptr);
  const long long n = grad_in.numel();
  if (n == 0) return;
  const PoolAxis rows{grad_in.shape[2], grad_out.shape[2], kernel[0], stride[0], padding[0]};
  const PoolAxis cols{grad_in.shape[3], grad_out.shape[3], kernel[1], stride[1], padding[1]};
  dispatch_float(grad_in.dtype, op, [&](auto t) {
    using T = decltype(t);
    launch<avg_pool2d_backward_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(grad_in), nchw(grad_out), rows,
                                          cols, count_include_pad, static_cast<const T*>(grad_out.data),
                                          static_cast<T*>(grad_in.data));
  });
}

void upsample_nearest2d_backward(const View& grad_in, const View& grad_out) {
  using namespace image;
  const char* op = "upsampleNearest2dBackward";
  check_4d(op, "grad_in", grad_in);
  check_4d(op, "grad_out", grad_out);
  if (grad_out.dtype != grad_in.dtype) fail(ErrorKind::DType, "upsampleNearest2dBackward: grad_out and grad_in dtypes differ");
  if (grad_out.shape[0] != grad_in.shape[0] || grad_out.shape[1] != grad_in.shape[1])
    fail(ErrorKind::Shape, "upsampleNearest2dBackward: batch and channel sizes must match");
  const long long n = grad_in.numel();
  if (n == 0) return;
  dispatch_float(grad_in.dtype, op, [&](auto t) {
    using T = decltype(t);
    launch<upsample_nearest2d_backward_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(grad_in),
                                                  nchw(grad_out), static_cast<const T*>(grad_out.data),
                                                  static_cast<T*>(grad_in.data));
  });
}

}  // namespace emu::EMU_DEVICE_NS
