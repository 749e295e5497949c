// conv.cu: 2-d convolution on the GPU (NCHW at the API, any strides), forward, input gradient and
// weight gradient: the kernel versions side by side and the dispatcher that fills the device
// table's conv2d, conv2d_backward_input and conv2d_backward_weight entries. cpu/kernels/image.cpp
// and image_backward.cpp are the reference (PyTorch's window rules; f32, bf16 and f16 accumulate in
// f32, f64 in f64, bf16 and f16 rounded once when stored). Every version is deterministic: no two threads
// write one element and every sum runs in an order fixed by the shapes (no float atomics).
//
// v1, direct: one thread per element of the result (a grid-stride loop) folding its window in
//   order: an output pixel sums channels x taps; an input-gradient pixel gathers the outputs whose
//   window covers it; a weight-gradient element sums over images and output pixels (one thread per
//   output channel also sums the bias gradient). The reference version: every operand comes from
//   global memory once per multiply-add with no reuse through shared memory or registers, so on an
//   H100/H200 it is bound by L1/L2 load issue at a few TFLOP/s. The default for depthwise-like
//   groups, where a GEMM would be a few channels wide and waste most of a tile.
//
// v2, implicit GEMM: each pass is one GEMM C[M][N] = sum_k A[m][k] B[k][n] per group whose operands
//   are gathered on the fly from the NCHW tensors, one BK-deep slice at a time, into shared memory
//   (the im2col matrix never exists in global memory):
//     forward        M = images x output pixels, N = output channels, K = input channels x taps;
//                    A = the image under each tap (zeros in the padding), B = the weight;
//     input grad     M = images x input pixels, N = input channels, K = output channels x taps;
//                    A = grad_out at (y + pad - tap * dilation) / stride where that divides exactly
//                    (the gather form of the transposed convolution: no col2im, so no two blocks
//                    write one pixel), B = the weight read per input channel;
//     weight grad    M = input channels x taps, N = output channels, K = images x output pixels;
//                    A = the image under each tap, B = grad_out. K is long and M x N small, so K is
//                    split across blocks (split-K) until the grid has ~2 blocks per SM: each block
//                    writes its partial tile to a workspace and a second kernel adds the splits in
//                    order; the bias gradient is one block per channel with a fixed tree.
//   Slices stage through registers into double-buffered shared memory (one barrier per slice; the
//   next slice's gather is in flight while the current one is multiplied). f32 and f64 multiply on
//   the CUDA cores: 64x64x16 block tiles, 256 threads with a 4x4 register tile each. bf16 and f16
//   (one kernel, the element type a template parameter) multiply on the tensor cores: mma.sync m16n8k16 (f32 accumulate) fed by ldmatrix (.trans where a tile is
//   stored depth-major), 64x64x32 block tiles, 4 warps of 32x32. Shared tiles keep each operand's
//   contiguous direction contiguous (the gather's stores do not conflict), rows padded by 16 bytes
//   so ldmatrix's 8 row addresses fall in 8 distinct bank groups. Fast paths by shape: pointwise
//   (1x1, stride 1, no padding) is a plain GEMM over pixels with no window arithmetic; 3x3 at stride
//   1 and 2 fix the taps and stride at compile time (the index divisions become multiplies); other
//   windows, dilation and groups take the general path. What it costs: every element of a slice
//   splits its k into (channel, tap) and checks the window, ~20 integer instructions per 2-byte
//   load, which on an H100/H200 outweighs the mma.sync work several times over (an estimated
//   60-100 TFLOP/s bf16 at Stable-Diffusion UNet shapes; f32 ~10-15 TFLOP/s, FMA- and gather-bound).
//
// v3, implicit GEMM by taps (forward and input gradient): K runs tap by tap, and within a tap over
//   the channels in BK-deep slices (the last one of a tap zero-padded), so a slice has one tap for
//   the whole block: each row's window check and address run once per slice, and an element costs
//   one multiply-add and a load. Same tiles and kernels as v2 (only the slice fetch differs); it
//   buys ~4-5x fewer gather instructions where the channels per tap are many (UNet: 320-1280), and
//   wastes a slice's tail where they are few (3 input channels: 13 of 16 slots are zeros), so the
//   dispatcher takes it from 16 channels per tap. The weight gradient keeps v2 (its taps are in M).
//
// The dispatcher: v1 where v2 would not fit 32-bit indices or a group has fewer than 8 (input,
// output) channel pairs; v2 on its pointwise path for 1x1 windows; v3 from 16 channels per tap;
// v2 otherwise (the weight gradient always v2). set_conv2d_version forces a version for the
// device's three entries (tests, bench), conv2d_last_kernel names what the last call launched.
#include <atomic>
#include <climits>
#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>

#include "cuda/image.cuh"

namespace emu::EMU_DEVICE_NS {
namespace conv {

using namespace image;

// ---- v1: direct -----------------------------------------------------------------------------

template <class T>
__global__ void direct_forward_kernel(Nchw out, Nchw in, Nchw weight, Window win, long long groups, const T* x, const T* w,
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
__global__ void direct_backward_input_kernel(Nchw gin, Nchw gout, Nchw weight, Window win, long long groups, const T* gy,
                                             const T* w, T* gx) {
  using A = C<T>;
  const long long cg = gin.c / groups, og = gout.c / groups;
  EMU_OUTPUT_LOOP(i, gin.n * gin.c * gin.h * gin.w) {
    long long n, c, y, x;
    position(i, gin, &n, &c, &y, &x);
    const long long g = c / cg;
    A acc = A(0);
    for (long long o = g * og; o < (g + 1) * og; o++) {
      for (long long r = 0; r < win.kh; r++) {
        const long long ty = y + win.ph - r * win.dh;  // = oy * stride for the output row this tap reads y from
        if (ty < 0 || ty % win.sh != 0 || ty / win.sh >= gout.h) continue;
        for (long long s = 0; s < win.kw; s++) {
          const long long tx = x + win.pw - s * win.dw;
          if (tx < 0 || tx % win.sw != 0 || tx / win.sw >= gout.w) continue;
          acc += load(gy[gout.at(n, o, ty / win.sh, tx / win.sw)]) * load(w[weight.at(o, c - g * cg, r, s)]);
        }
      }
    }
    gx[gin.at(n, c, y, x)] = cvt<T>(acc);
  }
}

template <class T>
__global__ void direct_backward_weight_kernel(Nchw gw, Nchw gout, Nchw in, Window win, long long groups, const T* gy,
                                              const T* x, T* gwp, T* gb, long long gb_stride) {
  using A = C<T>;
  const long long cg = in.c / groups, og = gout.c / groups;
  EMU_OUTPUT_LOOP(i, gw.n * gw.c * gw.h * gw.w) {
    long long o, ci, r, s;
    position(i, gw, &o, &ci, &r, &s);
    const long long c = o / og * cg + ci;
    A acc = A(0);
    for (long long n = 0; n < gout.n; n++)
      for (long long oy = 0; oy < gout.h; oy++) {
        const long long iy = oy * win.sh - win.ph + r * win.dh;
        if (iy < 0 || iy >= in.h) continue;
        for (long long ox = 0; ox < gout.w; ox++) {
          const long long ix = ox * win.sw - win.pw + s * win.dw;
          if (ix < 0 || ix >= in.w) continue;
          acc += load(gy[gout.at(n, o, oy, ox)]) * load(x[in.at(n, c, iy, ix)]);
        }
      }
    gwp[gw.at(o, ci, r, s)] = cvt<T>(acc);
    if (gb && ci == 0 && r == 0 && s == 0) {  // one thread per output channel also sums its bias gradient,
      A sum = A(0);                             // by rows, then images (as the CPU: shorter chains)
      for (long long n = 0; n < gout.n; n++) {
        A image_sum = A(0);
        for (long long oy = 0; oy < gout.h; oy++) {
          A row_sum = A(0);
          for (long long ox = 0; ox < gout.w; ox++) row_sum += load(gy[gout.at(n, o, oy, ox)]);
          image_sum += row_sum;
        }
        sum += image_sum;
      }
      gb[o * gb_stride] = cvt<T>(sum);
    }
  }
}

// ---- v2: implicit GEMM, the operand gathers ---------------------------------------------------

struct Geometry {
  Nchw x, w, y;  // image, weight, output (grad_in has the image's shape, grad_out the output's)
  Window win;
  int cg, og;  // input and output channels per group
};

// The fast paths fix the taps (KS x KS) and the stride (ST on both axes) at compile time; 0 leaves
// them to the Window. KS = ST = 1 is the pointwise convolution, which the dispatcher takes only
// without padding: A is the image itself, a plain GEMM over pixels.
template <int KS, int ST>
struct Taps {
  static constexpr bool kPointwise = KS == 1 && ST == 1;
  __device__ static int kh(const Window& w) { return KS ? KS : int(w.kh); }
  __device__ static int kw(const Window& w) { return KS ? KS : int(w.kw); }
  __device__ static int sh(const Window& w) { return ST ? ST : int(w.sh); }
  __device__ static int sw(const Window& w) { return ST ? ST : int(w.sw); }
  // k = (channel, tap row, tap column) split into its parts.
  __device__ static void split(const Window& w, int k, int* c, int* r, int* s) {
    const int taps = kh(w) * kw(w), rs = k % taps;
    *c = k / taps;
    *r = rs / kw(w);
    *s = rs % kw(w);
  }
};

// k = (image, row, column) over a [.., h, w] pixel grid, split into its parts.
__device__ __forceinline__ void split_pixel(const Nchw& grid, int k, int* n, int* y, int* x) {
  const int w = int(grid.w), hw = int(grid.h) * w, p = k % hw;
  *n = k / hw;
  *y = p / w;
  *x = p % w;
}

// at(row, k) of a gather whose K runs over (channel, tap): the channel's element under the tap,
// from the gather's tap() (the address of channel 0 under tap (r, s), null where the tap reads
// padding) and channel_stride().
template <class Tp, class Gather, class Row>
__device__ typename Gather::Elem tap_at(const Gather& g, const Row& row, int k) {
  if constexpr (Tp::kPointwise) {
    return row.base[k * g.channel_stride()];
  } else {
    int c, r, s;
    Tp::split(g.g.win, k, &c, &r, &s);
    const typename Gather::Elem* p = g.tap(row, r, s);
    return p ? p[c * g.channel_stride()] : typename Gather::Elem{};
  }
}

// Each gather gives one operand of the GEMM of group `group`: row(group, i) precomputes what
// element (i, k) needs for every k (a null base: i is past the operand's edge, read as zeros), and
// at(row, k) reads it (zeros in the padding). kFastK: the operand's memory runs along k, so the
// stager walks it in k; otherwise along i.

// Forward A[m][k]: the image under tap (r, s) of output pixel m = (n, oy, ox), channel c.
template <class T, int KS, int ST>
struct ImageByPixel {
  using Elem = T;
  using Tp = Taps<KS, ST>;
  static constexpr bool kFastK = false;
  struct Row { const T* base; int y0, x0; };
  Geometry g;
  const T* x;
  __device__ Row row(int group, int m) const {
    int n, oy, ox;
    split_pixel(g.y, m, &n, &oy, &ox);
    const T* base = x + n * g.x.sn + (long long)group * g.cg * g.x.sc;
    if constexpr (Tp::kPointwise) return {base + oy * g.x.sh + ox * g.x.sw, 0, 0};
    else return {base, oy * Tp::sh(g.win) - int(g.win.ph), ox * Tp::sw(g.win) - int(g.win.pw)};
  }
  __device__ T at(const Row& row, int k) const { return tap_at<Tp>(*this, row, k); }
  __device__ const T* tap(const Row& row, int r, int s) const {
    if constexpr (Tp::kPointwise) {
      return row.base;
    } else {
      const int iy = row.y0 + r * int(g.win.dh), ix = row.x0 + s * int(g.win.dw);
      return iy < 0 || iy >= g.x.h || ix < 0 || ix >= g.x.w ? nullptr : row.base + iy * g.x.sh + ix * g.x.sw;
    }
  }
  __device__ long long channel_stride() const { return g.x.sc; }
};

// The weight as B: the forward's B[k][o] (kByOutput: a row per output channel o, k = (c, r, s))
// or the input gradient's B[k][c] (a row per input channel c, k = (o, r, s)).
template <class T, int KS, int ST, bool kByOutput>
struct WeightGather {
  using Elem = T;
  using Tp = Taps<KS, ST>;
  static constexpr bool kFastK = true;
  struct Row { const T* base; };
  Geometry g;
  const T* w;
  __device__ Row row(int group, int i) const {
    if constexpr (kByOutput) return {w + ((long long)group * g.og + i) * g.w.sn};
    else return {w + (long long)group * g.og * g.w.sn + i * g.w.sc};
  }
  __device__ T at(const Row& row, int k) const { return tap_at<Tp>(*this, row, k); }
  __device__ const T* tap(const Row& row, int r, int s) const { return row.base + r * g.w.sh + s * g.w.sw; }
  __device__ long long channel_stride() const { return kByOutput ? g.w.sc : g.w.sn; }
};

// Input-gradient A[m][k]: grad_out of output channel o at the output pixel whose tap (r, s) reads
// input pixel m = (n, y, x): oy = (y + ph - r dh) / sh when that divides exactly and lies inside.
template <class T, int KS, int ST>
struct GradOutByInputPixel {
  using Elem = T;
  using Tp = Taps<KS, ST>;
  static constexpr bool kFastK = false;
  struct Row { const T* base; int ty, tx; };
  Geometry g;
  const T* gy;
  __device__ Row row(int group, int m) const {
    int n, y, x;
    split_pixel(g.x, m, &n, &y, &x);
    const T* base = gy + n * g.y.sn + (long long)group * g.og * g.y.sc;
    if constexpr (Tp::kPointwise) return {base + y * g.y.sh + x * g.y.sw, 0, 0};
    else return {base, y + int(g.win.ph), x + int(g.win.pw)};
  }
  __device__ T at(const Row& row, int k) const { return tap_at<Tp>(*this, row, k); }
  __device__ const T* tap(const Row& row, int r, int s) const {
    if constexpr (Tp::kPointwise) {
      return row.base;
    } else {
      const int ty = row.ty - r * int(g.win.dh), tx = row.tx - s * int(g.win.dw);
      if (ty < 0 || tx < 0 || ty % Tp::sh(g.win) != 0 || tx % Tp::sw(g.win) != 0) return nullptr;
      const int oy = ty / Tp::sh(g.win), ox = tx / Tp::sw(g.win);
      return oy >= g.y.h || ox >= g.y.w ? nullptr : row.base + oy * g.y.sh + ox * g.y.sw;
    }
  }
  __device__ long long channel_stride() const { return g.y.sc; }
};

// Weight-gradient A[j][k]: the image under tap j = (c, r, s) at output pixel k = (n, oy, ox).
template <class T, int KS, int ST>
struct ImageByTap {
  using Elem = T;
  using Tp = Taps<KS, ST>;
  static constexpr bool kFastK = true;
  struct Row { const T* base; int y0, x0; };
  Geometry g;
  const T* x;
  __device__ Row row(int group, int j) const {
    int c, r, s;
    Tp::split(g.win, j, &c, &r, &s);
    return {x + ((long long)group * g.cg + c) * g.x.sc, r * int(g.win.dh) - int(g.win.ph), s * int(g.win.dw) - int(g.win.pw)};
  }
  __device__ T at(const Row& row, int k) const {
    int n, oy, ox;
    split_pixel(g.y, k, &n, &oy, &ox);
    if constexpr (Tp::kPointwise) {
      return row.base[n * g.x.sn + oy * g.x.sh + ox * g.x.sw];
    } else {
      const int iy = oy * Tp::sh(g.win) + row.y0, ix = ox * Tp::sw(g.win) + row.x0;
      if (iy < 0 || iy >= g.x.h || ix < 0 || ix >= g.x.w) return T{};
      return row.base[n * g.x.sn + iy * g.x.sh + ix * g.x.sw];
    }
  }
};

// Weight-gradient B[k][o]: grad_out of output channel o at output pixel k = (n, oy, ox).
template <class T>
struct GradOutByChannel {
  using Elem = T;
  static constexpr bool kFastK = true;
  struct Row { const T* base; };
  Geometry g;
  const T* gy;
  __device__ Row row(int group, int o) const { return {gy + ((long long)group * g.og + o) * g.y.sc}; }
  __device__ T at(const Row& row, int k) const {
    int n, oy, ox;
    split_pixel(g.y, k, &n, &oy, &ox);
    return row.base[n * g.y.sn + oy * g.y.sh + ox * g.y.sw];
  }
};

// ---- v2 and v3: the three passes as GEMMs (operands, sizes, where C goes) ----------------------

// v3's order of K: tap by tap (row-major over the window's kw columns), and within a tap the
// channels in slices of BK (the last slice of a tap zero-padded: `cslices` slices per tap).
struct TapSlices {
  int channels, kw, taps, cslices;
};

template <class T, int KS, int ST, bool kTaps>
struct Forward {
  using Elem = T;
  using A = ImageByPixel<T, KS, ST>;
  using B = WeightGather<T, KS, ST, true>;
  static constexpr bool kTapMajor = kTaps;
  A a;
  B b;
  int M, N, K;
  TapSlices slices;
  const T* bias;
  long long bias_stride;
  T* y;
  __device__ void store(int group, int, int m, int o, C<T> acc) const {
    const Geometry& g = a.g;
    int n, oy, ox;
    split_pixel(g.y, m, &n, &oy, &ox);
    const long long oc = (long long)group * g.og + o;
    if (bias) acc += load(bias[oc * bias_stride]);
    y[g.y.at(n, oc, oy, ox)] = cvt<T>(acc);
  }
};

template <class T, int KS, int ST, bool kTaps>
struct BackwardInput {
  using Elem = T;
  using A = GradOutByInputPixel<T, KS, ST>;
  using B = WeightGather<T, KS, ST, false>;
  static constexpr bool kTapMajor = kTaps;
  A a;
  B b;
  int M, N, K;
  TapSlices slices;
  T* gx;
  __device__ void store(int group, int, int m, int c, C<T> acc) const {
    const Geometry& g = a.g;
    int n, y, x;
    split_pixel(g.x, m, &n, &y, &x);
    gx[g.x.at(n, (long long)group * g.cg + c, y, x)] = cvt<T>(acc);
  }
};

// C[j][o] is grad_w[o][j] (j = (c, r, s)); with split-K it goes to partial[split][o][j] instead.
template <class T, int KS, int ST>
struct BackwardWeight {
  using Elem = T;
  using A = ImageByTap<T, KS, ST>;
  using B = GradOutByChannel<T>;
  static constexpr bool kTapMajor = false;
  A a;
  B b;
  int M, N, K;
  T* gw;
  C<T>* partial;
  __device__ void store(int group, int split, int j, int o, C<T> acc) const {
    const Geometry& g = a.g;
    const long long oc = (long long)group * g.og + o;
    if (partial) {
      partial[((long long)split * g.w.n + oc) * M + j] = acc;
      return;
    }
    int c, r, s;
    Taps<KS, ST>::split(g.win, j, &c, &r, &s);
    gw[g.w.at(oc, c, r, s)] = cvt<T>(acc);
  }
};

// ---- v2 and v3: the tile loop -----------------------------------------------------------------

// Stages one BK-deep slice of an operand's BO-wide tile through registers: gather() (v2: depths
// [k0, k0 + BK)) or gather_tap() (v3: channels [c0, c0 + BK) under one tap) reads it from global
// memory, with zeros past the operand's edge, the split's depth and the channels; put() writes it
// to shared memory. Threads walk the operand along its contiguous direction: a kFastK operand
// in runs of kRun consecutive k (BK / kRun threads per row, kRows rows per thread), any other
// with one fixed row per thread (threads >= BO) and kPer depths.
template <class Gather, int BO, int BK, int kThreads>
struct Stager {
  using T = typename Gather::Elem;
  static constexpr bool kFastK = Gather::kFastK;
  static constexpr int kPer = BO * BK / kThreads;
  static constexpr int kRun = kFastK ? (kPer < 8 ? kPer : 8) : 1;
  static constexpr int kRows = kFastK ? kPer / kRun : 1;
  static_assert(kFastK ? kThreads % (BK / kRun) == 0 : kThreads % BO == 0, "Stager: threads must tile the slice");

  typename Gather::Row rows[kRows];
  T values[kPer];

  __device__ static int outer(int i) {
    return kFastK ? int(threadIdx.x) / (BK / kRun) + i / kRun * (kThreads / (BK / kRun)) : int(threadIdx.x) % BO;
  }
  __device__ static int row_of(int i) { return kFastK ? i / kRun : 0; }
  __device__ static int depth(int i) {
    return kFastK ? int(threadIdx.x) % (BK / kRun) * kRun + i % kRun : int(threadIdx.x) / BO + i * (kThreads / BO);
  }
  __device__ void init(const Gather& g, int group, int origin, int size) {
#pragma unroll
    for (int r = 0; r < kRows; r++) {
      const int i = origin + outer(r * kRun);  // the first element of row r
      rows[r] = i < size ? g.row(group, i) : typename Gather::Row{};
    }
  }
  __device__ void gather(const Gather& g, int k0, int kend) {
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const auto& row = rows[row_of(i)];
      const int k = k0 + depth(i);
      values[i] = row.base && k < kend ? g.at(row, k) : T{};
    }
  }
  // The tap is the same for the whole slice, so each row's window arithmetic runs once per slice
  // and an element costs one multiply-add of its channel.
  __device__ void gather_tap(const Gather& g, int r, int s, int c0, int channels) {
    const T* taps[kRows];
#pragma unroll
    for (int j = 0; j < kRows; j++) taps[j] = rows[j].base ? g.tap(rows[j], r, s) : nullptr;
    const long long stride = g.channel_stride();
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const T* p = taps[row_of(i)];
      const int c = c0 + depth(i);
      values[i] = p && c < channels ? p[c * stride] : T{};
    }
  }
  // tile(depth, outer) at tile[depth * ld + outer] (kDepthMajor) or tile[outer * ld + depth].
  template <bool kDepthMajor, class S>
  __device__ void put(S* tile, int ld) const {
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int o = outer(i), d = depth(i);
      S& slot = kDepthMajor ? tile[d * ld + o] : tile[o * ld + d];
      if constexpr (std::is_same_v<S, T>) slot = values[i];
      else slot = load(values[i]);
    }
  }
};

// The slice of K a block of grid z handles: the group is z / splits, the split z % splits.
struct Slice {
  int group, split, begin, end;
  __device__ Slice(int K, int kchunk, int splits)
      : group(int(blockIdx.z) / splits), split(int(blockIdx.z) % splits), begin(split * kchunk),
        end(K - begin < kchunk ? K : begin + kchunk) {}
};

// The number of BK-deep slices of a block's depth.
template <int BK, class Op>
__device__ int slice_count(const Op& op, const Slice& slice) {
  if constexpr (Op::kTapMajor) return op.slices.taps * op.slices.cslices;
  else return (slice.end - slice.begin + BK - 1) / BK;
}

// Gathers slice `step` of the block's depth into the stagers: v2 walks K in order, v3 tap by tap.
template <int BK, class Op, class SA, class SB>
__device__ void fetch(const Op& op, const Slice& slice, int step, SA& sa, SB& sb) {
  if constexpr (Op::kTapMajor) {
    const TapSlices& t = op.slices;
    const int tap = step / t.cslices, c0 = step % t.cslices * BK;
    sa.gather_tap(op.a, tap / t.kw, tap % t.kw, c0, t.channels);
    sb.gather_tap(op.b, tap / t.kw, tap % t.kw, c0, t.channels);
  } else {
    sa.gather(op.a, slice.begin + step * BK, slice.end);
    sb.gather(op.b, slice.begin + step * BK, slice.end);
  }
}

// f32 and f64 on the CUDA cores: a BM x BN block tile, each thread a TM x TN register tile whose
// rows and columns are strided by the thread grid (so a warp's shared-memory reads are consecutive
// or broadcast, and its stores of C run along M, the output's contiguous direction).
template <class Op, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__(BM / TM * (BN / TN)) igemm_simt_kernel(Op op, int kchunk, int splits) {
  using V = C<typename Op::Elem>;
  constexpr int kTX = BM / TM, kTY = BN / TN, kThreads = kTX * kTY;
  EMU_SHARED(V, as, [2][BK][BM + 1]);  // depth-major; +1 keeps the k-runs of kFastK stores off one bank
  EMU_SHARED(V, bs, [2][BK][BN + 1]);
  const Slice slice(op.K, kchunk, splits);
  const int m0 = int(blockIdx.x) * BM, n0 = int(blockIdx.y) * BN;
  Stager<typename Op::A, BM, BK, kThreads> sa;
  Stager<typename Op::B, BN, BK, kThreads> sb;
  sa.init(op.a, slice.group, m0, op.M);
  sb.init(op.b, slice.group, n0, op.N);
  const int tx = int(threadIdx.x) % kTX, ty = int(threadIdx.x) / kTX;
  V acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; i++)
#pragma unroll
    for (int j = 0; j < TN; j++) acc[i][j] = V(0);

  const int steps = slice_count<BK>(op, slice);
  fetch<BK>(op, slice, 0, sa, sb);
  sa.template put<true>(&as[0][0][0], BM + 1);
  sb.template put<true>(&bs[0][0][0], BN + 1);
  __syncthreads();
  for (int step = 0; step < steps; step++) {
    const int cur = step & 1;
    const bool more = step + 1 < steps;
    if (more) fetch<BK>(op, slice, step + 1, sa, sb);  // the next slice's gather overlaps this slice's multiply-adds
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
      V a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i++) a[i] = as[cur][kk][tx + i * kTX];
#pragma unroll
      for (int j = 0; j < TN; j++) b[j] = bs[cur][kk][ty + j * kTY];
#pragma unroll
      for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
    }
    if (more) {  // the other buffer was last read before the previous barrier
      sa.template put<true>(&as[cur ^ 1][0][0], BM + 1);
      sb.template put<true>(&bs[cur ^ 1][0][0], BN + 1);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; i++)
#pragma unroll
    for (int j = 0; j < TN; j++) {
      const int m = m0 + tx + i * kTX, n = n0 + ty + j * kTY;
      if (m < op.M && n < op.N) op.store(slice.group, slice.split, m, n, acc[i][j]);
    }
}

// bf16 and f16 (T = Op::Elem) on the tensor cores: WM x WN warps, each a 32x32 warp tile of 2 x 4
// mma.sync m16n8k16 (fragment layouts: shared/reference/kernels.md). A tile stored [m][k] loads its 16x16 fragments
// with ldmatrix.x4, one stored [k][m] with ldmatrix.x4.trans; B likewise ([n][k] plain, [k][n]
// .trans), one x4 covering two n8 fragments.
template <class Op, int WM, int WN>
__global__ void __launch_bounds__(32 * WM * WN) igemm_mma_kernel(Op op, int kchunk, int splits) {
  using T = typename Op::Elem;
  using A = typename Op::A;
  using B = typename Op::B;
  constexpr int BM = 32 * WM, BN = 32 * WN, BK = 32, kThreads = 32 * WM * WN;
  constexpr int kLdA = A::kFastK ? BK + 8 : BM + 8, kLdB = B::kFastK ? BK + 8 : BN + 8;
  constexpr int kSizeA = (A::kFastK ? BM : BK) * kLdA, kSizeB = (B::kFastK ? BN : BK) * kLdB;
  EMU_SHARED(T, as, [2][kSizeA]);
  EMU_SHARED(T, bs, [2][kSizeB]);
  const Slice slice(op.K, kchunk, splits);
  const int m0 = int(blockIdx.x) * BM, n0 = int(blockIdx.y) * BN;
  Stager<A, BM, BK, kThreads> sa;
  Stager<B, BN, BK, kThreads> sb;
  sa.init(op.a, slice.group, m0, op.M);
  sb.init(op.b, slice.group, n0, op.N);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int wm = warp % WM * 32, wn = warp / WM * 32;
  float acc[2][4][4] = {};

  const int steps = slice_count<BK>(op, slice);
  fetch<BK>(op, slice, 0, sa, sb);
  sa.template put<!A::kFastK>(&as[0][0], kLdA);
  sb.template put<!B::kFastK>(&bs[0][0], kLdB);
  __syncthreads();
  for (int step = 0; step < steps; step++) {
    const int cur = step & 1;
    const bool more = step + 1 < steps;
    if (more) fetch<BK>(op, slice, step + 1, sa, sb);
    const T* a_tile = as[cur];
    const T* b_tile = bs[cur];
#pragma unroll
    for (int ks = 0; ks < BK; ks += 16) {
      uint32_t af[2][4], bf[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; mi++) {  // lanes 0-15 give rows (m or k) 0-15 at column 0, lanes 16-31 at column 8
        const int m = wm + mi * 16;
        if constexpr (A::kFastK) ldmatrix_x4(af[mi], &a_tile[(m + lane % 16) * kLdA + ks + lane / 16 * 8]);
        else ldmatrix_x4_trans(af[mi], &a_tile[(ks + lane / 16 * 8 + lane % 8) * kLdA + m + lane / 8 % 2 * 8]);
      }
#pragma unroll
      for (int p = 0; p < 2; p++) {  // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
        const int n = wn + p * 16;
        if constexpr (B::kFastK) ldmatrix_x4(bf[p], &b_tile[(n + lane % 8 + lane / 16 * 8) * kLdB + ks + lane / 8 % 2 * 8]);
        else ldmatrix_x4_trans(bf[p], &b_tile[(ks + lane % 8 + lane / 8 % 2 * 8) * kLdB + n + lane / 16 * 8]);
      }
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int nj = 0; nj < 4; nj++) {
          const uint32_t b[2] = {bf[nj / 2][nj % 2 * 2], bf[nj / 2][nj % 2 * 2 + 1]};
          mma_m16n8k16<T>(acc[mi][nj], af[mi], b, acc[mi][nj]);
        }
    }
    if (more) {
      sa.template put<!A::kFastK>(&as[cur ^ 1][0], kLdA);
      sb.template put<!B::kFastK>(&bs[cur ^ 1][0], kLdB);
    }
    __syncthreads();
  }
  const int g = lane / 4, t = lane % 4;  // C fragment: rows g and g + 8, columns 2t and 2t + 1
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int nj = 0; nj < 4; nj++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int m = m0 + wm + mi * 16 + g + e / 2 * 8, n = n0 + wn + nj * 8 + t * 2 + e % 2;
        if (m < op.M && n < op.N) op.store(slice.group, slice.split, m, n, acc[mi][nj][e]);
      }
}

// grad_w[o][j] = the sum of the splits' partial[s][o][j], s in order.
template <class T>
__global__ void split_sum_kernel(Nchw gw, int splits, const C<T>* partial, T* out) {
  const long long per_split = gw.n * gw.c * gw.h * gw.w;
  EMU_OUTPUT_LOOP(i, per_split) {
    C<T> sum = partial[i];
    for (int s = 1; s < splits; s++) sum += partial[s * per_split + i];
    long long o, c, r, k;
    position(i, gw, &o, &c, &r, &k);
    out[gw.at(o, c, r, k)] = cvt<T>(sum);
  }
}

// grad_bias[o]: one block per output channel, strided partial sums then a fixed tree.
constexpr int kBiasThreads = 256;
template <class T>
__global__ void __launch_bounds__(kBiasThreads) bias_grad_kernel(Nchw gout, const T* gy, T* gb, long long gb_stride) {
  using A = C<T>;
  EMU_SHARED(A, sums, [kBiasThreads]);
  const long long o = blockIdx.x, pixels = gout.h * gout.w;
  A sum = A(0);
  for (long long e = threadIdx.x; e < gout.n * pixels; e += kBiasThreads)
    sum += load(gy[gout.at(e / pixels, o, e % pixels / gout.w, e % gout.w)]);
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kBiasThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) gb[o * gb_stride] = cvt<T>(sums[0]);
}

// ---- the dispatcher ---------------------------------------------------------------------------

std::atomic<int> forced_version{0};
std::mutex last_kernel_mutex;
std::string last_kernel;

template <auto Kernel, typename... Args>
void run(const std::string& note, dim3 grid, dim3 block, Args... args) {
  {
    std::lock_guard<std::mutex> lock(last_kernel_mutex);
    last_kernel = std::string(kernel_name<Kernel>()) + note;
  }
  launch<Kernel>(grid, block, 0, Stream{}, args...);
}

// Device memory for one call's split-K partial tiles.
class Workspace {
 public:
  explicit Workspace(size_t bytes) : rt_(runtime()), data_(bytes ? rt_.allocate(bytes, Stream{}) : nullptr) {}
  ~Workspace() {
    if (data_) rt_.deallocate(data_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return data_; }

 private:
  DeviceRuntime& rt_;
  void* data_;
};

// Which version runs a pass whose per-group GEMM is M x N x K: the forced one; else v1 where v2
// does not fit 32-bit indices or the group has fewer than 8 (input, output) channel pairs (a
// depthwise-like GEMM a few channels wide would leave most of a 64-wide tile empty); else v3 where
// the pass's K runs over taps and at least 16 channels per tap (so little of a slice is padding),
// unless the window is pointwise (v2's plain GEMM, no window arithmetic at all); else v2.
int version_for(const char* op, long long M, long long N, long long K, long long groups, long long channel_pairs,
                long long tap_channels, bool pointwise) {
  const bool fits = M < INT_MAX && N < INT_MAX && K < INT_MAX && groups <= 65535;
  const int forced = forced_version.load();
  if (forced >= 2 && !fits)
    fail(ErrorKind::Shape, std::string(op) + ": the implicit-GEMM versions (2, 3) need GEMM sizes below 2^31 and at most 65535 groups");
  if (forced != 0) return forced;
  if (!fits || channel_pairs < 8) return 1;
  return tap_channels >= 16 && !pointwise ? 3 : 2;
}

bool pointwise(const Window& w) { return w.kh == 1 && w.kw == 1 && w.sh == 1 && w.sw == 1 && w.ph == 0 && w.pw == 0; }

// Calls f(KS, ST) with the compile-time taps and stride of the fast path that covers the window.
template <class F>
void with_taps(const Window& w, F&& f) {
  using std::integral_constant;
  if (pointwise(w)) f(integral_constant<int, 1>{}, integral_constant<int, 1>{});
  else if (w.kh == 3 && w.kw == 3 && w.sh == 1 && w.sw == 1) f(integral_constant<int, 3>{}, integral_constant<int, 1>{});
  else if (w.kh == 3 && w.kw == 3 && w.sh == 2 && w.sw == 2) f(integral_constant<int, 3>{}, integral_constant<int, 2>{});
  else f(integral_constant<int, 0>{}, integral_constant<int, 0>{});
}

// Launches the GEMM of `op` for every group and split: bf16 and f16 on the tensor cores, f32 and f64 on
// the CUDA cores (v3's slices per tap depend on the kernel's BK).
template <class Op>
void run_igemm(Op op, int groups, int splits, int kchunk) {
  const std::string note = splits > 1 ? ", split-K " + std::to_string(splits) : "";
  const auto per_tap = [&](int bk) {
    if constexpr (Op::kTapMajor) op.slices.cslices = (op.slices.channels + bk - 1) / bk;
  };
  if constexpr (kIsHalf<typename Op::Elem>) {
    constexpr int WM = 2, WN = 2;
    per_tap(32);
    const dim3 grid(unsigned((op.M + 32 * WM - 1) / (32 * WM)), unsigned((op.N + 32 * WN - 1) / (32 * WN)), unsigned(groups * splits));
    run<igemm_mma_kernel<Op, WM, WN>>(note, grid, dim3(32 * WM * WN), op, kchunk, splits);
  } else {
    constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
    per_tap(BK);
    const dim3 grid(unsigned((op.M + BM - 1) / BM), unsigned((op.N + BN - 1) / BN), unsigned(groups * splits));
    run<igemm_simt_kernel<Op, BM, BN, BK, TM, TN>>(note, grid, dim3(BM / TM * (BN / TN)), op, kchunk, splits);
  }
}

Geometry geometry(const View& image, const View& weight, const View& out, const Window& win, int64_t groups) {
  return {nchw(image), nchw(weight), nchw(out), win, int(image.shape[1] / groups), int(weight.shape[0] / groups)};
}

}  // namespace conv

void set_conv2d_version(int version) {
  if (version < 0 || version > 3)
    fail(ErrorKind::Value, "conv2d: unknown kernel version " + std::to_string(version) +
                               " (0 = the dispatcher's choice, 1 = direct, 2 = implicit GEMM, 3 = implicit GEMM by taps)");
  conv::forced_version.store(version);
}

const char* conv2d_last_kernel() {
  std::lock_guard<std::mutex> lock(conv::last_kernel_mutex);
  static thread_local std::string copy;
  copy = conv::last_kernel;
  return copy.c_str();
}

void conv2d(const View& out, const View& in, const View& weight, const View* bias, const int64_t* stride,
            const int64_t* padding, const int64_t* dilation, int64_t groups) {
  using namespace conv;
  const char* op = "conv2d";
  const Window w = conv_window(op, in, weight, out, stride, padding, dilation, groups);
  const long long o = weight.shape[0];
  if (bias && bias->dtype != in.dtype) fail(ErrorKind::DType, "conv2d: input, weight, bias and output must share a dtype");
  if (bias && (bias->ndim != 1 || bias->shape[0] != o)) fail(ErrorKind::Shape, "conv2d: bias must have shape [" + std::to_string(o) + "]");
  const long long n = out.numel();
  if (n == 0) return;
  const long long M = out.shape[0] * out.shape[2] * out.shape[3], N = o / groups, K = weight.shape[1] * w.kh * w.kw;
  const int version = version_for(op, M, N, K, groups, weight.shape[1] * N, weight.shape[1], pointwise(w));
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    const T* bias_data = bias ? static_cast<const T*>(bias->data) : nullptr;
    const long long bias_stride = bias ? (long long)bias->strides[0] : 0LL;
    if (version == 1) {
      run<direct_forward_kernel<T>>("", dim3(blocks_for(n)), dim3(kThreads), nchw(out), nchw(in), nchw(weight), w,
                                    (long long)groups, static_cast<const T*>(in.data), static_cast<const T*>(weight.data),
                                    bias_data, bias_stride, static_cast<T*>(out.data));
      return;
    }
    const Geometry g = geometry(in, weight, out, w, groups);
    const auto run_gemm = [&](auto ks, auto st, auto by_taps) {
      using Op = Forward<T, decltype(ks)::value, decltype(st)::value, decltype(by_taps)::value>;
      const TapSlices slices{int(weight.shape[1]), int(w.kw), int(w.kh * w.kw), 0};
      const Op p{{g, static_cast<const T*>(in.data)}, {g, static_cast<const T*>(weight.data)}, int(M), int(N), int(K),
                 slices, bias_data, bias_stride, static_cast<T*>(out.data)};
      run_igemm(p, int(groups), 1, int(K));
    };
    if (version == 3) run_gemm(std::integral_constant<int, 0>{}, std::integral_constant<int, 0>{}, std::true_type{});
    else with_taps(w, [&](auto ks, auto st) { run_gemm(ks, st, std::false_type{}); });
  });
}

void conv2d_backward_input(const View& grad_in, const View& grad_out, const View& weight, const int64_t* stride,
                           const int64_t* padding, const int64_t* dilation, int64_t groups) {
  using namespace conv;
  const char* op = "conv2dBackwardInput";
  const Window w = conv_window(op, grad_in, weight, grad_out, stride, padding, dilation, groups);
  const long long n = grad_in.numel();
  if (n == 0) return;
  const long long M = grad_in.shape[0] * grad_in.shape[2] * grad_in.shape[3], N = weight.shape[1];
  const long long K = weight.shape[0] / groups * w.kh * w.kw;
  const int version = version_for(op, M, N, K, groups, N * (weight.shape[0] / groups), weight.shape[0] / groups, pointwise(w));
  dispatch_float(grad_in.dtype, op, [&](auto t) {
    using T = decltype(t);
    if (version == 1) {
      run<direct_backward_input_kernel<T>>("", dim3(blocks_for(n)), dim3(kThreads), nchw(grad_in), nchw(grad_out), nchw(weight), w,
                                           (long long)groups, static_cast<const T*>(grad_out.data),
                                           static_cast<const T*>(weight.data), static_cast<T*>(grad_in.data));
      return;
    }
    const Geometry g = geometry(grad_in, weight, grad_out, w, groups);
    const auto run_gemm = [&](auto ks, auto st, auto by_taps) {
      using Op = BackwardInput<T, decltype(ks)::value, decltype(st)::value, decltype(by_taps)::value>;
      const TapSlices slices{int(weight.shape[0] / groups), int(w.kw), int(w.kh * w.kw), 0};
      const Op p{{g, static_cast<const T*>(grad_out.data)}, {g, static_cast<const T*>(weight.data)}, int(M), int(N), int(K),
                 slices, static_cast<T*>(grad_in.data)};
      run_igemm(p, int(groups), 1, int(K));
    };
    if (version == 3) run_gemm(std::integral_constant<int, 0>{}, std::integral_constant<int, 0>{}, std::true_type{});
    else with_taps(w, [&](auto ks, auto st) { run_gemm(ks, st, std::false_type{}); });
  });
}

void conv2d_backward_weight(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                            const int64_t* stride, const int64_t* padding, const int64_t* dilation, int64_t groups) {
  using namespace conv;
  const char* op = "conv2dBackwardWeight";
  const Window w = conv_window(op, in, grad_w, grad_out, stride, padding, dilation, groups);
  if (grad_bias && (grad_bias->ndim != 1 || grad_bias->shape[0] != grad_w.shape[0]))
    fail(ErrorKind::Shape, "conv2dBackwardWeight: grad_bias must have shape [" + std::to_string(grad_w.shape[0]) + "]");
  if (grad_bias && grad_bias->dtype != in.dtype) fail(ErrorKind::DType, "conv2dBackwardWeight: grad_bias must have the input's dtype");
  const long long n = grad_w.numel();
  if (n == 0) return;
  const long long M = grad_w.shape[1] * w.kh * w.kw, N = grad_w.shape[0] / groups;
  const long long K = grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[3];
  // v3 changes only the passes whose K runs over taps; here the taps are in M, so it runs v2.
  const int version = version_for(op, M, N, K, groups, grad_w.shape[1] * N, 0, pointwise(w)) == 1 ? 1 : 2;
  dispatch_float(in.dtype, op, [&](auto t) {
    using T = decltype(t);
    T* gb = grad_bias ? static_cast<T*>(grad_bias->data) : nullptr;
    const long long gb_stride = grad_bias ? (long long)grad_bias->strides[0] : 0LL;
    if (version == 1) {
      run<direct_backward_weight_kernel<T>>("", dim3(blocks_for(n)), dim3(kThreads), nchw(grad_w), nchw(grad_out), nchw(in), w,
                                            (long long)groups, static_cast<const T*>(grad_out.data),
                                            static_cast<const T*>(in.data), static_cast<T*>(grad_w.data), gb, gb_stride);
      return;
    }
    // Split K (the pixels) until the grid has about two blocks per SM of an H100/H200 (132 SMs),
    // keeping each split at least 4 slices deep.
    const bool mma = kIsHalf<T>;
    const long long tile = 64, slice = mma ? 32 : 16;
    const long long blocks = (M + tile - 1) / tile * ((N + tile - 1) / tile) * groups;
    long long splits = (264 + blocks - 1) / blocks;
    const long long deepest = (K + 4 * slice - 1) / (4 * slice);
    if (splits > deepest) splits = deepest;
    if (splits > 65535 / groups) splits = 65535 / groups;
    if (splits < 1) splits = 1;
    const long long kchunk = ((K + splits - 1) / splits + slice - 1) / slice * slice;
    if (kchunk > 0) splits = (K + kchunk - 1) / kchunk;
    Workspace partial(splits > 1 ? size_t(splits * n) * sizeof(C<T>) : 0);
    const Geometry g = geometry(in, grad_w, grad_out, w, groups);
    with_taps(w, [&](auto ks, auto st) {
      using Op = BackwardWeight<T, decltype(ks)::value, decltype(st)::value>;
      const Op p{{g, static_cast<const T*>(in.data)}, {g, static_cast<const T*>(grad_out.data)}, int(M), int(N), int(K),
                 static_cast<T*>(grad_w.data), static_cast<C<T>*>(partial.data())};
      run_igemm(p, int(groups), int(splits), int(kchunk > 0 ? kchunk : 1));
    });
    if (splits > 1)
      launch<split_sum_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, nchw(grad_w), int(splits),
                                  static_cast<const C<T>*>(partial.data()), static_cast<T*>(grad_w.data));
    if (gb)
      launch<bias_grad_kernel<T>>(dim3(unsigned(grad_w.shape[0])), dim3(kBiasThreads), 0, Stream{}, nchw(grad_out),
                                  static_cast<const T*>(grad_out.data), gb, gb_stride);
  });
}

}  // namespace emu::EMU_DEVICE_NS
