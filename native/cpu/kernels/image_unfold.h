// image_unfold.h: conv2d's unfolded (im2col) matrices packed straight into the GEMM's panels,
// 16 pixels per AVX-512 instruction (f32 only; image.cpp and image_backward.cpp use it where
// unfold_fast says so and image_common.h's unfold_line, one element at a time, elsewhere).
//
// Why it exists: every element of an unfolded matrix is used by only as many multiply-adds as the
// convolution has output channels (64 in the bench's 64 -> 64 case, 2 cycles of FMAs on one core),
// so a packer that spends a division or a scalar store per element costs as much as the GEMM.
// Here the bookkeeping is per chunk of 16 pixels (the grid rows and images they span) and per
// matrix row (its plane offset and shift); each row of a chunk is then one masked load (or
// gather, for strided columns) that leaves the padding lanes zero.
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

// One row of an unfolded matrix: it reads the plane `offset` elements past the image's start,
// shifted by (dy, dx).
struct UnfoldRow {
  int64_t offset, dy, dx;
};

// U[r][q]: column q = (image, gy, gx) runs over images x grid_h x grid_w pixels in that order;
// row r reads data[image * image_stride + rows[r].offset + y * row_stride + x * col_stride] with
// y = gy * ystep + rows[r].dy and x = gx * xstep + rows[r].dx, and is 0 where (y, x) falls
// outside the rows x cols plane.
struct Unfolded {
  const float* data;
  int64_t image_stride;
  int64_t plane_rows, plane_cols, row_stride, col_stride;
  int64_t grid_h, grid_w, ystep, xstep;
  const UnfoldRow* rows;
};

// The rows of conv2d's im2col matrix for a plane layout with channels channel_stride apart:
// row k = (channel, kernel row i, kernel column j) reads channel's plane shifted by
// (i * dilation - pad) rows and (j * dilation - pad) columns.
inline std::vector<UnfoldRow> im2col_rows(const ConvShape& s, int64_t channel_stride) {
  std::vector<UnfoldRow> rows(size_t(s.k));
  for (int64_t c = 0, k = 0; c < s.cg; c++)
    for (int64_t i = 0; i < s.kh; i++)
      for (int64_t j = 0; j < s.kw; j++, k++) rows[size_t(k)] = {c * channel_stride, i * s.dh - s.ph, j * s.dw - s.pw};
  return rows;
}

// Whether the AVX-512 packers below can read a matrix whose neighbouring columns are xstep *
// col_stride elements apart: a gather's lane offsets are 32-bit. (They exist only in the AVX-512
// build and for f32 data; callers check both.)
inline bool unfold_fast(int64_t xstep, int64_t col_stride) {
  const int64_t step = xstep * col_stride;
  return step > -(int64_t(1) << 26) && step < (int64_t(1) << 26);
}

#if defined(__AVX512F__)

// Up to 16 consecutive columns of U, cut where they leave a grid row: segment s covers lanes
// [lane, lane + count) and starts at grid pixel (gy, gx) of the image at image_offset.
struct UnfoldChunk {
  struct Segment {
    int64_t image_offset, gy, gx;
    int lane, count;
  };
  Segment seg[16];
  int segments = 0;
};

// The chunk of columns [q, q + count), count <= 16 (0 gives an empty chunk).
inline UnfoldChunk unfold_chunk(const Unfolded& u, int64_t q, int64_t count) {
  UnfoldChunk ch;
  if (count <= 0) return ch;
  const int64_t pixels = u.grid_h * u.grid_w;
  int64_t image = q / pixels, gy = q % pixels / u.grid_w, gx = q % u.grid_w;
  for (int lane = 0; lane < count;) {
    const int n = int(std::min<int64_t>(u.grid_w - gx, count - lane));
    ch.seg[ch.segments++] = {image * u.image_stride, gy, gx, lane, n};
    lane += n;
    gx = 0;
    if (++gy == u.grid_h) gy = 0, image++;
  }
  return ch;
}

// Row r of U over the chunk's columns, in the lanes the chunk covers; every other lane 0.
// Each segment is one masked load (contiguous columns) or gather: masked-off lanes are never
// read, so the address of lane 0 may lie outside the tensor.
inline __m512 unfold_load(const Unfolded& u, const UnfoldChunk& ch, const UnfoldRow& row) {
  __m512 v = _mm512_setzero_ps();
  const int64_t step = u.xstep * u.col_stride;
  for (int s = 0; s < ch.segments; s++) {
    const UnfoldChunk::Segment& g = ch.seg[s];
    const int64_t y = g.gy * u.ystep + row.dy;
    if (y < 0 || y >= u.plane_rows) continue;
    const int64_t x = g.gx * u.xstep + row.dx;
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
    const __mmask16 mask = __mmask16((((1u << hi) - 1) ^ ((1u << lo) - 1)) << g.lane);
    const int64_t lane0 = g.image_offset + row.offset + y * u.row_stride + x * u.col_stride - g.lane * step;
    const float* at = reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(u.data) + uintptr_t(lane0 * 4));
    if (step == 1) {
      v = _mm512_mask_loadu_ps(v, mask, at);
    } else {
      const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                 _mm512_set1_epi32(int32_t(step)));
      v = _mm512_mask_i32gather_ps(v, mask, offsets, at, 4);
    }
  }
  return v;
}

// GEMM packer (gemm.h's pack_b contract, kNR = 32) for B = U: rows [p0, p0 + kc) of U, columns
// [j0, j0 + nc), as micro-panels [kc][32], columns past nc zero. Each micro-panel is two chunks
// of 16 columns; each of its rows two loads.
inline void pack_unfolded_rows(const Unfolded& u, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) {
  constexpr int NR = 32;
  for (int64_t j = 0; j < nc; j += NR, dst += kc * NR) {
    const UnfoldChunk left = unfold_chunk(u, j0 + j, std::min<int64_t>(16, nc - j));
    const UnfoldChunk right = unfold_chunk(u, j0 + j + 16, std::min<int64_t>(16, nc - j - 16));
    for (int64_t k = 0; k < kc; k++) {
      const UnfoldRow& row = u.rows[p0 + k];
      _mm512_storeu_ps(dst + k * NR, unfold_load(u, left, row));
      _mm512_storeu_ps(dst + k * NR + 16, unfold_load(u, right, row));
    }
  }
}

// GEMM packer for an operand whose micro-panels are R rows of U wide, the GEMM depth running
// along U's columns: pack_a's contract with R = kMR (rows [i0, i0 + count) of U are A's rows),
// pack_b's with R = kNR (rows of U are B's columns). Packs depth [p0, p0 + kc) into micro-panels
// [kc][R], rows past count zero. Per 16 columns and 16 rows: 16 loads, one 16 x 16 transpose in
// registers, 16 (masked) stores.
template <int R>
void pack_unfolded_columns(const Unfolded& u, int64_t i0, int64_t count, int64_t p0, int64_t kc, float* dst) {
  const int64_t panels = (count + R - 1) / R;
  for (int64_t q = 0; q < kc; q += 16) {
    const int width = int(std::min<int64_t>(16, kc - q));
    const UnfoldChunk ch = unfold_chunk(u, p0 + q, width);
    for (int64_t panel = 0; panel < panels; panel++) {
      float* out = dst + panel * kc * R + q * R;
      for (int r0 = 0; r0 < R; r0 += 16) {
        const int64_t first = i0 + panel * R + r0;  // the U row in register 0
        const int64_t valid = std::min<int64_t>(16, i0 + count - first);
        __m512 block[16];
        for (int r = 0; r < 16; r++)
          block[r] = r < valid && r0 + r < R ? unfold_load(u, ch, u.rows[first + r]) : _mm512_setzero_ps();
        gemm::transpose16(block);
        const __mmask16 mask = __mmask16(R - r0 >= 16 ? 0xFFFF : (1u << (R - r0)) - 1);
        for (int t = 0; t < width; t++) _mm512_mask_storeu_ps(out + t * R + r0, mask, block[t]);
      }
    }
  }
}

#endif  // __AVX512F__

}  // namespace image_detail
}  // namespace emu::cpu::EMU_ISA
