// image_backward.cpp: the gradients of image.cpp's conv2d, avg_pool2d and nearest upsampling.
//
// Float dtypes compute in their compute type (f32 for bf16 and f32, f64 for f64; bf16 is rounded
// once, when stored). The gradients (grad_in, grad_w, grad_bias) are fully overwritten; every View
// may have any strides. Every result sums its terms in an order fixed by the shapes alone, never
// by the thread count, and no two tasks write the same element: results are deterministic.
//
// conv2d input gradient. Scattering col = W^T @ grad_out back into the image (col2im) would
// make tasks collide on overlapping patches, so the gradient is computed as a gather instead,
// one stride phase at a time: the input pixels y with (y + pad) % stride == r are reached by
// exactly the kernel taps i with i * dilation % stride == r, and tap i reaches them from the
// output rows (y + pad - i * dilation) / stride, which advance by one as y advances by stride
// (the same holds for columns). So the pixels of one phase are the output pixels of a plain
// stride-1 convolution of grad_out with those taps, and the conv2d forward scheme applies
// (im2col of grad_out into a scratch matrix, a register-tiled GEMM against packed weights, each
// input pixel summed over (output channel, tap) in order): no multiply by a zero that the
// stride put in, and every task writes its own pixels.
//
// conv2d weight gradient: grad_w[o][k] = sum over images and output pixels of
// grad_out[o][pixel] * im2col(in)[k][pixel]. A task owns a block of output channels times a
// panel of k (a rectangle of grad_w) and walks the images and the pixels in order, kTP pixels at
// a time: the input patches of a slice unfolded pixel-major (so k runs along a vector register),
// grad_out packed pixel-major, the same register tile summing the slice, then added to an f32 /
// f64 accumulator. kTP is a constant, so the sums do not depend on how the tasks were cut.
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
  using A = C<T>;
  constexpr int CB = 6;                                   // input channels per register tile
  constexpr int NV = 2;                                   // vectors of pixels per register tile
  constexpr int PW = NV * kVectorBytes / int(sizeof(A));  // pixels per register tile
  const int64_t blocks = (s.cg + CB - 1) / CB;            // CB-blocks per group
  const std::vector<PhaseAxis> rows = phase_axes(s.h, s.sh, s.ph, s.kh, s.dh);
  const std::vector<PhaseAxis> cols = phase_axes(s.w, s.sw, s.pw, s.kw, s.dw);
  const int64_t phases = s.sh * s.sw;  // phase = row phase * sw + column phase
  auto axis_y = [&](int64_t phase) -> const PhaseAxis& { return rows[size_t(phase / s.sw)]; };
  auto axis_x = [&](int64_t phase) -> const PhaseAxis& { return cols[size_t(phase % s.sw)]; };
  // GEMM depth of a phase: (output channel, tap row, tap column).
  auto depth_of = [&](int64_t phase) {
    return s.og * int64_t(axis_y(phase).taps.size()) * int64_t(axis_x(phase).taps.size());
  };

  // Weights packed per group as [phase][block][depth][CB], zero-padded past cg; `packed` holds
  // each phase's offset within a group.
  std::vector<int64_t> packed(size_t(phases + 1), 0);
  int64_t max_depth = 0, max_pixels = 0;
  for (int64_t ph = 0; ph < phases; ph++) {
    packed[size_t(ph + 1)] = packed[size_t(ph)] + depth_of(ph) * blocks * CB;
    max_depth = std::max(max_depth, depth_of(ph));
    max_pixels = std::max(max_pixels, axis_y(ph).count * axis_x(ph).count);
  }
  const int64_t group_size = packed[size_t(phases)];
  std::vector<A> wp(size_t(s.groups * group_size), A(0));
  parallel_for(s.groups * phases * blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t gpb = b0; gpb < b1; gpb++) {
      const int64_t b = gpb % blocks, ph = gpb / blocks % phases, g = gpb / blocks / phases;
      const PhaseAxis &ay = axis_y(ph), &ax = axis_x(ph);
      A* dst = wp.data() + g * group_size + packed[size_t(ph)] + b * depth_of(ph) * CB;
      for (int64_t c = 0; c < CB && b * CB + c < s.cg; c++) {
        const T* src = weight.ptr<T>() + (b * CB + c) * weight.strides[1];
        int64_t d = 0;
        for (int64_t o = 0; o < s.og; o++)
          for (int64_t i : ay.taps)
            for (int64_t j : ax.taps)
              dst[d++ * CB + c] = load(src[(g * s.og + o) * weight.strides[0] + i * weight.strides[2] + j * weight.strides[3]]);
      }
    }
  });

  // Tiling as in the forward conv2d (gemm_tiling), over (image, group, phase) units; phases
  // smaller than the largest leave their last tiles empty.
  const int64_t units = s.n * s.groups * phases;
  const GemmTiling tiling = gemm_tiling(units, max_pixels, max_depth, blocks, PW, int64_t(sizeof(A)));
  const int64_t tile = tiling.tile, tiles = tiling.tiles, chunk_blocks = tiling.chunk_blocks, chunks = tiling.chunks;

  parallel_for(units * tiles * chunks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<A> col(size_t(std::max<int64_t>(1, max_depth) * tile));
    std::vector<int64_t> where(static_cast<size_t>(tile));  // offset of each tile pixel in a grad_in plane
    int64_t built = -1;                                      // the unit and tile col holds
    for (int64_t task = t0; task < t1; task++) {
      const int64_t chunk = task % chunks, unit_tile = task / chunks;
      const int64_t unit = unit_tile / tiles, p0 = unit_tile % tiles * tile;
      const int64_t ph = unit % phases, g = unit / phases % s.groups, n = unit / phases / s.groups;
      const PhaseAxis &ay = axis_y(ph), &ax = axis_x(ph);
      const int64_t pixels = ay.count * ax.count;
      if (p0 >= pixels) continue;
      const int64_t count = std::min(tile, pixels - p0), depth = depth_of(ph);
      if (unit_tile != built) {
        const T* image = grad_out.ptr<T>() + n * grad_out.strides[0] + g * s.og * grad_out.strides[1];
        int64_t d = 0;
        for (int64_t o = 0; o < s.og; o++) {
          for (int64_t by : ay.base) {
            for (int64_t bx : ax.base) {
              const Line line{s.oh, s.ow, grad_out.strides[2], grad_out.strides[3], ax.count, by, 1, bx, 1};
              A* dst = col.data() + d++ * tile;
              unfold_line(dst, 1, image + o * grad_out.strides[1], line, p0, count);
              std::fill(dst + count, dst + tile, A(0));
            }
          }
        }
        for (int64_t q = 0; q < count; q++) {
          const int64_t y = ay.first + (p0 + q) / ax.count * s.sh, x = ax.first + (p0 + q) % ax.count * s.sw;
          where[size_t(q)] = y * grad_in.strides[2] + x * grad_in.strides[3];
        }
        built = unit_tile;
      }
      const int64_t b_end = std::min(blocks, (chunk + 1) * chunk_blocks);
      for (int64_t b = chunk * chunk_blocks; b < b_end; b++) {
        const A* w = wp.data() + g * group_size + packed[size_t(ph)] + b * depth * CB;
        for (int64_t q0 = 0; q0 < count; q0 += PW) {
          A acc[CB][PW];
          micro_tile<A, CB, NV>(w, col.data() + q0, depth, tile, &acc[0][0]);
          const int64_t q_end = std::min<int64_t>(PW, count - q0);
          for (int64_t c = 0; c < CB && b * CB + c < s.cg; c++) {
            T* plane = grad_in.ptr<T>() + n * grad_in.strides[0] + (g * s.cg + b * CB + c) * grad_in.strides[1];
            for (int64_t q = 0; q < q_end; q++) plane[where[size_t(q0 + q)]] = store<T>(acc[c][q]);
          }
        }
      }
    }
  });
}

template <class T>
void conv2d_backward_weight_typed(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                                  const ConvShape& s) {
  using A = C<T>;
  constexpr int OB = 6;                                   // output channels per register tile
  constexpr int NV = 2;                                   // vectors of k per register tile
  constexpr int KT = NV * kVectorBytes / int(sizeof(A));  // k per register tile (a strip)
  constexpr int64_t kTP = 128;                            // pixels per slice; fixes every sum's order
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

  // Tasks: (group, panel of k strips, chunk of OB-blocks of output channels). Panels of at most
  // 256 k, split further (down to one strip) and then the channels chunked while there are fewer
  // than 4 tasks per thread.
  const int64_t strips = (s.k + KT - 1) / KT, blocks = (s.og + OB - 1) / OB;
  const int64_t want = 4 * int64_t(num_threads());
  constexpr int64_t kPanelStrips = 256 / KT;
  int64_t panels = (strips + kPanelStrips - 1) / kPanelStrips;
  if (s.groups * panels < want) panels = std::min(strips, (want + s.groups - 1) / s.groups);
  const int64_t panel_strips = (strips + panels - 1) / panels;
  panels = (strips + panel_strips - 1) / panel_strips;
  const int64_t chunks_wanted = std::min(blocks, (want + s.groups * panels - 1) / (s.groups * panels));
  const int64_t chunk_blocks = (blocks + chunks_wanted - 1) / chunks_wanted;
  const int64_t chunks = (blocks + chunk_blocks - 1) / chunk_blocks;
  const int64_t ld = panel_strips * KT;

  std::vector<A> gw(size_t(s.o * s.k), A(0));  // grad_w as [o][k], each task its own rectangle
  parallel_for(s.groups * panels * chunks, 1, [&](int64_t t0, int64_t t1) {
    // Columns past a panel's k and channels past og hold zeros or an earlier task's values; the
    // sums they feed are dropped.
    std::vector<A> patches(size_t(kTP * ld), A(0));              // [pixel][k - k0]
    std::vector<A> grads(size_t(chunk_blocks * kTP * OB), A(0));  // [block][pixel][OB]
    for (int64_t task = t0; task < t1; task++) {
      const int64_t chunk = task % chunks, panel = task / chunks % panels, g = task / chunks / panels;
      const int64_t k0 = panel * ld, k1 = std::min(s.k, k0 + ld);
      const int64_t b0 = chunk * chunk_blocks, b1 = std::min(blocks, b0 + chunk_blocks);
      const int64_t o0 = b0 * OB, o1 = std::min(s.og, b1 * OB);
      for (int64_t n = 0; n < s.n; n++) {
        const T* image = in.ptr<T>() + n * in.strides[0] + g * s.cg * in.strides[1];
        const T* gy_image = gy + n * grad_out.strides[0] + g * s.og * grad_out.strides[1];
        for (int64_t p0 = 0; p0 < pixels; p0 += kTP) {
          const int64_t count = std::min(kTP, pixels - p0);
          for (int64_t k = k0; k < k1; k++) {
            const int64_t c = k / (s.kh * s.kw), i = k / s.kw % s.kh, j = k % s.kw;
            const Line line{s.h, s.w, in.strides[2], in.strides[3], s.ow, i * s.dh - s.ph, s.sh, j * s.dw - s.pw, s.sw};
            unfold_line(patches.data() + (k - k0), ld, image + c * in.strides[1], line, p0, count);
          }
          for (int64_t o = o0; o < o1; o++) {
            const T* plane = gy_image + o * grad_out.strides[1];
            A* dst = grads.data() + (o / OB - b0) * kTP * OB + o % OB;
            for (int64_t q = 0, y = p0 / s.ow, x = p0 % s.ow; q < count; q++) {
              dst[q * OB] = load(plane[y * grad_out.strides[2] + x * grad_out.strides[3]]);
              if (++x == s.ow) x = 0, y++;
            }
          }
          for (int64_t k = k0; k < k1; k += KT) {
            for (int64_t b = b0; b < b1; b++) {
              A acc[OB][KT];
              micro_tile<A, OB, NV>(grads.data() + (b - b0) * kTP * OB, patches.data() + (k - k0), count, ld, &acc[0][0]);
              const int64_t v_end = std::min<int64_t>(KT, k1 - k);
              for (int64_t o = 0; o < OB && b * OB + o < s.og; o++) {
                A* row = gw.data() + (g * s.og + b * OB + o) * s.k + k;
                for (int64_t v = 0; v < v_end; v++) row[v] += acc[o][v];
              }
            }
          }
        }
      }
    }
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
