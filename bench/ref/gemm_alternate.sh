#!/usr/bin/env bash
# gemm_alternate.sh: builds bench/ref/gemm_alternate.cpp (our gemm.h against OpenBLAS in one
# process, alternating) and runs it at n = 512, 1024, 2048 on one and two threads, NN and B^T.
# Needs g++ with AVX-512 and Debian's libopenblas-dev; forces OpenBLAS's SkylakeX kernels, as
# the bench does (bench/ref/openblas_env.ts says why). Usage: bash bench/ref/gemm_alternate.sh [ROUNDS]
# (each round: 3 timed calls of each library; medians over all rounds)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
grep -q avx512f /proc/cpuinfo || { echo "gemm_alternate: this CPU has no AVX-512" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
flags=(-O3 -std=c++17 -fno-strict-aliasing -fno-math-errno -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c -mbmi2
       -DEMU_ISA=avx512 -I"$root/native")
g++ "${flags[@]}" "$root/bench/ref/gemm_alternate.cpp" "$root/native/cpu/thread_pool.cpp" -lopenblas -lpthread -o "$out/gemm_alternate"
unset OPENBLAS_L2_SIZE
export OPENBLAS_CORETYPE=SkylakeX
rounds="${1:-5}"
for threads in 1 2; do
  for n in 512 1024 2048; do
    r=$(( n == 2048 ? (rounds + 1) / 2 : rounds ))
    "$out/gemm_alternate" "$n" "$threads" "$r" 0
    [ "$n" -ne 1024 ] || "$out/gemm_alternate" "$n" "$threads" "$r" 1
  done
done
