// memory.test.ts: tensors give their memory back. A hundred thousand create/dispose cycles and a
// tidy loop leave memoryStats and the process RSS flat; views keep their storage alive until the
// last one goes; `using`, dispose() and tidy release what they should and keep what they return;
// the caching allocator reuses blocks instead of asking the OS again.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AdamW, arange, DisposedError, emptyCache, F, Generator, keep, Linear, memoryStats, ones, randint, randn, resetPeakMemory,
  type MemoryStats, Sequential, ReLU, Tensor, tidy, ValueError, zeros,
} from '../src/index.ts';

/** global.gc when node runs with --expose-gc, else V8's gc fetched through a fresh context (or none). */
function findGc(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}
const gc = findGc();
const MB = 1024 * 1024;

function rss(): number {
  gc?.();
  return process.memoryUsage().rss;
}

/** The counters a steady loop must leave exactly where they were. */
function counters(s: MemoryStats) {
  return { liveTensors: s.liveTensors, allocated: s.allocated, reserved: s.reserved, freshAllocations: s.freshAllocations };
}

test('a hundred thousand create/dispose cycles leave memoryStats and RSS flat', () => {
  const sizes = [[64], [3, 333], [128, 128]];
  const cycle = (i: number) => {
    const t = zeros(sizes[i % 3]);
    const u = t.add(1);  // an op allocates its output and a 0-d temporary for the scalar
    const v = u.reshape(-1);
    t.dispose();
    u.dispose();
    v.dispose();
  };
  for (let i = 0; i < 20_000; i++) cycle(i);
  const before = memoryStats(), rss0 = rss();
  for (let i = 0; i < 100_000; i++) cycle(i);
  const after = memoryStats(), rss1 = rss();
  assert.equal(counters(after), counters(before));
  assert.ok(rss1 - rss0 < 30 * MB, `RSS grew by ${((rss1 - rss0) / MB).toFixed(1)} MB`);
});

test('a tidy training-like loop leaves memoryStats and RSS flat', () => {
  const g = new Generator(3);
  const w = randn([32, 32], { generator: g });
  const step = () => {
    const loss = tidy(() => {
      const x = randn([16, 32], { generator: g });
      const h = x.matmul(w).relu();
      const p = h.softmax(-1);
      const parts = p.chunk(4, 0).map((c) => c.sum());
      return parts[0].add(parts[3]).mul(h.mean());
    });
    const v = loss.item() as number;
    loss.dispose();
    return v;
  };
  for (let i = 0; i < 500; i++) step();
  const before = memoryStats(), rss0 = rss();
  let acc = 0;
  for (let i = 0; i < 5000; i++) acc += step();
  const after = memoryStats(), rss1 = rss();
  assert.ok(Number.isFinite(acc));
  assert.equal(counters(after), counters(before));
  assert.ok(rss1 - rss0 < 30 * MB, `RSS grew by ${((rss1 - rss0) / MB).toFixed(1)} MB`);
  w.dispose();
});

test('thousands of optimizer steps on a small model keep memoryStats and RSS flat', () => {
  const g = new Generator(5);
  const model = new Sequential(new Linear(24, 48, { generator: g }), new ReLU(), new Linear(48, 10, { generator: g }));
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const x = randn([32, 24], { generator: g }), y = randint(0, 10, [32], { generator: g });
  const step = () => tidy(() => {
    const loss = F.crossEntropy(model.forward(x), y);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    return loss.item() as number;
  });
  // Warm up until V8 has sized its heap (about 1,000 steps here); after that RSS stays flat.
  for (let i = 0; i < 1500; i++) step();
  const before = memoryStats(), rss0 = rss();
  let last = 0;
  for (let i = 0; i < 3000; i++) last = step();
  const after = memoryStats(), rss1 = rss();
  assert.ok(last < 0.5, `the model learns its batch (loss ${last})`);
  assert.equal(counters(after), counters(before));
  assert.ok(rss1 - rss0 < 30 * MB, `RSS grew by ${((rss1 - rss0) / MB).toFixed(1)} MB`);
  x.dispose();
  y.dispose();
});

test('views keep the storage alive until the last view is disposed', () => {
  const s0 = memoryStats();
  const base = arange(24, { dtype: 'f32' });
  const bytes = memoryStats().allocated - s0.allocated;
  assert.ok(bytes >= 24 * 4);
  const v1 = base.reshape(2, 3, 4);
  const v2 = v1.permute(2, 0, 1);
  const v3 = v2.select(0, 1);  // v1[:, :, 1]
  assert.is(memoryStats().liveTensors, s0.liveTensors + 4);
  base.dispose();
  v1.dispose();
  assert.ok(base.isDisposed && v1.isDisposed);
  assert.is(memoryStats().allocated, s0.allocated + bytes, 'storage still held by v2 and v3');
  assert.equal(v3.toArray(), [[1, 5, 9], [13, 17, 21]]);
  v2.dispose();
  assert.is(memoryStats().allocated, s0.allocated + bytes, 'storage still held by v3');
  assert.equal(v3.toArray(), [[1, 5, 9], [13, 17, 21]]);
  v3.dispose();
  assert.is(memoryStats().allocated, s0.allocated, 'the last view freed the storage');
  assert.is(memoryStats().liveTensors, s0.liveTensors);
});

test('`using` declarations dispose at the end of the block, also when it throws', () => {
  const live0 = memoryStats().liveTensors;
  let a0: Tensor, b0: Tensor;
  {
    using a = ones([4]);
    using b = a.mul(2);
    a0 = a;
    b0 = b;
    assert.is(memoryStats().liveTensors, live0 + 2);
    assert.equal(b.toArray(), [2, 2, 2, 2]);
  }
  assert.ok(a0.isDisposed && b0.isDisposed);
  assert.is(memoryStats().liveTensors, live0);
  let c0: Tensor | undefined;
  try {
    using c = zeros([3]);
    c0 = c;
    throw new Error('boom');
  } catch (e) {
    assert.is((e as Error).message, 'boom');
  }
  assert.ok(c0!.isDisposed);
  assert.is(memoryStats().liveTensors, live0);
});

test('use after dispose throws DisposedError; dispose is idempotent', () => {
  const live0 = memoryStats().liveTensors;
  const t = ones([2, 2]);
  const view = t.t();
  t.dispose();
  t.dispose();
  assert.is(memoryStats().liveTensors, live0 + 1);
  assert.throws(() => t.add(1), (e: unknown) => e instanceof DisposedError && /^add: .*was disposed/.test((e as Error).message));
  assert.throws(() => t.toArray(), (e: unknown) => e instanceof DisposedError);
  assert.throws(() => t.t(), (e: unknown) => e instanceof DisposedError);
  assert.equal(view.toArray(), [[1, 1], [1, 1]], 'a view made before dispose still works');
  view.dispose();
  assert.is(memoryStats().liveTensors, live0);
});

test('tidy disposes temporaries and keeps what it returns (tensor, arrays, objects, maps)', () => {
  const live0 = memoryStats().liveTensors;
  const r = tidy(() => ones([3]).add(1).mul(2));
  assert.is(memoryStats().liveTensors, live0 + 1);
  assert.equal(r.toArray(), [4, 4, 4]);
  r.dispose();

  const outside = ones([2]);
  let innerTemp: Tensor | undefined;
  const out = tidy(() => {
    const x = ones([2]).mul(3);
    const inner = tidy(() => {
      innerTemp = x.add(1);
      return { z: innerTemp.mul(2), deep: { list: [innerTemp.exp()] } };
    });
    assert.ok(innerTemp!.isDisposed, 'inner temporaries go when the inner tidy returns');
    assert.not.ok(inner.z.isDisposed);
    assert.not.ok(inner.deep.list[0].isDisposed);
    const w = inner.z.add(outside);
    return { w, pair: [x, new Map([['x2', x.mul(x)]])] as const };
  });
  assert.not.ok(outside.isDisposed, 'a tensor from outside the scope is not touched');
  assert.equal(out.w.toArray(), [9, 9]);
  assert.equal(out.pair[0].toArray(), [3, 3]);
  assert.equal(out.pair[1].get('x2')!.toArray(), [9, 9]);
  assert.is(memoryStats().liveTensors, live0 + 4);
  for (const t of [outside, out.w, out.pair[0], out.pair[1].get('x2')!]) t.dispose();
  assert.is(memoryStats().liveTensors, live0);
});

test('tidy keeps a returned view and its storage; keep() lets a tensor out of the scope', () => {
  const s0 = memoryStats();
  let base: Tensor | undefined, kept: Tensor | undefined;
  const v = tidy(() => {
    base = arange(6, { dtype: 'f32' });
    kept = keep(ones([2]));
    return base.reshape(2, 3).t();
  });
  assert.ok(base!.isDisposed);
  assert.not.ok(kept!.isDisposed);
  assert.equal(v.toArray(), [[0, 3], [1, 4], [2, 5]]);
  v.dispose();
  kept!.dispose();
  assert.equal(counters(memoryStats()), counters(s0));
});

test('tidy disposes everything on throw, and refuses async functions', () => {
  const live0 = memoryStats().liveTensors;
  let leaked: Tensor | undefined, nested: Tensor | undefined;
  assert.throws(
    () => tidy(() => {
      leaked = ones([5]);
      tidy(() => {
        nested = leaked!.add(1);
        return nested;  // survives the inner scope, then goes with the outer one
      });
      throw new Error('fail');
    }),
    /fail/,
  );
  assert.ok(leaked!.isDisposed && nested!.isDisposed);
  assert.is(memoryStats().liveTensors, live0);
  let early: Tensor | undefined;
  assert.throws(
    () => tidy((async () => {
      early = ones([1]);
    }) as () => unknown),
    (e: unknown) => e instanceof ValueError && /tidy: .*Promise/.test((e as Error).message),
  );
  assert.ok(early!.isDisposed);
  assert.is(memoryStats().liveTensors, live0);
});

test('the caching allocator reuses blocks; emptyCache and peak tracking', () => {
  emptyCache();
  const s0 = memoryStats();
  assert.is(s0.reserved, s0.allocated, 'after emptyCache nothing is cached');
  const a = zeros([1000]);
  const s1 = memoryStats();
  assert.is(s1.freshAllocations, s0.freshAllocations + 1);
  a.dispose();
  const s2 = memoryStats();
  assert.is(s2.allocated, s0.allocated);
  assert.ok(s2.reserved > s2.allocated, 'the freed block stays cached');
  for (let i = 0; i < 100; i++) zeros([1000]).dispose();
  assert.is(memoryStats().freshAllocations, s0.freshAllocations + 1, 'same-size blocks come from the cache');
  const b = zeros([1008]);  // 4032 bytes: the block 4000 bytes were rounded up to
  assert.is(memoryStats().freshAllocations, s0.freshAllocations + 1);
  b.dispose();

  resetPeakMemory();
  const p0 = memoryStats();
  assert.is(p0.peak, p0.allocated);
  const big = zeros([256, 1024]);
  big.dispose();
  const p1 = memoryStats();
  assert.ok(p1.peak >= p0.allocated + 256 * 1024 * 4);
  assert.is(p1.allocated, p0.allocated);
  emptyCache();
  const p2 = memoryStats();
  assert.is(p2.reserved, p2.allocated);
  assert.ok(p2.peak >= p1.peak, 'emptyCache does not reset the peak');
});

test('liveTensors counts per device return to their starting values', () => {
  const cpu0 = memoryStats('cpu').liveTensors, meta0 = memoryStats('meta').liveTensors;
  const ts = tidy(() => {
    const m = zeros([32000, 5120], { device: 'meta' });
    const c = ones([3]);
    return [m, m.t(), c, c.add(1)];
  });
  assert.is(memoryStats('meta').liveTensors, meta0 + 2);
  assert.is(memoryStats('cpu').liveTensors, cpu0 + 2);
  assert.is(memoryStats('meta').allocated, 0);
  for (const t of ts) t.dispose();
  assert.is(memoryStats('meta').liveTensors, meta0);
  assert.is(memoryStats('cpu').liveTensors, cpu0);
});

test.run();
