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
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

[[noreturn]] void shape_error(const char* op, const std::string& what) {
  fail(ErrorKind::Shape, std::string(op) + ": " + what);
}

[[noreturn]] void dtype_error(const char* op, const std::string& what) {
  fail(ErrorKind::DType, std::string(op) + ": " + what);
}

void check_4d(const char* op, const char* name, const View& v) {
  if (v.ndim != 4) shape_error(op, std::string(name) + " must be 4-d (NCHW), got " + std::to_string(v.ndim) + " dims");
}

// Output size of a sliding window along one dim; fails when the window does not fit.
int64_t window_count(const char* op, int64_t size, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  if (kernel < 1 || stride < 1 || dilation < 1 || pad < 0)
    shape_error(op, "kernel, stride and dilation must be positive and padding non-negative");
  const int64_t span = size + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) shape_error(op, "the window is larger than the padded input");
  return span / stride + 1;
}

void check_out(const char* op, const View& out, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (out.shape[0] != n || out.shape[1] != c || out.shape[2] != h || out.shape[3] != w)
    shape_error(op, "output must have shape [" + std::to_string(n) + ", " + std::to_string(c) + ", " +
                        std::to_string(h) + ", " + std::to_string(w) + "]");
}

// ---- conv2d ----

struct ConvShape {
  int64_t n, c, h, w;        // input
  int64_t o, kh, kw;         // weight [o, c / groups, kh, kw]
  int64_t oh, ow;            // output
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t groups, cg, og;    // channels per group, in and out
  int64_t k;                 // GEMM depth: cg * kh * kw
};

// One vector register of A, as a GCC/Clang vector extension, and the same type at A's
// alignment for unaligned loads. The register tile below is written with it instead of being
// left to the auto-vectoriser, whose code for this loop nest swung between near peak and 20x
// slower with the ISA, the dtype and the inlining context.
template <class A> struct VecOf;
template <> struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
  typedef float unaligned __attribute__((vector_size(kVectorBytes), aligned(4), may_alias));
};
template <> struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
  typedef double unaligned __attribute__((vector_size(kVectorBytes), aligned(8), may_alias));
};

// acc[o][q] = sum over k of w[k][o] * col[k][q], for OB output channels and NV vectors of
// pixels; r[][] is indexed only by constants once the loops unroll, so it lives in registers.
// (a * b + c becomes an FMA wherever the ISA has one: GCC contracts by default in C++.)
template <class A, int OB, int NV>
inline void micro_tile(const A* w, const A* col, int64_t depth, int64_t ld, A* acc) {
  using V = typename VecOf<A>::type;
  using U = typename VecOf<A>::unaligned;
  V r[OB][NV] = {};
  for (int64_t k = 0; k < depth; k++) {
    const U* c = reinterpret_cast<const U*>(col + k * ld);
    for (int o = 0; o < OB; o++) {
      const V wo = w[k * OB + o] - V{};  // broadcast (x - 0 is exactly x, so this folds away)
      for (int v = 0; v < NV; v++) r[o][v] += wo * c[v];
    }
  }
  U* out = reinterpret_cast<U*>(acc);
  for (int o = 0; o < OB; o++)
    for (int v = 0; v < NV; v++) out[o * NV + v] = r[o][v];
}

// Unfolds the patches of output pixels [p0, p0 + count) of image n, group g into
// col[k][q] (row length ld >= count; columns past count are zeroed). Each output row's run of
// pixels reads one input row; the part of the run inside the input is copied with a
// contiguous loop when the input row is contiguous and the stride is 1.
template <class T, class A>
void im2col(A* col, int64_t ld, const View& in, const ConvShape& s, int64_t n, int64_t g, int64_t p0, int64_t count) {
  const T* image = in.ptr<T>() + n * in.strides[0] + g * s.cg * in.strides[1];
  const int64_t step = s.sw * in.strides[3];  // input elements between neighbouring pixels
  for (int64_t c = 0, k = 0; c < s.cg; c++) {
    const T* plane = image + c * in.strides[1];
    for (int64_t i = 0; i < s.kh; i++) {
      for (int64_t j = 0; j < s.kw; j++, k++) {
        A* dst = col + k * ld;
        for (int64_t q = 0, p = p0; q < count;) {
          const int64_t oy = p / s.ow, ox = p % s.ow;
          const int64_t seg = std::min(s.ow - ox, count - q);  // pixels left in this output row
          const int64_t y = oy * s.sh - s.ph + i * s.dh;
          // Pixel t of the run reads input column x0 + t * sw; [lo, hi) are the t inside the row.
          const int64_t x0 = ox * s.sw - s.pw + j * s.dw;
          int64_t lo = 0, hi = 0;
          if (y >= 0 && y < s.h) {
            lo = x0 >= 0 ? 0 : std::min(seg, (s.sw - 1 - x0) / s.sw);
            hi = x0 < s.w ? std::min(seg, (s.w - 1 - x0) / s.sw + 1) : 0;
            hi = std::max(lo, hi);
          }
          A* d = dst + q;
          std::fill(d, d + lo, A(0));
          if (hi > lo) {
            const T* src = plane + y * in.strides[2] + (x0 + lo * s.sw) * in.strides[3];
            if (step == 1) {
              for (int64_t t = lo; t < hi; t++) d[t] = load(src[t - lo]);
            } else {
              for (int64_t t = lo; t < hi; t++) d[t] = load(src[(t - lo) * step]);
            }
          }
          std::fill(d + hi, d + seg, A(0));
          q += seg;
          p += seg;
        }
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

  // Tiling: pixel tiles small enough for the scratch matrix to stay in L2, and narrower (down
  // to 4 register tiles) when the batch gives too few tasks; then output-channel chunks.
  const int64_t pixels = s.oh * s.ow;
  const int64_t want = 4 * int64_t(num_threads());
  const int64_t images = s.n * s.groups;
  const int64_t round_pixels = (pixels + PW - 1) / PW * PW;
  int64_t tile = std::max<int64_t>(PW, (256 * 1024 / int64_t(sizeof(A)) / std::max<int64_t>(1, s.k)) / PW * PW);
  const int64_t tiles_wanted = (want + images - 1) / images;
  const int64_t even_tile = ((pixels + tiles_wanted - 1) / tiles_wanted + PW - 1) / PW * PW;
  tile = std::min({tile, std::max<int64_t>(4 * PW, even_tile), round_pixels});
  const int64_t tiles = (pixels + tile - 1) / tile;
  const int64_t chunks_wanted =  // chunks of at least 2 blocks: each chunk redoes its im2col
      std::min((want + images * tiles - 1) / (images * tiles), std::max<int64_t>(1, blocks / 2));
  const int64_t chunk_blocks = (blocks + chunks_wanted - 1) / chunks_wanted;
  const int64_t chunks = (blocks + chunk_blocks - 1) / chunk_blocks;

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
  ConvShape s;
  s.n = in.shape[0], s.c = in.shape[1], s.h = in.shape[2], s.w = in.shape[3];
  s.o = weight.shape[0], s.kh = weight.shape[2], s.kw = weight.shape[3];
  s.sh = stride[0], s.sw = stride[1], s.ph = padding[0], s.pw = padding[1], s.dh = dilation[0], s.dw = dilation[1];
  s.groups = groups;
  if (groups < 1 || s.c % groups != 0 || s.o % groups != 0 || weight.shape[1] != s.c / groups)
    shape_error(op, "weight [" + std::to_string(s.o) + ", " + std::to_string(weight.shape[1]) + ", ...] does not fit " +
                        std::to_string(s.c) + " input channels in " + std::to_string(groups) + " groups");
  s.cg = s.c / groups, s.og = s.o / groups, s.k = s.cg * s.kh * s.kw;
  s.oh = window_count(op, s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = window_count(op, s.w, s.kw, s.sw, s.pw, s.dw);
  check_out(op, out, s.n, s.o, s.oh, s.ow);
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
  check_out(op, out, in.shape[0], s.c, s.oh, s.ow);
  if (indices) {
    check_4d(op, "indices", *indices);
    if (indices->dtype != DType::I32) dtype_error(op, "indices must be i32");
    check_out(op, *indices, in.shape[0], s.c, s.oh, s.ow);
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
  check_out(op, out, in.shape[0], s.c, s.oh, s.ow);
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
  // PyTorch's legacy 'nearest': src = min(floor(dst * scale), in - 1) with scale = in / out in
  // float (exact for in == out and out == 2 in, the cases PyTorch special-cases).
  auto source_offsets = [](int64_t in_size, int64_t out_size, int64_t in_stride) {
    const float scale = float(in_size) / float(out_size);
    std::vector<int64_t> offsets(static_cast<size_t>(out_size));
    for (int64_t i = 0; i < out_size; i++)
      offsets[size_t(i)] = std::min(int64_t(std::floor(float(i) * scale)), in_size - 1) * in_stride;
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
