// fused.test.ts: the fused CPU kernels (native/cpu/kernels/attention.cpp and the other fused
// ones) against the composed paths they replace, at sizes that cross their blocks, in f32 where
// the composed path is the same sum in another order; their determinism (the same bits on every
// run and every thread count) and the checks that keep bad input from the native code. The norm,
// cross-entropy and AdamW checks run on sim too (native/cuda's kernels, whose own comparison with
// the CPU kernels in three thread orders is test/sim/fused.test.ts).
// Exact formulas and finite-difference gradients live in nn.test.ts, parity.test.ts and
// gradcheck.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DTypeError, F, Generator, IndexError, ValueError, numThreads, rand, randint, randn, setNumThreads, ShapeError, simAvailable, tensor, tidy, type Device,
  type Tensor,
} from '../src/index.ts';
import { attention } from '../src/tensor/ops/attention.ts';
import { adamwStep } from '../src/tensor/ops/adamw.ts';
import { groupNormRows, normRows } from '../src/tensor/ops/norm.ts';
import { swiglu } from '../src/tensor/ops/swiglu.ts';
import { siluGradMul } from '../src/tensor/ops/elementwise.ts';

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

// ---- norms, cross-entropy, AdamW ----------------------------------------------------------------

/** x's values in a transposed layout: a non-contiguous view with the same shape and values. */
function strided(x: Tensor): Tensor {
  return x.transpose(0, -1).contiguous().transpose(0, -1);
}

/** Runs f on fresh leaves (made by make, which must be deterministic) and returns [y, ...grads]. */
function withGrads(make: () => Tensor[], f: (...xs: Tensor[]) => Tensor, gout: Tensor): Tensor[] {
  const xs = make().map((t) => t.requiresGrad_());
  const y = f(...xs);
  y.mul(gout).sum().backward();
  return [y, ...xs.map((t) => t.grad!)];
}

function assertClose(a: Tensor[], b: Tensor[], tol: number, what: string): void {
  a.forEach((t, i) => {
    const e = relErr(t, b[i]);
    assert.ok(e < tol, `${what} [${i}]: relative error ${e}`);
  });
}

/** The devices whose fused norm, cross-entropy and AdamW kernels are checked here: cpu, and sim (native/cuda's kernels). */
const DEVICES: Device[] = simAvailable() ? ['cpu', 'sim'] : ['cpu'];

for (const device of DEVICES) test(`fused layerNorm, rmsNorm and groupNorm on ${device} match their composed formulas, with gradients (f32, strided, odd sizes)`, () => tidy(() => {
  const g = new Generator(5);
  const [N, D] = [67, 301];
  const x0 = randn([N, D], { generator: g, device }).mul(3).add(1), w0 = randn([D], { generator: g, device }), b0 = randn([D], { generator: g, device });
  const gout = randn([N, D], { generator: g, device });
  const make = () => [strided(x0.clone()), w0.clone(), b0.clone()];
  const ln = (x: Tensor, w: Tensor, b: Tensor) => {
    const mu = x.mean(-1, true);
    return x.sub(mu).mul(x.var(-1, { correction: 0, keepdim: true }).add(1e-5).rsqrt()).mul(w).add(b);
  };
  assertClose(withGrads(make, (x, w, b) => F.layerNorm(x, D, w, b), gout), withGrads(make, ln, gout), 1e-5, 'layerNorm');
  const rms = (x: Tensor, w: Tensor) => x.mul(x.square().mean(-1, true).add(1e-6).rsqrt()).mul(w);
  const make2 = () => make().slice(0, 2);
  assertClose(withGrads(make2, (x, w) => F.rmsNorm(x, w), gout), withGrads(make2, rms, gout), 1e-5, 'rmsNorm');
  // groupNorm of [N, C, L] in 3 groups: the fused rows are the groups.
  const xg = randn([4, 6, 37], { generator: g, device }), gg = randn([4, 6, 37], { generator: g, device });
  const wg = randn([6], { generator: g, device }), bg = randn([6], { generator: g, device });
  const gn = (x: Tensor, w: Tensor, b: Tensor) => {
    const r = x.reshape([4, 3, -1]);
    const y = r.sub(r.mean(-1, true)).mul(r.var(-1, { correction: 0, keepdim: true }).add(1e-5).rsqrt()).reshape([4, 6, 37]);
    return y.mul(w.reshape([6, 1])).add(b.reshape([6, 1]));
  };
  const mg = () => [xg.clone(), wg.clone(), bg.clone()];
  assertClose(withGrads(mg, (x, w, b) => F.groupNorm(x, 3, w, b), gg), withGrads(mg, gn, gg), 1e-5, 'groupNorm');
}));

test('groupNorm with its affine in the norm kernel matches the composed path, and is deterministic (f32 and f64, strided, odd sizes)', () => tidy(() => {
  const g = new Generator(9);
  // [N, C, H, W] and groups: H W of 35 (no whole vectors in a channel's run), of 1, and 4-channel groups of 17 x 3.
  for (const [shape, groups] of [[[3, 6, 5, 7], 3], [[2, 8, 1, 1], 2], [[5, 16, 17, 3], 4]] as const) {
    for (const dtype of ['f32', 'f64'] as const) {
      const C = shape[1];
      const x0 = randn([...shape], { generator: g, dtype }).mul(2).add(0.5), gout = randn([...shape], { generator: g, dtype });
      const w0 = randn([C], { generator: g, dtype }), b0 = randn([C], { generator: g, dtype });
      const make = () => [strided(x0.clone()), w0.clone(), b0.clone()];
      const composed = (x: Tensor, w: Tensor, b: Tensor) => {
        const r = x.reshape([shape[0], groups, -1]);
        const y = r.sub(r.mean(-1, true)).mul(r.var(-1, { correction: 0, keepdim: true }).add(1e-5).rsqrt()).reshape([...shape]);
        return y.mul(w.reshape([C, 1, 1])).add(b.reshape([C, 1, 1]));
      };
      const fused = () => withGrads(make, (x, w, b) => F.groupNorm(x, groups, w, b), gout);
      const first = fused();
      assertClose(first, withGrads(make, composed, gout), dtype === 'f32' ? 1e-5 : 1e-12, `groupNorm ${shape} ${dtype}`);
      const threads = numThreads();
      setNumThreads(threads === 1 ? 2 : 1);
      try {
        assert.equal(fused().map(arr), first.map(arr), `groupNorm ${shape} ${dtype}: other thread count`);
      } finally {
        setNumThreads(threads);
      }
    }
  }
}));

test('groupNormRows: bad geometry, shapes and dtypes are typed errors', () => tidy(() => {
  const x = randn([6, 10]), w = randn([6]);
  const o = { weight: w, bias: null, eps: 1e-5, groups: 2, inner: 5 };
  assert.throws(() => groupNormRows(x, { ...o, inner: 3 }), (e: unknown) => e instanceof ValueError && /inner 3 must be a positive divisor of the row length 10/.test((e as Error).message));
  assert.throws(() => groupNormRows(x, { ...o, groups: 4 }), (e: unknown) => e instanceof ValueError && /groups 4 must be a positive divisor of the 6 rows/.test((e as Error).message));
  assert.throws(() => groupNormRows(x, { ...o, weight: randn([5]) }), (e: unknown) => e instanceof ShapeError && /groupNormRows: weight must have shape \[4\]/.test((e as Error).message));
  assert.throws(() => groupNormRows(x, { ...o, weight: randn([4], { dtype: 'f64' }) }), (e: unknown) => e instanceof DTypeError);
  assert.throws(() => groupNormRows(x.reshape([60]), o), (e: unknown) => e instanceof ShapeError);
}));

for (const device of DEVICES) test(`fused crossEntropy on ${device} matches logSoftmax + gather, with gradients (ignoreIndex, smoothing, every reduction)`, () => tidy(() => {
  const g = new Generator(6);
  const [N, V] = [45, 1031];
  const x0 = randn([N, V], { generator: g, device }).mul(4);
  const t = randint(0, V, [N], { generator: g, device }).where(rand([N], { generator: g, device }).lt(0.8), -100);
  for (const [s, reduction] of [[0, 'mean'], [0.1, 'sum'], [0.2, 'none']] as const) {
    const gout = reduction === 'none' ? randn([N], { generator: g, device }) : tensor(1.5, { device });
    const ref = (x: Tensor) => {
      const logp = x.logSoftmax(-1), valid = t.ne(-100);
      const nll = logp.gather(1, t.where(valid, 0).unsqueeze(1)).reshape([N]).neg();
      const l = nll.mul(1 - s).add(logp.mean(-1).mul(-s)).where(valid, 0);
      return reduction === 'none' ? l : reduction === 'sum' ? l.sum() : l.sum().div(valid.sum());
    };
    const make = () => [strided(x0.clone())];
    assertClose(withGrads(make, (x) => F.crossEntropy(x, t, { labelSmoothing: s, reduction }), gout), withGrads(make, ref, gout), 1e-5,
      `crossEntropy ${reduction} smoothing ${s}`);
  }
  assert.throws(() => F.crossEntropy(x0, t.where(t.ne(-100), V)), (e: unknown) => e instanceof IndexError && /target 1031 is out of range for 1031 classes/.test(e.message));
}));

for (const device of DEVICES) test(`fused AdamW step on ${device} matches the composed update over several steps (f32 and f64)`, () => tidy(() => {
  for (const dtype of ['f32', 'f64'] as const) {
    const g = new Generator(7);
    const p0 = randn([37, 5], { generator: g, dtype, device }), grads = [0, 1, 2].map(() => randn([37, 5], { generator: g, dtype, device }));
    const [lr, b1, b2, eps, wd] = [1e-2, 0.9, 0.95, 1e-8, 0.1];
    const fused = [p0.clone(), p0.mul(0), p0.mul(0)];
    let [p, m, v] = [p0, p0.mul(0), p0.mul(0)];
    grads.forEach((gr, i) => {
      const step = i + 1;
      adamwStep(fused[0], gr, fused[1], fused[2], { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, step });
      const decayed = p.mul(1 - lr * wd);
      m = m.mul(b1).add(gr.mul(1 - b1));
      v = v.mul(b2).add(gr.mul(gr).mul(1 - b2));
      p = decayed.sub(m.div(v.sqrt().div(Math.sqrt(1 - b2 ** step)).add(eps)).mul(lr / (1 - b1 ** step)));
    });
    // The same arithmetic in the same order; only the compiler's FMA contraction may differ.
    assertClose(fused, [p, m, v], dtype === 'f32' ? 1e-6 : 1e-14, `adamw ${dtype}`);
  }
}));

for (const device of DEVICES) test(`fused swiglu on ${device} matches silu(a) * b, with gradients (f32, strided, odd sizes)`, () => tidy(() => {
  const g = new Generator(8);
  const a0 = randn([37, 9], { generator: g, device }).mul(3), b0 = randn([37, 9], { generator: g, device });
  const gout = randn([37, 9], { generator: g, device });
  const make = () => [strided(a0.clone()), b0.clone()];
  assertClose(withGrads(make, (a, b) => F.swiglu(a, b), gout), withGrads(make, (a, b) => F.silu(a).mul(b), gout), 1e-6, 'swiglu');
  // Shapes that only broadcast take the composed path.
  const row = randn([9], { generator: g, device });
  assertClose([F.swiglu(a0, row)], [F.silu(a0).mul(row)], 1e-12, 'swiglu broadcast');
}));

test('fused norm, AdamW and swiglu ops: wrong shapes and dtypes are typed errors', () => tidy(() => {
  const is = (cls: typeof ShapeError | typeof DTypeError) => (e: unknown) => e instanceof cls;
  const x = randn([4, 5]);
  assert.throws(() => normRows(x, { weight: randn([4]), bias: null, eps: 1e-5, rms: true }), is(ShapeError));
  assert.throws(() => normRows(x, { weight: randn([5], { dtype: 'f64' }), bias: null, eps: 1e-5, rms: true }), is(DTypeError));
  assert.throws(() => normRows(x.reshape([20]), { weight: null, bias: null, eps: 1e-5, rms: false }), is(ShapeError));
  const h = { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1 };
  assert.throws(() => adamwStep(x, randn([5, 4]), x.clone(), x.clone(), h), is(ShapeError));
  const named = (op: string) => (e: unknown) => e instanceof DTypeError && (e as Error).message.startsWith(op);
  for (const half of ['bf16', 'f16'] as const) assert.throws(() => adamwStep(x.to(half), x, x, x, h), named('adamw'));
  assert.throws(() => swiglu(x, randn([5, 4])), is(ShapeError));
  assert.throws(() => swiglu(x, x.to('f64')), is(DTypeError));
  for (const half of ['bf16', 'f16'] as const) assert.throws(() => swiglu(x.to(half), x.to(half)), named('swiglu'));
}));

// ---- vectorised exp and softmax (lanes.h) -------------------------------------------------------

test('vectorised f32 exp: within 2 ulp of exp everywhere, and exact at the edges (overflow, subnormals, NaN, inf)', () => tidy(() => {
  const edges = [88.5, 88.72, 88.73, 89, 1e4, -87, -87.5, -100, -103.9, -104, -1e4, Infinity, -Infinity, NaN, 0, -0];
  const values = [...edges, ...Array.from({ length: 4099 }, (_, i) => -90 + (180 * i) / 4098)].map(Math.fround);
  const got = tensor(values).exp().data() as Float32Array;
  const f32 = new Float32Array(values.map(Math.exp));
  values.forEach((x, i) => {
    const want = f32[i], g = got[i];
    if (Number.isNaN(want)) return assert.ok(Number.isNaN(g), `exp(${x}) = ${g}`);
    if (!Number.isFinite(want) || want === 0 || Math.abs(want) < 1.2e-38) return assert.is(g, want, `exp(${x})`);
    const ulp = Math.abs(want) * 2 ** -23;
    assert.ok(Math.abs(g - want) <= 2 * ulp, `exp(${x}) = ${g}, want ${want}`);
  });
}));

test('vectorised f32 sigmoid, silu and silu\'s gradient: within a few ulp of the f64 formulas, the scalar results at the edges, strided rows too', () => tidy(() => {
  // Whole vectors of edges (each edge 16 times, so every vector width sees a vector made of it alone),
  // then a sweep past exp's range both ways, then a tail.
  const edges = [87.5, 88.8, 100, -87.5, -88.8, -100, -1e4, 1e4, Infinity, -Infinity, NaN, 0, -0, 1e-30, -1e-30];
  const values = [...edges.flatMap((e) => Array(16).fill(e)), ...Array.from({ length: 4099 }, (_, i) => -95 + (190 * i) / 4098)].map(Math.fround);
  const grads = values.map((_, i) => Math.fround(Math.sin(i) * 2));
  const x = tensor(values), g = tensor(grads);
  // Where |x| > 87 the kernel takes the scalar f32 formula, whose exp(-x) may overflow: the reference
  // rounds as it does there; elsewhere it is the f64 formula.
  const sig = (v: number) => (Math.abs(v) > 87 ? Math.fround(1 / Math.fround(1 + Math.fround(Math.exp(-v)))) : 1 / (1 + Math.exp(-v)));
  const cases: [string, Tensor, (v: number, i: number) => number][] = [
    ['sigmoid', x.sigmoid(), sig],
    ['silu', F.silu(x), (v) => (Math.abs(v) > 87 ? Math.fround(v / Math.fround(1 + Math.fround(Math.exp(-v)))) : v * sig(v))],
    ['siluGradMul', siluGradMul(x, g), (v, i) => grads[i] * sig(v) * (1 + v * (1 - sig(v)))],
  ];
  for (const [name, t, f] of cases) {
    const got = t.data() as Float32Array;
    values.forEach((v, i) => {
      const want = f(v, i), w32 = Math.fround(want), r = got[i];
      if (Number.isNaN(want)) return assert.ok(Number.isNaN(r), `${name}(${v}) = ${r}`);
      if (!Number.isFinite(w32)) return assert.is(r, w32, `${name}(${v})`);
      // Below f32's normal range the scalar formula itself flushes (exp(-x) overflows): an absolute bound.
      if (Math.abs(want) < 1.2e-38) return assert.ok(Math.abs(r - want) <= 1.2e-38, `${name}(${v}) = ${r}, want ${want}`);
      // Bounded by the inputs' magnitudes (silu's gradient cancels near x = -1.28).
      const mag = name === 'siluGradMul' ? Math.abs(grads[i]) * (1 + Math.abs(v)) : Math.abs(want);
      assert.ok(Math.abs(r - want) <= 8 * 2 ** -24 * mag, `${name}(${v}) = ${r}, want ${want}`);
    });
  }
  // Strided rows take the scalar formula: the same values to within a few ulp.
  const xs = tensor(values.slice(240, 1264)).reshape([32, 32]);
  assert.ok(relErr(F.silu(xs.transpose(0, 1)), F.silu(xs.transpose(0, 1).contiguous())) < 1e-6, 'strided silu');
}));

test('vectorised f32 softmax and logSoftmax: close to f64, NaN lines as before, strided lines unchanged', () => tidy(() => {
  const x = randn([5, 1037]).mul(6);
  const ref = x.to('f64').softmax(-1), lref = x.to('f64').logSoftmax(-1);
  assert.ok(relErr(x.softmax(-1), ref) < 1e-6, 'softmax');
  assert.ok(relErr(x.logSoftmax(-1), lref) < 1e-6, 'logSoftmax');
  assert.ok(relErr(x.transpose(0, 1).softmax(0).transpose(0, 1), ref) < 1e-6, 'strided');
  const special = tensor([[1, NaN, 2], [-Infinity, -Infinity, -Infinity], [Infinity, 0, 1], [0, -Infinity, 0]]);
  const y = arr(special.softmax(-1));
  assert.ok(y.slice(0, 9).every(Number.isNaN), 'NaN, all -inf and +inf lines are NaN');
  assert.equal(y.slice(9), [0.5, 0, 0.5]);
}));

test.run();
