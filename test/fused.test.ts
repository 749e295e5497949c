// fused.test.ts: the fused CPU kernels (native/cpu/kernels/attention.cpp and the other fused
// ones) against the composed paths they replace, at sizes that cross their blocks, in f32 where
// the composed path is the same sum in another order; their determinism (the same bits on every
// run and every thread count) and the checks that keep bad input from the native code.
// Exact formulas and finite-difference gradients live in nn.test.ts, parity.test.ts and
// gradcheck.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DTypeError, F, Generator, numThreads, rand, randn, setNumThreads, ShapeError, tidy, type Tensor } from '../src/index.ts';
import { attention } from '../src/tensor/ops/attention.ts';

const arr = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);

/** max |a - b| / (1 + max |b|) over all elements. */
function relErr(a: Tensor, b: Tensor): number {
  const x = arr(a), y = arr(b);
  assert.is(x.length, y.length);
  let err = 0, mag = 0;
  x.forEach((v, i) => {
    err = Math.max(err, Math.abs(v - y[i]));
    mag = Math.max(mag, Math.abs(y[i]));
  });
  return err / (1 + mag);
}

interface AttnCase { q: number[]; k: number[]; dv: number; causal?: boolean; bias?: boolean; kpm?: boolean; scale?: number }
const ATTN: AttnCase[] = [
  { q: [2, 3, 150, 40], k: [2, 3, 70, 40], dv: 24, causal: true, bias: true, kpm: true },
  { q: [1, 2, 65, 64], k: [1, 2, 200, 64], dv: 64, causal: true },
  { q: [3, 129, 17], k: [3, 129, 17], dv: 33, bias: true, scale: 0.5 },
  { q: [2, 4, 64, 64], k: [2, 1, 64, 64], dv: 64, kpm: true },
];

function attnInputs(c: AttnCase, seed: number) {
  const g = new Generator(seed);
  const Lq = c.q[c.q.length - 2], Lk = c.k[c.k.length - 2];
  const q = randn(c.q, { generator: g }).requiresGrad_(), k = randn(c.k, { generator: g }).requiresGrad_();
  const v = randn([...c.k.slice(0, -1), c.dv], { generator: g }).requiresGrad_();
  const bias = c.bias ? randn([c.q.length === 4 ? c.q[1] : 1, Lq, Lk], { generator: g }).requiresGrad_() : null;
  const kpm = c.kpm ? rand([c.q[0], Lk], { generator: g }).lt(0.4) : null;
  return { q, k, v, bias, kpm, gout: randn([...c.q.slice(0, -1), c.dv], { generator: g }) };
}

test('fused attention matches the composed path, forward and every gradient (f32)', () => {
  ATTN.forEach((c, n) => tidy(() => {
    const grads = (fused: boolean) => {
      const x = attnInputs(c, 10 + n);
      const scale = c.scale ?? 1 / Math.sqrt(c.q[c.q.length - 1]);
      const y = fused ? F.fusedAttention(x.q, x.k, x.v, x.bias, x.kpm, scale, c.causal ?? false)!
        : F.composedAttention(x.q, x.k, x.v, x.bias, x.kpm, scale, { causal: c.causal });
      y.mul(x.gout).sum().backward();
      return [y, x.q.grad!, x.k.grad!, x.v.grad!, ...(x.bias ? [x.bias.grad!] : [])];
    };
    const a = grads(true), b = grads(false);
    ['out', 'dq', 'dk', 'dv', 'dbias'].slice(0, a.length).forEach((what, i) => {
      const e = relErr(a[i], b[i]);
      assert.ok(e < 2e-5, `case ${n} ${what}: relative error ${e}`);
    });
  }));
});

test('fused attention: fully hidden rows are zeros with zero gradients, not NaN', () => tidy(() => {
  const q = randn([2, 1, 3, 4]).requiresGrad_(), k = randn([2, 1, 5, 4]).requiresGrad_(), v = randn([2, 1, 5, 2]).requiresGrad_();
  const kpm = rand([2, 5]).lt(2).logicalAnd(rand([2, 5]).lt(0).logicalNot());  // every key hidden
  const y = F.scaledDotProductAttention(q, k, v, { keyPaddingMask: kpm });
  assert.equal(arr(y), Array(12).fill(0));
  y.sum().backward();
  for (const t of [q, k, v]) assert.ok(arr(t.grad!).every((g) => g === 0), 'zero gradients');
}));

test('fused attention is deterministic: the same bits on every run and thread count', () => tidy(() => {
  const c = ATTN[0];
  const run = () => tidy(() => {
    const x = attnInputs(c, 99);
    const y = F.fusedAttention(x.q, x.k, x.v, x.bias, x.kpm, 0.3, true)!;
    y.mul(x.gout).sum().backward();
    return [y, x.q.grad!, x.k.grad!, x.v.grad!, x.bias!.grad!].map(arr);
  });
  const threads = numThreads();
  const first = run();
  assert.equal(run(), first, 'second run');
  setNumThreads(threads === 1 ? 2 : 1);
  try {
    assert.equal(run(), first, 'other thread count');
  } finally {
    setNumThreads(threads);
  }
}));

test('fused attention op: wrong shapes and dtypes are typed errors', () => tidy(() => {
  const q = randn([1, 2, 3, 4]), k = randn([1, 2, 5, 4]), v = randn([1, 2, 5, 2]);
  const o = { bias: null, keyPaddingMask: null, scale: 1, causal: false };
  assert.throws(() => attention(q, randn([1, 2, 5, 3]), v, o), (e: unknown) => e instanceof ShapeError && /attention: k must have shape \[1,2,5,4\]/.test(e.message));
  const is = (cls: typeof ShapeError | typeof DTypeError) => (e: unknown) => e instanceof cls;
  assert.throws(() => attention(q, k, randn([1, 2, 4, 2]), o), is(ShapeError));
  assert.throws(() => attention(q, k, v, { ...o, bias: randn([1, 2, 3, 4]) }), /attention: bias must have shape \[1,2,3,5\]/);
  assert.throws(() => attention(q, k, v, { ...o, keyPaddingMask: randn([1, 5]) }), is(DTypeError));
  assert.throws(() => attention(q, k.to('f64'), v, o), is(DTypeError));
  assert.throws(() => attention(q.reshape([2, 3, 4]), k, v, o), is(ShapeError));
}));

test.run();
