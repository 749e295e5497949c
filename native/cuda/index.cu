// index.cu: gather, index_select, scatter_add, tril/triu and cumsum on any strided Views.
//
// cpu/kernels/index.cpp and reduce.cpp (cumsum) are the reference. gather and index_select share
// one kernel: the source walked over the output's shape with stride 0 along `dim`, each element
// adding index * stride(dim). scatter_add gives each thread whole lines along `dim` (the other
// dims in parallel) and adds in index order, so no two threads touch one output element and every
// element sums its terms in the CPU's order: deterministic, and bit-identical to the CPU. cumsum
// likewise runs one thread per line, accumulating in double (i32 wraps). Indices are range-checked
// on the device; a bad one raises a DeviceFlag and the launcher throws the CPU's IndexError.
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {
namespace indexing {

#define EMU_GRID_LOOP(i, n) \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// out[p] = src[p with p[dim] replaced by index[p]]; s walks (out, index, src with dim stride 0).
template <class T>
__global__ void gather_kernel(Strided<3> s, long long n, T* out, const int32_t* index, const T* src, long long size,
                              long long step, DeviceFlag bad) {
  EMU_GRID_LOOP(i, n) {
    int64_t off[3];
    s.offsets(i, off);
    const int32_t k = index[off[1]];
    if (k < 0 || k >= size) {
      bad.raise(k);
      continue;
    }
    out[off[0]] = src[off[2] + k * step];
  }
}

template <class T>
__device__ __forceinline__ T add_elem(T a, T b) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return cvt<T>(load(a) + load(b));
  else if constexpr (std::is_same_v<T, int32_t>) return int32_t(uint32_t(a) + uint32_t(b));
  else return a + b;
}

// lines walks (out, index, src) over index's shape without `dim`; each line adds `count` terms.
template <class T>
__global__ void scatter_add_kernel(Strided<3> lines, long long nlines, long long count, T* out, const int32_t* index,
                                   const T* src, long long size, long long out_step, long long index_step,
                                   long long src_step, DeviceFlag bad) {
  EMU_GRID_LOOP(l, nlines) {
    int64_t off[3];
    lines.offsets(l, off);
    for (long long j = 0; j < count; j++) {
      const int32_t k = index[off[1] + j * index_step];
      if (k < 0 || k >= size) {
        bad.raise(k);
        break;
      }
      T& dst = out[off[0] + k * out_step];
      dst = add_elem(dst, src[off[2] + j * src_step]);
    }
  }
}

// s walks (out, in) over every dim, uncollapsed, so the last two coordinates are row and column.
template <class T>
__global__ void triangle_kernel(Strided<2> s, long long n, long long rows, long long cols, long long k, bool upper,
                                T* out, const T* in) {
  EMU_GRID_LOOP(i, n) {
    int64_t off[2];
    s.offsets(i, off);
    const long long col = i % cols, row = (i / cols) % rows;
    const bool keep = upper ? col >= row + k : col <= row + k;
    out[off[0]] = keep ? in[off[1]] : T{};
  }
}

template <class T>
__global__ void cumsum_kernel(Strided<2> lines, long long nlines, long long len, long long sx, long long sy, const T* in,
                              T* out) {
  using A = std::conditional_t<std::is_same_v<T, int32_t>, uint32_t, double>;
  EMU_GRID_LOOP(l, nlines) {
    int64_t off[2];
    lines.offsets(l, off);
    A acc = 0;
    for (long long i = 0; i < len; i++) {
      acc += A(load(in[off[1] + i * sx]));
      out[off[0] + i * sy] = cvt<T>(acc);
    }
  }
}

[[noreturn]] void index_error(const char* op, int index, int dim, long long size) {
  fail(ErrorKind::Index, std::string(op) + ": index " + std::to_string(index) + " is out of range for dim " +
                             std::to_string(dim) + " of size " + std::to_string(size));
}

void check_dim(const char* op, int dim, int ndim) {
  if (dim < 0 || dim >= ndim)
    fail(ErrorKind::Shape, std::string(op) + ": dim " + std::to_string(dim) + " is out of range for " + std::to_string(ndim) + " dims");
}

// View v without dim `dim`, with the shape of `like` (for walking lines along `dim`).
View without_dim(const View& v, const View& like, int dim) {
  View r = v;
  r.ndim = 0;
  for (int d = 0; d < v.ndim; d++) {
    if (d == dim) continue;
    r.shape[r.ndim] = like.shape[d];
    r.strides[r.ndim++] = v.strides[d];
  }
  return r;
}

void gather_rows(const char* op, const View& out, const View& in, int dim, const View& index) {
  if (out.dtype != in.dtype) fail(ErrorKind::DType, std::string(op) + ": output and input dtypes differ");
  const long long n = out.numel();
  if (n == 0) return;
  View src = in;  // in without its `dim` stride, walked over out's shape
  for (int d = 0; d < in.ndim; d++) src.shape[d] = out.shape[d];
  src.strides[dim] = 0;
  const View* v[3] = {&out, &index, &src};
  const FlagBuffer bad;
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    launch<gather_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, Strided<3>::make(v), n,
                             static_cast<T*>(out.data), static_cast<const int32_t*>(index.data),
                             static_cast<const T*>(in.data), (long long)in.shape[dim], (long long)in.strides[dim], bad.flag());
  });
  int k;
  if (bad.raised(&k)) index_error(op, k, dim, in.shape[dim]);
}

}  // namespace indexing

void gather(const View& out, const View& in, int dim, const View& index) {
  const char* op = "gather";
  indexing::check_dim(op, dim, in.ndim);
  if (index.dtype != DType::I32) fail(ErrorKind::DType, "gather: index must be i32");
  if (index.ndim != in.ndim || out.ndim != in.ndim) fail(ErrorKind::Shape, "gather: input, index and output need the same number of dims");
  for (int d = 0; d < in.ndim; d++) {
    if (out.shape[d] != index.shape[d]) fail(ErrorKind::Shape, "gather: output shape differs from index shape");
    if (d != dim && index.shape[d] > in.shape[d])
      fail(ErrorKind::Shape, "gather: index size " + std::to_string(index.shape[d]) + " exceeds input size " +
                                 std::to_string(in.shape[d]) + " in dim " + std::to_string(d));
  }
  indexing::gather_rows(op, out, in, dim, index);
}

void index_select(const View& out, const View& in, int dim, const View& index) {
  const char* op = "indexSelect";
  indexing::check_dim(op, dim, in.ndim);
  if (index.dtype != DType::I32) fail(ErrorKind::DType, "indexSelect: index must be i32");
  if (index.ndim != 1) fail(ErrorKind::Shape, "indexSelect: index must be 1-d");
  if (out.ndim != in.ndim) fail(ErrorKind::Shape, "indexSelect: input and output need the same number of dims");
  for (int d = 0; d < in.ndim; d++) {
    if (out.shape[d] != (d == dim ? index.shape[0] : in.shape[d])) fail(ErrorKind::Shape, "indexSelect: output has the wrong shape");
  }
  View idx = out;  // the index broadcast over out's shape
  idx.data = index.data;
  idx.dtype = DType::I32;
  for (int d = 0; d < out.ndim; d++) idx.strides[d] = d == dim ? index.strides[0] : 0;
  indexing::gather_rows(op, out, in, dim, idx);
}

void scatter_add(const View& out, int dim, const View& index, const View& src) {
  using namespace indexing;
  const char* op = "scatterAdd";
  check_dim(op, dim, out.ndim);
  if (index.dtype != DType::I32) fail(ErrorKind::DType, "scatterAdd: index must be i32");
  if (src.dtype != out.dtype) fail(ErrorKind::DType, "scatterAdd: output and source dtypes differ");
  if (index.ndim != out.ndim || src.ndim != out.ndim)
    fail(ErrorKind::Shape, "scatterAdd: output, index and source need the same number of dims");
  for (int d = 0; d < out.ndim; d++) {
    if (index.shape[d] > src.shape[d] || (d != dim && index.shape[d] > out.shape[d]))
      fail(ErrorKind::Shape, "scatterAdd: index size " + std::to_string(index.shape[d]) +
                                 " exceeds the output or source size in dim " + std::to_string(d));
  }
  if (out.dtype == DType::Bool) fail(ErrorKind::DType, "scatterAdd: not defined for bool");
  const View lo = without_dim(out, index, dim), li = without_dim(index, index, dim), ls = without_dim(src, index, dim);
  const long long count = index.shape[dim], nlines = li.numel();
  if (count == 0 || nlines == 0) return;
  const View* v[3] = {&lo, &li, &ls};
  const FlagBuffer bad;
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, bool>) {
      launch<scatter_add_kernel<T>>(dim3(blocks_for(nlines)), dim3(kThreads), 0, Stream{}, Strided<3>::make(v), nlines,
                                    count, static_cast<T*>(out.data), static_cast<const int32_t*>(index.data),
                                    static_cast<const T*>(src.data), (long long)out.shape[dim], (long long)out.strides[dim],
                                    (long long)index.strides[dim], (long long)src.strides[dim], bad.flag());
    }
  });
  int k;
  if (bad.raised(&k)) index_error(op, k, dim, out.shape[dim]);
}

void triangle(const View& out, const View& in, int64_t k, bool upper) {
  using namespace indexing;
  const std::string op = upper ? "triu" : "tril";
  if (in.ndim < 2 || out.ndim != in.ndim) fail(ErrorKind::Shape, op + ": needs at least 2 dims and matching output");
  for (int d = 0; d < in.ndim; d++)
    if (out.shape[d] != in.shape[d]) fail(ErrorKind::Shape, op + ": output shape differs from input shape");
  if (out.dtype != in.dtype) fail(ErrorKind::DType, op + ": output and input dtypes differ");
  const long long rows = in.shape[in.ndim - 2], cols = in.shape[in.ndim - 1], n = in.numel();
  if (n == 0) return;
  if (k < -rows - 1) k = -rows - 1;  // beyond these bounds everything or nothing is kept
  if (k > cols + 1) k = cols + 1;
  Strided<2> s{};
  s.ndim = in.ndim;
  for (int d = 0; d < in.ndim; d++) {
    s.shape[d] = in.shape[d];
    s.strides[0][d] = out.strides[d];
    s.strides[1][d] = in.strides[d];
  }
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    launch<triangle_kernel<T>>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, s, n, rows, cols, (long long)k, upper,
                               static_cast<T*>(out.data), static_cast<const T*>(in.data));
  });
}

void cumsum(const View& out, const View& in, int dim) {
  using namespace indexing;
  if (dim < 0 || dim >= (in.ndim > 1 ? in.ndim : 1))
    fail(ErrorKind::Shape, "cumsum: dim " + std::to_string(dim) + " is out of range for " + std::to_string(in.ndim) + " dims");
  bool same = out.ndim == in.ndim && out.dtype == in.dtype;
  for (int d = 0; same && d < in.ndim; d++) same = out.shape[d] == in.shape[d];
  if (!same) fail(ErrorKind::Shape, "cumsum: output must have the input's shape and dtype");
  if (in.dtype == DType::Bool) fail(ErrorKind::DType, "cumsum: not defined for bool");
  const View lo = without_dim(out, in, dim), li = without_dim(in, in, dim);
  const long long len = in.ndim ? in.shape[dim] : 1, nlines = li.numel();
  if (len == 0 || nlines == 0) return;
  const long long sx = in.ndim ? in.strides[dim] : 0, sy = out.ndim ? out.strides[dim] : 0;
  const View* v[2] = {&lo, &li};
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, bool>) {
      launch<cumsum_kernel<T>>(dim3(blocks_for(nlines)), dim3(kThreads), 0, Stream{}, Strided<2>::make(v), nlines, len, sx,
                               sy, static_cast<const T*>(in.data), static_cast<T*>(out.data));
    }
  });
}

}  // namespace emu::EMU_DEVICE_NS
