#!/usr/bin/env bash
# bench/gpu/run.sh: the CUDA kernels on a GPU machine in one command, from the repository root:
#
#   bash bench/gpu/run.sh [--out DIR] [--no-node | --node-timeout S] [--no-torch]  # with a GPU
#   bash bench/gpu/run.sh --sim [--out DIR]      # anywhere: the drivers' small checks on the emulator
#
# GPU mode, in order (each step says what it found; a missing optional tool never stops the rest):
#  1. builds the engine without its N-API glue and the standalone drivers (CMake target gpu_bench:
#     bench/gpu/*_bench.cpp and selftest_main.cpp) with nvcc for sm_80 and sm_90. With Node.js and
#     node_modules present it builds the addon too (npm run build) and the drivers in the same
#     build/ tree; otherwise plain cmake in build/gpu. No Node.js is needed.
#  2. runs the emulator's feature self-tests on the GPU (gpu_selftest);
#  3. runs each kernel family's driver: correctness against the CPU kernels first (random data,
#     odd sizes, sampled rows/heads on the large shapes), then timings with CUDA events (warm-up,
#     median of repeats, L2 flushed before each); a table entry with no kernel is reported, not
#     failed;
#  4. times PyTorch on the same shapes where python3 has torch with CUDA (torch_ref.py), and
#     the device copy bandwidth and cuBLAS's bf16 4096^3 rate as the peaks;
#  5. prints one table (report.py) and writes DIR/RESULTS.md, DIR/results.json, and a copy of the
#     table to bench/gpu/RESULTS.md;
#  6. with Node.js and node_modules, runs the whole test suite (npm test), whose parity and
#     gradcheck tables include `cuda` when a GPU is present, for at most S seconds (default 300;
#     a suite cut short counts as failed); its log is DIR/npm-test.log.
# Exit status: 0 when every check passed; 1 when a self-test, a kernel check or the test suite
# failed; 2 when nothing could run (no nvcc, no GPU, a build error).
#
# --sim builds the same drivers with the host compiler (reusing build/ when npm install made it,
# else plain cmake in build/gpu-sim without CUDA) and runs only their small correctness cases on
# the emulator, in seconds; test/sim/gpu_bench.test.ts runs it so the drivers cannot rot.
#
# Expected duration on one H200 with 16 cores: build 1-3 min, self-tests and drivers 2-3 min
# (the CPU references and random inputs of the large cases are most of it; the GPU time is a
# few seconds per family), PyTorch about 1 min: 4-7 min in all, plus the test suite where
# Node.js is there (several minutes more: use --no-node when the device time is short). DIR defaults to runs/gpu-bench (runs/gpu-bench-sim
# with --sim); on the device machine pass --out "$OUT" to get the files back.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

mode=gpu out="" use_node=1 use_torch=1 node_timeout=300
while [ $# -gt 0 ]; do
  case "$1" in
    --sim) mode=sim ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    --no-node) use_node=0 ;;
    --node-timeout) node_timeout="${2:?--node-timeout needs seconds}"; shift ;;
    --no-torch) use_torch=0 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || out="runs/gpu-bench$([ "$mode" = sim ] && echo -sim)"
mkdir -p "$out" || exit 2
log="$out/log.txt"
: >"$log"
say() { echo "== $*" | tee -a "$log"; }
jobs=$(nproc 2>/dev/null || echo 4)
status=0
fail() { status=1; }

drivers="bandwidth elementwise matmul conv2d attention norm cross_entropy adamw"
have_node_modules() { command -v node >/dev/null && command -v npm >/dev/null && [ -d node_modules/cmake-js ]; }

# ---- 1. build -------------------------------------------------------------------------------------
start=$(date +%s)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ "$mode" = gpu ]; then
  export PATH="$PATH:/usr/local/cuda/bin"
  if ! command -v nvcc >/dev/null; then
    say "no nvcc on PATH or in /usr/local/cuda/bin: install the CUDA toolkit (this script needs it to build the kernels)"
    exit 2
  fi
  if command -v nvidia-smi >/dev/null; then
    say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  else
    say "nvidia-smi not found: is there an NVIDIA driver? (the drivers will say if no GPU is usable)"
  fi
  say "nvcc: $(nvcc --version | tail -1)"
  if [ "$use_node" = 1 ] && have_node_modules; then
    say "node $(node --version) with node_modules: building the addon (npm run build) and the drivers in build/"
    build=build
    npm run build >>"$log" 2>&1 || { say "addon build failed (see $log)"; tail -30 "$log"; exit 2; }
  else
    if [ "$use_node" = 1 ]; then
      if command -v node >/dev/null; then
        say "node found but no node_modules (npm install needs a registry): no addon, no test suite; the drivers need neither"
      else
        say "no Node.js: no addon, no test suite; the drivers need neither"
      fi
    fi
    use_node=0
    build=build/gpu
    cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >>"$log" 2>&1 ||
      { say "cmake configure failed (see $log)"; tail -30 "$log"; exit 2; }
  fi
  device_args=(--device cuda)
else
  use_node=0 use_torch=0
  if [ -f build/CMakeCache.txt ]; then
    build=build
  else
    build=build/gpu-sim
    cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DEMU_CUDA=OFF >>"$log" 2>&1 ||
      { say "cmake configure failed (see $log)"; tail -30 "$log"; exit 2; }
  fi
  device_args=(--device sim --check-only)
fi
say "building the drivers (cmake --build $build --target gpu_bench)"
cmake --build "$build" --target gpu_bench --parallel "$jobs" >>"$log" 2>&1 ||
  { say "build failed (see $log)"; tail -40 "$log"; exit 2; }
bin="$build/gpu_bench"
say "built in $(($(date +%s) - start)) s"

# ---- 2. emulator feature self-tests on the device --------------------------------------------------
say "emulator feature self-tests (${device_args[1]})"
"$bin/gpu_selftest" --device "${device_args[1]}" 2>&1 | tee -a "$log"
case "${PIPESTATUS[0]}" in
  0) ;;
  2) say "no usable device: stopping"; exit 2 ;;
  *) say "self-tests FAILED"; fail ;;
esac

# ---- 3. the kernel drivers: correctness, then timings ---------------------------------------------
rows="$out/rows.jsonl"
: >"$rows"
for d in $drivers; do
  t0=$(date +%s)
  "$bin/gpu_$d" "${device_args[@]}" --json "$rows" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  case "$rc" in
    0) say "$d: every check passed ($(($(date +%s) - t0)) s)" ;;
    1) say "$d: a check FAILED ($(($(date +%s) - t0)) s)"; fail ;;
    *) say "$d: stopped by an error outside its cases, exit $rc (see above)"; fail ;;
  esac
done

# ---- 4. PyTorch on the same shapes ------------------------------------------------------------------
torch_rows="$out/torch.jsonl"
rm -f "$torch_rows"
if [ "$use_torch" = 1 ]; then
  if ! command -v python3 >/dev/null; then
    say "no python3: no PyTorch reference"
  else
    t0=$(date +%s)
    say "PyTorch on the same shapes (torch_ref.py)"
    python3 bench/gpu/torch_ref.py "$rows" >"$torch_rows" 2> >(tee -a "$log" >&2)
    case $? in
      0) say "PyTorch: $(wc -l <"$torch_rows") cases in $(($(date +%s) - t0)) s" ;;
      3) say "no PyTorch with CUDA in python3: the table has no PyTorch column and no cuBLAS peak"; rm -f "$torch_rows" ;;
      *) say "torch_ref.py failed (its rows so far are kept)" ;;
    esac
  fi
fi

# ---- 5. the table -----------------------------------------------------------------------------------
if command -v python3 >/dev/null; then
  report_args=("$rows" --md "$out/RESULTS.md" --json "$out/results.json")
  [ -f "$torch_rows" ] && report_args+=(--torch "$torch_rows")
  python3 bench/gpu/report.py "${report_args[@]}" | tee -a "$log" || fail
  if [ "$mode" = gpu ]; then
    cp "$out/RESULTS.md" bench/gpu/RESULTS.md.tmp && mv bench/gpu/RESULTS.md.tmp bench/gpu/RESULTS.md
  fi
else
  say "no python3: no table; the rows are in $rows"
fi

# ---- 6. the Node.js test suite ----------------------------------------------------------------------
if [ "$use_node" = 1 ]; then
  t0=$(date +%s)
  say "the test suite (npm test, at most $node_timeout s; log in $out/npm-test.log)"
  timeout "$node_timeout" npm test >"$out/npm-test.log" 2>&1
  case $? in
    0) say "npm test: $(tail -1 "$out/npm-test.log") in $(($(date +%s) - t0)) s" ;;
    124) say "npm test did not finish in $node_timeout s (counted as failed; --node-timeout gives it longer)"; fail ;;
    *) say "npm test FAILED: $(tail -1 "$out/npm-test.log")"; fail ;;
  esac
  [ -f "$out/RESULTS.md" ] && tee -a "$log" <"$out/RESULTS.md"  # the table last again
fi

say "done in $(($(date +%s) - start)) s: $([ $status = 0 ] && echo 'every check passed' || echo 'SOME CHECKS FAILED (see above)'); files in $out"
exit $status
