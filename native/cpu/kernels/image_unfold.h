// image_unfold.h: conv2d's unfolded (im2col) matrices packed straight into the GEMM's panels,
// 16 pixels per AVX-512 instruction (f32 only; image.cpp and image_backward.cpp use it where
// unfold_fast says so and image_common.h's unfold_line, one element at a time, elsewhere).
//
// Why it exists: every element of an unfolded matrix is used by only as many multiply-adds as the
// convolution has output channels (64 in the bench's 64 -> 64 case, 2 cycles of FMAs on one core),
// so a packer that spends a division or a scalar store per element costs as much as the GEMM.
// Measured with perf on one thread (8 x 64 x 32 x 32, 3 x 3, 64 -> 64): unfold_line's packers took
// 45-60% of each pass; these take about 25% of the GEMM's time, mostly waiting on the loads
// (channel planes of 4 KiB all fall in the same L1 sets). The bookkeeping is per chunk of 16
// pixels (the grid rows and images they span) and per shift of the kernel (a 3 x 3 kernel has
// 9), where it works out each load's mask and address once; each row of a chunk is then one
// masked load (or gather, for strided columns) that leaves the padding lanes zero.
//
// What is here: Unfolded, the description of one such matrix; pack_unfolded_rows, the packer for
// a GEMM operand whose NR-wide micro-panels run along the pixels (conv2d's B and the input
// gradient's B: rows are patch elements, columns pixels); pack_unfolded_columns, the packer for an
// operand whose micro-panels run across rows, packed as 16 x 16 blocks transposed in registers
// (the weight gradient's A, grad_out, and B, the input image, with the pixels as GEMM depth).
//
// Like image_common.h, compiled once per ISA (everything inside emu::cpu::EMU_ISA, inline).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "gemm/gemm.h"
#include "image_common.h"

namespace emu::cpu::EMU_ISA {
namespace image_detail {

// A row of an unfolded matrix reads a plane `offset` elements past the image's start, shifted by
// shifts[shift] = (dy, dx) pixels. Rows share few shifts (a 3 x 3 kernel has 9): the packers
// work out the loads of each shift once per chunk of pixels and reuse them for every row.
struct UnfoldRow {
  int64_t offset, shift;
};
struct UnfoldShift {
  int64_t dy, dx;
};
struct UnfoldRows {
  std::vector<UnfoldRow> rows;
  std::vector<UnfoldShift> shifts;
};

// U[r][q]: column q = (image, gy, gx) runs over images x grid_h x grid_w pixels in that order;
// row r reads data[image * image_stride + rows[r].offset + y * row_stride + x * col_stride] with
// (y, x) = (gy * ystep + dy, gx * xstep + dx) for (dy, dx) = shifts[rows[r].shift], and is 0
// where (y, x) falls outside the plane_rows x plane_cols plane.
struct Unfolded {
  const float* data;
  int64_t image_stride;
  int64_t plane_rows, plane_cols, row_stride, col_stride;
  int64_t grid_h, grid_w, ystep, xstep;
  const UnfoldRows* rows;
};

// The rows of conv2d's im2col matrix for a plane layout with channels channel_stride apart:
// row k = (channel, kernel row i, kernel column j) reads channel's plane shifted by
// (i * dilation - pad) rows and (j * dilation - pad) columns.
inline UnfoldRows im2col_rows(const ConvShape& s, int64_t channel_stride) {
  UnfoldRows u;
  for (int64_t i = 0; i < s.kh; i++)
    for (int64_t j = 0; j < s.kw; j++) u.shifts.push_back({i * s.dh - s.ph, j * s.dw - s.pw});
  for (int64_t c = 0; c < s.cg; c++)
    for (int64_t t = 0; t < s.kh * s.kw; t++) u.rows.push_back({c * channel_stride, t});
  return u;
}

// Whether the AVX-512 packers below can read a matrix whose neighbouring columns are xstep *
// col_stride elements apart: a gather's lane offsets are 32-bit. (They exist only in the AVX-512
// build and for f32 data; callers check both.)
inline bool unfold_fast(int64_t xstep, int64_t col_stride) {
  const int64_t step = xstep * col_stride;
  return step > -(int64_t(1) << 26) && step < (int64_t(1) << 26);
}

#if defined(__AVX512F__)

// How to read one shift of up to 16 consecutive columns of U, for any row: one masked load (or
// gather) per stretch of the columns that lies in one grid row, of the lanes inside the plane.
// at[i] is the element offset, from data + the row's offset, that lane 0 of load i would read;
// masked-off lanes are never read, so it may point outside the tensor.
struct ChunkLoads {
  int count;
  __mmask16 mask[16];
  int64_t at[16];
};

// Fills loads[0, shifts) for the columns [q, q + count), count <= 16 (0: every load empty).
inline void chunk_loads(const Unfolded& u, int64_t q, int64_t count, ChunkLoads* loads) {
  struct Segment {
    int64_t image_offset, gy, gx;
    int lane, count;
  } seg[16];
  int segments = 0;
  if (count > 0) {  // cut the columns where they leave a grid row
    const int64_t pixels = u.grid_h * u.grid_w;
    int64_t image = q / pixels, gy = q % pixels / u.grid_w, gx = q % u.grid_w;
    for (int lane = 0; lane < count;) {
      const int n = int(std::min<int64_t>(u.grid_w - gx, count - lane));
      seg[segments++] = {image * u.image_stride, gy, gx, lane, n};
      lane += n;
      gx = 0;
      if (++gy == u.grid_h) gy = 0, image++;
    }
  }
  const int64_t step = u.xstep * u.col_stride;
  for (size_t sh = 0; sh < u.rows->shifts.size(); sh++) {
    const UnfoldShift& d = u.rows->shifts[sh];
    ChunkLoads& l = loads[sh];
    l.count = 0;
    for (int s = 0; s < segments; s++) {
      const Segment& g = seg[s];
      const int64_t y = g.gy * u.ystep + d.dy;
      if (y < 0 || y >= u.plane_rows) continue;
      const int64_t x = g.gx * u.xstep + d.dx;
      // Lanes t of the segment with 0 <= x + t * xstep < plane_cols: [lo, hi).
      int64_t lo, hi;
      if (u.xstep == 1) {
        lo = std::max<int64_t>(0, -x);
        hi = std::min<int64_t>(g.count, u.plane_cols - x);
      } else {
        lo = x >= 0 ? 0 : (u.xstep - 1 - x) / u.xstep;
        hi = x < u.plane_cols ? std::min<int64_t>(g.count, (u.plane_cols - 1 - x) / u.xstep + 1) : 0;
      }
      if (lo >= hi) continue;
      l.mask[l.count] = __mmask16((((1u << hi) - 1) ^ ((1u << lo) - 1)) << g.lane);
      l.at[l.count++] = g.image_offset + y * u.row_stride + x * u.col_stride - g.lane * step;
    }
  }
}

// The row at `offset` of U over the chunk that `l` describes; lanes it does not load are 0.
template <bool kContiguous>
inline __m512 unfold_load(const Unfolded& u, const ChunkLoads& l, int64_t offset) {
  __m512 v = _mm512_setzero_ps();
  const uintptr_t base = reinterpret_cast<uintptr_t>(u.data);
  for (int i = 0; i < l.count; i++) {
    const float* at = reinterpret_cast<const float*>(base + uintptr_t((offset + l.at[i]) * 4));
    if constexpr (kContiguous) {
      v = _mm512_mask_loadu_ps(v, l.mask[i], at);
    } else {
      const int32_t step = int32_t(u.xstep * u.col_stride);
      const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(step));
      v = _mm512_mask_i32gather_ps(v, l.mask[i], lanes, at, 4);
    }
  }
  return v;
}

// Space for one ChunkLoads per shift per chunk, per thread, that only grows.
inline ChunkLoads* chunk_load_space(size_t n) {
  thread_local std::vector<ChunkLoads> space;
  if (space.size() < n) space.resize(n);
  return space.data();
}

// GEMM packer (gemm.h's pack_b contract, kNR = 32) for B = U: rows [p0, p0 + kc) of U, columns
// [j0, j0 + nc), as micro-panels [kc][32], columns past nc zero. Each micro-panel is two chunks
// of 16 columns; each of its rows two loads (or a few more where a chunk spans grid rows).
template <bool kContiguous>
void pack_unfolded_rows_as(const Unfolded& u, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  constexpr int NR = 32;
  const size_t shifts = u.rows->shifts.size();
  ChunkLoads* left = chunk_load_space(2 * shifts);
  ChunkLoads* right = left + shifts;
  const UnfoldRow* rows = u.rows->rows.data() + p0;
  for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
    chunk_loads(u, j0 + j, std::min<int64_t>(16, nc - j), left);
    chunk_loads(u, j0 + j + 16, std::min<int64_t>(16, nc - j - 16), right);
    for (int64_t k = 0; k < kc; k++) {
      _mm512_storeu_ps(dst + k * NR, unfold_load<kContiguous>(u, left[rows[k].shift], rows[k].offset));
      _mm512_storeu_ps(dst + k * NR + 16, unfold_load<kContiguous>(u, right[rows[k].shift], rows[k].offset));
    }
  }
}

// GEMM packer for an operand whose micro-panels are R rows of U wide, the GEMM depth running
// along U's columns: pack_a's contract with R = kMR (rows [i0, i0 + count) of U are A's rows),
// pack_b's with R = kNR (rows of U are B's columns). Packs depth [p0, p0 + kc) into micro-panels
// [kc][R], rows past count zero. Per 16 columns and 16 rows: 16 loads, one 16 x 16 transpose in
// registers, 16 (masked) stores.
template <int R, bool kContiguous>
void pack_unfolded_columns_as(const Unfolded& u, int64_t i0, int64_t count, int64_t p0, int64_t kc, float* dst) {
  const int64_t panels = (count + R - 1) / R;
  ChunkLoads* loads = chunk_load_space(u.rows->shifts.size());
  const UnfoldRow* rows = u.rows->rows.data();
  for (int64_t q = 0; q < kc; q += 16) {
    const int width = int(std::min<int64_t>(16, kc - q));
    chunk_loads(u, p0 + q, width, loads);
    for (int64_t panel = 0; panel < panels; panel++) {
      float* out = dst + panel * kc * R + q * R;
      for (int r0 = 0; r0 < R; r0 += 16) {
        const int64_t first = i0 + panel * R + r0;  // the U row in register 0
        const int64_t valid = std::min<int64_t>(16, i0 + count - first);
        __m512 block[16];
        for (int r = 0; r < 16; r++) {
          block[r] = r < valid && r0 + r < R
                         ? unfold_load<kContiguous>(u, loads[rows[first + r].shift], rows[first + r].offset)
                         : _mm512_setzero_ps();
        }
        gemm::transpose16(block);
        const __mmask16 mask = __mmask16(R - r0 >= 16 ? 0xFFFF : (1u << (R - r0)) - 1);
        for (int t = 0; t < width; t++) _mm512_mask_storeu_ps(out + t * R + r0, mask, block[t]);
      }
    }
  }
}

// The packers, with masked loads where U's neighbouring columns are neighbours in memory and
// gathers elsewhere.
inline void pack_unfolded_rows(const Unfolded& u, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  if (u.xstep * u.col_stride == 1) pack_unfolded_rows_as<true>(u, j0, nc, p0, kc, dst);
  else pack_unfolded_rows_as<false>(u, j0, nc, p0, kc, dst);
}
template <int R>
void pack_unfolded_columns(const Unfolded& u, int64_t i0, int64_t count, int64_t p0, int64_t kc, float* dst) {
  if (u.xstep * u.col_stride == 1) pack_unfolded_columns_as<R, true>(u, i0, count, p0, kc, dst);
  else pack_unfolded_columns_as<R, false>(u, i0, count, p0, kc, dst);
}

#endif  // __AVX512F__

}  // namespace image_detail
}  // namespace emu::cpu::EMU_ISA
