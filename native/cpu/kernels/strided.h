// strided.h: walk N same-shaped strided Views together, row by row, on the thread pool.
//
// This is how every element-wise kernel handles any stride pattern without copies: dims of
// size 1 are dropped, adjacent dims that are contiguous in every operand are merged, and the
// innermost remaining dim becomes a "row" handed to the functor as (n, pointers, strides).
// When every inner stride is 1 the functor's loop is a plain contiguous loop the compiler
// vectorises for the instruction set this file is compiled for. Rows are split into chunks
// when there are too few rows to keep every thread busy.
#pragma once
#include <cstdint>

#include "../../core/view.h"
#include "../thread_pool.h"

namespace emu::cpu::EMU_ISA {

template <int N>
struct RowLoop {
  int ndim = 0;  // dims after collapsing; the last one is the row
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
  char* base[N];
  int esize[N];

  explicit RowLoop(const View* const* views) {
    const View& ref = *views[0];
    for (int k = 0; k < N; k++) {
      base[k] = static_cast<char*>(views[k]->data);
      esize[k] = dtype_size(views[k]->dtype);
    }
    for (int d = 0; d < ref.ndim; d++) {
      if (ref.shape[d] == 1) continue;
      bool merge = ndim > 0;
      for (int k = 0; k < N && merge; k++)
        merge = strides[k][ndim - 1] == views[k]->strides[d] * ref.shape[d];
      if (merge) {
        shape[ndim - 1] *= ref.shape[d];
        for (int k = 0; k < N; k++) strides[k][ndim - 1] = views[k]->strides[d];
      } else {
        shape[ndim] = ref.shape[d];
        for (int k = 0; k < N; k++) strides[k][ndim] = views[k]->strides[d];
        ndim++;
      }
    }
    if (ndim == 0) {  // a single element
      shape[0] = 1;
      for (int k = 0; k < N; k++) strides[k][0] = 0;
      ndim = 1;
    }
  }

  // f(n, ptrs, strides_in_elements) processes one row segment.
  template <class F>
  void run(F&& f) const {
    int64_t inner = shape[ndim - 1];
    int64_t outer = 1;
    for (int d = 0; d < ndim - 1; d++) outer *= shape[d];
    if (inner == 0 || outer == 0) return;
    int64_t threads = num_threads();
    int64_t chunk = inner;
    if (outer < 4 * threads && inner > 8192) {
      chunk = (inner + 4 * threads - 1) / (4 * threads);
      chunk = (chunk + 63) / 64 * 64;
      if (chunk < 4096) chunk = 4096;
    }
    int64_t per_row = (inner + chunk - 1) / chunk;
    int64_t items = outer * per_row;
    int64_t grain = chunk >= 16384 ? 1 : 16384 / chunk;
    int64_t inner_strides[N];
    for (int k = 0; k < N; k++) inner_strides[k] = strides[k][ndim - 1];
    parallel_for(items, grain, [&](int64_t begin, int64_t end) {
      for (int64_t w = begin; w < end; w++) {
        int64_t row = w / per_row, col = (w % per_row) * chunk;
        int64_t n = inner - col < chunk ? inner - col : chunk;
        char* p[N];
        for (int k = 0; k < N; k++) p[k] = base[k] + col * strides[k][ndim - 1] * esize[k];
        int64_t r = row;
        for (int d = ndim - 2; d >= 0; d--) {
          int64_t i = r % shape[d];
          r /= shape[d];
          for (int k = 0; k < N; k++) p[k] += i * strides[k][d] * esize[k];
        }
        f(n, p, inner_strides);
      }
    });
  }
};

// Apply a per-element functor over 1 output and N-1 inputs of one element type each.
// Contiguous rows get a loop without stride multiplies, which the compiler vectorises.
template <class TO, class TA, class F>
void map1(const View& out, const View& a, F f) {
  const View* v[2] = {&out, &a};
  RowLoop<2>(v).run([&](int64_t n, char* const* p, const int64_t* s) {
    TO* o = reinterpret_cast<TO*>(p[0]);
    const TA* x = reinterpret_cast<const TA*>(p[1]);
    if (s[0] == 1 && s[1] == 1) {
      for (int64_t i = 0; i < n; i++) o[i] = f(x[i]);
    } else {
      for (int64_t i = 0; i < n; i++) o[i * s[0]] = f(x[i * s[1]]);
    }
  });
}

template <class TO, class TA, class TB, class F>
void map2(const View& out, const View& a, const View& b, F f) {
  const View* v[3] = {&out, &a, &b};
  RowLoop<3>(v).run([&](int64_t n, char* const* p, const int64_t* s) {
    TO* o = reinterpret_cast<TO*>(p[0]);
    const TA* x = reinterpret_cast<const TA*>(p[1]);
    const TB* y = reinterpret_cast<const TB*>(p[2]);
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
      for (int64_t i = 0; i < n; i++) o[i] = f(x[i], y[i]);
    } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {
      const TB yv = *y;
      for (int64_t i = 0; i < n; i++) o[i] = f(x[i], yv);
    } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
      const TA xv = *x;
      for (int64_t i = 0; i < n; i++) o[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; i++) o[i * s[0]] = f(x[i * s[1]], y[i * s[2]]);
    }
  });
}

template <class TO, class TC, class TA, class TB, class F>
void map3(const View& out, const View& c, const View& a, const View& b, F f) {
  const View* v[4] = {&out, &c, &a, &b};
  RowLoop<4>(v).run([&](int64_t n, char* const* p, const int64_t* s) {
    TO* o = reinterpret_cast<TO*>(p[0]);
    const TC* x = reinterpret_cast<const TC*>(p[1]);
    const TA* y = reinterpret_cast<const TA*>(p[2]);
    const TB* z = reinterpret_cast<const TB*>(p[3]);
    for (int64_t i = 0; i < n; i++) o[i * s[0]] = f(x[i * s[1]], y[i * s[2]], z[i * s[3]]);
  });
}

}  // namespace emu::cpu::EMU_ISA
