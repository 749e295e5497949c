// selftest.cu: the SIMT emulator's self-tests (see selftest.h): one small kernel per emulated
// feature checked against a plain host reference, and deliberately broken kernels the emulator
// must catch. nvcc compiles this file too (sm_80, sm_90), which proves both compilers accept the
// same kernel source; the host checks use only the runtime layer (cuda/runtime.h), so the
// feature tests can run unchanged on a GPU.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "cuda/device.cuh"
#include "sim/selftest.h"

namespace emu::EMU_DEVICE_NS {
namespace {

// ---- host helpers ------------------------------------------------------------------------------

// A device array filled from (or read back to) host vectors.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : n_(host.size()) {
    ptr_ = static_cast<T*>(runtime().allocate(bytes(), Stream{}));
    runtime().copy_to_device(ptr_, host.data(), bytes(), Stream{});
  }
  DeviceArray(size_t n, T value) : DeviceArray(std::vector<T>(n, value)) {}
  ~DeviceArray() { runtime().deallocate(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return ptr_; }
  std::vector<T> to_host() const {
    std::vector<T> out(n_);
    runtime().copy_to_host(out.data(), ptr_, bytes(), Stream{});
    return out;
  }

 private:
  size_t bytes() const { return n_ * sizeof(T); }
  size_t n_;
  T* ptr_;
};

// Deterministic inputs: a 32-bit LCG, values k / 8 in [-range, range] (exact in bf16 and f16
// for small ranges, so tensor-core sums are exact too).
struct Inputs {
  uint32_t state;
  float next(float range) {
    state = state * 1664525u + 1013904223u;
    const int steps = int(range * 8);
    return float(int(state >> 8) % (2 * steps + 1) - steps) / 8.0f;
  }
  std::vector<float> vector(size_t n, float range) {
    std::vector<float> v(n);
    for (float& x : v) x = next(range);
    return v;
  }
};

// "" when every got[i] is within tol (absolute + relative) of want[i]; else the first mismatch.
template <typename G, typename W>
std::string compare(const char* what, const std::vector<G>& got, const std::vector<W>& want, double tol = 0) {
  if (got.size() != want.size()) return std::string(what) + ": size mismatch";
  for (size_t i = 0; i < got.size(); i++) {
    const double g = double(got[i]), w = double(want[i]);
    if (g != w && !(std::fabs(g - w) <= tol * (1 + std::fabs(w)))) {
      return std::string(what) + "[" + std::to_string(i) + "]: got " + std::to_string(g) + ", want " + std::to_string(w);
    }
  }
  return "";
}

// ---- built-in variables -----------------------------------------------------------------------

__global__ void builtins_kernel(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block << 16 | thread;
}

std::string check_builtins() {
  const dim3 grid(3, 2, 2), block(5, 3, 2);  // 30 threads: a partial warp
  const size_t n = 12 * 30;
  DeviceArray<unsigned> out(n, 0u);
  launch<builtins_kernel>(grid, block, 0, Stream{}, out.get());
  std::vector<unsigned> want(n);
  for (size_t i = 0; i < n; i++) want[i] = unsigned(i / 30) << 16 | unsigned(i % 30);
  return compare("builtins", out.to_host(), want);
}

// ---- shared memory and barriers ------------------------------------------------------------------

// Tree reduction in static shared memory; without the loop barrier a thread reads a partial sum
// its partner has not finished yet.
template <bool Barrier>
__global__ void block_sum_kernel(const float* in, float* out, int n) {
  EMU_SHARED(float, partial, [128]);
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  partial[t] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    if (Barrier) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

template <bool Barrier>
std::string check_block_sum() {
  const int n = 1000, blocks = (n + 127) / 128;
  const std::vector<float> in = Inputs{7}.vector(n, 4);
  DeviceArray<float> din(in), dout(size_t(blocks), 0.0f);
  launch<block_sum_kernel<Barrier>>(dim3(blocks), dim3(128), 0, Stream{}, din.get(), dout.get(), n);
  std::vector<double> want(size_t(blocks), 0.0);
  for (int i = 0; i < n; i++) want[size_t(i / 128)] += in[size_t(i)];
  return compare("block sums", dout.to_host(), want, 1e-6);
}

__global__ void reverse_kernel(const int* in, int* out) {
  EMU_DYNAMIC_SHARED(int, buffer);
  const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  buffer[t] = in[base + t];
  __syncthreads();
  out[base + t] = buffer[blockDim.x - 1 - t];
}

std::string check_dynamic_shared() {
  const int threads = 96, blocks = 5;
  std::vector<int> in(threads * blocks);
  for (size_t i = 0; i < in.size(); i++) in[i] = int(i * 7 + 3);
  DeviceArray<int> din(in), dout(in.size(), 0);
  launch<reverse_kernel>(dim3(blocks), dim3(threads), threads * sizeof(int), Stream{}, din.get(), dout.get());
  std::vector<int> want(in.size());
  for (size_t i = 0; i < in.size(); i++) want[i] = in[i / threads * threads + threads - 1 - i % threads];
  return compare("reversed", dout.to_host(), want);
}

// 32x32 tiles through a padded shared tile, 32x8 threads each moving four rows; without the
// barrier a thread reads tile entries other threads have not written.
template <bool Barrier>
__global__ void transpose_kernel(const float* in, float* out, int rows, int cols) {
  EMU_SHARED(float, tile, [32][33]);
  int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
  for (int j = 0; j < 32; j += 8) {
    if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * cols + x];
  }
  if (Barrier) __syncthreads();
  x = blockIdx.y * 32 + threadIdx.x;
  y = blockIdx.x * 32 + threadIdx.y;
  for (int j = 0; j < 32; j += 8) {
    if (x < rows && y + j < cols) out[(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
  }
}

template <bool Barrier>
std::string check_transpose() {
  const int rows = 45, cols = 70;
  const std::vector<float> in = Inputs{11}.vector(size_t(rows * cols), 8);
  DeviceArray<float> din(in), dout(in.size(), 0.0f);
  launch<transpose_kernel<Barrier>>(dim3((cols + 31) / 32, (rows + 31) / 32), dim3(32, 8), 0, Stream{}, din.get(), dout.get(),
                                    rows, cols);
  std::vector<float> want(in.size());
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c < cols; c++) want[size_t(c * rows + r)] = in[size_t(r * cols + c)];
  }
  return compare("transposed", dout.to_host(), want);
}

__global__ void syncthreads_votes_kernel(const int* flags, int* out) {
  const int f = flags[blockIdx.x * blockDim.x + threadIdx.x];
  const int count = __syncthreads_count(f);
  const int all = __syncthreads_and(f);
  const int any = __syncthreads_or(f);
  if (threadIdx.x == 0) {
    out[3 * blockIdx.x] = count;
    out[3 * blockIdx.x + 1] = all;
    out[3 * blockIdx.x + 2] = any;
  }
}

std::string check_syncthreads_votes() {
  const int threads = 100, blocks = 4;  // blocks: all zero, all one, every third, one thread
  std::vector<int> flags(threads * blocks, 0);
  for (int t = 0; t < threads; t++) {
    flags[size_t(threads + t)] = 1;
    flags[size_t(2 * threads + t)] = t % 3 == 0 ? 5 : 0;
  }
  flags[size_t(3 * threads + 77)] = -1;
  DeviceArray<int> dflags(flags), dout(size_t(3 * blocks), 9);
  launch<syncthreads_votes_kernel>(dim3(blocks), dim3(threads), 0, Stream{}, dflags.get(), dout.get());
  return compare("count/and/or", dout.to_host(), std::vector<int>{0, 0, 0, 100, 1, 1, 34, 0, 1, 1, 0, 1});
}

// Threads past n return before the barrier; exited threads count as arrived.
__global__ void early_exit_kernel(const float* in, float* out, int n) {
  EMU_SHARED(float, buffer, [64]);
  const int t = threadIdx.x;
  if (t >= n) return;
  buffer[t] = in[t] * 2.0f;
  __syncthreads();
  out[t] = buffer[(t + 1) % n];
}

std::string check_early_exit() {
  const int n = 41;
  const std::vector<float> in = Inputs{3}.vector(n, 4);
  DeviceArray<float> din(in), dout(size_t(n), 0.0f);
  launch<early_exit_kernel>(dim3(1), dim3(64), 0, Stream{}, din.get(), dout.get(), n);
  std::vector<float> want(in.size());
  for (int t = 0; t < n; t++) want[size_t(t)] = in[size_t((t + 1) % n)] * 2.0f;
  return compare("rotated", dout.to_host(), want);
}

// ---- warp collectives ---------------------------------------------------------------------------

constexpr int kShuffleCases = 9;

__global__ void shuffle_kernel(int* out, double* out_double) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int v = warp * 1000 + lane * 3 + 1;
  int* o = out + threadIdx.x * kShuffleCases;
  o[0] = __shfl_sync(0xffffffffu, v, (lane * 7) % 32);
  o[1] = __shfl_sync(0xffffffffu, v, lane + 5, 8);
  o[2] = __shfl_up_sync(0xffffffffu, v, 3);
  o[3] = __shfl_up_sync(0xffffffffu, v, 2, 16);
  o[4] = __shfl_down_sync(0xffffffffu, v, 5);
  o[5] = __shfl_down_sync(0xffffffffu, v, 3, 8);
  o[6] = __shfl_xor_sync(0xffffffffu, v, 9);
  o[7] = __shfl_xor_sync(0xffffffffu, v, 3, 4);
  o[8] = lane < 16 ? __shfl_xor_sync(0x0000ffffu, v, 1) : -v;  // half the warp, its own mask
  out_double[threadIdx.x] = __shfl_down_sync(0xffffffffu, double(v) + 0.25, 1);
}

std::string check_shuffles() {
  const int threads = 64;
  DeviceArray<int> dout(size_t(threads * kShuffleCases), 0);
  DeviceArray<double> ddouble(size_t(threads), 0.0);
  launch<shuffle_kernel>(dim3(1), dim3(threads), 0, Stream{}, dout.get(), ddouble.get());
  // The CUDA Programming Guide's definitions, segment by segment of `width` lanes.
  std::vector<int> want(size_t(threads * kShuffleCases));
  std::vector<double> want_double(static_cast<size_t>(threads));
  for (int t = 0; t < threads; t++) {
    const int lane = t % 32, warp = t / 32;
    auto value = [&](int l) { return warp * 1000 + l * 3 + 1; };
    auto index = [&](int src, int width) { return value(lane / width * width + src % width); };
    auto up = [&](int d, int width) { return value(lane % width >= d ? lane - d : lane); };
    auto down = [&](int d, int width) { return value(lane % width + d < width ? lane + d : lane); };
    int* w = &want[size_t(t * kShuffleCases)];
    w[0] = index((lane * 7) % 32, 32);
    w[1] = index(lane + 5, 8);
    w[2] = up(3, 32);
    w[3] = up(2, 16);
    w[4] = down(5, 32);
    w[5] = down(3, 8);
    w[6] = value(lane ^ 9);
    w[7] = value(lane ^ 3);
    w[8] = lane < 16 ? value(lane ^ 1) : -value(lane);
    want_double[size_t(t)] = double(down(1, 32)) + 0.25;
  }
  std::string r = compare("shuffles", dout.to_host(), want);
  return r.empty() ? compare("double shuffle", ddouble.to_host(), want_double) : r;
}

__global__ void vote_kernel(unsigned* out) {
  const int lane = threadIdx.x % 32;
  unsigned* o = out + threadIdx.x * 6;
  o[5] = __activemask();  // before any collective: no lane can have exited yet
  o[0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  o[1] = unsigned(__any_sync(0xffffffffu, lane == 29));
  o[2] = unsigned(__all_sync(0xffffffffu, lane < 31));
  o[3] = unsigned(__all_sync(0xffffffffu, threadIdx.x < 1000));
  o[4] = lane >= 8 && lane < 24 ? __ballot_sync(0x00ffff00u, lane & 1) : 7u;
}

std::string check_votes() {
  const int threads = 64;
  DeviceArray<unsigned> dout(size_t(threads * 6), 0u);
  launch<vote_kernel>(dim3(1), dim3(threads), 0, Stream{}, dout.get());
  unsigned every_third = 0, odd_middle = 0;
  for (int l = 0; l < 32; l++) {
    if (l % 3 == 0) every_third |= 1u << l;
    if (l >= 8 && l < 24 && (l & 1)) odd_middle |= 1u << l;
  }
  std::vector<unsigned> want;
  for (int t = 0; t < threads; t++) {
    const int lane = t % 32;
    for (unsigned v : {every_third, 1u, 0u, 1u, lane >= 8 && lane < 24 ? odd_middle : 7u, 0xffffffffu}) want.push_back(v);
  }
  return compare("votes", dout.to_host(), want);
}

// Lanes exchange through shared memory, ordered by __syncwarp alone (no block barrier).
__global__ void syncwarp_kernel(const int* in, int* out) {
  EMU_SHARED(int, buffer, [64]);
  const int t = threadIdx.x, lane = t % 32, base = t - lane;
  buffer[t] = in[t];
  __syncwarp();
  out[t] = buffer[base + 31 - lane];
}

std::string check_syncwarp() {
  std::vector<int> in(64);
  for (int i = 0; i < 64; i++) in[size_t(i)] = i * i - 5;
  DeviceArray<int> din(in), dout(64, 0);
  launch<syncwarp_kernel>(dim3(1), dim3(64), 0, Stream{}, din.get(), dout.get());
  std::vector<int> want(64);
  for (int t = 0; t < 64; t++) want[size_t(t)] = in[size_t(t - t % 32 + 31 - t % 32)];
  return compare("warp-reversed", dout.to_host(), want);
}

// Row softmax: one block of 128 threads per row; warp shuffles, then shared memory across warps.
__device__ float block_reduce(float v, bool is_max, float* warp_results) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  float r = warp_results[0];
  for (int w = 1; w < warps; w++) r = is_max ? fmaxf(r, warp_results[w]) : r + warp_results[w];
  __syncthreads();  // warp_results is reused by the next reduction
  return r;
}

__global__ void softmax_kernel(const float* in, float* out, int cols) {
  EMU_SHARED(float, warp_results, [32]);
  const float* x = in + blockIdx.x * cols;
  float m = -INFINITY;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, x[c]);
  m = block_reduce(m, true, warp_results);
  float s = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s += __expf(x[c] - m);
  s = block_reduce(s, false, warp_results);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[blockIdx.x * cols + c] = __expf(x[c] - m) / s;
}

std::string check_softmax() {
  const int rows = 5, cols = 301;
  const std::vector<float> in = Inputs{5}.vector(size_t(rows * cols), 6);
  DeviceArray<float> din(in), dout(in.size(), 0.0f);
  launch<softmax_kernel>(dim3(rows), dim3(128), 0, Stream{}, din.get(), dout.get(), cols);
  std::vector<double> want(in.size());
  for (int r = 0; r < rows; r++) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < cols; c++) m = std::fmax(m, in[size_t(r * cols + c)]);
    for (int c = 0; c < cols; c++) s += std::exp(in[size_t(r * cols + c)] - m);
    for (int c = 0; c < cols; c++) want[size_t(r * cols + c)] = std::exp(in[size_t(r * cols + c)] - m) / s;
  }
  return compare("softmax", dout.to_host(), want, 1e-5);
}

// ---- atomics ----------------------------------------------------------------------------------

// Slots of `ints`: 0 count, 1 max, 2 min, 3 CAS-increment, 4 and, 5 or, 6 xor, 7 exch marker;
// `floats`: 0 global sum; `histogram`: 8 bins filled through a shared-memory histogram.
__global__ void atomics_kernel(const int* values, int* ints, float* floats, int* histogram) {
  EMU_SHARED(int, local_bins, [8]);
  EMU_SHARED(float, local_sum, [1]);
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t, v = values[i];
  if (t < 8) local_bins[t] = 0;
  if (t == 0) local_sum[0] = 0.0f;
  __syncthreads();
  atomicAdd(&ints[0], 1);
  atomicMax(&ints[1], v);
  atomicMin(&ints[2], v);
  int seen = ints[3];
  for (;;) {
    const int prior = atomicCAS(&ints[3], seen, seen + 1);
    if (prior == seen) break;
    seen = prior;
  }
  atomicAnd(&ints[4], ~(1 << (i % 31)));
  atomicOr(&ints[5], 1 << (i % 29));
  atomicXor(&ints[6], i);
  if (i == 77) atomicExch(&ints[7], 1234);
  atomicAdd(&local_bins[v & 7], 1);
  atomicAdd(&local_sum[0], 0.5f);
  __syncthreads();
  if (t < 8) atomicAdd(&histogram[t], local_bins[t]);
  if (t == 0) atomicAdd(&floats[0], local_sum[0]);
}

std::string check_atomics() {
  const int threads = 96, blocks = 24, n = threads * blocks;
  std::vector<int> values(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) values[size_t(i)] = (i * 7919) % 1009 - 500;
  DeviceArray<int> dvalues(values), dhist(8, 0);
  DeviceArray<int> dints(std::vector<int>{0, -1000000, 1000000, 0, -1, 0, 0, 0});
  DeviceArray<float> dfloats(1, 0.0f);
  launch<atomics_kernel>(dim3(blocks), dim3(threads), 0, Stream{}, dvalues.get(), dints.get(), dfloats.get(), dhist.get());
  std::vector<int> want{n, -1000000, 1000000, n, -1, 0, 0, 1234};
  std::vector<int> hist(8, 0);
  for (int i = 0; i < n; i++) {
    const int v = values[size_t(i)];
    want[1] = std::max(want[1], v);
    want[2] = std::min(want[2], v);
    want[4] &= ~(1 << (i % 31));
    want[5] |= 1 << (i % 29);
    want[6] ^= i;
    hist[size_t(v & 7)]++;
  }
  std::string r = compare("int atomics", dints.to_host(), want);
  if (r.empty()) r = compare("shared histogram", dhist.to_host(), hist);
  if (r.empty()) r = compare("float atomicAdd", dfloats.to_host(), std::vector<double>{0.5 * n});
  return r;
}

// ---- math intrinsics, bf16/half, vector loads ----------------------------------------------

constexpr int kMathCases = 12;

__global__ void math_kernel(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float x = in[i];  // in [-3, 3]
  float* o = out + i * kMathCases;
  o[0] = __expf(x);
  o[1] = __logf(x + 4.0f);
  o[2] = rsqrtf(x + 4.0f);
  o[3] = __fdividef(x, 3.0f);
  o[4] = fmaf(x, 1.5f, 0.25f);
  o[5] = __saturatef(x);
  o[6] = __sinf(x) + __cosf(x);
  o[7] = __powf(x + 4.0f, 1.5f);
  o[8] = tanhf(x) + erff(x);
  o[9] = float(__float2int_rn(x * 2.5f));
  o[10] = __int_as_float(__float_as_int(x));
  o[11] = float(__popc(unsigned(i)) + __clz(i + 1) + __ffs(i) + int(__brev(unsigned(i)) >> 24));
}

std::string check_math() {
  const int n = 200;
  std::vector<float> in(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) in[size_t(i)] = -3.0f + 6.0f * float(i) / float(n - 1) + 0.001f;
  DeviceArray<float> din(in), dout(size_t(n * kMathCases), 0.0f);
  launch<math_kernel>(dim3((n + 63) / 64), dim3(64), 0, Stream{}, din.get(), dout.get(), n);
  std::vector<double> want(size_t(n * kMathCases));
  for (int i = 0; i < n; i++) {
    const double x = in[size_t(i)];
    unsigned reversed = 0;
    for (int b = 0; b < 32; b++) reversed |= ((unsigned(i) >> b) & 1u) << (31 - b);
    int ffs = 0;
    for (int b = 0; b < 32 && !ffs; b++) ffs = (i >> b & 1) ? b + 1 : 0;
    int clz = 32;
    for (int b = 31; b >= 0; b--) {
      if ((i + 1) >> b & 1) {
        clz = 31 - b;
        break;
      }
    }
    const double expected[kMathCases] = {std::exp(x), std::log(x + 4), 1 / std::sqrt(x + 4), x / 3, x * 1.5 + 0.25,
                                         std::fmin(std::fmax(x, 0.0), 1.0), std::sin(x) + std::cos(x), std::pow(x + 4, 1.5),
                                         std::tanh(x) + std::erf(x), std::nearbyint(float(x) * 2.5f), x,
                                         double(__builtin_popcount(unsigned(i)) + clz + ffs + int(reversed >> 24))};
    for (int k = 0; k < kMathCases; k++) want[size_t(i * kMathCases + k)] = expected[k];
  }
  return compare("math", dout.to_host(), want, 2e-5);  // GPU fast intrinsics err by a few ulp
}

__global__ void convert_kernel(const float* in, unsigned short* bf16_bits, unsigned short* half_bits, float* back, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const __nv_bfloat16 b = __float2bfloat16(in[i]);
  const __half h = __float2half(in[i]);
  bf16_bits[i] = __bfloat16_as_ushort(b);
  half_bits[i] = __half_as_ushort(h);
  const __nv_bfloat162 pair = __floats2bfloat162_rn(in[i], -in[i]);
  back[2 * i] = __bfloat162float(pair.x) + __bfloat162float(pair.y);  // exactly 0 unless NaN
  back[2 * i + 1] = __half2float(h);
}

// f32 -> f16 bits, round to nearest even, for zeros and values in f16's normal range or beyond.
unsigned short half_reference(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  if ((u & 0x7fffffffu) == 0) return uint16_t(sign);
  const int exponent = int((u >> 23) & 0xff) - 127 + 15;
  uint32_t mantissa = u & 0x7fffffu;
  if (exponent >= 31) return uint16_t(sign | 0x7c00u);
  uint32_t h = uint32_t(exponent) << 10 | mantissa >> 13;
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;  // a carry into the exponent is right
  return uint16_t(sign | (h >= 0x7c00u ? 0x7c00u : h));
}

// f16 bits -> f32, for zeros, normal values and infinities.
float half_to_float_reference(unsigned short bits) {
  const uint32_t sign = uint32_t(bits & 0x8000u) << 16, e = (bits >> 10) & 0x1fu;
  const uint32_t u = (bits & 0x7fffu) == 0 ? sign : sign | (e == 31 ? 0xffu : e - 15 + 127) << 23 | uint32_t(bits & 0x3ffu) << 13;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::string check_conversions() {
  std::vector<float> in = {1.0f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -0.0f, 65504.0f, 70000.0f,
                           1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 0.1f, -2.75f, 1e-3f, 3.14159265f};
  Inputs gen{13};
  for (int i = 0; i < 52; i++) in.push_back(gen.next(100) * 1.37f + 0.001f * float(i));
  const size_t n = in.size();
  DeviceArray<float> din(in), dback(2 * n, 0.0f);
  DeviceArray<unsigned short> dbf(n, 0), dhalf(n, 0);
  launch<convert_kernel>(dim3(2), dim3(32), 0, Stream{}, din.get(), dbf.get(), dhalf.get(), dback.get(), int(n));
  std::vector<unsigned short> want_bf(n), want_half(n);
  std::vector<float> want_back(2 * n);
  for (size_t i = 0; i < n; i++) {
    want_bf[i] = float_to_bf16(in[i]).bits;
    want_half[i] = half_reference(in[i]);
    want_back[2 * i] = 0.0f;
    want_back[2 * i + 1] = half_to_float_reference(want_half[i]);
  }
  // Known bit patterns: ties to even, the signed zero, the largest half, overflow to infinity.
  const std::vector<unsigned short> pinned_bf{0x3f80, 0x3f80, 0x3f82, 0x8000};
  const std::vector<unsigned short> pinned_half{0x3c00, 0x3c04, 0x3c0c, 0x8000, 0x7bff, 0x7c00, 0x3c00, 0x3c02};
  std::vector<unsigned short> got_bf = dbf.to_host(), got_half = dhalf.to_host();
  std::string r = compare("bf16 pinned", std::vector<unsigned short>(got_bf.begin(), got_bf.begin() + 4), pinned_bf);
  if (r.empty()) r = compare("half pinned", std::vector<unsigned short>(got_half.begin(), got_half.begin() + 8), pinned_half);
  if (r.empty()) r = compare("bf16 bits", got_bf, want_bf);
  if (r.empty()) r = compare("half bits", got_half, want_half);
  if (r.empty()) r = compare("back to f32", dback.to_host(), want_back);
  return r;
}

__global__ void vector_load_kernel(const float4* in, float4* out, int n4) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 v = in[i];  // one 16-byte load
  out[i] = make_float4(v.w, v.z * 2.0f, v.y + 1.0f, v.x);
}

std::string check_vector_loads() {
  const int n4 = 37;
  const std::vector<float> in = Inputs{17}.vector(size_t(4 * n4), 10);
  DeviceArray<float> din(in), dout(in.size(), 0.0f);
  launch<vector_load_kernel>(dim3(2), dim3(32), 0, Stream{}, reinterpret_cast<const float4*>(din.get()),
                             reinterpret_cast<float4*>(dout.get()), n4);
  std::vector<float> want(in.size());
  for (size_t i = 0; i < size_t(n4); i++) {
    want[4 * i] = in[4 * i + 3];
    want[4 * i + 1] = in[4 * i + 2] * 2.0f;
    want[4 * i + 2] = in[4 * i + 1] + 1.0f;
    want[4 * i + 3] = in[4 * i];
  }
  return compare("float4", dout.to_host(), want);
}

// ---- tensor cores: ldmatrix + mma.sync, fed by cp.async ------------------------------------------

// One warp computes D(16x8) = A(16x16) B(16x8) + C. A arrives row-major (ldmatrix.x4) or
// transposed (K x M, ldmatrix.x4.trans); B arrives N x K (ldmatrix.x2) or K x N (.x2.trans).
// The fragments from ldmatrix compose into mma's A and B fragments only if both layouts match
// the PTX ISA, so the result checks them together.
template <typename T, bool TransposedInputs>
__global__ void mma_tile_kernel(const T* a_global, const T* b_global, const float* c, float* d) {
  EMU_SHARED(T, a_tile, [16][16]);
  EMU_SHARED(T, b_tile, [16][8]);  // 256 bytes either way: N x K (8x16) or K x N (16x8)
  const int lane = threadIdx.x;
  cp_async_16(&a_tile[lane / 2][(lane % 2) * 8], a_global + lane * 8);
  if (lane < 16) cp_async_16(reinterpret_cast<T*>(b_tile) + lane * 8, b_global + lane * 8);
  cp_async_wait_all();
  __syncwarp();
  uint32_t a[4], b[2];
  const T* b_rows = reinterpret_cast<const T*>(b_tile);
  if (TransposedInputs) {
    const int matrix = lane / 8, row = lane % 8;  // matrix i: k rows (i/2)*8.., m columns (i%2)*8..
    ldmatrix_x4_trans(a, &a_tile[(matrix / 2) * 8 + row][(matrix % 2) * 8]);
    ldmatrix_x2_trans(b, b_rows + (lane % 16) * 8);  // K x N rows: k = lane % 16
  } else {
    ldmatrix_x4(a, &a_tile[lane % 16][(lane / 16) * 8]);
    ldmatrix_x2(b, b_rows + (lane % 8) * 16 + ((lane / 8) % 2) * 8);  // N x K rows: n = lane % 8
  }
  const int g = lane / 4, t = lane % 4;
  const float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  float out[4];
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    mma_m16n8k16_bf16(out, a, b, acc);
  } else {
    mma_m16n8k16_f16(out, a, b, acc);
  }
  d[g * 8 + 2 * t] = out[0];
  d[g * 8 + 2 * t + 1] = out[1];
  d[(g + 8) * 8 + 2 * t] = out[2];
  d[(g + 8) * 8 + 2 * t + 1] = out[3];
}

template <typename T, bool TransposedInputs>
std::string check_mma() {
  Inputs gen{TransposedInputs ? 29u : 23u};
  const std::vector<float> a = gen.vector(256, 2), b = gen.vector(128, 2), c = gen.vector(128, 4);  // a: M x K, b: K x N
  std::vector<T> a_store(256), b_store(128);
  for (int m = 0; m < 16; m++) {
    for (int k = 0; k < 16; k++) a_store[size_t(TransposedInputs ? k * 16 + m : m * 16 + k)] = T(a[size_t(m * 16 + k)]);
  }
  for (int k = 0; k < 16; k++) {
    for (int n = 0; n < 8; n++) b_store[size_t(TransposedInputs ? k * 8 + n : n * 16 + k)] = T(b[size_t(k * 8 + n)]);
  }
  DeviceArray<T> da(a_store), db(b_store);
  DeviceArray<float> dc(c), dd(128, 0.0f);
  launch<mma_tile_kernel<T, TransposedInputs>>(dim3(1), dim3(32), 0, Stream{}, da.get(), db.get(), dc.get(), dd.get());
  std::vector<double> want(128);
  for (int m = 0; m < 16; m++) {
    for (int n = 0; n < 8; n++) {
      double s = c[size_t(m * 8 + n)];
      for (int k = 0; k < 16; k++) s += double(a[size_t(m * 16 + k)]) * b[size_t(k * 8 + n)];
      want[size_t(m * 8 + n)] = s;
    }
  }
  return compare("mma D", dd.to_host(), want, 1e-6);
}

// ldmatrix .x1 on its own: lane L's register holds row L/4, columns 2(L%4) and 2(L%4)+1 (or,
// with .trans, rows 2(L%4) and 2(L%4)+1 of column L/4) of the 8x8 matrix.
__global__ void ldmatrix_x1_kernel(const unsigned short* in, unsigned* out) {
  EMU_SHARED(unsigned short, tile, [8][8]);
  const int lane = threadIdx.x;
  if (lane < 16) cp_async_8(&tile[lane / 2][(lane % 2) * 4], in + lane * 4);
  cp_async_wait_all();
  __syncwarp();
  uint32_t plain[1], transposed[1];
  ldmatrix_x1(plain, &tile[lane % 8][0]);
  ldmatrix_x1_trans(transposed, &tile[lane % 8][0]);
  out[lane] = plain[0];
  out[32 + lane] = transposed[0];
}

std::string check_ldmatrix_x1() {
  std::vector<unsigned short> m(64);
  for (int i = 0; i < 64; i++) m[size_t(i)] = uint16_t(1000 + i);
  DeviceArray<unsigned short> din(m);
  DeviceArray<unsigned> dout(64, 0u);
  launch<ldmatrix_x1_kernel>(dim3(1), dim3(32), 0, Stream{}, din.get(), dout.get());
  std::vector<unsigned> want(64);
  for (unsigned lane = 0; lane < 32; lane++) {
    const unsigned g = lane / 4, t = lane % 4;
    want[lane] = m[g * 8 + 2 * t] | unsigned(m[g * 8 + 2 * t + 1]) << 16;
    want[32 + lane] = m[2 * t * 8 + g] | unsigned(m[(2 * t + 1) * 8 + g]) << 16;
  }
  return compare("ldmatrix x1", dout.to_host(), want);
}

// ---- cp.async pipeline ------------------------------------------------------------------------

// Double-buffered: tile i+1 is in flight while tile i is read. Each thread reads a slice another
// thread copied, so the wait must be followed by a barrier; without the wait the slice is
// still poisoned (on the emulator) or stale (on a GPU).
template <bool Wait>
__global__ void pipeline_kernel(const float* in, float* out, int tiles) {
  EMU_SHARED(float, buffer, [2][128]);
  const int t = threadIdx.x;
  cp_async_16(&buffer[0][t * 4], in + t * 4);
  cp_async_commit();
  for (int i = 0; i < tiles; i++) {
    if (i + 1 < tiles) cp_async_16(&buffer[(i + 1) % 2][t * 4], in + (i + 1) * 128 + t * 4);
    cp_async_commit();
    if (Wait) cp_async_wait<1>();
    __syncthreads();
    float s = 0.0f;
    for (int k = 0; k < 4; k++) s += buffer[i % 2][((t + 1) % 32) * 4 + k];
    out[i * 32 + t] = s;
    __syncthreads();  // the buffer is refilled next iteration
  }
}

template <bool Wait>
std::string check_pipeline() {
  const int tiles = 6;
  const std::vector<float> in = Inputs{31}.vector(size_t(tiles * 128), 8);
  DeviceArray<float> din(in), dout(size_t(tiles * 32), 0.0f);
  launch<pipeline_kernel<Wait>>(dim3(1), dim3(32), 0, Stream{}, din.get(), dout.get(), tiles);
  std::vector<double> want(size_t(tiles * 32), 0.0);
  for (int i = 0; i < tiles; i++) {
    for (int t = 0; t < 32; t++) {
      for (int k = 0; k < 4; k++) want[size_t(i * 32 + t)] += in[size_t(i * 128 + ((t + 1) % 32) * 4 + k)];
    }
  }
  return compare("pipelined sums", dout.to_host(), want, 1e-6);
}

// ---- deliberately broken: the emulator must report these ------------------------------------

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void warp_missing_lanes_kernel(int* out) {
  int v = int(threadIdx.x);
  if (threadIdx.x < 16) {
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = v;
}

__global__ void warp_exited_lanes_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void fill_kernel(int* out) { out[threadIdx.x] = 1; }

// Lanes 0-15 shuffle among themselves, but lane 15 asks for lane 16, which is outside the mask.
__global__ void shuffle_outside_mask_kernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, int(threadIdx.x), 1);
}

// Row addresses 8 bytes off the 16-byte alignment ldmatrix requires.
__global__ void ldmatrix_misaligned_kernel(int* out) {
  EMU_SHARED(unsigned short, tile, [8][16]);
  for (int i = threadIdx.x; i < 128; i += 32) tile[i / 16][i % 16] = static_cast<unsigned short>(i);
  __syncwarp();
  uint32_t r[1];
  ldmatrix_x1(r, &tile[threadIdx.x % 8][4]);
  out[threadIdx.x] = int(r[0]);
}

template <auto Kernel, unsigned Threads = 32>
std::string run_broken() {
  DeviceArray<int> out(Threads, 0);
  launch<Kernel>(dim3(1), dim3(Threads), 0, Stream{}, out.get());
  return "";
}

// ---- caching allocator ---------------------------------------------------------------------------

std::string check_caching_allocator() {
  DeviceRuntime& rt = runtime();
  rt.empty_cache();
  const DeviceMemoryStats before = rt.memory_stats();
  void* a = rt.allocate(1000, Stream{});
  const DeviceMemoryStats live = rt.memory_stats();
  rt.deallocate(a);
  void* b = rt.allocate(900, Stream{});  // same 1024-byte bucket: the cached block comes back
  const DeviceMemoryStats reused = rt.memory_stats();
  rt.deallocate(b);
  Stream other = rt.create_stream();
  void* c = rt.allocate(900, other);  // another stream never takes this stream's cached blocks
  rt.deallocate(c);
  rt.destroy_stream(other);
  rt.empty_cache();
  const DeviceMemoryStats after = rt.memory_stats();
  if (a != b) return "a freed block of the same size class was not reused";
  if (c == b) return "a block cached for one stream was handed to another";
  if (live.allocated - before.allocated != 1024) return "allocated grew by " + std::to_string(live.allocated - before.allocated);
  if (reused.fresh_allocations != live.fresh_allocations) return "reuse counted as a fresh allocation";
  if (after.reserved != before.reserved || after.allocated != before.allocated) return "empty_cache did not return the blocks";
  if (after.peak_allocated < before.allocated + 1024) return "peak does not include the live block";
  return "";
}

#ifndef __CUDACC__
// Emulator only (device code cannot throw): an exception leaves the kernel and reaches the caller.
__global__ void throwing_kernel(int* out) {
  if (blockIdx.x == 1 && threadIdx.x == 40) throw std::runtime_error("thrown inside the kernel");
  __syncthreads();
  out[threadIdx.x] = 1;
}

std::string run_throwing() {
  DeviceArray<int> out(64, 0);
  launch<throwing_kernel>(dim3(3), dim3(64), 0, Stream{}, out.get());
  return "";
}

// More static shared memory than CUDA allows (nvcc refuses it at compile time).
__global__ void shared_over_limit_kernel(int* out) {
  EMU_SHARED(float, big, [13000]);
  big[threadIdx.x] = 1.0f;
  out[threadIdx.x] = int(big[threadIdx.x]);
}

__global__ void barrier_loop_kernel(int rounds) {
  for (int r = 0; r < rounds; r++) __syncthreads();
}
#endif

}  // namespace

const std::vector<SelfTest>& self_tests() {
  static const std::vector<SelfTest> tests = {
      {"builtins", SelfTest::Feature, "threadIdx/blockIdx/blockDim/gridDim over a 3-D grid of 3-D blocks", check_builtins},
      {"block_sum", SelfTest::Feature, "tree reduction in static shared memory with __syncthreads", check_block_sum<true>},
      {"dynamic_shared", SelfTest::Feature, "reversal through dynamic shared memory", check_dynamic_shared},
      {"transpose", SelfTest::Feature, "tiled transpose through a padded 2-D shared tile", check_transpose<true>},
      {"syncthreads_votes", SelfTest::Feature, "__syncthreads_count/_and/_or", check_syncthreads_votes},
      {"early_exit", SelfTest::Feature, "threads that exit before a barrier count as arrived", check_early_exit},
      {"shuffles", SelfTest::Feature, "__shfl_sync/_up/_down/_xor with widths, partial masks, doubles", check_shuffles},
      {"votes", SelfTest::Feature, "__ballot_sync/__any_sync/__all_sync, full and partial masks", check_votes},
      {"syncwarp", SelfTest::Feature, "lanes exchanging through shared memory ordered by __syncwarp", check_syncwarp},
      {"softmax", SelfTest::Feature, "row softmax: warp shuffles, then shared memory across warps, __expf", check_softmax},
      {"atomics", SelfTest::Feature, "int and float atomics in global and shared memory across blocks", check_atomics},
      {"math", SelfTest::Feature, "math intrinsics and bit functions", check_math},
      {"conversions", SelfTest::Feature, "bf16 and half conversions, round to nearest even", check_conversions},
      {"vector_loads", SelfTest::Feature, "16-byte float4 loads and stores", check_vector_loads},
      {"mma_bf16", SelfTest::Feature, "mma.sync m16n8k16 bf16 fed by ldmatrix x4 and x2 after cp.async", check_mma<__nv_bfloat16, false>},
      {"mma_f16", SelfTest::Feature, "mma.sync m16n8k16 f16 fed by ldmatrix x4.trans and x2.trans", check_mma<__half, true>},
      {"ldmatrix_x1", SelfTest::Feature, "ldmatrix x1 and x1.trans register layout", check_ldmatrix_x1},
      {"cp_async_pipeline", SelfTest::Feature, "double-buffered cp.async with commit and wait_group", check_pipeline<true>},
      {"caching_allocator", SelfTest::Feature, "device memory reuse per stream, statistics, empty_cache", check_caching_allocator},
      {"missing_barrier_reduce", SelfTest::BrokenResult, "tree reduction without its loop barrier", check_block_sum<false>},
      {"missing_barrier_transpose", SelfTest::BrokenResult, "transpose without the barrier between write and read",
       check_transpose<false>},
      {"missing_cp_async_wait", SelfTest::BrokenResult, "cp.async pipeline that never waits", check_pipeline<false>},
      {"divergent_barrier", SelfTest::BrokenError, "even and odd threads at different __syncthreads",
       run_broken<divergent_barrier_kernel>},
      {"warp_missing_lanes", SelfTest::BrokenError, "half a warp in a full-mask shuffle, half at __syncthreads",
       run_broken<warp_missing_lanes_kernel>},
      {"warp_exited_lanes", SelfTest::BrokenError, "a full-mask shuffle after half the warp has exited",
       run_broken<warp_exited_lanes_kernel>},
      {"shuffle_outside_mask", SelfTest::BrokenError, "a shuffle reading a lane outside its mask",
       run_broken<shuffle_outside_mask_kernel>},
      {"ldmatrix_misaligned", SelfTest::BrokenError, "ldmatrix row addresses off 16-byte alignment",
       run_broken<ldmatrix_misaligned_kernel>},
      {"block_too_large", SelfTest::BrokenError, "a launch of 1056 threads per block", run_broken<fill_kernel, 1056>},
#ifndef __CUDACC__
      {"kernel_exception", SelfTest::BrokenError, "a C++ exception thrown by one thread of a kernel", run_throwing},
      {"shared_over_limit", SelfTest::BrokenError, "52 KB of static shared memory", run_broken<shared_over_limit_kernel>},
#endif
  };
  return tests;
}

#ifndef __CUDACC__
double barrier_resume_ns(int threads, int rounds, int blocks) {
  DeviceRuntime& rt = runtime();
  Event start = rt.create_event(), end = rt.create_event();
  rt.record(start, Stream{});
  launch<barrier_loop_kernel>(dim3(unsigned(blocks)), dim3(unsigned(threads)), 0, Stream{}, rounds);
  rt.record(end, Stream{});
  const double ms = rt.elapsed_ms(start, end);
  rt.destroy_event(start);
  rt.destroy_event(end);
  return ms * 1e6 / (double(threads) * (rounds + 1) * blocks);
}
#endif

}  // namespace emu::EMU_DEVICE_NS
