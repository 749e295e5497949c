// index.cpp: gather, scatter_add, index_select and tril/triu on any strided Views.
//
// gather and index_select share one loop: the source View gets stride 0 along `dim`, so the
// row walker of strided.h steps out, index and source together, and each element adds
// index * stride(dim) to its source pointer. index_select is gather with a 1-d index
// broadcast (stride 0) over every other dim. scatter_add walks only the dims other than `dim`
// in parallel and loops over `dim` inside, in index order: two threads never touch the same
// output element and every element sums its terms in the same order, so the result is
// deterministic. Every index is range-checked (negative indices are errors, not wrapped).
#include <string>

#include "../kernels.h"
#include "scalar.h"
#include "strided.h"

namespace emu::cpu::EMU_ISA {
namespace {

[[noreturn]] void index_error(const char* op, int32_t index, int dim, int64_t size) {
  fail(ErrorKind::Index, std::string(op) + ": index " + std::to_string(index) + " is out of range for dim " +
                             std::to_string(dim) + " of size " + std::to_string(size));
}

inline int64_t checked(const char* op, int32_t index, int dim, int64_t size) {
  if (index < 0 || index >= size) index_error(op, index, dim, size);
  return index;
}

[[noreturn]] void shape_error(const char* op, const std::string& what) {
  fail(ErrorKind::Shape, std::string(op) + ": " + what);
}

[[noreturn]] void dtype_error(const char* op, const std::string& what) {
  fail(ErrorKind::DType, std::string(op) + ": " + what);
}

void check_dim(const char* op, int dim, int ndim) {
  if (dim < 0 || dim >= ndim) shape_error(op, "dim " + std::to_string(dim) + " is out of range for " + std::to_string(ndim) + " dims");
}

// out[p] = in[p with p[dim] replaced by index[p]], over out's shape (index has out's shape,
// possibly with stride-0 dims).
void gather_rows(const char* op, const View& out, const View& in, int dim, const View& index) {
  if (out.dtype != in.dtype) dtype_error(op, "output and input dtypes differ");
  View src = in;  // in without its `dim` stride, walked over out's shape
  for (int d = 0; d < in.ndim; d++) src.shape[d] = out.shape[d];
  src.strides[dim] = 0;
  const int64_t size = in.shape[dim], step = in.strides[dim];
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    const View* views[3] = {&out, &index, &src};
    RowLoop<3>(views).run([&](int64_t n, char* const* p, const int64_t* s) {
      T* o = reinterpret_cast<T*>(p[0]);
      const int32_t* ix = reinterpret_cast<const int32_t*>(p[1]);
      const T* x = reinterpret_cast<const T*>(p[2]);
      for (int64_t i = 0; i < n; i++) o[i * s[0]] = x[i * s[2] + checked(op, ix[i * s[1]], dim, size) * step];
    });
  });
}

}  // namespace

void gather(const View& out, const View& in, int dim, const View& index) {
  const char* op = "gather";
  check_dim(op, dim, in.ndim);
  if (index.dtype != DType::I32) dtype_error(op, "index must be i32");
  if (index.ndim != in.ndim || out.ndim != in.ndim) shape_error(op, "input, index and output need the same number of dims");
  for (int d = 0; d < in.ndim; d++) {
    if (out.shape[d] != index.shape[d]) shape_error(op, "output shape differs from index shape");
    if (d != dim && index.shape[d] > in.shape[d])
      shape_error(op, "index size " + std::to_string(index.shape[d]) + " exceeds input size " +
                          std::to_string(in.shape[d]) + " in dim " + std::to_string(d));
  }
  gather_rows(op, out, in, dim, index);
}

void index_select(const View& out, const View& in, int dim, const View& index) {
  const char* op = "indexSelect";
  check_dim(op, dim, in.ndim);
  if (index.dtype != DType::I32) dtype_error(op, "index must be i32");
  if (index.ndim != 1) shape_error(op, "index must be 1-d");
  if (out.ndim != in.ndim) shape_error(op, "input and output need the same number of dims");
  for (int d = 0; d < in.ndim; d++) {
    if (out.shape[d] != (d == dim ? index.shape[0] : in.shape[d])) shape_error(op, "output has the wrong shape");
  }
  View idx = out;  // the index broadcast over out's shape
  idx.data = index.data;
  idx.dtype = DType::I32;
  for (int d = 0; d < out.ndim; d++) idx.strides[d] = d == dim ? index.strides[0] : 0;
  gather_rows(op, out, in, dim, idx);
}

void scatter_add(const View& out, int dim, const View& index, const View& src) {
  const char* op = "scatterAdd";
  check_dim(op, dim, out.ndim);
  if (index.dtype != DType::I32) dtype_error(op, "index must be i32");
  if (src.dtype != out.dtype) dtype_error(op, "output and source dtypes differ");
  if (index.ndim != out.ndim || src.ndim != out.ndim) shape_error(op, "output, index and source need the same number of dims");
  for (int d = 0; d < out.ndim; d++) {
    if (index.shape[d] > src.shape[d] || (d != dim && index.shape[d] > out.shape[d]))
      shape_error(op, "index size " + std::to_string(index.shape[d]) + " exceeds the output or source size in dim " +
                          std::to_string(d));
  }
  // The three Views without `dim`, over index's shape: one element each per output "line".
  const View* full[3] = {&out, &index, &src};
  View lines[3];
  for (int v = 0; v < 3; v++) {
    lines[v] = *full[v];
    lines[v].ndim = 0;
    for (int d = 0; d < out.ndim; d++) {
      if (d == dim) continue;
      lines[v].shape[lines[v].ndim] = index.shape[d];
      lines[v].strides[lines[v].ndim++] = full[v]->strides[d];
    }
  }
  const int64_t count = index.shape[dim], size = out.shape[dim];
  const int64_t out_step = out.strides[dim], index_step = index.strides[dim], src_step = src.strides[dim];
  if (count == 0) return;
  auto run = [&](auto zero, auto add) {
    using T = decltype(zero);
    const View* views[3] = {&lines[0], &lines[1], &lines[2]};
    RowLoop<3>(views).run([&](int64_t n, char* const* p, const int64_t* s) {
      T* o = reinterpret_cast<T*>(p[0]);
      const int32_t* ix = reinterpret_cast<const int32_t*>(p[1]);
      const T* x = reinterpret_cast<const T*>(p[2]);
      for (int64_t j = 0; j < count; j++) {
        for (int64_t i = 0; i < n; i++) {
          T& dst = o[i * s[0] + checked(op, ix[i * s[1] + j * index_step], dim, size) * out_step];
          dst = add(dst, x[i * s[2] + j * src_step]);
        }
      }
    });
  };
  switch (out.dtype) {
    case DType::F32: run(float{}, [](float a, float b) { return a + b; }); return;
    case DType::F64: run(double{}, [](double a, double b) { return a + b; }); return;
    case DType::BF16: run(bf16{}, [](bf16 a, bf16 b) { return float_to_bf16(bf16_to_float(a) + bf16_to_float(b)); }); return;
    case DType::F16: run(f16{}, [](f16 a, f16 b) { return float_to_f16(f16_to_float(a) + f16_to_float(b)); }); return;
    case DType::I32: run(int32_t{}, [](int32_t a, int32_t b) { return int32_t(uint32_t(a) + uint32_t(b)); }); return;
    default: dtype_error(op, std::string("not defined for ") + dtype_name(out.dtype));
  }
}

void triangle(const View& out, const View& in, int64_t k, bool upper) {
  const char* op = upper ? "triu" : "tril";
  if (in.ndim < 2 || out.ndim != in.ndim) shape_error(op, "needs at least 2 dims and matching output");
  for (int d = 0; d < in.ndim; d++)
    if (out.shape[d] != in.shape[d]) shape_error(op, "output shape differs from input shape");
  if (out.dtype != in.dtype) dtype_error(op, "output and input dtypes differ");
  const int nb = in.ndim - 2;  // batch dims
  const int64_t rows = in.shape[nb], cols = in.shape[nb + 1];
  const int64_t row_out = out.strides[nb], col_out = out.strides[nb + 1];
  const int64_t row_in = in.strides[nb], col_in = in.strides[nb + 1];
  int64_t total = rows;
  for (int d = 0; d < nb; d++) total *= in.shape[d];
  if (total == 0 || cols == 0) return;
  // Any k beyond these bounds keeps everything or nothing; clamping avoids overflow in i + k.
  if (k < -rows - 1) k = -rows - 1;
  if (k > cols + 1) k = cols + 1;
  dispatch(in.dtype, [&](auto t) {
    using T = decltype(t);
    const int64_t grain = cols >= 4096 ? 1 : 4096 / cols;
    parallel_for(total, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const int64_t i = r % rows;
        T* o = out.ptr<T>() + i * row_out;
        const T* x = in.ptr<T>() + i * row_in;
        for (int64_t b = r / rows, d = nb - 1; d >= 0; d--) {
          o += (b % in.shape[d]) * out.strides[d];
          x += (b % in.shape[d]) * in.strides[d];
          b /= in.shape[d];
        }
        // Columns [keep_begin, keep_end) are copied, the rest zeroed.
        int64_t keep_begin = 0, keep_end = cols;
        if (upper) {
          keep_begin = i + k < 0 ? 0 : (i + k > cols ? cols : i + k);
        } else {
          keep_end = i + k + 1 < 0 ? 0 : (i + k + 1 > cols ? cols : i + k + 1);
        }
        for (int64_t j = 0; j < keep_begin; j++) o[j * col_out] = T{};
        for (int64_t j = keep_begin; j < keep_end; j++) o[j * col_out] = x[j * col_in];
        for (int64_t j = keep_end; j < cols; j++) o[j * col_out] = T{};
      }
    });
  });
}

}  // namespace emu::cpu::EMU_ISA
