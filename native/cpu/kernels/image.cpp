// image.cpp: conv2d, max_pool2d, avg_pool2d and nearest upsampling on NCHW Views.
//
// Float dtypes compute in their compute type (f32 for bf16 and f32, f64 for f64); inputs and
// outputs may have any strides.
//
// conv2d is a GEMM per (image, group) on gemm/gemm.h's driver and micro-kernel: out[o][pixel] =
// W[o][k] @ im2col(image)[k][pixel], k running over (input channel, kernel row, kernel column).
// The im2col matrix is never built: its NR-pixel panels are packed straight from the image
// (image_unfold.h's pack_unfolded_rows for f32 on AVX-512, 16 pixels per masked load; elsewhere
// unfold_line), one KC-deep slice at a time; a 1x1 stride-1 unpadded convolution packs the image
// itself. The bias is C's starting value, and channels with contiguous planes are written in
// place. Every output is one FMA chain over k in order (gemm.h), so the result does not depend
// on the thread count.
//
// Pooling follows PyTorch (ceil_mode false): max_pool2d skips padding (it acts as -inf), lets a
// NaN win, and reports the flat index h * W + w of the chosen input; avg_pool2d divides by the
// window size clipped to the padded input (count_include_pad) or to the input.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../kernels.h"
#include "../thread_pool.h"
#include "image_common.h"
#include "image_unfold.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

using namespace image_detail;

template <class T>
void conv2d_typed(const View& out, const View& in, const View& weight, const View* bias, const ConvShape& s) {
  using V = C<T>;
  constexpr int NR = gemm::kNR<V>;
  const int64_t pixels = s.oh * s.ow;
  // The weights as one contiguous [o][k] matrix in the compute type: A of every group's GEMM.
  std::vector<V> w(size_t(s.o * s.k));
  for (int64_t o = 0; o < s.o; o++)
    for (int64_t c = 0, k = 0; c < s.cg; c++)
      for (int64_t i = 0; i < s.kh; i++)
        for (int64_t j = 0; j < s.kw; j++, k++)
          w[size_t(o * s.k + k)] = load(weight.ptr<T>()[o * weight.strides[0] + c * weight.strides[1] +
                                                        i * weight.strides[2] + j * weight.strides[3]]);
  // 1x1, stride 1, no padding, rows of the image contiguous: B is the image itself, [c][pixel].
  const bool pointwise = s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 &&
                         in.strides[3] == 1 && in.strides[2] == s.w;
  // f32 patches are unfolded 16 pixels at a time where the AVX-512 packers exist
  // (image_unfold.h), one at a time by unfold_line elsewhere.
#if defined(__AVX512F__)
  const bool vector_unfold = std::is_same_v<T, float> && unfold_fast(s.sw, in.strides[3]);
  const UnfoldRows rows = vector_unfold ? im2col_rows(s, in.strides[1]) : UnfoldRows();
#endif
  // Output channels whose planes are contiguous f32/f64 are written by the GEMM in place.
  const bool in_place = std::is_same_v<T, V> && out.strides[3] == 1 && out.strides[2] == s.ow;

  gemm::for_each_gemm(s.n * s.groups, double(s.og) * double(pixels) * double(s.k), [&](int64_t unit, bool parallel) {
    const int64_t n = unit / s.groups, g = unit % s.groups;
    const T* image = in.ptr<T>() + n * in.strides[0] + g * s.cg * in.strides[1];
    auto pack_a = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kc, V* dst) {
      gemm::pack_a_strided(w.data() + g * s.og * s.k, s.k, 1, i0, mc, p0, kc, dst);
    };
    // B = im2col(image) [k][pixel], packed panel by panel straight from the image: row k of a
    // panel is patch element k (channel, kernel row, kernel column) of NR neighbouring pixels.
    auto pack_b = [&](int64_t j0, int64_t nc, int64_t p0, int64_t kc, V* dst) {
      if (pointwise) return gemm::pack_b_strided(image, in.strides[1], int64_t(1), j0, nc, p0, kc, dst);
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (vector_unfold) {
          const Unfolded u{image, 0, s.h, s.w, in.strides[2], in.strides[3], s.oh, s.ow, s.sh, s.sw, &rows};
          return pack_unfolded_rows(u, j0, nc, p0, kc, dst);
        }
      }
#endif
      for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        const int64_t nr = std::min<int64_t>(NR, nc - j);
        for (int64_t kk = 0; kk < kc; kk++) {
          const int64_t k = p0 + kk, c = k / (s.kh * s.kw), i = k / s.kw % s.kh, jj = k % s.kw;
          const Line line{s.h, s.w, in.strides[2], in.strides[3], s.ow, i * s.dh - s.ph, s.sh, jj * s.dw - s.pw, s.sw};
          V* row = dst + kk * NR;
          unfold_line(row, 1, image + c * in.strides[1], line, j0 + j, nr);
          std::fill(row + nr, row + NR, V(0));
        }
      }
    };
    // C starts as the bias (the GEMM then accumulates onto it) or is overwritten.
    auto start = [&](V* c, int64_t ldc) {
      if (!bias) return;
      for (int64_t o = 0; o < s.og; o++)
        std::fill(c + o * ldc, c + o * ldc + pixels, load(bias->ptr<T>()[(g * s.og + o) * bias->strides[0]]));
    };
    if constexpr (std::is_same_v<T, V>) {
      if (in_place) {
        T* c = out.ptr<T>() + n * out.strides[0] + g * s.og * out.strides[1];
        start(c, out.strides[1]);
        gemm::run<V>(s.og, pixels, s.k, pack_a, pack_b, c, out.strides[1], bias != nullptr, parallel);
        return;
      }
    }
    std::vector<V> c(size_t(s.og * pixels));
    start(c.data(), pixels);
    gemm::run<V>(s.og, pixels, s.k, pack_a, pack_b, c.data(), pixels, bias != nullptr, parallel);
    for (int64_t o = 0; o < s.og; o++) {
      T* plane = out.ptr<T>() + n * out.strides[0] + (g * s.og + o) * out.strides[1];
      for (int64_t p = 0; p < pixels; p++)
        plane[p / s.ow * out.strides[2] + p % s.ow * out.strides[3]] = store<T>(c[size_t(o * pixels + p)]);
    }
  });
}

// ---- pooling ----

struct PoolShape {
  int64_t c, h, w, oh, ow;  // c: channels per image
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// Calls f(n, c, oy, ox) for every output position, in parallel over output rows.
template <class F>
void for_each_output(int64_t n, const PoolShape& s, F&& f) {
  const int64_t grain = s.ow >= 1024 ? 1 : 1024 / s.ow;
  parallel_for(n * s.c * s.oh, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t oy = r % s.oh, c = r / s.oh % s.c, img = r / s.oh / s.c;
      for (int64_t ox = 0; ox < s.ow; ox++) f(img, c, oy, ox);
    }
  });
}

}  // namespace

void conv2d(const View& out, const View& in, const View& weight, const View* bias, const int64_t* stride,
            const int64_t* padding, const int64_t* dilation, int64_t groups) {
  const char* op = "conv2d";
  check_4d(op, "input", in);
  check_4d(op, "weight", weight);
  check_4d(op, "output", out);
  if (weight.dtype != in.dtype || out.dtype != in.dtype || (bias && bias->dtype != in.dtype))
    dtype_error(op, "input, weight, bias and output must share a dtype");
  const ConvShape s = conv_geometry(op, in, weight, stride, padding, dilation, groups);
  check_shape(op, "output", out, s.n, s.o, s.oh, s.ow);
  if (bias && (bias->ndim != 1 || bias->shape[0] != s.o)) shape_error(op, "bias must have shape [" + std::to_string(s.o) + "]");
  if (out.numel() == 0) return;
  dispatch_float(in.dtype, op, [&](auto t) { conv2d_typed<decltype(t)>(out, in, weight, bias, s); });
}

void max_pool2d(const View& out, const View* indices, const View& in, const int64_t* kernel, const int64_t* stride,
                const int64_t* padding, const int64_t* dilation) {
  const char* op = "maxPool2d";
  check_4d(op, "input", in);
  check_4d(op, "output", out);
  if (out.dtype != in.dtype) dtype_error(op, "output and input dtypes differ");
  const PoolShape s{in.shape[1], in.shape[2], in.shape[3],
                    window_count(op, in.shape[2], kernel[0], stride[0], padding[0], dilation[0]),
                    window_count(op, in.shape[3], kernel[1], stride[1], padding[1], dilation[1]),
                    kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]};
  check_shape(op, "output", out, in.shape[0], s.c, s.oh, s.ow);
  if (indices) {
    check_4d(op, "indices", *indices);
    if (indices->dtype != DType::I32) dtype_error(op, "indices must be i32");
    check_shape(op, "output", *indices, in.shape[0], s.c, s.oh, s.ow);
  }
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    using A = C<T>;
    for_each_output(in.shape[0], s, [&](int64_t n, int64_t c, int64_t oy, int64_t ox) {
      const T* plane = in.ptr<T>() + n * in.strides[0] + c * in.strides[1];
      A best = -std::numeric_limits<A>::infinity();
      int64_t arg = -1;
      for (int64_t i = 0; i < s.kh; i++) {
        const int64_t y = oy * s.sh - s.ph + i * s.dh;
        if (y < 0 || y >= s.h) continue;
        for (int64_t j = 0; j < s.kw; j++) {
          const int64_t x = ox * s.sw - s.pw + j * s.dw;
          if (x < 0 || x >= s.w) continue;
          const A v = load(plane[y * in.strides[2] + x * in.strides[3]]);
          if (arg < 0 || v > best || std::isnan(v)) {  // as PyTorch: the first element, then larger or NaN
            best = v;
            arg = y * s.w + x;
          }
        }
      }
      out.ptr<T>()[n * out.strides[0] + c * out.strides[1] + oy * out.strides[2] + ox * out.strides[3]] = store<T>(best);
      if (indices) {
        indices->ptr<int32_t>()[n * indices->strides[0] + c * indices->strides[1] + oy * indices->strides[2] +
                                ox * indices->strides[3]] = int32_t(arg);
      }
    });
  });
}

void avg_pool2d(const View& out, const View& in, const int64_t* kernel, const int64_t* stride, const int64_t* padding,
                bool count_include_pad) {
  const char* op = "avgPool2d";
  check_4d(op, "input", in);
  check_4d(op, "output", out);
  if (out.dtype != in.dtype) dtype_error(op, "output and input dtypes differ");
  const PoolShape s{in.shape[1], in.shape[2], in.shape[3],
                    window_count(op, in.shape[2], kernel[0], stride[0], padding[0], 1),
                    window_count(op, in.shape[3], kernel[1], stride[1], padding[1], 1),
                    kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], 1, 1};
  check_shape(op, "output", out, in.shape[0], s.c, s.oh, s.ow);
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    using A = C<T>;
    for_each_output(in.shape[0], s, [&](int64_t n, int64_t c, int64_t oy, int64_t ox) {
      // The window clipped to the padded input gives the count_include_pad divisor, clipped to
      // the input the summed range and the other divisor.
      int64_t y0 = oy * s.sh - s.ph, x0 = ox * s.sw - s.pw;
      int64_t y1 = std::min(y0 + s.kh, s.h + s.ph), x1 = std::min(x0 + s.kw, s.w + s.pw);
      const int64_t padded_size = (y1 - y0) * (x1 - x0);
      y0 = std::max<int64_t>(y0, 0), x0 = std::max<int64_t>(x0, 0);
      y1 = std::min(y1, s.h), x1 = std::min(x1, s.w);
      A result = A(0);
      if (y0 < y1 && x0 < x1) {
        const T* plane = in.ptr<T>() + n * in.strides[0] + c * in.strides[1];
        A sum = A(0);
        for (int64_t y = y0; y < y1; y++)
          for (int64_t x = x0; x < x1; x++) sum += load(plane[y * in.strides[2] + x * in.strides[3]]);
        result = sum / A(count_include_pad ? padded_size : (y1 - y0) * (x1 - x0));
      }
      out.ptr<T>()[n * out.strides[0] + c * out.strides[1] + oy * out.strides[2] + ox * out.strides[3]] = store<T>(result);
    });
  });
}

void upsample_nearest2d(const View& out, const View& in) {
  const char* op = "upsampleNearest2d";
  check_4d(op, "input", in);
  check_4d(op, "output", out);
  if (out.dtype != in.dtype) dtype_error(op, "output and input dtypes differ");
  if (out.shape[0] != in.shape[0] || out.shape[1] != in.shape[1]) shape_error(op, "batch and channel sizes must match");
  if (out.numel() == 0) return;
  if (in.shape[2] == 0 || in.shape[3] == 0) shape_error(op, "cannot upsample an empty image");
  // Source indices as nearest_source (PyTorch's legacy 'nearest'), as offsets.
  auto source_offsets = [](int64_t in_size, int64_t out_size, int64_t in_stride) {
    const float scale = nearest_scale(in_size, out_size);
    std::vector<int64_t> offsets(static_cast<size_t>(out_size));
    for (int64_t i = 0; i < out_size; i++) offsets[size_t(i)] = nearest_source(i, scale, in_size) * in_stride;
    return offsets;
  };
  const std::vector<int64_t> ys = source_offsets(in.shape[2], out.shape[2], in.strides[2]);
  const std::vector<int64_t> xs = source_offsets(in.shape[3], out.shape[3], in.strides[3]);
  const int64_t channels = out.shape[1], oh = out.shape[2], ow = out.shape[3];
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    const int64_t grain = ow >= 4096 ? 1 : 4096 / ow;
    parallel_for(out.shape[0] * channels * oh, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const int64_t y = r % oh, c = r / oh % channels, n = r / oh / channels;
        const T* src = in.ptr<T>() + n * in.strides[0] + c * in.strides[1] + ys[size_t(y)];
        T* dst = out.ptr<T>() + n * out.strides[0] + c * out.strides[1] + y * out.strides[2];
        for (int64_t x = 0; x < ow; x++) dst[x * out.strides[3]] = src[xs[size_t(x)]];
      }
    });
  });
}

}  // namespace emu::cpu::EMU_ISA
