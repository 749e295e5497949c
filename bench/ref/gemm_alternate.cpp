// gemm_alternate.cpp: our GEMM driver (native/cpu/kernels/gemm/gemm.h, AVX-512 build) and
// OpenBLAS's cblas_sgemm timed in ONE process, in alternating rounds, so that both see the same
// machine state. On shared vCPUs a whole `npm run bench` run swings GEMM ratios by
// +-20% (bench/RESULTS.md); alternating in one process is the steadier comparison, and what the
// block sizes in gemm.h were tuned with. Run it through gemm_alternate.sh (builds and sets the
// OpenBLAS environment); arguments: N THREADS ROUNDS [TB], TB 1 for B stored transposed.
// Prints the median time of each and the ratio OpenBLAS / ours (above 1: we are faster).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "cpu/kernels/gemm/gemm.h"

extern "C" void openblas_set_num_threads(int);

using emu::cpu::avx512::gemm::pack_a_strided;
using emu::cpu::avx512::gemm::pack_b_strided;

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: gemm_alternate N THREADS ROUNDS [TB]\n");
    return 2;
  }
  const int n = std::atoi(argv[1]), threads = std::atoi(argv[2]), rounds = std::atoi(argv[3]);
  const bool tb = argc > 4 && std::atoi(argv[4]) != 0;
  if (n < 1 || threads < 1 || rounds < 1) {
    std::fprintf(stderr, "gemm_alternate: N, THREADS and ROUNDS must be positive\n");
    return 2;
  }
  emu::cpu::set_num_threads(threads);
  openblas_set_num_threads(threads);
  const size_t nn = size_t(n) * size_t(n);
  std::vector<float> a(nn), b(nn), ours_c(nn), blas_c(nn);
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  for (float& x : a) x = normal(gen);
  for (float& x : b) x = normal(gen);
  // B[k][j] at b[k * n + j], or at b[j * n + k] when stored transposed.
  const int64_t sbk = tb ? 1 : n, sbn = tb ? n : 1;
  auto ours = [&] {
    auto pack_a = [&](int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) { pack_a_strided(a.data(), n, 1, i0, mc, p0, kc, dst); };
    auto pack_b = [&](int64_t j0, int64_t nc, int64_t p0, int64_t kc, float* dst) { pack_b_strided(b.data(), sbk, sbn, j0, nc, p0, kc, dst); };
    emu::cpu::avx512::gemm::run<float>(n, n, n, pack_a, pack_b, ours_c.data(), n, false, threads > 1);
  };
  auto blas = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f,
                blas_c.data(), n);
  };
  ours();
  blas();
  double err = 0, mag = 0;
  for (size_t i = 0; i < nn; i++) {
    err = std::max(err, double(std::fabs(ours_c[i] - blas_c[i])));
    mag = std::max(mag, double(std::fabs(blas_c[i])));
  }
  if (!(err <= 1e-5 * mag * std::sqrt(double(n)))) {
    std::fprintf(stderr, "gemm_alternate: results differ (max error %g, largest value %g)\n", err, mag);
    return 1;
  }
  // Alternation is by rounds, not by single calls: after a call OpenBLAS's worker threads spin
  // for up to 2^28 cycles before they sleep, and timed inside that window our two threads shared
  // a core with them (half speed); after a sleep, either pool pays its wake-up. So each round
  // gives each library the machine to itself: a pause longer than that window, one untimed call,
  // then three timed ones.
  auto round = [&](auto&& f, std::vector<double>& times) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    f();
    for (int i = 0; i < 3; i++) {
      const double t = now();
      f();
      times.push_back(now() - t);
    }
  };
  std::vector<double> t_ours, t_blas;
  for (int r = 0; r < rounds; r++) {
    round(ours, t_ours);
    round(blas, t_blas);
  }
  std::sort(t_ours.begin(), t_ours.end());
  std::sort(t_blas.begin(), t_blas.end());
  const double mo = t_ours[t_ours.size() / 2], mb = t_blas[t_blas.size() / 2], flops = 2.0 * n * double(n) * n;
  std::printf("n %5d  threads %d  %s  ours %8.3f ms (%5.1f GFLOP/s)  openblas %8.3f ms (%5.1f GFLOP/s)  openblas/ours %.3f\n", n,
              threads, tb ? "B^T" : "NN ", mo * 1e3, flops / mo * 1e-9, mb * 1e3, flops / mb * 1e-9, mb / mo);
  return 0;
}
