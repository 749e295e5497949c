// image_common.h: helpers shared by image.cpp (conv2d, pooling, nearest upsampling) and
// image_backward.cpp (their gradients), so that the forward kernels and their adjoints check
// shapes, read the conv2d geometry and unfold patches in one and the same way (the GEMMs
// themselves run on gemm/gemm.h, included here for both).
//
// What is here: the NCHW shape and dtype checks and their error messages, the sliding-window
// output size, the conv2d geometry (ConvShape), the unfolding of one im2col line (what the
// GEMMs' packers read patches with), and the source index of nearest upsampling.
//
// Like the .cpp files that include it, this header is compiled once per ISA (EMU_ISA = avx512,
// avx2, generic, each with its own -m flags), so everything in it lives inside
// emu::cpu::EMU_ISA and every function is inline (or a template): no symbol is shared between
// the ISA builds, and none needs a definition in a .cpp file.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../thread_pool.h"
#include "gemm/gemm.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace image_detail {

// ---- checks ----

[[noreturn]] inline void shape_error(const char* op, const std::string& what) {
  fail(ErrorKind::Shape, std::string(op) + ": " + what);
}

[[noreturn]] inline void dtype_error(const char* op, const std::string& what) {
  fail(ErrorKind::DType, std::string(op) + ": " + what);
}

inline void check_4d(const char* op, const char* name, const View& v) {
  if (v.ndim != 4) shape_error(op, std::string(name) + " must be 4-d (NCHW), got " + std::to_string(v.ndim) + " dims");
}

// Output size of a sliding window along one dim; fails when the window does not fit.
inline int64_t window_count(const char* op, int64_t size, int64_t kernel, int64_t stride, int64_t pad,
                            int64_t dilation) {
  if (kernel < 1 || stride < 1 || dilation < 1 || pad < 0)
    shape_error(op, "kernel, stride and dilation must be positive and padding non-negative");
  const int64_t span = size + 2 * pad - dilation * (kernel - 1) - 1;
  if (span < 0) shape_error(op, "the window is larger than the padded input");
  return span / stride + 1;
}

// Fails unless the 4-d view v (called name in the message) has shape [n, c, h, w].
inline void check_shape(const char* op, const char* name, const View& v, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (v.shape[0] != n || v.shape[1] != c || v.shape[2] != h || v.shape[3] != w)
    shape_error(op, std::string(name) + " must have shape [" + std::to_string(n) + ", " + std::to_string(c) + ", " +
                        std::to_string(h) + ", " + std::to_string(w) + "]");
}

// ---- conv2d geometry ----

struct ConvShape {
  int64_t n, c, h, w;        // input
  int64_t o, kh, kw;         // weight [o, c / groups, kh, kw]
  int64_t oh, ow;            // output
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t groups, cg, og;    // channels per group, in and out
  int64_t k;                 // patch size (the forward GEMM's depth): cg * kh * kw
};

// The geometry of a conv2d of the 4-d `image` with the 4-d `weight`: checks that the weight fits
// the channels and groups and that the windows fit the padded image (the caller checks ranks,
// dtypes and the output's shape).
inline ConvShape conv_geometry(const char* op, const View& image, const View& weight, const int64_t* stride,
                               const int64_t* padding, const int64_t* dilation, int64_t groups) {
  ConvShape s;
  s.n = image.shape[0], s.c = image.shape[1], s.h = image.shape[2], s.w = image.shape[3];
  s.o = weight.shape[0], s.kh = weight.shape[2], s.kw = weight.shape[3];
  s.sh = stride[0], s.sw = stride[1], s.ph = padding[0], s.pw = padding[1], s.dh = dilation[0], s.dw = dilation[1];
  s.groups = groups;
  if (groups < 1 || s.c % groups != 0 || s.o % groups != 0 || weight.shape[1] != s.c / groups)
    shape_error(op, "weight [" + std::to_string(s.o) + ", " + std::to_string(weight.shape[1]) + ", ...] does not fit " +
                        std::to_string(s.c) + " input channels in " + std::to_string(groups) + " groups");
  s.cg = s.c / groups, s.og = s.o / groups, s.k = s.cg * s.kh * s.kw;
  s.oh = window_count(op, s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = window_count(op, s.w, s.kw, s.sw, s.pw, s.dw);
  return s;
}

// ---- im2col ----

// How one line of an unfolded (im2col) matrix samples a plane: pixel p of a grid `width` pixels
// wide, at row p / width and column u = p % width, reads plane[y][x] with
// y = y0 + (p / width) * ystep and x = x0 + u * xstep, and is 0 outside the plane.
struct Line {
  int64_t rows, cols, row_stride, col_stride;  // the plane
  int64_t width, y0, ystep, x0, xstep;
};

// Writes pixels [p0, p0 + count) of a line to dst[q * dst_step]. Each grid row's run of pixels
// reads one plane row; the part inside the plane is copied with a contiguous loop when both
// sides are contiguous.
template <class T, class A>
inline void unfold_line(A* dst, int64_t dst_step, const T* plane, const Line& l, int64_t p0, int64_t count) {
  const int64_t step = l.xstep * l.col_stride;  // plane elements between neighbouring pixels
  for (int64_t q = 0, p = p0; q < count;) {
    const int64_t u = p % l.width;
    const int64_t seg = std::min(l.width - u, count - q);  // pixels left in this grid row
    const int64_t y = l.y0 + p / l.width * l.ystep;
    // Pixel t of the run reads column x0 + t * xstep; [lo, hi) are the t inside the plane.
    const int64_t x0 = l.x0 + u * l.xstep;
    int64_t lo = 0, hi = 0;
    if (y >= 0 && y < l.rows) {
      lo = x0 >= 0 ? 0 : std::min(seg, (l.xstep - 1 - x0) / l.xstep);
      hi = x0 < l.cols ? std::min(seg, (l.cols - 1 - x0) / l.xstep + 1) : 0;
      hi = std::max(lo, hi);
    }
    A* d = dst + q * dst_step;
    for (int64_t t = 0; t < lo; t++) d[t * dst_step] = A(0);
    if (hi > lo) {
      const T* src = plane + y * l.row_stride + (x0 + lo * l.xstep) * l.col_stride;
      if (step == 1 && dst_step == 1) {
        for (int64_t t = lo; t < hi; t++) d[t] = load(src[t - lo]);
      } else {
        for (int64_t t = lo; t < hi; t++) d[t * dst_step] = load(src[(t - lo) * step]);
      }
    }
    for (int64_t t = hi; t < seg; t++) d[t * dst_step] = A(0);
    q += seg;
    p += seg;
  }
}

// ---- nearest upsampling ----

// PyTorch's legacy 'nearest': output index i of a dim reads source index
// min(floor(i * scale), in_size - 1), with scale = in_size / out_size in float (exact for
// in == out and out == 2 in, the cases PyTorch special-cases). Never decreases with i.
inline float nearest_scale(int64_t in_size, int64_t out_size) { return float(in_size) / float(out_size); }
inline int64_t nearest_source(int64_t i, float scale, int64_t in_size) {
  return std::min(int64_t(std::floor(float(i) * scale)), in_size - 1);
}

}  // namespace image_detail
}  // namespace emu::cpu::EMU_ISA
