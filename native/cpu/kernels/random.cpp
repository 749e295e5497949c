// random.cpp: uniform, normal, randint and randperm from Philox 4x32-10.
//
// philox.h specifies which block and word feeds each element; here the output is split into
// runs of whole blocks on the thread pool, so every block is generated once and the result does
// not depend on the thread count. randperm sorts (key, index) pairs with a stable LSD radix sort
// on the 32-bit key: the pairs start in index order, so stability gives the (key, i) tie-break.
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>

#include "../kernels.h"
#include "../philox.h"
#include "../thread_pool.h"
#include "scalar.h"

namespace emu::cpu::EMU_ISA {
namespace {

void require_contiguous(const View& out, const char* op) {
  if (!out.contiguous()) fail(ErrorKind::Internal, std::string(op) + ": output must be contiguous");
}

// Calls f(i, block, k) for each element i of [0, n), where element i takes its randomness from
// block offset + i / PER_BLOCK and k = i % PER_BLOCK.
template <int PER_BLOCK, class F>
void for_each_block(int64_t n, uint64_t seed, uint64_t offset, F&& f) {
  const int64_t blocks = (n + PER_BLOCK - 1) / PER_BLOCK;
  parallel_for(blocks, 1024, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const PhiloxOut r = philox4x32_10(offset + uint64_t(b), seed);
      const int64_t first = b * PER_BLOCK;
      const int64_t count = n - first < PER_BLOCK ? n - first : PER_BLOCK;
      for (int k = 0; k < count; k++) f(first + k, r, k);
    }
  });
}

constexpr double kTwoPow24 = 16777216.0;
constexpr double kTwoPow32 = 4294967296.0;
constexpr double kTwoPow53 = 9007199254740992.0;
constexpr double kTwoPi = 6.283185307179586476925;

}  // namespace

void rand_uniform(const View& out, uint64_t seed, uint64_t offset, double low, double high) {
  require_contiguous(out, "rand");
  const int64_t n = out.numel();
  const double range = high - low;
  dispatch_float(out.dtype, "rand", [&](auto t) {
    using T = decltype(t);
    T* o = out.ptr<T>();
    const T lo = store<T>(low);
    const C<T> hi = load(store<T>(high));
    auto value = [&](double u) {
      const T v = store<T>(std::fma(u, range, low));
      return load(v) == hi ? lo : v;
    };
    if constexpr (std::is_same_v<T, double>) {
      for_each_block<2>(n, seed, offset, [&](int64_t i, const PhiloxOut& r, int k) {
        const uint64_t bits = (uint64_t(r.x[2 * k]) << 21) | (r.x[2 * k + 1] >> 11);
        o[i] = value(double(bits) / kTwoPow53);
      });
    } else {
      for_each_block<4>(n, seed, offset, [&](int64_t i, const PhiloxOut& r, int k) {
        o[i] = value(double(r.x[k] >> 8) / kTwoPow24);
      });
    }
  });
}

void rand_normal(const View& out, uint64_t seed, uint64_t offset, double mean, double stddev) {
  require_contiguous(out, "randn");
  const int64_t n = out.numel();
  dispatch_float(out.dtype, "randn", [&](auto t) {
    using T = decltype(t);
    T* o = out.ptr<T>();
    for_each_block<2>(n, seed, offset, [&](int64_t i, const PhiloxOut& r, int k) {
      const double u1 = double(uint64_t(r.x[2 * k]) + 1) / kTwoPow32;
      const double u2 = double(r.x[2 * k + 1]) / kTwoPow32;
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
      o[i] = store<T>(std::fma(stddev, z, mean));
    });
  });
}

void rand_int(const View& out, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
  require_contiguous(out, "randint");
  if (!(low < high) || uint64_t(high) - uint64_t(low) > (uint64_t(1) << 32)) {
    fail(ErrorKind::Value, "randint: the range [" + std::to_string(low) + ", " + std::to_string(high) +
                               ") must hold between 1 and 2^32 values");
  }
  if (out.dtype == DType::Bool) fail(ErrorKind::DType, "randint: bool output is not supported");
  const uint64_t range = uint64_t(high) - uint64_t(low);
  const int64_t n = out.numel();
  dispatch(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = out.ptr<T>();
    for_each_block<4>(n, seed, offset, [&](int64_t i, const PhiloxOut& r, int k) {
      o[i] = convert<T>(low + int64_t((uint64_t(r.x[k]) * range) >> 32));
    });
  });
}

void randperm(const View& out, uint64_t seed, uint64_t offset) {
  require_contiguous(out, "randperm");
  if (out.dtype != DType::I32) fail(ErrorKind::DType, "randperm: output must be i32");
  if (out.ndim != 1) fail(ErrorKind::Shape, "randperm: output must be 1-d");
  const int64_t n = out.shape[0];
  if (n > int64_t(INT32_MAX) + 1) fail(ErrorKind::Value, "randperm: n = " + std::to_string(n) + " does not fit i32");
  // Entry = key << 32 | index. An LSD radix sort on the key's four bytes is stable, so equal
  // keys stay in index order. The four histograms are counted in one pass, and the last pass
  // writes the indices straight into out.
  std::unique_ptr<uint64_t[]> a(new uint64_t[size_t(n)]), b(new uint64_t[size_t(n)]);
  for_each_block<4>(n, seed, offset, [&](int64_t i, const PhiloxOut& r, int k) {
    a[size_t(i)] = (uint64_t(r.x[k]) << 32) | uint64_t(i);
  });
  int64_t start[4][257] = {};
  for (int64_t i = 0; i < n; i++)
    for (int d = 0; d < 4; d++) start[d][((a[size_t(i)] >> (32 + 8 * d)) & 0xff) + 1]++;
  for (int d = 0; d < 4; d++)
    for (int v = 0; v < 256; v++) start[d][v + 1] += start[d][v];
  for (int d = 0; d < 3; d++) {
    for (int64_t i = 0; i < n; i++) {
      const uint64_t v = a[size_t(i)];
      b[size_t(start[d][(v >> (32 + 8 * d)) & 0xff]++)] = v;
    }
    a.swap(b);
  }
  int32_t* o = out.ptr<int32_t>();
  for (int64_t i = 0; i < n; i++) {
    const uint64_t v = a[size_t(i)];
    o[start[3][v >> 56]++] = int32_t(uint32_t(v));
  }
}

}  // namespace emu::cpu::EMU_ISA
