// v2_mma.cu: fused attention version 2: bf16 and f16 on tensor cores (mma.sync m16n8k16, f32
// accumulation) fed by ldmatrix, with FlashAttention-2's work partitioning; the element type is
// the kernels' template parameter T (mma_tiles.cuh). Head dims D and Dv that are
// multiples of 8 up to 128; each launch configuration is one padded head width kHead in {32, 64,
// 80, 96, 128} (88, Emu's vision encoder, runs as 96: the k-steps of Q K^T are 16 wide, so the
// tiles are zero-padded in shared memory; the padding adds zeros to every dot product).
//
// What it changes over v1, and why:
//  - The products run on tensor cores (bf16 or f16 in, f32 out) instead of CUDA-core FMAs.
//  - Forward: one block of 4 warps per (64 queries, b*h); each warp owns 16 query rows (split-Q,
//    so no reduction across warps): its Q fragments stay in registers, S = Q K_j^T and the online
//    softmax (running max and sum in registers, row reductions by quad shuffles) stay in
//    registers, and P is reused as the A operand of P V_j straight from S's accumulator layout
//    (no shared-memory round trip). exp2 with the scale folded into log2(e).
//  - Backward: one block per 64 keys, each warp owning 16 keys: it computes S^T = K Q^T and
//    dP^T = V dO^T, so P^T and dS^T land in registers in the A-operand layout of dV += P^T dO and
//    dK += dS^T Q, and dK, dV accumulate in registers with no reduction across warps. dQ comes
//    from a second kernel, one block per 64 queries, that recomputes S, dP and dS and sums
//    dS K_j over the key tiles in order: deterministic, no float atomics.
//  - Tiles arrive by cp.async (16-byte copies) where an operand's rows are contiguous and
//    16-byte aligned, else by plain strided loads (transposed views); rows are padded by 16
//    bytes so the 8 rows of each ldmatrix fall in distinct banks (mma_tiles.cuh).
// Single-buffered (load, wait, compute) and every tile masked element by element: v3 changes
// both in the forward.
//
// Shared memory per block (2-byte elements): forward 3 * 64 * (kHead + 8) (52 KiB at kHead 128);
// backward dK/dV (2 * 64 + 2 * kRowsB) * (kHead + 8) + 2 * kRowsB floats (52 KiB at 128, kRowsB =
// 32); backward dQ 4 * 64 * (kHead + 8) (68 KiB at 128). Expected bound on an H100/H200 in the
// report (bench/gpu/NOTES.md).
#include "cuda/attention/mma_tiles.cuh"

namespace emu::EMU_DEVICE_NS::attention::v2 {
namespace {

using namespace mma;

// The dK/dV kernel's query tile: smaller at wide heads, where dK and dV fill the registers.
template <int kHead> constexpr int kRowsB = kHead <= 64 ? 64 : 32;

template <class T, int kHead>
__global__ void __launch_bounds__(kThreadsPerBlock) forward_kernel(Params p, Operands<T> o, Vector vec) {
  constexpr int kK = kHead / 16, kN = kHead / 8, kS = kKeys / 8;
  EMU_DYNAMIC_SHARED(T, smem);
  T* qs = smem;                               // [kQueries][kStride]
  T* ks = qs + kQueries * kStride<kHead>;     // [kKeys][kStride]
  T* vs = ks + kKeys * kStride<kHead>;        // [kKeys][kStride]
  const int warp = int(threadIdx.x) / 32;
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, i0 = (long long)blockIdx.x * kQueries;
  load_tile<kHead>(qs, o.q, p.q, b, h, i0, p.Lq, p.D, kQueries, vec.q);
  wait_tiles();
  uint32_t qf[kK][4];  // this warp's 16 queries, for the whole key walk
  load_a<kHead>(qf, qs + warp * 16 * kStride<kHead>);
  float out[kN][4];
  zero(out);
  OnlineSoftmax softmax;
  const long long rows = p.Lq - i0 < kQueries ? p.Lq - i0 : kQueries;
  const long long kend = p.causal && i0 + rows < p.Lk ? i0 + rows : p.Lk;
  for (long long j0 = 0; j0 < kend; j0 += kKeys) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<kHead>(ks, o.k, p.k, b, h, j0, p.Lk, p.D, kKeys, vec.k);
    load_tile<kHead>(vs, o.v, p.v, b, h, j0, p.Lk, p.Dv, kKeys, vec.v);
    wait_tiles();
    float s[kS][4];
    zero(s);
    mma_nk<kHead>(s, qf, ks);
    #pragma unroll
    for (int n = 0; n < kS; n++) {
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        const long long i = i0 + warp * 16 + acc_row(e), j = j0 + acc_col(n, e);
        s[n][e] = logit(p, o, b, h, i, j, s[n][e] * float(p.scale)) * kLog2e;  // log2 units: exp2(x - m)
      }
    }
    softmax.step(s, out);
    uint32_t pf[kS / 2][4];
    to_a<kS, T>(pf, s);
    mma_kn<kHead>(out, pf, vs);
  }
  softmax.finish(p, o, b, h, i0 + warp * 16, out);
}

// lse and Dr of query rows [i0, i0 + n) into shared arrays (-inf and 0 past Lq).
template <class T>
__device__ void load_row_stats(const Params& p, const Operands<T>& o, const float* dr, float* lse_s, float* dr_s,
                               long long b, long long h, long long i0, int n) {
  for (int x = threadIdx.x; x < n; x += kThreadsPerBlock) {
    const long long i = i0 + x;
    lse_s[x] = i < p.Lq ? o.lse[p.lse.at(b, h, i, 0)] : neg_inf<float>();
    dr_s[x] = i < p.Lq ? dr[(b * p.H + h) * p.Lq + i] : 0.0f;
  }
}

// P = exp(logit - lse) for query i and key j from the raw score s; 0 where hidden or the row
// sees no key.
template <class T>
__device__ __forceinline__ float probability(const Params& p, const Operands<T>& o, long long b, long long h,
                                             long long i, long long j, float s, float lse) {
  const float lg = logit(p, o, b, h, i, j, s * float(p.scale));
  return lg == neg_inf<float>() || lse == neg_inf<float>() ? 0.0f : expf(lg - lse);
}

template <class T, int kHead>
__global__ void __launch_bounds__(kThreadsPerBlock) dkdv_kernel(Params p, Operands<T> o, Vector vec, const float* dr) {
  constexpr int kR = kRowsB<kHead>, kK = kHead / 16, kN = kHead / 8, kS = kR / 8;
  EMU_DYNAMIC_SHARED(T, smem);
  T* ks = smem;                            // [kKeys][kStride]
  T* vs = ks + kKeys * kStride<kHead>;     // [kKeys][kStride]
  T* qs = vs + kKeys * kStride<kHead>;     // [kR][kStride]
  T* dos = qs + kR * kStride<kHead>;       // [kR][kStride]
  float* lse_s = reinterpret_cast<float*>(dos + kR * kStride<kHead>);
  float* dr_s = lse_s + kR;
  const int warp = int(threadIdx.x) / 32;
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, j0 = (long long)blockIdx.x * kKeys;
  load_tile<kHead>(ks, o.k, p.k, b, h, j0, p.Lk, p.D, kKeys, vec.k);
  load_tile<kHead>(vs, o.v, p.v, b, h, j0, p.Lk, p.Dv, kKeys, vec.v);
  wait_tiles();
  float dk[kN][4], dv[kN][4];
  zero(dk);
  zero(dv);
  const T* kw = ks + warp * 16 * kStride<kHead>;  // this warp's 16 keys
  const T* vw = vs + warp * 16 * kStride<kHead>;
  // Causal: rows before j0 see none of these keys (but dbias wants its zeros written).
  const long long ibegin = p.causal && !o.dbias ? j0 / kR * kR : 0;
  for (long long i0 = ibegin; i0 < p.Lq; i0 += kR) {
    __syncthreads();  // the previous query tile's readers are done
    load_tile<kHead>(qs, o.q, p.q, b, h, i0, p.Lq, p.D, kR, vec.q);
    load_tile<kHead>(dos, o.dout, p.dout, b, h, i0, p.Lq, p.Dv, kR, vec.dout);
    load_row_stats(p, o, dr, lse_s, dr_s, b, h, i0, kR);
    wait_tiles();
    uint32_t af[kK][4];
    float st[kS][4], dpt[kS][4];  // S^T and dP^T: rows = this warp's keys, columns = the tile's queries
    zero(st);
    zero(dpt);
    load_a<kHead>(af, kw);
    mma_nk<kHead>(st, af, qs);
    load_a<kHead>(af, vw);
    mma_nk<kHead>(dpt, af, dos);
    #pragma unroll
    for (int n = 0; n < kS; n++) {
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = acc_col(n, e);
        const long long j = j0 + warp * 16 + acc_row(e), i = i0 + c;
        const float pr = probability(p, o, b, h, i, j, st[n][e], lse_s[c]);
        st[n][e] = pr;
        dpt[n][e] = pr * (dpt[n][e] - dr_s[c]);  // dS^T
        if (o.dbias && i < p.Lq && j < p.Lk) o.dbias[p.dbias.at(b, h, i, j)] = cvt<T>(dpt[n][e]);
      }
    }
    uint32_t pf[kS / 2][4];
    to_a<kS, T>(pf, st);
    mma_kn<kHead>(dv, pf, dos);  // dV_j += P^T dO_i
    to_a<kS, T>(pf, dpt);
    mma_kn<kHead>(dk, pf, qs);  // dK_j += dS^T Q_i (times scale, below)
  }
  #pragma unroll
  for (int n = 0; n < kN; n++) {
    #pragma unroll
    for (int e = 0; e < 4; e++) {
      const long long j = j0 + warp * 16 + acc_row(e), c = acc_col(n, e);
      if (j >= p.Lk) continue;
      if (c < p.D) o.dk[p.dk.at(b, h, j, c)] = cvt<T>(dk[n][e] * float(p.scale));
      if (c < p.Dv) o.dv[p.dv.at(b, h, j, c)] = cvt<T>(dv[n][e]);
    }
  }
}

template <class T, int kHead>
__global__ void __launch_bounds__(kThreadsPerBlock) dq_kernel(Params p, Operands<T> o, Vector vec, const float* dr) {
  constexpr int kK = kHead / 16, kN = kHead / 8, kS = kKeys / 8;
  EMU_DYNAMIC_SHARED(T, smem);
  T* qs = smem;                             // [kQueries][kStride]
  T* dos = qs + kQueries * kStride<kHead>;  // [kQueries][kStride]
  T* ks = dos + kQueries * kStride<kHead>;  // [kKeys][kStride]
  T* vs = ks + kKeys * kStride<kHead>;      // [kKeys][kStride]
  float* lse_s = reinterpret_cast<float*>(vs + kKeys * kStride<kHead>);
  float* dr_s = lse_s + kQueries;
  const int warp = int(threadIdx.x) / 32;
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, i0 = (long long)blockIdx.x * kQueries;
  load_tile<kHead>(qs, o.q, p.q, b, h, i0, p.Lq, p.D, kQueries, vec.q);
  load_tile<kHead>(dos, o.dout, p.dout, b, h, i0, p.Lq, p.Dv, kQueries, vec.dout);
  load_row_stats(p, o, dr, lse_s, dr_s, b, h, i0, kQueries);
  wait_tiles();
  float dq[kN][4];
  zero(dq);
  const long long rows = p.Lq - i0 < kQueries ? p.Lq - i0 : kQueries;
  const long long kend = p.causal && i0 + rows < p.Lk ? i0 + rows : p.Lk;
  for (long long j0 = 0; j0 < kend; j0 += kKeys) {
    __syncthreads();  // the previous key tile's readers are done
    load_tile<kHead>(ks, o.k, p.k, b, h, j0, p.Lk, p.D, kKeys, vec.k);
    load_tile<kHead>(vs, o.v, p.v, b, h, j0, p.Lk, p.Dv, kKeys, vec.v);
    wait_tiles();
    uint32_t af[kK][4];
    float s[kS][4], dp[kS][4];
    zero(s);
    zero(dp);
    load_a<kHead>(af, qs + warp * 16 * kStride<kHead>);
    mma_nk<kHead>(s, af, ks);
    load_a<kHead>(af, dos + warp * 16 * kStride<kHead>);
    mma_nk<kHead>(dp, af, vs);
    #pragma unroll
    for (int n = 0; n < kS; n++) {
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = warp * 16 + acc_row(e);
        const float pr = probability(p, o, b, h, i0 + r, j0 + acc_col(n, e), s[n][e], lse_s[r]);
        s[n][e] = pr * (dp[n][e] - dr_s[r]);  // dS
      }
    }
    uint32_t sf[kS / 2][4];
    to_a<kS, T>(sf, s);
    mma_kn<kHead>(dq, sf, ks);  // dQ_i += dS K_j (times scale, below)
  }
  #pragma unroll
  for (int n = 0; n < kN; n++) {
    #pragma unroll
    for (int e = 0; e < 4; e++) {
      const long long i = i0 + warp * 16 + acc_row(e), c = acc_col(n, e);
      if (i < p.Lq && c < p.D) o.dq[p.dq.at(b, h, i, c)] = cvt<T>(dq[n][e] * float(p.scale));
    }
  }
}

}  // namespace

bool supports(const Params& p) { return p.D > 0 && p.Dv > 0 && p.D % 8 == 0 && p.Dv % 8 == 0 && head_width(p) != 0; }

template <class T>
void forward(const Params& p, const Operands<T>& o) {
  const Vector vec{vector_rows(o.q, p.q), vector_rows(o.k, p.k), vector_rows(o.v, p.v), false};
  by_width(head_width(p), [&](auto width) {
    constexpr int kHead = decltype(width)::value;
    const size_t bytes = size_t(kQueries + 2 * kKeys) * kStride<kHead> * sizeof(T);
    if (p.Lq > 0)
      launch<forward_kernel<T, kHead>>(grid_of((p.Lq + kQueries - 1) / kQueries, p), dim3(kThreadsPerBlock), bytes, Stream{}, p, o, vec);
  });
}

template <class T>
void backward(const Params& p, const Operands<T>& o) {
  const Vector vec{vector_rows(o.q, p.q), vector_rows(o.k, p.k), vector_rows(o.v, p.v), vector_rows(o.dout, p.dout)};
  Scratch<float> dr(p.B * p.H * p.Lq);
  row_dots(p, o, dr.get());
  by_width(head_width(p), [&](auto width) {
    constexpr int kHead = decltype(width)::value, kR = kRowsB<kHead>;
    const size_t dkdv_bytes = size_t(2 * kKeys + 2 * kR) * kStride<kHead> * sizeof(T) + 2 * kR * sizeof(float);
    if (p.Lk > 0)
      launch<dkdv_kernel<T, kHead>>(grid_of((p.Lk + kKeys - 1) / kKeys, p), dim3(kThreadsPerBlock), dkdv_bytes, Stream{}, p, o,
                                 vec, static_cast<const float*>(dr.get()));
    const size_t dq_bytes = size_t(2 * kQueries + 2 * kKeys) * kStride<kHead> * sizeof(T) + 2 * kQueries * sizeof(float);
    if (p.Lq > 0)
      launch<dq_kernel<T, kHead>>(grid_of((p.Lq + kQueries - 1) / kQueries, p), dim3(kThreadsPerBlock), dq_bytes, Stream{}, p, o,
                               vec, static_cast<const float*>(dr.get()));
  });
}

template void forward<bf16>(const Params&, const Operands<bf16>&);
template void forward<f16>(const Params&, const Operands<f16>&);
template void backward<bf16>(const Params&, const Operands<bf16>&);
template void backward<f16>(const Params&, const Operands<f16>&);

}  // namespace emu::EMU_DEVICE_NS::attention::v2
