// rows.cuh: what the fused kernels (norm.cu, cross_entropy.cu, adamw.cu, swiglu.cu) share: a
// 2-d operand as pointer and strides, 16-byte vector loads and stores, the loops that hand a
// thread its chunks of a row or of an element-wise pass, and device scratch memory owned for one
// call.
//
// 128-bit loads: a row is walked in chunks of 16 bytes (4 f32, 2 f64 or 8 bf16 / f16) when the
// host has checked that every operand of the launch is contiguous along the row, 16-byte aligned
// at its start and has a row stride that keeps every row aligned (vectorizable()); the elements
// after the last whole chunk, and every element of a launch that fails the check, go one at a
// time through the strides. The check is made once per launch, so a thread owns the same columns
// in every row (the norm backward's per-thread column sums rely on that).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/view.h"
#include "cuda/device.cuh"
#include "cuda/strided.cuh"

namespace emu::EMU_DEVICE_NS {

// A 2-d operand [rows, cols] (a 1-d one [cols] has row stride 0); data null when absent.
template <class T>
struct Rows {
  T* data;
  int64_t row, col;
  __device__ __forceinline__ T* at(int64_t r) const { return data + r * row; }
};

template <class T>
Rows<T> rows_of(const View* v) {
  if (!v) return {nullptr, 0, 0};
  if (v->ndim == 1) return {static_cast<T*>(v->data), 0, v->strides[0]};
  return {static_cast<T*>(v->data), v->strides[0], v->strides[1]};
}

template <class T> constexpr int kVec = 16 / int(sizeof(T));  // elements per 16-byte chunk
template <int N> using Chunk = std::integral_constant<int, N>;

// Whether every present view (1-d [D] or 2-d [N, D], of element size `esize`) can be walked in
// 16-byte chunks: unit stride along the row, aligned start, rows a whole number of chunks apart.
inline bool vectorizable(std::initializer_list<const View*> views, int64_t esize) {
  const int64_t lanes = 16 / esize;
  for (const View* v : views) {
    if (!v) continue;
    const int64_t col = v->strides[v->ndim - 1], row = v->ndim == 2 ? v->strides[0] : 0;
    if (col != 1 || row % lanes != 0 || reinterpret_cast<uintptr_t>(v->data) % 16 != 0) return false;
  }
  return true;
}

// Calls f(j, Chunk<N>{}) for this thread's chunks of a row of D elements: the chunk of N elements
// starting at j. With vec, chunks of kVec<T> at j = kVec<T> * (threadIdx.x + k blockDim.x), then
// the tail one element at a time; without, single elements j = threadIdx.x + k blockDim.x.
template <class T, class F>
__device__ __forceinline__ void for_chunks(int64_t D, bool vec, F&& f) {
  constexpr int L = kVec<T>;
  const int64_t whole = vec ? D / L * L : 0;
  for (int64_t j = int64_t(threadIdx.x) * L; j < whole; j += int64_t(blockDim.x) * L) f(j, Chunk<L>{});
  for (int64_t j = whole + threadIdx.x; j < D; j += blockDim.x) f(j, Chunk<1>{});
}

// N elements of row p from column j, widened to the compute type A (C<T>: f32 for bf16 and f16,
// T itself otherwise): one 16-byte load when N is a whole chunk (the row then has unit stride),
// else element by element through the column stride.
template <int N, class T, class A>
__device__ __forceinline__ void load_n(const T* p, int64_t j, int64_t col, A (&v)[N]) {
  if constexpr (N == kVec<T>) {
    const Pack<T, N> q = *reinterpret_cast<const Pack<T, N>*>(p + j);
    for (int k = 0; k < N; k++) v[k] = A(load(q.v[k]));
  } else {
    for (int k = 0; k < N; k++) v[k] = A(load(p[(j + k) * col]));
  }
}

// The inverse of load_n: N values of A rounded to T (once, to nearest even) and stored.
template <int N, class T, class A>
__device__ __forceinline__ void store_n(T* p, int64_t j, int64_t col, const A (&v)[N]) {
  if constexpr (N == kVec<T>) {
    Pack<T, N> q;
    for (int k = 0; k < N; k++) q.v[k] = cvt<T>(v[k]);
    *reinterpret_cast<Pack<T, N>*>(p + j) = q;
  } else {
    for (int k = 0; k < N; k++) p[(j + k) * col] = cvt<T>(v[k]);
  }
}

// Whether K same-shaped views can take for_elements' vector path: contiguous, 16-byte aligned.
template <int K>
bool contiguous_aligned(const View* const (&views)[K]) {
  for (const View* v : views)
    if (!v->contiguous() || reinterpret_cast<uintptr_t>(v->data) % 16 != 0) return false;
  return true;
}

// Blocks of kThreads for for_elements over n elements.
template <class T>
unsigned element_blocks(int64_t n, bool vec) { return blocks_for(vec ? (n + kVec<T> - 1) / kVec<T> : n); }

// An element-wise pass over n elements of K operands walked together, as a grid-stride loop:
// calls f(off, Chunk<N>{}) with off[k] the element offset in operand k. With vec (every operand
// contiguous and aligned, contiguous_aligned) chunks of N = kVec<T> elements at the same flat
// offset in every operand, then the tail one by one; otherwise single elements at the offsets
// `layout` (strided.cuh) gives. Either way load_n / store_n with column stride 1 reach them.
template <class T, int K, class F>
__device__ __forceinline__ void for_elements(int64_t n, bool vec, const Strided<K>& layout, F&& f) {
  constexpr int L = kVec<T>;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t off[K];
  if (vec) {
    const int64_t whole = n / L * L;
    for (int64_t i = first * L; i < whole; i += stride * L) {
      for (int k = 0; k < K; k++) off[k] = i;
      f(off, Chunk<L>{});
    }
    for (int64_t i = whole + first; i < n; i += stride) {
      for (int k = 0; k < K; k++) off[k] = i;
      f(off, Chunk<1>{});
    }
    return;
  }
  for (int64_t i = first; i < n; i += stride) {
    layout.offsets(i, off);
    f(off, Chunk<1>{});
  }
}

// n elements of device memory for one call (the caching allocator makes it cheap), freed on scope exit.
template <class T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : rt_(runtime()), data_(static_cast<T*>(rt_.allocate(size_t(n) * sizeof(T), Stream{}))) {}
  ~Scratch() { rt_.deallocate(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  DeviceRuntime& rt_;
  T* data_;
};

}  // namespace emu::EMU_DEVICE_NS
