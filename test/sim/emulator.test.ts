// emulator.test.ts: the SIMT emulator (native/sim) through its self-tests (native/sim/selftest.cu).
//
// Every self-test runs in three thread orders. Feature kernels must match their references in
// every order; the deliberately broken kernels must be caught: a missing barrier or cp.async wait
// gives a wrong result in at least one order, and a divergent barrier or a warp collective with
// missing lanes is reported as a DeviceError naming the kernel and the source places.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceError, runtimeInfo, ValueError } from '../../src/index.ts';
import { native } from '../../src/tensor/native.ts';

const ORDERS = ['sequential', 'reverse', 'random:20261130'];
const tests = native.simSelfTests();
const byKind = (kind: string) => tests.filter((t) => t.kind === kind).map((t) => t.name);

/** The DeviceError a self-test throws, or a failed assertion if it returns instead. */
function errorOf(name: string, order: string): DeviceError {
  try {
    const result = native.simSelfTest(name, order);
    assert.unreachable(`${name} (${order}) returned ${JSON.stringify(result)} instead of throwing`);
  } catch (e) {
    if (!(e instanceof DeviceError)) throw e;
    return e;
  }
  throw new Error('unreachable');
}

test('the self-tests cover every emulated feature and every kind of broken kernel', () => {
  assert.equal(byKind('feature').sort(), [
    'atomics', 'block_sum', 'builtins', 'caching_allocator', 'conversions', 'cp_async_pipeline', 'dynamic_shared',
    'early_exit', 'ldmatrix_x1', 'math', 'mma_bf16', 'mma_f16', 'shuffles', 'softmax', 'syncthreads_votes', 'syncwarp',
    'transpose', 'vector_loads', 'votes',
  ]);
  assert.equal(byKind('broken-result').sort(), ['missing_barrier_reduce', 'missing_barrier_transpose', 'missing_cp_async_wait']);
  assert.equal(byKind('broken-error').sort(), [
    'block_too_large', 'divergent_barrier', 'kernel_exception', 'ldmatrix_misaligned', 'shared_over_limit',
    'shuffle_outside_mask', 'warp_exited_lanes', 'warp_missing_lanes',
  ]);
});

for (const name of byKind('feature')) {
  test(`feature ${name} matches its reference in every thread order`, () => {
    for (const order of ORDERS) assert.is(native.simSelfTest(name, order), '', `${name} in order ${order}`);
  });
}

for (const name of byKind('broken-result')) {
  test(`broken kernel ${name} gives a wrong result in at least one order`, () => {
    const wrong = ORDERS.filter((order) => native.simSelfTest(name, order) !== '');
    assert.ok(wrong.length > 0, `${name} matched its reference in every order`);
  });
}

test('a tree reduction without its loop barrier is right in reverse order only: one order is not enough', () => {
  assert.is(native.simSelfTest('missing_barrier_reduce', 'reverse'), '');
  assert.match(native.simSelfTest('missing_barrier_reduce', 'sequential'), /block sums\[0\]: got .*, want /);
});

test('a missing cp.async wait reads the poisoned destination in every order', () => {
  for (const order of ORDERS) assert.match(native.simSelfTest('missing_cp_async_wait', order), /got -?nan/);
});

test('a divergent barrier is reported with both places, never a hang', () => {
  for (const order of ORDERS) {
    const e = errorOf('divergent_barrier', order);
    assert.match(e.message, /kernel .*divergent_barrier_kernel/);
    const places = [...e.message.matchAll(/__syncthreads \(selftest\.cu:(\d+)\)/g)].map((m) => m[1]);
    assert.is(places.length, 2, e.message);
    assert.is.not(places[0], places[1], e.message);
  }
});

test('a warp collective whose lanes wait at a barrier is a deadlock naming both places', () => {
  for (const order of ORDERS) {
    const e = errorOf('warp_missing_lanes', order);
    assert.match(e.message, /kernel .*warp_missing_lanes_kernel/);
    assert.match(e.message, /deadlock: thread \(\d+,0,0\) waits in __shfl_xor_sync at selftest\.cu:\d+ for lane \d+, which waits in __syncthreads at selftest\.cu:\d+/);
  }
});

test('a warp collective after lanes of its mask exited is an error', () => {
  for (const order of ORDERS) {
    const e = errorOf('warp_exited_lanes', order);
    assert.match(e.message, /kernel .*warp_exited_lanes_kernel/);
    assert.match(e.message, /exited/);
    assert.match(e.message, /__shfl_down_sync at selftest\.cu:\d+/);
  }
});

test('an exception thrown in a kernel reaches the caller as a DeviceError naming block and thread', () => {
  for (const order of ORDERS) {
    const e = errorOf('kernel_exception', order);
    assert.match(e.message, /kernel .*throwing_kernel, block \(1,0,0\), thread \(40,0,0\): thrown inside the kernel/);
  }
  assert.is(native.simSelfTest('block_sum', 'random:1'), '', 'the emulator still works after a failed launch');
});

test('misuse the GPU would not report is an error naming the place', () => {
  const cases: [string, RegExp][] = [
    ['shuffle_outside_mask', /__shfl_down_sync at selftest\.cu:\d+: lane 15 reads lane 16, which is not in the mask/],
    ['ldmatrix_misaligned', /ldmatrix at selftest\.cu:\d+: lane 0 gives a row address that is not a 16-byte-aligned address in shared memory/],
    ['block_too_large', /launch of kernel .*fill_kernel: a block has at most 1024 threads/],
    ['shared_over_limit', /shared array at selftest\.cu:\d+: 52000 bytes of static shared memory exceed/],
  ];
  for (const [name, pattern] of cases) {
    for (const order of ORDERS) assert.match(errorOf(name, order).message, pattern);
  }
});

test('bad thread orders and unknown self-tests are ValueErrors', () => {
  for (const order of ['', 'forward', 'random:', 'random:12x', 'random:-1']) {
    assert.throws(() => native.simSelfTest('builtins', order), (e: unknown) => e instanceof ValueError && /sequential, reverse or random:<seed>/.test((e as Error).message), order);
  }
  assert.throws(() => native.simSelfTest('no_such_test', 'sequential'), (e: unknown) => e instanceof ValueError && /no self-test named/.test((e as Error).message));
});

test('nvcc compiles the same self-tests; they run on a GPU where there is one, and say why not where there is none', () => {
  const info = runtimeInfo();
  const onCuda = native.cudaSelfTests().map((t) => t.name).sort();
  if (!info.builtWithCuda) {
    assert.equal(onCuda, []);
    return;
  }
  const simOnly = ['kernel_exception', 'shared_over_limit'];  // device code cannot throw; nvcc rejects 52 KB of static shared
  assert.equal(onCuda, tests.map((t) => t.name).filter((n) => !simOnly.includes(n)).sort());
  if (info.cudaDeviceCount === 0) {
    assert.throws(() => native.cudaSelfTest('builtins'), (e: unknown) => e instanceof DeviceError && /no CUDA device/.test((e as Error).message));
    return;
  }
  for (const name of byKind('feature')) assert.is(native.cudaSelfTest(name), '', `${name} on the GPU`);
});

test('EMU_SIM_ORDER sets the order of launches that do not choose one', () => {
  const root = join(import.meta.dirname, '../..');
  const script = "import { native } from './src/tensor/native.ts'; process.stdout.write(JSON.stringify(native.simSelfTest('missing_barrier_reduce')));";
  const run = (order?: string) => {
    const env = { ...process.env, EMU_SIM_ORDER: order ?? '' };
    return JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env, encoding: 'utf8' }));
  };
  assert.is(run('reverse'), '');
  assert.match(run('sequential'), /block sums/);
  assert.match(run(), /block sums/, 'sequential is the default');
});

test.run();
