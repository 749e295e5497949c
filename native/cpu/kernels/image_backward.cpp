// image_backward.cpp: the gradients of image.cpp's conv2d, avg_pool2d and nearest upsampling.
//
// Float dtypes compute in their compute type (f32 for bf16 and f32, f64 for f64; bf16 is rounded
// once, when stored). The gradients (grad_in, grad_w, grad_bias) are fully overwritten; every View
// may have any strides. Every result sums its terms in an order fixed by the shapes alone, never
// by the thread count, and no two tasks write the same element: results are deterministic.
//
// Both conv2d gradients are GEMMs on gemm/gemm.h's driver and micro-kernel, with operands packed
// straight from the tensors (no im2col or col2im matrix is built), so each result is one FMA
// chain in a fixed order and no two tasks write the same element. f32 operands are packed 16
// pixels at a time by image_unfold.h's AVX-512 packers, the others one element at a time by
// unfold_line; both pack the same values, so the choice never changes a result.
//
// conv2d input gradient. Scattering col = W^T @ grad_out back into the image (col2im) would
// make tasks collide on overlapping patches, so the gradient is computed as a gather instead,
// one stride phase at a time: the input pixels y with (y + pad) % stride == r are reached by
// exactly the kernel taps i with i * dilation % stride == r, and tap i reaches them from the
// output rows (y + pad - i * dilation) / stride, which advance by one as y advances by stride
// (the same holds for columns). So the pixels of one phase are the output pixels of a plain
// stride-1 convolution of grad_out with those taps: a GEMM grad_in[c][pixel] = Wt[c][d] @
// B[d][pixel] per (image, group, phase), d running over (output channel, tap row, tap column),
// B's panels unfolded from grad_out. No multiply by a zero that the stride put in; with stride 1
// the GEMM writes grad_in's planes in place.
//
// conv2d weight gradient: grad_w[o][k] = sum over images and output pixels of
// grad_out[o][pixel] * im2col(in)[k][pixel], one GEMM per group whose depth runs over (image,
// pixel) in order: A packed from grad_out, B's k-columns unfolded from the input image by image.
//
// Pooling and upsampling gradients are gathers too: each input pixel adds up the outputs whose
// window (or source index) covers it, in output order, so rows of grad_in are independent tasks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels.h"
#include "../thread_pool.h"
#include "image_common.h"
#include "image_unfold.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

using namespace image_detail;

// ---- conv2d ----

// Checks an image-shaped view, a weight-shaped view and grad_out against each other.
ConvShape conv_shape(const char* op, const View& image, const View& weight, const View& grad_out, const int64_t* stride,
                     const int64_t* padding, const int64_t* dilation, int64_t groups) {
  check_4d(op, "input", image);
  check_4d(op, "weight", weight);
  check_4d(op, "grad_out", grad_out);
  if (weight.dtype != image.dtype || grad_out.dtype != image.dtype)
    dtype_error(op, "input, weight and grad_out must share a dtype");
  const ConvShape s = conv_geometry(op, image, weight, stride, padding, dilation, groups);
  check_shape(op, "grad_out", grad_out, s.n, s.o, s.oh, s.ow);
  return s;
}

// The input rows (or columns) of stride phase r: y = first + t * stride for t < count, the ones
// with (y + pad) % stride == r. Exactly the kernel taps i with i * dilation % stride == r reach
// them; tap taps[a] reaches row t from output row base[a] + t.
struct PhaseAxis {
  int64_t first, count;
  std::vector<int64_t> taps, base;
};

std::vector<PhaseAxis> phase_axes(int64_t size, int64_t stride, int64_t pad, int64_t kernel, int64_t dilation) {
  std::vector<PhaseAxis> axes(static_cast<size_t>(stride));
  for (int64_t r = 0; r < stride; r++) {
    PhaseAxis& a = axes[size_t(r)];
    a.first = ((r - pad) % stride + stride) % stride;
    a.count = a.first < size ? (size - 1 - a.first) / stride + 1 : 0;
    for (int64_t i = 0; i < kernel; i++) {
      if (i * dilation % stride != r) continue;
      a.taps.push_back(i);
      a.base.push_back((a.first + pad - i * dilation) / stride);  // exact: the numerator is a multiple of stride
    }
  }
  return axes;
}

template <class T>
void conv2d_backward_input_typed(const View& grad_in, const View& grad_out, const View& weight, const ConvShape& s) {
  using V = C<T>;
  constexpr int NR = gemm::kNR<V>;
  const std::vector<PhaseAxis> rows = phase_axes(s.h, s.sh, s.ph, s.kh, s.dh);
  const std::vector<PhaseAxis> cols = phase_axes(s.w, s.sw, s.pw, s.kw, s.dw);
  const int64_t phases = s.sh * s.sw;  // phase = row phase * sw + column phase
  auto axis_y = [&](int64_t phase) -> const PhaseAxis& { return rows[size_t(phase / s.sw)]; };
  auto axis_x = [&](int64_t phase) -> const PhaseAxis& { return cols[size_t(phase % s.sw)]; };
  // GEMM depth of a phase: (output channel, tap row, tap column).
  auto depth_of = [&](int64_t phase) {
    return s.og * int64_t(axis_y(phase).taps.size()) * int64_t(axis_x(phase).taps.size());
  };

  // A of each (group, phase): the weights as a contiguous [input channel][depth] matrix.
  std::vector<int64_t> packed(size_t(phases + 1), 0);
  double max_macs = 0;
  for (int64_t ph = 0; ph < phases; ph++) {
    packed[size_t(ph + 1)] = packed[size_t(ph)] + s.cg * depth_of(ph);
    max_macs = std::max(max_macs, double(s.cg) * double(depth_of(ph)) * double(axis_y(ph).count * axis_x(ph).count));
  }
  const int64_t group_size = packed[size_t(phases)];
  std::vector<V> wt(size_t(s.groups * group_size));
  for (int64_t g = 0; g < s.groups; g++) {
    for (int64_t ph = 0; ph < phases; ph++) {
      const PhaseAxis &ay = axis_y(ph), &ax = axis_x(ph);
      V* dst = wt.data() + g * group_size + packed[size_t(ph)];
      for (int64_t c = 0, depth = depth_of(ph); c < s.cg; c++) {
        int64_t d = 0;
        for (int64_t o = 0; o < s.og; o++)
          for (int64_t i : ay.taps)
            for (int64_t j : ax.taps)
              dst[c * depth + d++] = load(weight.ptr<T>()[(g * s.og + o) * weight.strides[0] + c * weight.strides[1] +
                                                          i * weight.strides[2] + j * weight.strides[3]]);
      }
    }
  }
#if defined(__AVX512F__)
  // f32: B unfolded 16 pixels at a time (image_unfold.h); row d = (o, tap row, tap column) of
  // phase ph's B reads grad_out[o] shifted by the taps' base rows and columns. Elsewhere
  // unfold_line, one pixel at a time.
  const bool vector_unfold = std::is_same_v<T, float> && unfold_fast(1, grad_out.strides[3]);
  std::vector<UnfoldRows> phase_rows(size_t(vector_unfold ? phases : 0));
  for (int64_t ph = 0; ph < int64_t(phase_rows.size()); ph++) {
    const PhaseAxis &ay = axis_y(ph), &ax = axis_x(ph);
    UnfoldRows& u = phase_rows[size_t(ph)];
    for (int64_t by : ay.base)
      for (int64_t bx : ax.base) u.shifts.push_back({by, bx});
    for (int64_t o = 0; o < s.og; o++)
      for (int64_t t = 0; t < int64_t(u.shifts.size()); t++) u.rows.push_back({o * grad_out.strides[1], t});
  }
#endif
  // Stride 1 (one phase covering every pixel) into contiguous f32/f64 planes: written in place.
  const bool in_place = std::is_same_v<T, V> && phases == 1 && grad_in.strides[3] == 1 && grad_in.strides[2] == s.w;

  gemm::for_each_gemm(s.n * s.groups * phases, max_macs, [&](int64_t unit, bool parallel) {
    const int64_t ph = unit % phases, g = unit / phases % s.groups, n = unit / phases / s.groups;
    const PhaseAxis &ay = axis_y(ph), &ax = axis_x(ph);
    const int64_t pixels = ay.count * ax.count, depth = depth_of(ph);
    if (pixels == 0) return;
    const V* a = wt.data() + g * group_size + packed[size_t(ph)];
    auto pack_a = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kc, V* dst) {
      gemm::pack_a_strided(a, depth, int64_t(1), i0, mc, p0, kc, dst);
    };
    // B [depth][pixel]: row d = (o, tap row, tap column) reads grad_out[o] shifted by the taps.
    const T* gy = grad_out.ptr<T>() + n * grad_out.strides[0] + g * s.og * grad_out.strides[1];
    const int64_t ty = int64_t(ay.taps.size()), tx = int64_t(ax.taps.size());
    auto pack_b = [&](int64_t j0, int64_t nc, int64_t p0, int64_t kc, V* dst) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (vector_unfold) {
          const Unfolded u{gy, 0, s.oh, s.ow, grad_out.strides[2], grad_out.strides[3], ay.count, ax.count, 1, 1,
                           &phase_rows[size_t(ph)]};
          return pack_unfolded_rows(u, j0, nc, p0, kc, dst);
        }
      }
#endif
      for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        const int64_t nr = std::min<int64_t>(NR, nc - j);
        for (int64_t kk = 0; kk < kc; kk++) {
          const int64_t d = p0 + kk, o = d / (ty * tx), by = ay.base[size_t(d / tx % ty)], bx = ax.base[size_t(d % tx)];
          const Line line{s.oh, s.ow, grad_out.strides[2], grad_out.strides[3], ax.count, by, 1, bx, 1};
          V* row = dst + kk * NR;
          unfold_line(row, 1, gy + o * grad_out.strides[1], line, j0 + j, nr);
          std::fill(row + nr, row + NR, V(0));
        }
      }
    };
    if constexpr (std::is_same_v<T, V>) {
      if (in_place) {
        T* c = grad_in.ptr<T>() + n * grad_in.strides[0] + g * s.cg * grad_in.strides[1];
        gemm::run<V>(s.cg, pixels, depth, pack_a, pack_b, c, grad_in.strides[1], false, parallel);
        return;
      }
    }
    std::vector<V> c(size_t(s.cg * pixels));
    gemm::run<V>(s.cg, pixels, depth, pack_a, pack_b, c.data(), pixels, false, parallel);
    for (int64_t ch = 0; ch < s.cg; ch++) {
      T* plane = grad_in.ptr<T>() + n * grad_in.strides[0] + (g * s.cg + ch) * grad_in.strides[1];
      for (int64_t q = 0; q < pixels; q++) {
        const int64_t y = ay.first + q / ax.count * s.sh, x = ax.first + q % ax.count * s.sw;
        plane[y * grad_in.strides[2] + x * grad_in.strides[3]] = store<T>(c[size_t(ch * pixels + q)]);
      }
    }
  });
}

template <class T>
void conv2d_backward_weight_typed(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                                  const ConvShape& s) {
  using A = C<T>;
  constexpr int NR = gemm::kNR<A>;
  const int64_t pixels = s.oh * s.ow;
  const T* gy = grad_out.ptr<T>();

  if (grad_bias) {  // each channel summed row by row, images in order
    parallel_for(s.o, 1, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        A sum = A(0);
        for (int64_t n = 0; n < s.n; n++) {
          A image_sum = A(0);
          for (int64_t y = 0; y < s.oh; y++) {
            const T* row = gy + n * grad_out.strides[0] + o * grad_out.strides[1] + y * grad_out.strides[2];
            A row_sum = A(0);
            for (int64_t x = 0; x < s.ow; x++) row_sum += load(row[x * grad_out.strides[3]]);
            image_sum += row_sum;
          }
          sum += image_sum;
        }
        grad_bias->ptr<T>()[o * grad_bias->strides[0]] = store<T>(sum);
      }
    });
  }
  if (grad_w.numel() == 0) return;

  // Per group: gw[o][k] = sum over r = (image, pixel) of A[o][r] * B[r][k], with A = grad_out
  // and B = im2col(in)^T, both packed straight from the tensors; the reduction runs over the
  // images and pixels in order.
  const int64_t depth = s.n * pixels;
  std::vector<A> gw(size_t(s.o * s.k));  // grad_w as [o][k]
#if defined(__AVX512F__)
  // f32: both operands unfolded 16 pixels at a time and transposed in registers (image_unfold.h):
  // A's rows are grad_out's channels, B's columns the rows of im2col(in).
  const bool vector_unfold = std::is_same_v<T, float> && unfold_fast(1, grad_out.strides[3]) && unfold_fast(s.sw, in.strides[3]);
  const UnfoldRows in_rows = vector_unfold ? im2col_rows(s, in.strides[1]) : UnfoldRows();
  UnfoldRows gy_rows{{}, {{0, 0}}};
  for (int64_t o = 0; vector_unfold && o < s.og; o++) gy_rows.rows.push_back({o * grad_out.strides[1], 0});
#endif
  gemm::for_each_gemm(s.groups, double(s.og) * double(s.k) * double(depth), [&](int64_t g, bool parallel) {
    const T* gy_group = gy + g * s.og * grad_out.strides[1];
    const T* in_group = in.ptr<T>() + g * s.cg * in.strides[1];
    auto pack_a = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kc, A* dst) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (vector_unfold) {
          const Unfolded u{gy_group, grad_out.strides[0], s.oh, s.ow, grad_out.strides[2], grad_out.strides[3], s.oh, s.ow,
                           1, 1, &gy_rows};
          return pack_unfolded_columns<gemm::kMR>(u, i0, mc, p0, kc, dst);
        }
      }
#endif
      for (int64_t i = 0; i < mc; i += gemm::kMR, dst += kc * gemm::kMR) {
        const int64_t mr = std::min<int64_t>(gemm::kMR, mc - i);
        const T* rows = gy_group + (i0 + i) * grad_out.strides[1];
        for (int64_t kk = 0, n = p0 / pixels, y = p0 % pixels / s.ow, x = p0 % s.ow; kk < kc; kk++) {
          const T* at = rows + n * grad_out.strides[0] + y * grad_out.strides[2] + x * grad_out.strides[3];
          for (int64_t r = 0; r < gemm::kMR; r++) dst[kk * gemm::kMR + r] = r < mr ? load(at[r * grad_out.strides[1]]) : A(0);
          if (++x == s.ow) {
            x = 0;
            if (++y == s.oh) y = 0, n++;
          }
        }
      }
    };
    auto pack_b = [&](int64_t j0, int64_t nc, int64_t p0, int64_t kc, A* dst) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (vector_unfold) {
          const Unfolded u{in_group, in.strides[0], s.h, s.w, in.strides[2], in.strides[3], s.oh, s.ow, s.sh, s.sw,
                           &in_rows};
          return pack_unfolded_columns<NR>(u, j0, nc, p0, kc, dst);
        }
      }
#endif
      for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
        for (int64_t col = 0; col < NR; col++) {
          const int64_t k = j0 + j + col;
          if (j + col >= nc) {
            for (int64_t kk = 0; kk < kc; kk++) dst[kk * NR + col] = A(0);
            continue;
          }
          const int64_t c = k / (s.kh * s.kw), i = k / s.kw % s.kh, jj = k % s.kw;
          const Line line{s.h, s.w, in.strides[2], in.strides[3], s.ow, i * s.dh - s.ph, s.sh, jj * s.dw - s.pw, s.sw};
          // The slice's pixels, one image at a time.
          for (int64_t r = p0; r < p0 + kc;) {
            const int64_t n = r / pixels, p = r % pixels, count = std::min(pixels - p, p0 + kc - r);
            unfold_line(dst + (r - p0) * NR + col, NR, in_group + n * in.strides[0] + c * in.strides[1], line, p, count);
            r += count;
          }
        }
      }
    };
    gemm::run<A>(s.og, s.k, depth, pack_a, pack_b, gw.data() + g * s.og * s.k, s.k, false, parallel);
  });

  parallel_for(s.o, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
      T* dst = grad_w.ptr<T>() + o * grad_w.strides[0];
      for (int64_t c = 0, k = 0; c < s.cg; c++)
        for (int64_t i = 0; i < s.kh; i++)
          for (int64_t j = 0; j < s.kw; j++, k++)
            dst[c * grad_w.strides[1] + i * grad_w.strides[2] + j * grad_w.strides[3]] = store<T>(gw[size_t(o * s.k + k)]);
    }
  });
}

// Calls f(n, c, y) for every row of a non-empty [n, c, h, w] image, in parallel over rows.
template <class F>
void for_each_row(const View& image, F&& f) {
  const int64_t channels = image.shape[1], h = image.shape[2], w = image.shape[3];
  const int64_t grain = w >= 1024 ? 1 : 1024 / w;
  parallel_for(image.shape[0] * channels * h, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) f(r / h / channels, r / h % channels, r % h);
  });
}

}  // namespace

void conv2d_backward_input(const View& grad_in, const View& grad_out, const View& weight, const int64_t* stride,
                           const int64_t* padding, const int64_t* dilation, int64_t groups) {
  const char* op = "conv2dBackwardInput";
  const ConvShape s = conv_shape(op, grad_in, weight, grad_out, stride, padding, dilation, groups);
  if (grad_in.numel() == 0) return;
  dispatch_float(grad_in.dtype, op, [&](auto t) { conv2d_backward_input_typed<decltype(t)>(grad_in, grad_out, weight, s); });
}

void conv2d_backward_weight(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                            const int64_t* stride, const int64_t* padding, const int64_t* dilation, int64_t groups) {
  const char* op = "conv2dBackwardWeight";
  const ConvShape s = conv_shape(op, in, grad_w, grad_out, stride, padding, dilation, groups);
  if (grad_bias && (grad_bias->ndim != 1 || grad_bias->shape[0] != s.o))
    shape_error(op, "grad_bias must have shape [" + std::to_string(s.o) + "]");
  if (grad_bias && grad_bias->dtype != in.dtype) dtype_error(op, "grad_bias must have the input's dtype");
  dispatch_float(in.dtype, op, [&](auto t) { conv2d_backward_weight_typed<decltype(t)>(grad_w, grad_bias, grad_out, in, s); });
}

void avg_pool2d_backward(const View& grad_in, const View& grad_out, const int64_t* kernel, const int64_t* stride,
                         const int64_t* padding, bool count_include_pad) {
  const char* op = "avgPool2dBackward";
  check_4d(op, "grad_in", grad_in);
  check_4d(op, "grad_out", grad_out);
  if (grad_out.dtype != grad_in.dtype) dtype_error(op, "grad_out and grad_in dtypes differ");
  const int64_t h = grad_in.shape[2], w = grad_in.shape[3];
  const int64_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1], ph = padding[0], pw = padding[1];
  const int64_t oh = window_count(op, h, kh, sh, ph, 1), ow = window_count(op, w, kw, sw, pw, 1);
  check_shape(op, "grad_out", grad_out, grad_in.shape[0], grad_in.shape[1], oh, ow);
  if (grad_in.numel() == 0) return;
  // The forward's divisor is (window rows) * (window columns), each clipped to the padded input
  // (count_include_pad) or to the input. Input row y lies in the windows of output rows
  // [lo, hi): oy * sh - ph <= y < oy * sh - ph + kh. Same for columns.
  struct Span {
    std::vector<int64_t> divisor, lo, hi;  // divisor per output, [lo, hi) per input
  };
  auto span = [&](int64_t size, int64_t out_size, int64_t k, int64_t st, int64_t pad) {
    Span sp{std::vector<int64_t>(size_t(out_size)), std::vector<int64_t>(size_t(size)), std::vector<int64_t>(size_t(size))};
    for (int64_t o = 0; o < out_size; o++) {
      const int64_t a = o * st - pad, b = std::min(a + k, size + pad);
      sp.divisor[size_t(o)] = count_include_pad ? b - a : std::min(b, size) - std::max<int64_t>(a, 0);
    }
    for (int64_t y = 0; y < size; y++) {
      sp.lo[size_t(y)] = y + pad - k < 0 ? 0 : (y + pad - k) / st + 1;
      sp.hi[size_t(y)] = std::min((y + pad) / st + 1, out_size);
    }
    return sp;
  };
  const Span rows = span(h, oh, kh, sh, ph), cols = span(w, ow, kw, sw, pw);
  dispatch_float(grad_in.dtype, op, [&](auto t) {
    using T = decltype(t);
    using A = C<T>;
    for_each_row(grad_in, [&](int64_t n, int64_t c, int64_t y) {
      const T* plane = grad_out.ptr<T>() + n * grad_out.strides[0] + c * grad_out.strides[1];
      T* dst = grad_in.ptr<T>() + n * grad_in.strides[0] + c * grad_in.strides[1] + y * grad_in.strides[2];
      for (int64_t x = 0; x < w; x++) {
        A sum = A(0);
        for (int64_t oy = rows.lo[size_t(y)]; oy < rows.hi[size_t(y)]; oy++)
          for (int64_t ox = cols.lo[size_t(x)]; ox < cols.hi[size_t(x)]; ox++)
            sum += load(plane[oy * grad_out.strides[2] + ox * grad_out.strides[3]]) /
                   A(rows.divisor[size_t(oy)] * cols.divisor[size_t(ox)]);
        dst[x * grad_in.strides[3]] = store<T>(sum);
      }
    });
  });
}

void upsample_nearest2d_backward(const View& grad_in, const View& grad_out) {
  const char* op = "upsampleNearest2dBackward";
  check_4d(op, "grad_in", grad_in);
  check_4d(op, "grad_out", grad_out);
  if (grad_out.dtype != grad_in.dtype) dtype_error(op, "grad_out and grad_in dtypes differ");
  if (grad_out.shape[0] != grad_in.shape[0] || grad_out.shape[1] != grad_in.shape[1])
    shape_error(op, "batch and channel sizes must match");
  if (grad_in.numel() == 0) return;
  // The forward's source index src(i) = min(floor(i * scale), in - 1), scale = in / out in float,
  // never decreases with i, so the outputs that read source s are a run [begin[s], begin[s + 1]):
  // prefix sums of how many read each source.
  auto runs = [](int64_t in_size, int64_t out_size) {
    const float scale = nearest_scale(in_size, out_size);
    std::vector<int64_t> begin(size_t(in_size + 1), 0);
    for (int64_t i = 0; i < out_size; i++) begin[size_t(nearest_source(i, scale, in_size) + 1)]++;
    for (int64_t s = 0; s < in_size; s++) begin[size_t(s + 1)] += begin[size_t(s)];
    return begin;
  };
  const std::vector<int64_t> ys = runs(grad_in.shape[2], grad_out.shape[2]);
  const std::vector<int64_t> xs = runs(grad_in.shape[3], grad_out.shape[3]);
  const int64_t w = grad_in.shape[3];
  dispatch_float(grad_in.dtype, op, [&](auto t) {
    using T = decltype(t);
    using A = C<T>;
    for_each_row(grad_in, [&](int64_t n, int64_t c, int64_t y) {
      const T* plane = grad_out.ptr<T>() + n * grad_out.strides[0] + c * grad_out.strides[1];
      T* dst = grad_in.ptr<T>() + n * grad_in.strides[0] + c * grad_in.strides[1] + y * grad_in.strides[2];
      for (int64_t x = 0; x < w; x++) {
        A sum = A(0);
        for (int64_t oy = ys[size_t(y)]; oy < ys[size_t(y + 1)]; oy++)
          for (int64_t ox = xs[size_t(x)]; ox < xs[size_t(x + 1)]; ox++)
            sum += load(plane[oy * grad_out.strides[2] + ox * grad_out.strides[3]]);
        dst[x * grad_in.strides[3]] = store<T>(sum);
      }
    });
  });
}

}  // namespace emu::cpu::EMU_ISA
