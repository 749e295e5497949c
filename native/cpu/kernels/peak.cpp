// peak.cpp: measures this machine's roofline, so every benchmark figure can be shown as a
// fraction of what the hardware can do: the peak f32 FMA rate (independent FMA chains in
// registers, on every pool thread) and the memory bandwidth (STREAM's triad, a = b + s*c,
// on arrays far larger than the caches).
#include <chrono>
#include <cstdint>
#include <memory>

#include "../allocator.h"
#include "../kernels.h"
#include "../thread_pool.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace emu::cpu::EMU_ISA {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// 12 independent accumulators hide the 4-cycle FMA latency on 2 ports. Returns flops done.
double fma_chains(int64_t iters, float seed) {
#if defined(__AVX512F__)
  __m512 acc[12];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int j = 0; j < 12; j++) acc[j] = _mm512_set1_ps(seed + float(j));
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < 12; j++) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  __m512 s = acc[0];
  for (int j = 1; j < 12; j++) s = _mm512_add_ps(s, acc[j]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return double(iters) * 12 * 16 * 2;
#elif defined(__AVX2__)
  __m256 acc[12];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int j = 0; j < 12; j++) acc[j] = _mm256_set1_ps(seed + float(j));
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  float out[8];
  __m256 s = acc[0];
  for (int j = 1; j < 12; j++) s = _mm256_add_ps(s, acc[j]);
  _mm256_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return double(iters) * 12 * 8 * 2;
#else
  float acc[12][4];
  for (int j = 0; j < 12; j++)
    for (int l = 0; l < 4; l++) acc[j][l] = seed + float(j + l);
  for (int64_t i = 0; i < iters; i++)
    for (int j = 0; j < 12; j++)
      for (int l = 0; l < 4; l++) acc[j][l] = acc[j][l] * 0.999999f + 1e-7f;
  volatile float sink = acc[0][0] + acc[11][3];
  (void)sink;
  return double(iters) * 12 * 4 * 2;
#endif
}

}  // namespace

double peak_gflops(int64_t iters) {
  const int threads = num_threads();
  auto t0 = std::chrono::steady_clock::now();
  double flops = 0;
  parallel_for(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      double f = fma_chains(iters, float(t));
      if (t == 0) flops = f;
    }
  });
  return flops * threads / seconds_since(t0) / 1e9;
}

double triad_gbps(int64_t n, int reps) {
  size_t r1, r2, r3;
  const size_t bytes = size_t(n) * sizeof(float);
  float* a = static_cast<float*>(allocate(bytes, &r1));
  float* b = static_cast<float*>(allocate(bytes, &r2));
  float* c = static_cast<float*>(allocate(bytes, &r3));
  auto pass = [&](float s) {
    parallel_for(n, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) a[i] = b[i] + s * c[i];
    });
  };
  parallel_for(n, 1 << 16, [&](int64_t lo, int64_t hi) {  // first touch on the threads that use the pages
    for (int64_t i = lo; i < hi; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
  });
  pass(0.5f);
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    pass(0.5f + float(r));
    double s = seconds_since(t0);
    if (s < best) best = s;
  }
  deallocate(a, r1);
  deallocate(b, r2);
  deallocate(c, r3);
  return 3.0 * double(bytes) / best / 1e9;
}

}  // namespace emu::cpu::EMU_ISA
