/* openblas_gemm.c: the OpenBLAS reference for bench/ (bench/ref/openblas.ts compiles and runs it).
 *
 * Reads one case per line on stdin, "KEY BATCH M N K TA TB" (TA / TB: 1 when that operand is
 * stored transposed, as our bench's transposed views are), and for each times
 * C[b] = op(A[b]) @ op(B[b]) with cblas_sgemm on random f32 data, one call per batch entry.
 * After one untimed call it repeats for about 0.5 s (at least 3 times) and prints
 * "KEY SECONDS_PER_CALL" (the mean), one line per case. The thread count is OpenBLAS's own
 * (OPENBLAS_NUM_THREADS, set by the bench to our pool size).
 *
 * Build: cc -O2 -o openblas_gemm openblas_gemm.c -lopenblas */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static float* random_floats(size_t n) {
  float* p = malloc(n * sizeof(float));
  if (!p) {
    fprintf(stderr, "openblas_gemm: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
  return p;
}

static void run(int batch, int m, int n, int k, int ta, int tb, float* a, float* b, float* c) {
  for (int i = 0; i < batch; i++)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a + (size_t)i * m * k, ta ? m : k, b + (size_t)i * k * n, tb ? k : n, 0.0f, c + (size_t)i * m * n, n);
}

int main(void) {
  char key[512];
  int batch, m, n, k, ta, tb;
  while (scanf("%511s %d %d %d %d %d %d", key, &batch, &m, &n, &k, &ta, &tb) == 7) {
    float* a = random_floats((size_t)batch * m * k);
    float* b = random_floats((size_t)batch * k * n);
    float* c = random_floats((size_t)batch * m * n);
    run(batch, m, n, k, ta, tb, a, b, c);
    long reps = 0;
    const double t0 = now();
    double t = t0;
    while (reps < 3 || t - t0 < 0.5) {
      run(batch, m, n, k, ta, tb, a, b, c);
      reps++;
      t = now();
    }
    printf("%s %.9g\n", key, (t - t0) / reps);
    fflush(stdout);
    free(a);
    free(b);
    free(c);
  }
  return 0;
}
