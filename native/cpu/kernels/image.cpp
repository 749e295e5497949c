// image.cpp: conv2d, max_pool2d, avg_pool2d and nearest upsampling on NCHW Views.
//
// Float dtypes compute in their compute type (f32 for bf16 and f32, f64 for f64); inputs and
// outputs may have any strides.
//
// conv2d is im2col + a small GEMM. The output pixels of one (image, group) are cut into tiles;
// a task unfolds the input patches of its tile into a scratch matrix col[k][pixel] (k runs over
// input channel, kernel row, kernel column) and multiplies the packed weights by it, OB output
// channels by PW pixels at a time with the accumulators held in registers (PW spans two vector
// registers of the ISA this file is compiled for). Every output sums its K terms in the same
// order (k = 0, 1, ...) whatever the tiling, so the result does not depend on the thread
// count; the tiling only decides how the work is spread. When there are too few pixel tiles to
// keep the threads busy the output channels are split too, and a task reuses its previous
// scratch matrix when the next task covers the same pixels.
//
// Pooling follows PyTorch (ceil_mode false): max_pool2d skips padding (it acts as -inf), lets a
// NaN win, and reports the flat index h * W + w of the chosen input; avg_pool2d divides by the
// window size clipped to the padded input (count_include_pad) or to the input.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../thread_pool.h"
#include "image_common.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

using namespace image_detail;

// Unfolds the patches of output pixels [p0, p0 + count) of image n, group g into
// col[k][q] (row length ld >= count; columns past count are zeroed), one unfold_line per k.
template <class T, class A>
void im2col(A* col, int64_t ld, const View& in, const ConvShape& s, int64_t n, int64_t g, int64_t p0, int64_t count) {
  const T* image = in.ptr<T>() + n * in.strides[0] + g * s.cg * in.strides[1];
  for (int64_t c = 0, k = 0; c < s.cg; c++) {
    const T* plane = image + c * in.strides[1];
    for (int64_t i = 0; i < s.kh; i++) {
      for (int64_t j = 0; j < s.kw; j++, k++) {
        A* dst = col + k * ld;
        const Line line{s.h, s.w, in.strides[2], in.strides[3], s.ow, i * s.dh - s.ph, s.sh, j * s.dw - s.pw, s.sw};
        unfold_line(dst, 1, plane, line, p0, count);
        std::fill(dst + count, dst + ld, A(0));
      }
    }
  }
}

template <class T>
void conv2d_typed(const View& out, const View& in, const View& weight, const View* bias, const ConvShape& s) {
  using A = C<T>;
  constexpr int OB = 6;                                  // output channels per register tile
  constexpr int NV = 2;                                  // vectors of pixels per register tile
  constexpr int PW = NV * kVectorBytes / int(sizeof(A));  // pixels per register tile
  const int64_t blocks = (s.og + OB - 1) / OB;           // OB-blocks per group

  // Weights packed as [group][block][k][OB], zero-padded past og; bias as A.
  std::vector<A> wp(size_t(s.groups * blocks * s.k * OB), A(0));
  parallel_for(s.groups * blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t gb = b0; gb < b1; gb++) {
      A* dst = wp.data() + gb * s.k * OB;
      const int64_t g = gb / blocks, first = (gb % blocks) * OB;
      for (int64_t o = 0; o < OB && first + o < s.og; o++) {
        const T* src = weight.ptr<T>() + (g * s.og + first + o) * weight.strides[0];
        for (int64_t c = 0, k = 0; c < s.cg; c++)
          for (int64_t i = 0; i < s.kh; i++)
            for (int64_t j = 0; j < s.kw; j++, k++)
              dst[k * OB + o] = load(src[c * weight.strides[1] + i * weight.strides[2] + j * weight.strides[3]]);
      }
    }
  });
  std::vector<A> bias_acc(size_t(s.o), A(0));
  if (bias) {
    for (int64_t o = 0; o < s.o; o++) bias_acc[size_t(o)] = load(bias->ptr<T>()[o * bias->strides[0]]);
  }

  // Tiling: see gemm_tiling; a task reuses its scratch matrix when the next task covers the
  // same pixels.
  const int64_t pixels = s.oh * s.ow;
  const int64_t images = s.n * s.groups;
  const GemmTiling tiling = gemm_tiling(images, pixels, s.k, blocks, PW, int64_t(sizeof(A)));
  const int64_t tile = tiling.tile, tiles = tiling.tiles, chunk_blocks = tiling.chunk_blocks, chunks = tiling.chunks;

  T* dst = out.ptr<T>();
  parallel_for(images * tiles * chunks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<A> col(size_t(s.k * tile));
    std::vector<int64_t> where(static_cast<size_t>(tile));  // each tile pixel's offset in an output plane
    int64_t built = -1;                                     // the (image, group, tile) col holds
    for (int64_t task = t0; task < t1; task++) {
      const int64_t chunk = task % chunks, unit = task / chunks;
      const int64_t n = unit / (s.groups * tiles), g = unit / tiles % s.groups, p0 = unit % tiles * tile;
      const int64_t count = std::min(tile, pixels - p0);
      if (unit != built) {
        im2col<T>(col.data(), tile, in, s, n, g, p0, count);
        for (int64_t q = 0; q < count; q++)
          where[size_t(q)] = (p0 + q) / s.ow * out.strides[2] + (p0 + q) % s.ow * out.strides[3];
        built = unit;
      }
      const int64_t b_end = std::min(blocks, (chunk + 1) * chunk_blocks);
      for (int64_t b = chunk * chunk_blocks; b < b_end; b++) {
        const A* w = wp.data() + (g * blocks + b) * s.k * OB;
        for (int64_t q0 = 0; q0 < count; q0 += PW) {
          A acc[OB][PW];
          micro_tile<A, OB, NV>(w, col.data() + q0, s.k, tile, &acc[0][0]);
          const int64_t q_end = std::min<int64_t>(PW, count - q0);
          for (int64_t o = 0; o < OB && b * OB + o < s.og; o++) {
            const int64_t channel = g * s.og + b * OB + o;
            const A add = bias_acc[size_t(channel)];
            T* plane = dst + n * out.strides[0] + channel * out.strides[1];
            for (int64_t q = 0; q < q_end; q++) plane[where[size_t(q0 + q)]] = store<T>(acc[o][q] + add);
          }
        }
      }
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
