// norm.cu: LayerNorm, RMSNorm and GroupNorm over the rows of x [N, D], forward and backward,
// fused; the device versions of cpu/kernels/norm.cpp, whose formulas and summation structure they
// follow:
//
//   LayerNorm: y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance)
//   RMSNorm:   y = x * rstd * w,               rstd = 1 / sqrt(mean(x^2) + eps)   (mean null)
//   backward, with xhat = (x - mean) rstd and gx = dy w:
//     dx = rstd (gx - mean(gx) - xhat mean(gx xhat))   (RMSNorm: no mean(gx) term)
//     dw = sum over rows of dy xhat,  db = sum over rows of dy.
//
// Versions (norm_version(n) forces one for LayerNorm / RMSNorm on this device; 0, the default,
// is v2; GroupNorm always runs v2's kernels):
//   v1 (the naive one, llm.c's layernorm_forward1): one thread per row, walking the row element by
//      element for the mean, the variance and the output; the backward likewise per row, and dw /
//      db by one thread per column adding the rows in order. Simple and deterministic, but slow:
//      the 32 threads of a warp read 32 rows D elements apart, so each load instruction touches 32
//      cache lines, and N rows give only N threads (16384 rows: ~120 per SM), too few in flight to
//      cover memory latency. Expect 5-15% of copy bandwidth at D = 4096.
//   v2 (below; the default): a block per row, 16-byte chunks, block reductions; what that buys is
//      the bench's v1 / v2 ratio (norm_bench.cpp; NOTES.md expects v2 at 80-90% of copy, so 6-15x).
//
// v2's forward: one block per row (grid-stride over rows), threads_for(D / 4) threads. The row
// is walked in 16-byte chunks (4 f32, 2 f64 or 8 bf16 / f16; rows.cuh) when every operand allows
// it. Two block reductions (block_reduce.cuh: warp shuffles, then shared memory) give the mean
// and then the sum of squared deviations, in A = C<T> (f64 for f64, f32 otherwise), as the
// CPU's two-pass statistics, so there is no E[x^2] - E[x]^2 cancellation; mean and rstd are
// saved per row.
// The three passes over a row read x from HBM once: the second and third hit L1/L2 (a row of
// 4096 f32 is 16 KiB).
//
// v2's backward: block k takes the rows [k R, (k + 1) R), R = max(32, ceil(N / 1024)) (so at most
// 1024 blocks, and R depends only on N: the result is the same bits on every GPU). Per row, one
// block reduction of the pair (sum gx xhat, sum gx), then dx in a second pass over the row
// (again from L1/L2). dw and db: each thread owns the same columns in every row (rows.cuh), so
// it adds dy xhat and dy into its own accumulators without atomics or barriers: in shared
// memory when they fit in 48 KiB (D up to 6144 f32 for LayerNorm, 12288 for RMSNorm; half that
// in f64), else in the block's slice of the global partial buffer (L2-resident). A second
// kernel sums the blocks' partials per column in block order. No float atomics anywhere:
// deterministic.
//
// GroupNorm (group_norm_forward / backward) runs the same row kernels with `inner` set: a row
// holds C / G channels of `inner` elements, and w and b are read per channel (element by element,
// not in chunks). Its dw and db (per channel, over every sample's run of the channel) come from
// channel_sums_kernel, one block per channel with one block reduction, instead of the column
// sums; with only C blocks that pass is not bandwidth-bound on a large GPU for small C (a VAE's
// 32 to 512 channels), but it reads dy and x once more at most.
//
// What bounds it on an H100/H200 (HBM 3.35 / 4.8 TB/s; a large device copy reaches ~80-90% of
// that, ~4 TB/s on an H200): memory. Forward moves 8 bytes per f32 element (read x, write y)
// plus 8 bytes per row; the FLOPs (~8 per element) are nothing beside that, so the target is
// the copy bandwidth: expect 80-90% of a device copy at D >= 1024 with N >= a few thousand rows
// (one block per row keeps every SM busy), less for D < 256, where a 32-thread block per row
// leaves lanes idle and the per-row reductions dominate. Backward moves 12 bytes per element
// (read x, dy, write dx) plus the partials, written once and read once by the column sums: 16
// bytes x D per block against 12 x D per row, at most 4% more (R >= 32 rows per block); expect
// 75-85% of copy bandwidth (each block walks its 32 rows in turn with two block reductions per
// row: fewer bytes in flight than the forward). f64 doubles the bytes and the time.
//
// bf16 and f16: x, y, w, b, dy, dx, dw and db are stored in the 16-bit type and widened on load;
// everything is computed in f32, and mean, rstd and the partial column sums are kept in f32 (the
// op's saved statistics are f32 tensors), so each output is rounded once, as the CPU's path (cast
// to f32, normalise, cast back) rounds it, but with half the bytes: forward 4 per element,
// backward 6, against 20 and 24 for that cast-compute-cast chain (each cast a pass of its own).
#include <algorithm>
#include <atomic>
#include <string>

#include "cpu/fused.h"
#include "cuda/block_reduce.cuh"
#include "cuda/rows.cuh"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace norm {

template <class A>
struct Two {
  A a, b;
};

// Sums a pair in one block reduction (the backward's two row constants; the forward uses .a).
template <class A>
struct SumTwoR {
  using S = Two<A>;
  __device__ S init() const { return {A(0), A(0)}; }
  __device__ S shfl(S s, unsigned d) const { return {shfl_down(s.a, d), shfl_down(s.b, d)}; }
  template <int P> __device__ void combine(S& x, const S& y) const {
    x.a += y.a;
    x.b += y.b;
  }
};

// Loads the weight (or bias) values of the n columns from j of row r: w[j + k] for LayerNorm
// (inner 0; a whole chunk in one load), or GroupNorm's per-channel w[(r % groups) (D / inner) +
// (j + k) / inner]. Absent: the values are left as they are.
template <int n, class T, class A>
__device__ __forceinline__ void load_affine(Rows<const T> w, int64_t r, int64_t j, int64_t D, int64_t inner,
                                            int64_t groups, A (&v)[n]) {
  if (!w.data) return;
  if (!inner) return load_n<n>(w.data, j, w.col, v);
  const int64_t c0 = (r % groups) * (D / inner);
  for (int k = 0; k < n; k++) v[k] = A(load(w.data[(c0 + (j + k) / inner) * w.col]));
}

// T is the storage type of x, y, w, b, dy, dx, dw and db; A = C<T> the type everything is
// computed and the row statistics (mean, rstd) and partial column sums are kept in.
template <class T>
__global__ void forward_kernel(Rows<T> y, Rows<C<T>> mean, Rows<C<T>> rstd, Rows<const T> x, Rows<const T> w,
                               Rows<const T> b, int64_t N, int64_t D, C<T> eps, bool vec, int64_t inner, int64_t groups) {
  using A = C<T>;
  const SumTwoR<A> sum_r;
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* xr = x.at(r);
    A mu = A(0);
    if (mean.data) {
      Two<A> s = sum_r.init();
      for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
        constexpr int n = decltype(chunk)::value;
        A v[n];
        load_n<n>(xr, j, x.col, v);
        for (int k = 0; k < n; k++) s.a += v[k];
      });
      mu = block_reduce<0>(sum_r, s).a / A(D);
    }
    Two<A> s = sum_r.init();
    for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      A v[n];
      load_n<n>(xr, j, x.col, v);
      for (int k = 0; k < n; k++) s.a += (v[k] - mu) * (v[k] - mu);
    });
    const A rs = A(1) / m_sqrt(block_reduce<0>(sum_r, s).a / A(D) + eps);
    if (threadIdx.x == 0) {
      rstd.data[r * rstd.col] = rs;
      if (mean.data) mean.data[r * mean.col] = mu;
    }
    T* yr = y.at(r);
    for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      A v[n], wv[n]{}, bv[n]{};
      load_n<n>(xr, j, x.col, v);
      load_affine<n>(w, r, j, D, inner, groups, wv);
      load_affine<n>(b, r, j, D, inner, groups, bv);
      for (int k = 0; k < n; k++) {
        // GroupNorm: (x - mean) (rstd w) + b, the CPU kernel's grouping.
        A o = inner ? (v[k] - mu) * (w.data ? rs * wv[k] : rs) : (v[k] - mu) * rs;
        if (!inner && w.data) o *= wv[k];
        if (b.data) o += bv[k];
        v[k] = o;
      }
      store_n<n>(yr, j, y.col, v);
    });
  }
}

// The backward's row pass for the rows of block blockIdx.x. The block's column sums (dw, then db,
// `sums` of them) end in partial[blockIdx.x * sums * D ...], accumulated there or in shared memory.
template <class T>
__global__ void backward_kernel(Rows<T> dx, Rows<const T> dy, Rows<const T> x, Rows<const T> w, Rows<const C<T>> mean,
                                Rows<const C<T>> rstd, C<T>* partial, int64_t N, int64_t D, int64_t rows_per_block,
                                bool has_dw, bool has_db, bool in_shared, bool vec, int64_t inner, int64_t groups) {
  using A = C<T>;
  EMU_DYNAMIC_SHARED(A, shared_sums);
  const SumTwoR<A> sum_r;
  const int sums = int(has_dw) + int(has_db);
  A* block_sums = partial + int64_t(blockIdx.x) * sums * D;
  A* acc_w = in_shared ? shared_sums : block_sums;
  A* acc_b = acc_w + (has_dw ? D : 0);
  // Only this thread ever touches its columns of the accumulators: no barrier needed.
  for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
    for (int k = 0; k < decltype(chunk)::value; k++) {
      if (has_dw) acc_w[j + k] = A(0);
      if (has_db) acc_b[j + k] = A(0);
    }
  });
  const int64_t r0 = int64_t(blockIdx.x) * rows_per_block, r1 = r0 + rows_per_block < N ? r0 + rows_per_block : N;
  for (int64_t r = r0; r < r1; r++) {
    const T* xr = x.at(r);
    const T* gr = dy.at(r);
    const A mu = mean.data ? mean.data[r * mean.col] : A(0), rs = rstd.data[r * rstd.col];
    // xhat and gx of a chunk, recomputed by both passes from x, dy and w (L1/L2 hits the second time).
    auto xhat_gx = [&](int64_t j, auto chunk, A* h, A* g, A* d) {
      constexpr int n = decltype(chunk)::value;
      A xv[n], dv[n], wv[n]{};
      load_n<n>(xr, j, x.col, xv);
      load_n<n>(gr, j, dy.col, dv);
      load_affine<n>(w, r, j, D, inner, groups, wv);
      for (int k = 0; k < n; k++) {
        h[k] = (xv[k] - mu) * rs;
        g[k] = w.data ? dv[k] * wv[k] : dv[k];
        d[k] = dv[k];
      }
    };
    Two<A> s = sum_r.init();
    for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      A h[n], g[n], d[n];
      xhat_gx(j, chunk, h, g, d);
      for (int k = 0; k < n; k++) {
        s.a += g[k] * h[k];
        s.b += g[k];
      }
    });
    s = block_reduce<0>(sum_r, s);
    const A c1 = s.a / A(D), c2 = mean.data ? s.b / A(D) : A(0);
    T* dxr = dx.at(r);
    for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
      constexpr int n = decltype(chunk)::value;
      A h[n], g[n], d[n], out[n];
      xhat_gx(j, chunk, h, g, d);
      for (int k = 0; k < n; k++) {
        out[k] = rs * (g[k] - c2 - h[k] * c1);
        if (has_dw) acc_w[j + k] += d[k] * h[k];
        if (has_db) acc_b[j + k] += d[k];
      }
      store_n<n>(dxr, j, dx.col, out);
    });
  }
  if (!in_shared) return;
  for_chunks<T>(D, vec, [&](int64_t j, auto chunk) {
    for (int k = 0; k < decltype(chunk)::value; k++) {
      if (has_dw) block_sums[j + k] = acc_w[j + k];
      if (has_db) block_sums[(has_dw ? D : 0) + j + k] = acc_b[j + k];
    }
  });
}

// dw[j] and db[j]: the blocks' partial sums of column j added in block order, rounded to T once.
template <class T>
__global__ void column_sums_kernel(const C<T>* partial, int64_t blocks, int64_t D, Rows<T> dw, Rows<T> db) {
  using A = C<T>;
  const int sums = int(dw.data != nullptr) + int(db.data != nullptr);
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < D; j += int64_t(gridDim.x) * blockDim.x) {
    A sw = A(0), sb = A(0);
    for (int64_t k = 0; k < blocks; k++) {
      const A* p = partial + k * sums * D;
      if (dw.data) sw += p[j];
      if (db.data) sb += p[(dw.data ? D : 0) + j];
    }
    if (dw.data) dw.data[j * dw.col] = cvt<T>(sw);
    if (db.data) db.data[j * db.col] = cvt<T>(sb);
  }
}

// GroupNorm's dw[c] and db[c]: the sums of dy xhat and dy over channel c's `inner` elements in
// every sample, one block per channel (grid-stride), each thread a fixed share of the elements
// and one block reduction: the same bits in every thread order.
template <class T>
__global__ void channel_sums_kernel(Rows<const T> dy, Rows<const T> x, Rows<const C<T>> mean, Rows<const C<T>> rstd,
                                    int64_t N, int64_t D, int64_t inner, int64_t groups, Rows<T> dw, Rows<T> db) {
  using A = C<T>;
  const SumTwoR<A> sum_r;
  const int64_t K = D / inner, samples = N / groups;
  for (int64_t c = blockIdx.x; c < groups * K; c += gridDim.x) {
    const int64_t g = c / K, j0 = (c % K) * inner;
    Two<A> s = sum_r.init();
    for (int64_t e = threadIdx.x; e < samples * inner; e += blockDim.x) {
      const int64_t r = (e / inner) * groups + g, j = j0 + e % inner;
      const A d = load(dy.at(r)[j * dy.col]);
      s.a += d * ((A(load(x.at(r)[j * x.col])) - mean.data[r * mean.col]) * rstd.data[r * rstd.col]);
      s.b += d;
    }
    s = block_reduce<0>(sum_r, s);
    if (threadIdx.x == 0) {
      if (dw.data) dw.data[c * dw.col] = cvt<T>(s.a);
      if (db.data) db.data[c * db.col] = cvt<T>(s.b);
    }
  }
}

// ---- v1: one thread per row ---------------------------------------------------------------

template <class T>
__global__ void forward_v1_kernel(Rows<T> y, Rows<C<T>> mean, Rows<C<T>> rstd, Rows<const T> x, Rows<const T> w,
                                  Rows<const T> b, int64_t N, int64_t D, C<T> eps) {
  using A = C<T>;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < N; r += int64_t(gridDim.x) * blockDim.x) {
    const T* xr = x.at(r);
    A mu = A(0);
    if (mean.data) {
      for (int64_t j = 0; j < D; j++) mu += load(xr[j * x.col]);
      mu /= A(D);
    }
    A ss = A(0);
    for (int64_t j = 0; j < D; j++) {
      const A d = A(load(xr[j * x.col])) - mu;
      ss += d * d;
    }
    const A rs = A(1) / m_sqrt(ss / A(D) + eps);
    rstd.data[r * rstd.col] = rs;
    if (mean.data) mean.data[r * mean.col] = mu;
    T* yr = y.at(r);
    for (int64_t j = 0; j < D; j++) {
      A o = (A(load(xr[j * x.col])) - mu) * rs;
      if (w.data) o *= A(load(w.data[j * w.col]));
      if (b.data) o += A(load(b.data[j * b.col]));
      yr[j * y.col] = cvt<T>(o);
    }
  }
}

template <class T>
__global__ void backward_v1_kernel(Rows<T> dx, Rows<const T> dy, Rows<const T> x, Rows<const T> w, Rows<const C<T>> mean,
                                   Rows<const C<T>> rstd, int64_t N, int64_t D) {
  using A = C<T>;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < N; r += int64_t(gridDim.x) * blockDim.x) {
    const T* xr = x.at(r);
    const T* gr = dy.at(r);
    const A mu = mean.data ? mean.data[r * mean.col] : A(0), rs = rstd.data[r * rstd.col];
    auto gx = [&](int64_t j) { return w.data ? A(load(gr[j * dy.col])) * A(load(w.data[j * w.col])) : A(load(gr[j * dy.col])); };
    A dot = A(0), sum = A(0);
    for (int64_t j = 0; j < D; j++) {
      const A g = gx(j);
      dot += g * ((A(load(xr[j * x.col])) - mu) * rs);
      sum += g;
    }
    const A c1 = dot / A(D), c2 = mean.data ? sum / A(D) : A(0);
    T* dxr = dx.at(r);
    for (int64_t j = 0; j < D; j++) dxr[j * dx.col] = cvt<T>(rs * (gx(j) - c2 - (A(load(xr[j * x.col])) - mu) * rs * c1));
  }
}

// v1's dw[j] and db[j]: thread j adds dy xhat and dy over the rows in order.
template <class T>
__global__ void column_v1_kernel(Rows<const T> dy, Rows<const T> x, Rows<const C<T>> mean, Rows<const C<T>> rstd, int64_t N,
                                 int64_t D, Rows<T> dw, Rows<T> db) {
  using A = C<T>;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < D; j += int64_t(gridDim.x) * blockDim.x) {
    A sw = A(0), sb = A(0);
    for (int64_t r = 0; r < N; r++) {
      const A d = load(dy.at(r)[j * dy.col]);
      const A mu = mean.data ? mean.data[r * mean.col] : A(0);
      sw += d * ((A(load(x.at(r)[j * x.col])) - mu) * rstd.data[r * rstd.col]);
      sb += d;
    }
    if (dw.data) dw.data[j * dw.col] = cvt<T>(sw);
    if (db.data) db.data[j * db.col] = cvt<T>(sb);
  }
}

// ---- v2 (and GroupNorm): the host side -----------------------------------------------------

std::atomic<int> forced_version{0};  // norm_version's choice; 0: the default, v2

constexpr size_t kSharedSums = 48 * 1024;  // column sums in shared memory up to this size

unsigned row_threads(int64_t D, bool vec, int64_t esize) { return threads_for(vec ? (D * esize + 15) / 16 : D); }

// inner 0: LayerNorm / RMSNorm; else GroupNorm with `inner` elements per channel in `groups` groups.
template <class T>
void forward(const View& y, const View* mean, const View& rstd, const View& x, const View* w, const View* b, double eps,
             int64_t inner = 0, int64_t groups = 1) {
  using A = C<T>;
  const int64_t N = x.shape[0], D = x.shape[1];
  if (N == 0) return;
  if (!inner && forced_version.load() == 1) {
    launch<forward_v1_kernel<T>>(dim3(blocks_for(N)), dim3(kThreads), 0, Stream{}, rows_of<T>(&y), rows_of<A>(mean),
                                 rows_of<A>(&rstd), rows_of<const T>(&x), rows_of<const T>(w), rows_of<const T>(b), N, D,
                                 A(eps));
    return;
  }
  // GroupNorm's per-channel w and b are read element by element; only x and y decide the chunks.
  const bool vec = inner ? vectorizable({&y, &x}, sizeof(T)) : vectorizable({&y, &x, w, b}, sizeof(T));
  launch<forward_kernel<T>>(dim3(grid_for(N)), dim3(row_threads(D, vec, sizeof(T))), 0, Stream{}, rows_of<T>(&y),
                            rows_of<A>(mean), rows_of<A>(&rstd), rows_of<const T>(&x), rows_of<const T>(w),
                            rows_of<const T>(b), N, D, A(eps), vec, inner, groups);
}

template <class T>
void backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
              const View* mean, const View& rstd) {
  using A = C<T>;
  const int64_t N = x.shape[0], D = x.shape[1];
  if (forced_version.load() == 1) {
    if (N > 0)
      launch<backward_v1_kernel<T>>(dim3(blocks_for(N)), dim3(kThreads), 0, Stream{}, rows_of<T>(&dx), rows_of<const T>(&dy),
                                    rows_of<const T>(&x), rows_of<const T>(w), rows_of<const A>(mean),
                                    rows_of<const A>(&rstd), N, D);
    if ((dw || db) && D > 0)
      launch<column_v1_kernel<T>>(dim3(blocks_for(D)), dim3(kThreads), 0, Stream{}, rows_of<const T>(&dy), rows_of<const T>(&x),
                                  rows_of<const A>(mean), rows_of<const A>(&rstd), N, D, rows_of<T>(dw), rows_of<T>(db));
    return;
  }
  const int64_t rows_per_block = std::max<int64_t>(32, (N + 1023) / 1024);
  const int64_t blocks = std::max<int64_t>(1, (N + rows_per_block - 1) / rows_per_block);
  const int sums = int(dw != nullptr) + int(db != nullptr);
  const bool vec = vectorizable({&dx, &dy, &x, w}, sizeof(T));
  const size_t shared_bytes = size_t(sums * D) * sizeof(A);
  const bool in_shared = shared_bytes <= kSharedSums;
  Scratch<A> partial(std::max<int64_t>(1, blocks * sums * D));
  if (N > 0) {
    launch<backward_kernel<T>>(dim3(unsigned(blocks)), dim3(row_threads(D, vec, sizeof(T))), in_shared ? shared_bytes : 0,
                               Stream{}, rows_of<T>(&dx), rows_of<const T>(&dy), rows_of<const T>(&x), rows_of<const T>(w),
                               rows_of<const A>(mean), rows_of<const A>(&rstd), partial.get(), N, D, rows_per_block,
                               dw != nullptr, db != nullptr, in_shared, vec, int64_t(0), int64_t(1));
  } else if (sums) {  // no rows: the sums are zeros
    runtime().fill_bytes(partial.get(), 0, size_t(sums * D) * sizeof(A), Stream{});
  }
  if (sums && D > 0)
    launch<column_sums_kernel<T>>(dim3(blocks_for(D)), dim3(kThreads), 0, Stream{}, partial.get(), N > 0 ? blocks : 1, D,
                                  rows_of<T>(dw), rows_of<T>(db));
}

// GroupNorm's backward: dx by the row kernel (no column sums), dw and db by channel_sums_kernel.
template <class T>
void group_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                    const View& mean, const View& rstd, int64_t inner) {
  using A = C<T>;
  const int64_t N = x.shape[0], D = x.shape[1], K = D / inner;
  int64_t groups = 1;
  for (const View* v : {w, dw, db})
    if (v) groups = v->shape[0] / K;
  const int64_t rows_per_block = std::max<int64_t>(32, (N + 1023) / 1024);
  const int64_t blocks = std::max<int64_t>(1, (N + rows_per_block - 1) / rows_per_block);
  const bool vec = vectorizable({&dx, &dy, &x}, sizeof(T));
  if (N > 0) {
    launch<backward_kernel<T>>(dim3(unsigned(blocks)), dim3(row_threads(D, vec, sizeof(T))), 0, Stream{}, rows_of<T>(&dx),
                               rows_of<const T>(&dy), rows_of<const T>(&x), rows_of<const T>(w), rows_of<const A>(&mean),
                               rows_of<const A>(&rstd), static_cast<A*>(nullptr), N, D, rows_per_block, false, false, false,
                               vec, inner, groups);
  }
  if ((dw || db) && groups * K > 0)
    launch<channel_sums_kernel<T>>(dim3(grid_for(groups * K)), dim3(kThreads), 0, Stream{}, rows_of<const T>(&dy),
                                   rows_of<const T>(&x), rows_of<const A>(&mean), rows_of<const A>(&rstd), N, D, inner,
                                   groups, rows_of<T>(dw), rows_of<T>(db));
}

}  // namespace norm

void norm_forward(const View& y, const View* mean, const View& rstd, const View& x, const View* w, const View* b,
                  double eps) {
  dispatch_float(x.dtype, "norm", [&](auto t) { norm::forward<decltype(t)>(y, mean, rstd, x, w, b, eps); });
}

void norm_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                   const View* mean, const View& rstd) {
  dispatch_float(x.dtype, "normBackward", [&](auto t) { norm::backward<decltype(t)>(dx, dw, db, dy, x, w, mean, rstd); });
}

void norm_version(int version) {
  if (version < 0 || version > 2)
    fail(ErrorKind::Value, "normVersion: no version " + std::to_string(version) +
                                " (1: a thread per row, 2: a block per row; 0: the default, 2)");
  norm::forced_version.store(version);
}

void group_norm_forward(const View& y, const View& mean, const View& rstd, const View& x, const View* w, const View* b,
                        double eps, int64_t inner) {
  const int64_t K = x.shape[1] / inner;
  int64_t groups = 1;
  for (const View* v : {w, b})
    if (v) groups = v->shape[0] / K;
  dispatch_float(x.dtype, "groupNorm", [&](auto t) { norm::forward<decltype(t)>(y, &mean, rstd, x, w, b, eps, inner, groups); });
}

void group_norm_backward(const View& dx, const View* dw, const View* db, const View& dy, const View& x, const View* w,
                         const View& mean, const View& rstd, int64_t inner) {
  dispatch_float(x.dtype, "groupNormBackward",
                 [&](auto t) { norm::group_backward<decltype(t)>(dx, dw, db, dy, x, w, mean, rstd, inner); });
}

}  // namespace emu::EMU_DEVICE_NS
