// random.cu: uniform, normal, randint and randperm from Philox 4x32-10, producing exactly the CPU's
// numbers: cpu/philox.h specifies which block and word feed each element and how words become
// values, and cpu/kernels/random.cpp (the reference) follows it. Here each thread generates whole
// Philox blocks (a grid-stride loop over blocks) and writes the elements they feed, so every block
// is computed once and the result does not depend on the launch shape. f64 normals use the
// device's log and cos, which may differ from the CPU's in the last bit on `cuda` (philox.h says
// so); on `sim` they are the CPU's. randperm writes each element's 32-bit key to scratch memory,
// then each thread counts the (key, index) pairs below its own to find where its index goes: the
// order philox.h specifies, exactly, but O(n^2) work (a device radix sort is for a later issue).
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/strided.cuh"
#define EMU_HD __host__ __device__
#include "cpu/philox.h"

namespace emu::EMU_DEVICE_NS {
namespace philox_kernels {

constexpr double kTwoPow24 = 16777216.0;
constexpr double kTwoPow32 = 4294967296.0;
constexpr double kTwoPow53 = 9007199254740992.0;
constexpr double kTwoPi = 6.283185307179586476925;

#define EMU_BLOCK_LOOP(b, nblocks) \
  for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < (nblocks); b += (long long)gridDim.x * blockDim.x)

template <class T>
__global__ void uniform_kernel(T* out, long long n, uint64_t seed, uint64_t offset, double low, double high) {
  constexpr int per = std::is_same_v<T, double> ? 2 : 4;
  const T lo = cvt<T>(low);
  const C<T> hi = load(cvt<T>(high));
  const double range = high - low;
  EMU_BLOCK_LOOP(b, (n + per - 1) / per) {
    const PhiloxOut r = philox4x32_10(offset + uint64_t(b), seed);
    for (int k = 0; k < per && b * per + k < n; k++) {
      double u;
      if constexpr (per == 2) u = double((uint64_t(r.x[2 * k]) << 21) | (r.x[2 * k + 1] >> 11)) / kTwoPow53;
      else u = double(r.x[k] >> 8) / kTwoPow24;
      const T v = cvt<T>(::fma(u, range, low));
      out[b * per + k] = load(v) == hi ? lo : v;
    }
  }
}

template <class T>
__global__ void normal_kernel(T* out, long long n, uint64_t seed, uint64_t offset, double mean, double stddev) {
  EMU_BLOCK_LOOP(b, (n + 1) / 2) {
    const PhiloxOut r = philox4x32_10(offset + uint64_t(b), seed);
    for (int k = 0; k < 2 && b * 2 + k < n; k++) {
      const double u1 = double(uint64_t(r.x[2 * k]) + 1) / kTwoPow32;
      const double u2 = double(r.x[2 * k + 1]) / kTwoPow32;
      const double z = ::sqrt(-2.0 * ::log(u1)) * ::cos(kTwoPi * u2);
      out[b * 2 + k] = cvt<T>(::fma(stddev, z, mean));
    }
  }
}

template <class T>
__global__ void int_kernel(T* out, long long n, uint64_t seed, uint64_t offset, long long low, uint64_t range) {
  EMU_BLOCK_LOOP(b, (n + 3) / 4) {
    const PhiloxOut r = philox4x32_10(offset + uint64_t(b), seed);
    for (int k = 0; k < 4 && b * 4 + k < n; k++) out[b * 4 + k] = cvt<T>(low + (long long)((uint64_t(r.x[k]) * range) >> 32));
  }
}

__global__ void perm_keys_kernel(uint32_t* keys, long long n, uint64_t seed, uint64_t offset) {
  EMU_BLOCK_LOOP(b, (n + 3) / 4) {
    const PhiloxOut r = philox4x32_10(offset + uint64_t(b), seed);
    for (int k = 0; k < 4 && b * 4 + k < n; k++) keys[b * 4 + k] = r.x[k];
  }
}

// out[rank of (key_i, i)] = i.
__global__ void perm_rank_kernel(const uint32_t* keys, long long n, int32_t* out) {
  EMU_BLOCK_LOOP(i, n) {
    const uint32_t key = keys[i];
    long long rank = 0;
    for (long long j = 0; j < n; j++) rank += keys[j] < key || (keys[j] == key && j < i);
    out[rank] = int32_t(i);
  }
}

void require_contiguous(const View& out, const char* op) {
  if (!out.contiguous()) fail(ErrorKind::Internal, std::string(op) + ": output must be contiguous");
}

}  // namespace philox_kernels

void rand_uniform(const View& out, uint64_t seed, uint64_t offset, double low, double high) {
  using namespace philox_kernels;
  require_contiguous(out, "rand");
  const long long n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype, "rand", [&](auto t) {
    using T = decltype(t);
    launch<uniform_kernel<T>>(dim3(blocks_for((n + 1) / 2)), dim3(kThreads), 0, Stream{}, static_cast<T*>(out.data), n,
                              seed, offset, low, high);
  });
}

void rand_normal(const View& out, uint64_t seed, uint64_t offset, double mean, double stddev) {
  using namespace philox_kernels;
  require_contiguous(out, "randn");
  const long long n = out.numel();
  if (n == 0) return;
  dispatch_float(out.dtype, "randn", [&](auto t) {
    using T = decltype(t);
    launch<normal_kernel<T>>(dim3(blocks_for((n + 1) / 2)), dim3(kThreads), 0, Stream{}, static_cast<T*>(out.data), n,
                             seed, offset, mean, stddev);
  });
}

void rand_int(const View& out, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
  using namespace philox_kernels;
  require_contiguous(out, "randint");
  if (!(low < high) || uint64_t(high) - uint64_t(low) > (uint64_t(1) << 32)) {
    fail(ErrorKind::Value, "randint: the range [" + std::to_string(low) + ", " + std::to_string(high) +
                               ") must hold between 1 and 2^32 values");
  }
  if (out.dtype == DType::Bool) fail(ErrorKind::DType, "randint: bool output is not supported");
  const long long n = out.numel();
  if (n == 0) return;
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, bool>) {
      launch<int_kernel<T>>(dim3(blocks_for((n + 3) / 4)), dim3(kThreads), 0, Stream{}, static_cast<T*>(out.data), n, seed,
                            offset, (long long)low, uint64_t(high) - uint64_t(low));
    }
  });
}

void randperm(const View& out, uint64_t seed, uint64_t offset) {
  using namespace philox_kernels;
  require_contiguous(out, "randperm");
  if (out.dtype != DType::I32) fail(ErrorKind::DType, "randperm: output must be i32");
  if (out.ndim != 1) fail(ErrorKind::Shape, "randperm: output must be 1-d");
  const long long n = out.shape[0];
  if (n > 2147483648LL) fail(ErrorKind::Value, "randperm: n = " + std::to_string(n) + " does not fit i32");
  if (n == 0) return;
  DeviceRuntime& rt = runtime();
  uint32_t* keys = static_cast<uint32_t*>(rt.allocate(size_t(n) * sizeof(uint32_t), Stream{}));
  try {
    launch<perm_keys_kernel>(dim3(blocks_for((n + 3) / 4)), dim3(kThreads), 0, Stream{}, keys, n, seed, offset);
    launch<perm_rank_kernel>(dim3(blocks_for(n)), dim3(kThreads), 0, Stream{}, static_cast<const uint32_t*>(keys), n,
                             static_cast<int32_t*>(out.data));
  } catch (...) {
    rt.deallocate(keys);
    throw;
  }
  rt.deallocate(keys);
}

}  // namespace emu::EMU_DEVICE_NS
