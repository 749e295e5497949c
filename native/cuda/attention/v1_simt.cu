// v1_simt.cu: fused attention version 1, the straightforward one: plain CUDA-core (SIMT) math in
// shared-memory tiles, any head dim, f32, f64, bf16 and f16 (the 16-bit ones computed in f32).
//
// Forward (FlashAttention's online softmax): one block of 64 threads per (query tile of 16 rows,
// b*h). The block keeps its 16 queries (scaled) and their unnormalised output in shared memory
// and walks the keys 16 at a time: S = Q K_j^T (+ bias, masked), each row's running max m and
// sum l, P = exp(S - m_new), O = O * exp(m_old - m_new) + P V_j; at the end out = O / l and
// lse = m + log l. Causal blocks stop at the tile holding their last row's diagonal.
//
// Backward (FlashAttention-2's, with a deterministic dQ): a pre-pass computes Dr_i = rowsum(dO_i *
// O_i). Then one block per key tile owns dK_j and dV_j in shared memory and walks the query tiles:
// P = exp(S - lse) recomputed, dV_j += P^T dO_i, dP = dO_i V_j^T, dS = P * (dP - Dr),
// dK_j += dS^T (scale Q_i); it also writes dbias = dS when asked. A second pass, one block per
// query tile, recomputes dS over the key tiles and sums dQ_i = scale dS K in shared memory in a
// fixed order: no float atomics, so the bits never depend on scheduling, at the price of
// computing S and dP twice (7 tile products instead of FlashAttention-2's 5).
//
// Shared memory: forward (16 D + 16 Dv) * 2 + 16 * 16 + 48 values, i.e. 33 KiB in f32 at D = Dv =
// 128; backward up to 3 * 16 * (D + Dv) + 512 values (50 KiB at 128). What it should do on an
// H100/H200: it is CUDA-core bound and reads every operand from shared memory once per product
// (no register blocking): a few TFLOP/s at best, of ~60 (f32 FMA peak); it exists to be obviously
// right, for f32/f64 and the head dims v2 does not take.
#include "cuda/attention/common.cuh"

namespace emu::EMU_DEVICE_NS::attention::v1 {
namespace {

constexpr int kRows = 16, kKeys = 16, kBlockThreads = 64;

// Copies rows [r0, r0 + n) of a [.., L, X] operand's (b, h) slice into dst [n][X] in the compute
// type, times `mul`, with zeros past L.
template <class T, class V>
__device__ void load_tile(V* dst, const T* src, const Strides4& s, long long b, long long h, long long r0, long long L,
                          long long X, int n, V mul) {
  for (long long x = threadIdx.x; x < n * X; x += kBlockThreads) {
    const long long r = r0 + x / X, c = x % X;
    dst[x] = r < L ? V(load(src[s.at(b, h, r, c)])) * mul : V(0);
  }
}

template <class V>
__device__ __forceinline__ V dot(const V* a, const V* b, long long n) {
  V acc = V(0);
  for (long long d = 0; d < n; d++) acc += a[d] * b[d];
  return acc;
}

template <class T>
__global__ void __launch_bounds__(kBlockThreads) forward_kernel(Params p, Operands<T> o) {
  using V = Acc<T>;
  EMU_DYNAMIC_SHARED(V, smem);
  const long long D = p.D, Dv = p.Dv;
  V* qs = smem;             // [kRows][D], scaled
  V* ks = qs + kRows * D;   // [kKeys][D]
  V* vs = ks + kKeys * D;   // [kKeys][Dv]
  V* os = vs + kKeys * Dv;  // [kRows][Dv], unnormalised
  V* ss = os + kRows * Dv;  // [kRows][kKeys]: logits, then probabilities
  V* m = ss + kRows * kKeys;
  V* l = m + kRows;
  V* alpha = l + kRows;
  const int tid = int(threadIdx.x);
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, i0 = (long long)blockIdx.x * kRows;
  load_tile(qs, o.q, p.q, b, h, i0, p.Lq, D, kRows, V(p.scale));
  for (long long x = tid; x < kRows * Dv; x += kBlockThreads) os[x] = V(0);
  if (tid < kRows) {
    m[tid] = neg_inf<V>();
    l[tid] = V(0);
  }
  const long long rows = p.Lq - i0 < kRows ? p.Lq - i0 : kRows;
  const long long kend = p.causal && i0 + rows < p.Lk ? i0 + rows : p.Lk;  // causal: keys past the last row are hidden
  for (long long j0 = 0; j0 < kend; j0 += kKeys) {
    __syncthreads();  // the previous tile's readers are done
    load_tile(ks, o.k, p.k, b, h, j0, p.Lk, D, kKeys, V(1));
    load_tile(vs, o.v, p.v, b, h, j0, p.Lk, Dv, kKeys, V(1));
    __syncthreads();
    for (int x = tid; x < kRows * kKeys; x += kBlockThreads) {
      const int r = x / kKeys, c = x % kKeys;
      ss[x] = logit(p, o, b, h, i0 + r, j0 + c, dot(qs + r * D, ks + c * D, D));
    }
    __syncthreads();
    if (tid < kRows) {  // online softmax, one thread per row
      V* sr = ss + tid * kKeys;
      V mnew = m[tid];
      for (int c = 0; c < kKeys; c++) mnew = sr[c] > mnew ? sr[c] : mnew;
      if (mnew == neg_inf<V>()) {  // nothing visible yet: the row's output stays 0
        for (int c = 0; c < kKeys; c++) sr[c] = V(0);
        alpha[tid] = V(1);
      } else {
        V sum = V(0);
        for (int c = 0; c < kKeys; c++) sum += (sr[c] = m_exp(sr[c] - mnew));
        alpha[tid] = m[tid] == neg_inf<V>() ? V(0) : m_exp(m[tid] - mnew);
        l[tid] = l[tid] * alpha[tid] + sum;
        m[tid] = mnew;
      }
    }
    __syncthreads();
    for (long long x = tid; x < kRows * Dv; x += kBlockThreads) {
      const long long r = x / Dv, c = x % Dv;
      V acc = os[x] * alpha[r];
      for (int j = 0; j < kKeys; j++) acc += ss[r * kKeys + j] * vs[j * Dv + c];
      os[x] = acc;
    }
  }
  __syncthreads();
  for (long long x = tid; x < rows * Dv; x += kBlockThreads) {
    const long long r = x / Dv, c = x % Dv;
    o.out[p.out.at(b, h, i0 + r, c)] = cvt<T>(l[r] > V(0) ? os[x] / l[r] : V(0));
  }
  if (tid < rows) o.lse[p.lse.at(b, h, i0 + tid, 0)] = l[tid] > V(0) ? m[tid] + m_log(l[tid]) : neg_inf<V>();
}

// The shared state of a (query tile, key tile) pair in the backward: both tiles loaded, P and
// dS computed for it.
template <class V>
struct PairTiles {
  V *qs, *dos, *ks, *vs, *ps, *dss, *lse, *dr;
};

// Loads query rows [i0, i0 + kRows): Q (scaled), dO, lse and Dr.
template <class T, class V>
__device__ void load_queries(const Params& p, const Operands<T>& o, const V* dr, const PairTiles<V>& t, long long b,
                             long long h, long long i0) {
  load_tile(t.qs, o.q, p.q, b, h, i0, p.Lq, p.D, kRows, V(p.scale));
  load_tile(t.dos, o.dout, p.dout, b, h, i0, p.Lq, p.Dv, kRows, V(1));
  if (threadIdx.x < kRows) {
    const long long i = i0 + threadIdx.x;
    t.lse[threadIdx.x] = i < p.Lq ? V(o.lse[p.lse.at(b, h, i, 0)]) : neg_inf<V>();
    t.dr[threadIdx.x] = i < p.Lq ? dr[(b * p.H + h) * p.Lq + i] : V(0);
  }
}

// P = exp(logits - lse) and dS = P * (dO V^T - Dr) for the pair (rows i0.., keys j0..); writes
// dS to dbias when `write_dbias`. Zero wherever the key is hidden or the row sees nothing.
template <class T, class V>
__device__ void probabilities(const Params& p, const Operands<T>& o, const PairTiles<V>& t, long long b, long long h,
                              long long i0, long long j0, bool write_dbias) {
  for (int x = threadIdx.x; x < kRows * kKeys; x += kBlockThreads) {
    const int r = x / kKeys, c = x % kKeys;
    const long long i = i0 + r, j = j0 + c;
    const V lg = logit(p, o, b, h, i, j, dot(t.qs + r * p.D, t.ks + c * p.D, p.D));
    const V pr = lg == neg_inf<V>() || t.lse[r] == neg_inf<V>() ? V(0) : m_exp(lg - t.lse[r]);
    const V ds = pr * (dot(t.dos + r * p.Dv, t.vs + c * p.Dv, p.Dv) - t.dr[r]);
    t.ps[x] = pr;
    t.dss[x] = ds;
    if (write_dbias && i < p.Lq && j < p.Lk) o.dbias[p.dbias.at(b, h, i, j)] = cvt<T>(ds);
  }
}

// One block per (key tile, b*h): dK and dV of its keys (and dbias), summed over the query tiles.
template <class T>
__global__ void __launch_bounds__(kBlockThreads) dkdv_kernel(Params p, Operands<T> o, const Acc<T>* dr) {
  using V = Acc<T>;
  EMU_DYNAMIC_SHARED(V, smem);
  const long long D = p.D, Dv = p.Dv;
  PairTiles<V> t;
  t.ks = smem;
  t.vs = t.ks + kKeys * D;
  V* dks = t.vs + kKeys * Dv;  // [kKeys][D]
  V* dvs = dks + kKeys * D;    // [kKeys][Dv]
  t.qs = dvs + kKeys * Dv;
  t.dos = t.qs + kRows * D;
  t.ps = t.dos + kRows * Dv;
  t.dss = t.ps + kRows * kKeys;
  t.lse = t.dss + kRows * kKeys;
  t.dr = t.lse + kRows;
  const int tid = int(threadIdx.x);
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, j0 = (long long)blockIdx.x * kKeys;
  load_tile(t.ks, o.k, p.k, b, h, j0, p.Lk, D, kKeys, V(1));
  load_tile(t.vs, o.v, p.v, b, h, j0, p.Lk, Dv, kKeys, V(1));
  for (long long x = tid; x < kKeys * D; x += kBlockThreads) dks[x] = V(0);
  for (long long x = tid; x < kKeys * Dv; x += kBlockThreads) dvs[x] = V(0);
  // Causal: rows before j0 see none of these keys (but dbias wants its zeros written).
  const long long ibegin = p.causal && !o.dbias ? j0 / kRows * kRows : 0;
  for (long long i0 = ibegin; i0 < p.Lq; i0 += kRows) {
    __syncthreads();  // the previous query tile's readers are done
    load_queries(p, o, dr, t, b, h, i0);
    __syncthreads();
    probabilities(p, o, t, b, h, i0, j0, o.dbias != nullptr);
    __syncthreads();
    for (long long x = tid; x < kKeys * Dv; x += kBlockThreads) {  // dV_j += P^T dO_i
      const long long c = x / Dv, d = x % Dv;
      V acc = dvs[x];
      for (int r = 0; r < kRows; r++) acc += t.ps[r * kKeys + c] * t.dos[r * Dv + d];
      dvs[x] = acc;
    }
    for (long long x = tid; x < kKeys * D; x += kBlockThreads) {  // dK_j += dS^T (scale Q_i)
      const long long c = x / D, d = x % D;
      V acc = dks[x];
      for (int r = 0; r < kRows; r++) acc += t.dss[r * kKeys + c] * t.qs[r * D + d];
      dks[x] = acc;
    }
  }
  __syncthreads();
  const long long keys = p.Lk - j0 < kKeys ? p.Lk - j0 : kKeys;
  for (long long x = tid; x < keys * D; x += kBlockThreads) o.dk[p.dk.at(b, h, j0 + x / D, x % D)] = cvt<T>(dks[x]);
  for (long long x = tid; x < keys * Dv; x += kBlockThreads) o.dv[p.dv.at(b, h, j0 + x / Dv, x % Dv)] = cvt<T>(dvs[x]);
}

// One block per (query tile, b*h): dQ = scale dS K, summed over the key tiles in order.
template <class T>
__global__ void __launch_bounds__(kBlockThreads) dq_kernel(Params p, Operands<T> o, const Acc<T>* dr) {
  using V = Acc<T>;
  EMU_DYNAMIC_SHARED(V, smem);
  const long long D = p.D, Dv = p.Dv;
  PairTiles<V> t;
  t.qs = smem;
  t.dos = t.qs + kRows * D;
  V* dqs = t.dos + kRows * Dv;  // [kRows][D]
  t.ks = dqs + kRows * D;
  t.vs = t.ks + kKeys * D;
  t.ps = t.vs + kKeys * Dv;
  t.dss = t.ps + kRows * kKeys;
  t.lse = t.dss + kRows * kKeys;
  t.dr = t.lse + kRows;
  const int tid = int(threadIdx.x);
  const long long b = blockIdx.y / p.H, h = blockIdx.y % p.H, i0 = (long long)blockIdx.x * kRows;
  load_queries(p, o, dr, t, b, h, i0);
  for (long long x = tid; x < kRows * D; x += kBlockThreads) dqs[x] = V(0);
  const long long rows = p.Lq - i0 < kRows ? p.Lq - i0 : kRows;
  const long long kend = p.causal && i0 + rows < p.Lk ? i0 + rows : p.Lk;
  for (long long j0 = 0; j0 < kend; j0 += kKeys) {
    __syncthreads();
    load_tile(t.ks, o.k, p.k, b, h, j0, p.Lk, D, kKeys, V(1));
    load_tile(t.vs, o.v, p.v, b, h, j0, p.Lk, Dv, kKeys, V(1));
    __syncthreads();
    probabilities(p, o, t, b, h, i0, j0, false);
    __syncthreads();
    for (long long x = tid; x < kRows * D; x += kBlockThreads) {
      const long long r = x / D, d = x % D;
      V acc = dqs[x];
      for (int c = 0; c < kKeys; c++) acc += t.dss[r * kKeys + c] * t.ks[c * D + d];
      dqs[x] = acc;
    }
  }
  __syncthreads();
  for (long long x = tid; x < rows * D; x += kBlockThreads) o.dq[p.dq.at(b, h, i0 + x / D, x % D)] = cvt<T>(dqs[x] * V(p.scale));
}

// Dynamic shared memory, checked against the 227 KiB a block may have (sm_90; sm_80 has 163).
size_t shared_bytes(const char* op, long long values, size_t value_size, const Params& p) {
  const size_t bytes = size_t(values) * value_size;
  if (bytes > 227 * 1024)
    fail(ErrorKind::Shape, std::string(op) + ": head dims " + std::to_string(p.D) + " and " + std::to_string(p.Dv) +
                               " need " + std::to_string(bytes) + " bytes of shared memory, more than a block has");
  return bytes;
}

dim3 grid_of(long long tiles, const Params& p) { return dim3(unsigned(tiles), unsigned(p.B * p.H)); }

}  // namespace

template <class T>
void forward(const Params& p, const Operands<T>& o) {
  const size_t bytes = shared_bytes("attention", (kRows + kKeys) * (p.D + p.Dv) + kRows * kKeys + 3 * kRows, sizeof(Acc<T>), p);
  if (p.Lq > 0) launch<forward_kernel<T>>(grid_of((p.Lq + kRows - 1) / kRows, p), dim3(kBlockThreads), bytes, Stream{}, p, o);
}

template <class T>
void backward(const Params& p, const Operands<T>& o) {
  Scratch<Acc<T>> dr(p.B * p.H * p.Lq);
  row_dots(p, o, dr.get());
  const long long pair = (kRows + kKeys) * (p.D + p.Dv) + 2 * kRows * kKeys + 2 * kRows;
  const size_t dkdv_bytes = shared_bytes("attentionBackward", pair + kKeys * (p.D + p.Dv), sizeof(Acc<T>), p);
  if (p.Lk > 0) launch<dkdv_kernel<T>>(grid_of((p.Lk + kKeys - 1) / kKeys, p), dim3(kBlockThreads), dkdv_bytes, Stream{}, p, o, dr.get());
  const size_t dq_bytes = shared_bytes("attentionBackward", pair + kRows * p.D, sizeof(Acc<T>), p);
  if (p.Lq > 0) launch<dq_kernel<T>>(grid_of((p.Lq + kRows - 1) / kRows, p), dim3(kBlockThreads), dq_bytes, Stream{}, p, o, dr.get());
}

template void forward<float>(const Params&, const Operands<float>&);
template void forward<double>(const Params&, const Operands<double>&);
template void forward<bf16>(const Params&, const Operands<bf16>&);
template void forward<f16>(const Params&, const Operands<f16>&);
template void backward<float>(const Params&, const Operands<float>&);
template void backward<double>(const Params&, const Operands<double>&);
template void backward<bf16>(const Params&, const Operands<bf16>&);
template void backward<f16>(const Params&, const Operands<f16>&);

}  // namespace emu::EMU_DEVICE_NS::attention::v1
