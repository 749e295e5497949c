// gpu_bench.test.ts: the GPU bench (bench/gpu/run.sh) cannot rot without a GPU.
//
// `run.sh --sim` builds the standalone kernel drivers with the host compiler (the same sources
// nvcc builds on a GPU machine) and runs their small correctness cases on the emulator: every
// kernel family must report a row per case, and every kernel the sim tables have must match
// the CPU's. report.py's arithmetic (rates, % of the measured peaks, the ratio to PyTorch) is
// checked on rows made up here, and so is the way a failed check reaches the exit status.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runtimeInfo } from '../../src/index.ts';

const root = join(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'emu-gpu-bench-'));

interface Row {
  family: string;
  kernel: string;
  dtype: string;
  status: string;
  err: number;
  tol: number;
  ms: number;
  timed: boolean;
  notes: string;
  spec: Record<string, unknown> | null;
}

/** Where run.sh built the drivers (it says so). */
const bin = () => join(root, sim.output.match(/building the drivers \(cmake --build (\S+)/)?.[1] ?? 'build', 'gpu_bench');

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const MIXED_ADAMW = 'adamw bf16 params + f32 master (one pass)';
/** Fused entries the CPU leaves null on purpose (its ops compose them): their CPU rows read "no kernel". */
const CPU_COMPOSES = ['linear bias+gelu (fused epilogue)', MIXED_ADAMW];

const sim = run('bash', ['bench/gpu/run.sh', '--sim', '--out', out]);
const rowsFile = join(out, 'rows.jsonl');
const rows: Row[] = existsSync(rowsFile) ? readFileSync(rowsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];

test('run.sh --sim builds the drivers and passes every check on the emulator', () => {
  assert.is(sim.status, 0, sim.output.slice(-4000));
  assert.match(sim.output, /emulator feature self-tests/);
  assert.match(sim.output, /\d+ passed, 0 failed/);
  assert.match(sim.output, /every check passed/);
});

test('every kernel family reports rows, none failed, none timed in check-only mode', () => {
  const families = new Set(rows.map((r) => r.family));
  for (const f of ['bandwidth', 'elementwise', 'matmul', 'conv2d', 'attention', 'norm', 'cross_entropy', 'adamw'])
    assert.ok(families.has(f), `no rows from ${f}`);
  for (const k of ['linear bias+gelu (fused epilogue)', 'matmul, bias add, gelu (3 kernels)'])
    for (const dtype of ['f32', 'bf16']) assert.ok(rows.some((r) => r.kernel === k && r.dtype === dtype && r.status === 'ok'), `${k} ${dtype}: not checked`);
  assert.ok(rows.some((r) => r.kernel === MIXED_ADAMW && r.dtype === 'bf16' && r.status === 'ok'), `${MIXED_ADAMW}: not checked`);
  for (const r of rows) {
    assert.ok(['ok', 'no kernel', 'unsupported'].includes(r.status), `${r.kernel} ${r.dtype}: ${r.status} ${r.notes}`);
    assert.is(r.ms, 0, `${r.kernel} was timed`);
    assert.is(r.timed, false, `${r.kernel} is a large case`);
  }
});

test('the kernels sim has today are checked against the CPU, f32 and bf16 (and f16 on the tensor-core paths)', () => {
  const checked = (kernel: string, dtype: string) =>
    rows.filter((r) => r.kernel === kernel && r.dtype === dtype && r.status === 'ok');
  for (const k of ['copy', 'copy transposed', 'unary exp', 'binary add broadcast', 'reduce sum (last dim)', 'softmax (last dim)',
    'index_select (embedding)', 'rope', 'matmul (default)', 'matmul v1', 'matmul v2', 'conv2d fwd', 'conv2d bwd data',
    'conv2d bwd weight'])
    for (const dt of ['f32', 'bf16']) assert.ok(checked(k, dt).length > 0, `${k} ${dt} was not checked`);
  // the fused kernels sim has in f32 (and bf16 for the row kernels, the norms in both versions), the
  // bf16 and f16 tensor-core GEMM versions, and attention in f16
  for (const k of ['swiglu fwd', 'swiglu bwd', 'rmsnorm fwd', 'rmsnorm bwd', 'layernorm bwd', 'cross-entropy fwd', 'cross-entropy bwd', 'adamw'])
    assert.ok(checked(k, 'f32').length > 0, `${k} f32 was not checked`);
  for (const k of ['swiglu fwd', 'rmsnorm fwd', 'rmsnorm bwd', 'rmsnorm fwd v1', 'layernorm bwd v1', 'cross-entropy fwd', 'cross-entropy bwd'])
    for (const dt of ['f32', 'bf16']) assert.ok(checked(k, dt).length > 0, `${k} ${dt} was not checked`);
  for (const k of ['matmul v3', 'matmul v5']) {
    for (const dt of ['bf16', 'f16']) assert.ok(checked(k, dt).length > 0, `${k} ${dt} was not checked`);
    assert.ok(rows.some((r) => r.kernel === k && r.dtype === 'f32' && r.status === 'unsupported'), `${k} f32 not refused`);
  }
  for (const k of ['matmul (default)', 'attention fwd', 'attention bwd']) assert.ok(checked(k, 'f16').length > 0, `${k} f16 was not checked`);
  const copy = rows.find((r) => r.family === 'bandwidth');
  assert.is(copy?.status, 'ok');
  assert.is(copy?.err, 0, 'a copy is exact');
  for (const r of rows.filter((r) => r.status === 'ok')) assert.ok(r.err <= r.tol, `${r.kernel}: ${r.err} > ${r.tol}`);
});

test('every row carries a spec that PyTorch can replay, except table entries without a counterpart', () => {
  for (const r of rows.filter((r) => r.kernel !== 'matmul versions')) assert.ok(r.spec && typeof r.spec.op === 'string', r.kernel);
});

test('the table is written for the run, with a row per case', () => {
  const md = readFileSync(join(out, 'RESULTS.md'), 'utf8');
  assert.match(md, /\| kernel \| dtype \| shape \| check \|/);
  assert.is(md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| kernel')).length, rows.length);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.is(json.rows.length, rows.length);
});

test('report.py: rates, % of the measured peaks, the ratio to PyTorch, and a FAIL sets the exit status', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emu-gpu-report-'));
  try {
    const base = { device: 'test GPU', tol: 0.02, err: 0.001, min_ms: 0, repeats: 10, notes: '', role: '', flops: 0, bytes: 0 };
    const copySpec = { op: 'copy', shapes: [[100]], dtype: 'f32' };
    const mmSpec = { op: 'matmul', B: 1, M: 4096, N: 4096, K: 4096, transposed_b: false, dtype: 'bf16' };
    const row = (family: string, kernel: string, status: string, fields: object) =>
      ({ ...base, family, kernel, dtype: 'bf16', shape: 'x', status, ...fields });
    const made = [
      row('bandwidth', 'device copy', 'ok', { role: 'bandwidth', ms: 0.5, bytes: 2e9, spec: copySpec }),
      row('norm', 'rmsnorm fwd', 'ok', { ms: 0.5, bytes: 1e9, spec: { op: 'rmsnorm', N: 16 } }),
      row('matmul', 'matmul v1', 'ok', { ms: 0.5, flops: 2 * 4096 ** 3, spec: mmSpec }),
      row('matmul', 'matmul v2', 'FAIL', { ms: 0, flops: 2 * 4096 ** 3, notes: 'out: rel err 1', spec: mmSpec }),
    ];
    // torch_ref.py's key: the spec with its keys sorted
    const key = (s: object) => JSON.stringify(Object.fromEntries(Object.entries(s).sort(([a], [b]) => (a < b ? -1 : 1))));
    writeFileSync(join(dir, 'rows.jsonl'), made.map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(join(dir, 'torch.jsonl'), [
      { key: key(mmSpec), ms: 0.25, impl: 'torch.matmul (cuBLAS)' },
      { key: key(copySpec), ms: 1.0, impl: 'Tensor.copy_' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = run('python3',
      ['bench/gpu/report.py', join(dir, 'rows.jsonl'), '--torch', join(dir, 'torch.jsonl'), '--json', join(dir, 'r.json')]);
    assert.is(r.status, 1, r.output);
    assert.match(r.output, /FAIL: out: rel err 1/);
    const { peaks, rows: table } = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    assert.ok(Math.abs(peaks.copy_tbps - 4) < 1e-9);
    assert.ok(Math.abs(peaks.torch_copy_tbps - 2) < 1e-9);
    const cublas = (2 * 4096 ** 3) / 0.25e-3 / 1e12;
    assert.ok(Math.abs(peaks.cublas_bf16_tflops - cublas) < 1e-6);
    const norm = table.find((t: { kernel: string }) => t.kernel === 'rmsnorm fwd');
    assert.ok(Math.abs(norm.tbps - 2) < 1e-9 && Math.abs(norm.pct_peak - 50) < 1e-9);
    assert.is(norm.torch_ms, null);
    const v1 = table.find((t: { kernel: string }) => t.kernel === 'matmul v1');
    assert.ok(Math.abs(v1.pct_peak - 50) < 1e-9 && Math.abs(v1.vs_torch - 0.5) < 1e-9);
    assert.ok(Math.abs(v1.pct_nominal - (100 * cublas) / 2 / 989) < 1e-9);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--device cpu: the driver of every family runs its checks, the CPU kernels against themselves', () => {
  const json = join(out, 'cpu.jsonl');
  for (const family of ['elementwise', 'matmul', 'conv2d', 'attention', 'norm', 'cross_entropy', 'adamw']) {
    const r = run(join(bin(), `gpu_${family}`), ['--device', 'cpu', '--check-only', '--json', json]);
    assert.is(r.status, 0, r.output);
  }
  const cpuRows: Row[] = readFileSync(json, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  for (const r of cpuRows) {
    // the CPU's fused kernels are f32/f64 only: their bf16 and f16 cases may be unsupported, never
    // failed; the CPU composes linear's epilogue and the mixed AdamW (cpu/fused.h), and has one norm
    // version (no norm_version), so those rows have no kernel
    const noKernel = CPU_COMPOSES.includes(r.kernel) || (r.family === 'norm' && / v\d+$/.test(r.kernel));
    // matmul v5 (avx512_bf16 dot products, where the CPU has them) takes bf16 only
    const allowed = noKernel ? ['no kernel'] : r.kernel === 'matmul v5' ? [r.dtype === 'bf16' ? 'ok' : 'unsupported']
      : r.dtype === 'bf16' || r.dtype === 'f16' ? ['ok', 'unsupported'] : ['ok'];
    assert.ok(allowed.includes(r.status), `${r.family} ${r.kernel} ${r.dtype}: ${r.status} ${r.notes}`);
  }
  for (const k of ['attention fwd', 'attention bwd', 'rmsnorm bwd', 'layernorm bwd', 'cross-entropy bwd', 'adamw'])
    assert.ok(cpuRows.some((r) => r.kernel === k && r.status === 'ok' && r.err === 0), `${k}: not checked, or not exact`);
  const versions = new Set(cpuRows.filter((r) => r.family === 'matmul').map((r) => r.kernel));
  for (const v of ['matmul (default)', 'matmul v1', 'matmul v4']) assert.ok(versions.has(v), `no row for ${v}`);
  assert.is(versions.has('matmul v5'), runtimeInfo().cpuBf16Dot !== 'absent', 'matmul v5 exactly where the CPU has avx512_bf16');
  assert.not.ok(versions.has('matmul v6'), 'the probe stops where matmul_version says there is no version');
});

test('--small times the small cases: the timing path (events, L2 flush, median) runs on sim too', () => {
  const json = join(out, 'small.jsonl');
  const r = run(join(bin(), 'gpu_bandwidth'), ['--device', 'sim', '--small', '--json', json]);
  assert.is(r.status, 0, r.output);
  const [copy] = readFileSync(json, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.is(copy.status, 'ok');
  assert.ok(copy.ms > 0 && copy.min_ms > 0 && copy.min_ms <= copy.ms, JSON.stringify(copy));
  assert.ok(copy.repeats >= 5 && copy.repeats <= 100, `${copy.repeats} repeats`);
});

test('run.sh and the drivers refuse bad arguments, and a missing GPU is a clear message', () => {
  const bad = run('bash', ['bench/gpu/run.sh', '--bogus']);
  assert.is(bad.status, 2);
  assert.match(bad.output, /unknown argument --bogus/);
  const usage = run(join(bin(), 'gpu_matmul'), ['--device', 'tpu']);
  assert.is(usage.status, 2);
  assert.match(usage.output, /unknown device tpu\nusage: .*--device cuda\|sim/);
  const cuda = run(join(bin(), 'gpu_matmul'), ['--device', 'cuda', '--check-only']);
  if (cuda.status !== 0) {  // a machine without a usable GPU (CI): the reason, not a crash
    assert.is(cuda.status, 2);
    assert.match(cuda.output, /matmul: cuda: no CUDA device/);
  }
});

test.after(() => rmSync(out, { recursive: true, force: true }));

test.run();
