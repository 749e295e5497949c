// image.cu: the NCHW image ops' forward kernels: conv2d (direct), max_pool2d, avg_pool2d and
// upsample_nearest2d, on any strided Views. One thread per output element (a grid-stride loop over
// the output's row-major positions), each folding its window in a fixed order, so results are
// deterministic. cpu/kernels/image.cpp is the reference: the same window rules (PyTorch's), the
// same accumulation types (f32 for f32/bf16, f64 for f64; the bias added after the sum), max
// pooling's index choice (the first element, then larger or NaN) and nearest upsampling's source
// index floor(i * (in / out)) computed in f32. Their backward kernels are not on this device yet.
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

Nchw nchw(const View& v) {
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

template <class T>
__global__ void conv2d_kernel(Nchw out, Nchw in, Nchw weight, Window win, long long groups, const T* x, const T* w,
                              const T* bias, long long bias_stride, T* y) {
  using A = C<T>;
  const long long cg = in.c / groups, og = out.c / groups;
  EMU_OUTPUT_LOOP(i, out.n * out.c * out.h * out.w) {
    long long n, o, oy, ox;
    position(i, out, &n, &o, &oy, &ox);
    const long long g = o / og;
    A acc = A(0);
    for (long long ci = 0; ci < cg; ci++) {
      for (long long r = 0; r < win.kh; r++) {
        const long long iy = oy * win.sh - win.ph + r * win.dh;
        if (iy < 0 || iy >= in.h) continue;
        for (long long s = 0; s < win.kw; s++) {
          const long long ix = ox * win.sw - win.pw + s * win.dw;
          if (ix < 0 || ix >= in.w) continue;
          acc += load(x[in.at(n, g * cg + ci, iy, ix)]) * load(w[weight.at(o, ci, r, s)]);
        }
      }
    }
    if (bias) acc += load(bias[o * bias_stride]);
    y[out.at(n, o, oy, ox)] = cvt<T>(acc);
  }
}

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

void check_4d(const char* op, const char* name, const View& v) {
  if (v.ndim != 4)
    fail(ErrorKind::Shape, std::string(op) + ": " + name + " must be 4-d (NCHW), got " + std::to_string(v.ndim) + " dims");
}

long long window_count(const char* op, long long size, long long kernel, long long stride, long long pad, long long dilation) {
  if (kernel < 1 || stride < 1 || dilation < 1 || pad < 0)
    fail(ErrorKind::Shape, std::string(op) + ": kernel, stride and dilation must be positive and padding non-negative");
  const long long span = size + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) fail(ErrorKind::Shape, std::string(op) + ": the window is larger than the padded input");
  return span / stride + 1;
}

void check_shape(const char* op, const char* name, const View& v, long long n, long long c, long long h, long long w) {
  if (v.shape[0] != n || v.shape[1] != c || v.shape[2] != h || v.shape[3] != w)
    fail(ErrorKind::Shape, std::string(op) + ": " + name + " must have shape [" + std::to_string(n) + ", " + std::to_string(c) +
                               ", " + std::to_string(h) + ", " + std::to_string(w) + "]");
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

}  // namespace image

void conv2d(const View& out, const View& in, const View& weight, const View* bias, const int64_t* stride,
            const int64_t* padding, const int64_t* dilation, int64_t groups) {
  using namespace image;
  const char* op = "conv2d";
  check_4d(op, "input", in);
  check_4d(op, "weight", weight);
  check_4d(op, "output", out);
  if (weight.dtype != in.dtype || out.dtype != in.dtype || (bias && bias->dtype != in.dtype))
    fail(ErrorKind::DType, "conv2d: input, weight, bias and output must share a dtype");
  const long long c = in.shape[1], o = weight.shape[0];
  if (groups < 1 || c % groups != 0 || o % groups != 0 || weight.shape[1] != c / groups)
    fail(ErrorKind::Shape, "conv2d: weight [" + std::to_string(o) + ", " + std::to_string(weight.shape[1]) + ", ...] does not fit " +
                               std::to_string(c) + " input channels in " + std::to_string(groups) + " groups");
  const Window w{weight.shape[2], weight.shape[3], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]};
  check_shape(op, "output", out, in.shape[0], o, window_count(op, in.shape[2], w.kh, w.sh, w.ph, w.dh),
              window_count(op, in.shape[3], w.kw, w.sw, w.pw, w.dw));
  if (bias && (bias->ndim != 1 || bias->shape[0] != o)) fail(ErrorKind::Shape, "conv2d: bias must have shape [" + std::to_string(o) + "]");
  const long long n = out.numel();
  if (n == 0) return;
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    launch<conv2d_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(out), nchw(in), nchw(weight), w,
                             (long long)groups, static_cast<const T*>(in.data), static_cast<const T*>(weight.data),
                             bias ? static_cast<const T*>(bias->data) : nullptr, bias ? (long long)bias->strides[0] : 0LL,
                             static_cast<T*>(out.data));
  });
}

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
