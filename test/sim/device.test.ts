// device.test.ts: the `sim` device in the tensor API: storage in the emulator's device memory
// (its caching allocator, host <-> device copies), creation and random ops on sim, moving tensors
// with to(), device-mixing errors, errors raised from device code, and the thread-order binding.
// The op kernels themselves are checked against the CPU by the parity table (test/parity.test.ts,
// every case on sim in three thread orders) and by gradcheck (test/gradcheck.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  add, arange, cat, DeviceError, DTYPES, emptyCache, eye, full, gather, IndexError, manualSeed, matmul, memoryStats, ones,
  rand, randint, randn, randperm, scatterAdd, setSimOrder, simAvailable, simOrder, sum, tensor, Tensor, tidy, ValueError,
  where, zeros, type DType,
} from '../../src/index.ts';
import { native } from '../../src/tensor/native.ts';
import { DTYPE_SIZE } from '../../src/tensor/dtype.ts';

/** The raw bytes of a contiguous tensor (read through the addon, so NaN payloads survive). */
function bytesOf(t: Tensor): Uint8Array {
  assert.ok(t.isContiguous, 'bytesOf: expected a contiguous tensor');
  const esize = DTYPE_SIZE[t.dtype];
  return new Uint8Array(native.read(t.handle, t.offset * esize, t.numel * esize));
}

/** Values that stress every dtype's bit patterns: signed zeros, infinities, NaN, rounding ties, extremes. */
const SPECIAL = [0, -0, 1, -1, 0.1, -2.5, 1 + 2 ** -8, 3e38, -3e38, 1e-40, Infinity, -Infinity, NaN, 2147483647, -2147483648, 7];

function throwsDevice(fn: () => unknown, ...patterns: RegExp[]): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DeviceError, `expected a DeviceError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const p of patterns) assert.match((e as Error).message, p);
    return;
  }
  assert.unreachable(`expected a DeviceError matching ${patterns.join(', ')}`);
}

test('sim is available in this build and its thread order can be set', () => {
  assert.ok(simAvailable());
  setSimOrder('reverse');
  assert.is(simOrder(), 'reverse');
  setSimOrder('random:7');
  assert.is(simOrder(), 'random:7');
  setSimOrder('sequential');
  assert.is(simOrder(), 'sequential');
  assert.throws(() => setSimOrder('backwards'), (e: unknown) => e instanceof ValueError);
  assert.throws(() => setSimOrder(3 as unknown as string), (e: unknown) => e instanceof ValueError && /setSimOrder/.test((e as Error).message));
});

test('to(sim) and back is bit-exact in every dtype, contiguous or not', () => tidy(() => {
  for (const dtype of DTYPES) {
    const cpu = tensor(SPECIAL, { dtype });
    const onSim = cpu.to('sim');
    assert.is(onSim.device, 'sim');
    assert.is(onSim.dtype, dtype);
    assert.equal(bytesOf(onSim), bytesOf(cpu), `${dtype}: bytes on sim differ`);
    const back = onSim.to('cpu');
    assert.is(back.device, 'cpu');
    assert.equal(bytesOf(back), bytesOf(cpu), `${dtype}: round trip changed the bytes`);
    // A transposed step-2 view moves as its logical values, in both directions.
    const grid = arange(35, { dtype: 'i32' }).to(dtype).reshape(5, 7);
    const view = grid.transpose(0, 1).slice(0, 1, undefined, 2);
    const want = bytesOf(view.contiguous());
    assert.equal(bytesOf(view.to('sim')), want, `${dtype}: a cpu view moved to sim`);
    const simView = grid.to('sim').transpose(0, 1).slice(0, 1, undefined, 2);
    assert.equal(bytesOf(simView.to('cpu')), want, `${dtype}: a sim view moved to cpu`);
    assert.equal([...simView.data()], [...view.data()], `${dtype}: data() of a sim view`);
  }
  assert.is(zeros([0, 3], { device: 'sim' }).to('cpu').numel, 0);
}));

test('creation ops on sim give the CPU values', () => tidy(() => {
  const same = (a: Tensor, b: Tensor, what: string) => {
    assert.is(a.device, 'sim', `${what}: device`);
    assert.equal(bytesOf(a.contiguous()), bytesOf(b.contiguous()), what);
  };
  for (const dtype of DTYPES) {
    same(zeros([3, 5], { dtype, device: 'sim' }), zeros([3, 5], { dtype }), `zeros ${dtype}`);
    same(ones([7], { dtype, device: 'sim' }), ones([7], { dtype }), `ones ${dtype}`);
    same(full([2, 3], -2.75, { dtype, device: 'sim' }), full([2, 3], -2.75, { dtype }), `full ${dtype}`);
    same(tensor(SPECIAL, { dtype, device: 'sim' }), tensor(SPECIAL, { dtype }), `tensor ${dtype}`);
    same(eye(3, 4, { dtype, device: 'sim' }), eye(3, 4, { dtype }), `eye ${dtype}`);
  }
  same(arange(1, 11, 3, { device: 'sim' }), arange(1, 11, 3), 'arange');
  assert.is(full([2], 1, { device: 'sim' }).sum().item(), 2);
}));

test('rand, randn, randint and randperm on sim reproduce the CPU streams exactly', () => tidy(() => {
  const shapes = [[1], [3, 7], [2, 3, 5], [1001]];
  for (const dtype of ['f32', 'f64', 'bf16'] as DType[]) {
    for (const shape of shapes) {
      for (const [name, make] of [
        ['rand', (device: 'cpu' | 'sim') => rand(shape, { dtype, device })],
        ['randn', (device: 'cpu' | 'sim') => randn(shape, { dtype, device, mean: 0.5, std: 2 })],
      ] as const) {
        manualSeed(4321);
        const a = make('cpu');
        manualSeed(4321);
        const b = make('sim');
        assert.is(b.device, 'sim');
        assert.equal(bytesOf(b), bytesOf(a), `${name} ${dtype} [${shape}]`);
      }
    }
  }
  manualSeed(99);
  const a = randint(-5, 12, [3, 11]);
  manualSeed(99);
  assert.equal(bytesOf(randint(-5, 12, [3, 11], { device: 'sim' })), bytesOf(a), 'randint');
  for (const n of [1, 5, 97, 1000]) {
    manualSeed(n);
    const p = randperm(n);
    manualSeed(n);
    assert.equal(bytesOf(randperm(n, { device: 'sim' })), bytesOf(p), `randperm(${n})`);
  }
}));

test('reductions, softmax and matmul on sim give the same bits in every thread order', () => tidy(() => {
  manualSeed(11);
  const x = randn([7, 333], { device: 'sim' }), y = randn([333, 5], { device: 'sim' });
  const results = ['sequential', 'reverse', 'random:3', 'random:4'].map((order) => {
    setSimOrder(order);
    return [x.sum(1), x.max(1), x.argmin(1), x.var(0), x.logsumexp(1), x.softmax(1), x.logSoftmax(0), x.matmul(y)].map((t) => bytesOf(t.contiguous()));
  });
  setSimOrder('sequential');
  for (const r of results.slice(1)) assert.equal(r, results[0]);
}));

test('memoryStats(sim) follows the sim caching allocator', () => {
  emptyCache('sim');
  const before = memoryStats('sim');
  assert.is(before.device, 'sim');
  const t = zeros([1000], { device: 'sim' });
  const during = memoryStats('sim');
  assert.ok(during.allocated >= before.allocated + 4000, `allocated ${during.allocated} after a 4000-byte tensor (${before.allocated} before)`);
  assert.ok(during.reserved >= during.allocated);
  assert.ok(during.peak >= during.allocated);
  assert.is(during.liveTensors, before.liveTensors + 1);
  t.dispose();
  const after = memoryStats('sim');
  assert.is(after.allocated, before.allocated);
  assert.ok(after.reserved >= during.allocated - before.allocated, 'the freed block stays cached');
  const again = zeros([1000], { device: 'sim' });
  assert.is(memoryStats('sim').freshAllocations, after.freshAllocations, 'the cached block is reused');
  again.dispose();
  emptyCache('sim');
  assert.is(memoryStats('sim').reserved, memoryStats('sim').allocated);
});

test('ops mixing cpu and sim tensors are DeviceErrors naming the op and both devices', () => tidy(() => {
  const c = ones([2, 3]), s = ones([2, 3], { device: 'sim' });
  throwsDevice(() => add(c, s), /^add:/, /different devices \(cpu and sim\)/);
  throwsDevice(() => add(s, c), /^add:/, /different devices \(sim and cpu\)/);
  throwsDevice(() => matmul(s, ones([3, 2])), /^matmul:/, /sim and cpu/);
  throwsDevice(() => where(ones([2, 3], { dtype: 'bool', device: 'sim' }), c, c), /^where:/, /sim and cpu/);
  throwsDevice(() => cat([c, s]), /^cat:/, /cpu and sim/);
  // The addon checks too, so a kernel never reads another device's memory.
  throwsDevice(() => native.copy(s.handle, s.desc, c.handle, c.desc), /^copy: operands are on different devices \(sim and cpu\)/);
}));



test('out-of-range indices on sim are the CPU\'s IndexErrors, raised from the device', () => tidy(() => {
  const s = ones([2, 3], { device: 'sim' });
  const bad = tensor([[0], [3]], { dtype: 'i32', device: 'sim' });
  for (const [what, fn] of [['gather', () => gather(s, 1, bad)], ['scatterAdd', () => scatterAdd(s, 1, bad, ones([2, 1], { device: 'sim' }))]] as const) {
    try {
      fn();
      assert.unreachable(`${what}: expected an IndexError`);
    } catch (e) {
      assert.ok(e instanceof IndexError, `${what}: got ${(e as Error).name}`);
      assert.match((e as Error).message, new RegExp(`^${what}: index 3 is out of range for dim 1 of size 3`));
    }
  }
  assert.throws(() => tensor([7], { dtype: 'i32', device: 'sim' }).remainder(tensor([0], { dtype: 'i32', device: 'sim' })),
    (e: unknown) => e instanceof ValueError && /integer division by zero/.test((e as Error).message));
}));

test('gradients flow back through to(sim) to the cpu leaf', () => {
  const x = tensor([1, -2, 3]).requiresGrad_();
  tidy(() => sum(x.to('sim').mul(x.to('sim'))).backward());
  assert.is(x.grad!.device, 'cpu');
  assert.equal([...x.grad!.data()], [2, -4, 6]);
  x.zeroGrad();
  x.dispose();
});

test.run();
