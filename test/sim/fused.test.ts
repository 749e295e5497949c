// fused.test.ts (sim): the training-path kernels of native/cuda (norm.cu with GroupNorm, cross_entropy.cu,
// adamw.cu, swiglu.cu) run in the SIMT emulator against the CPU kernels (native/cpu/kernels/
// norm.cpp, cross_entropy.cpp, adamw.cpp, swiglu.cpp), on odd sizes, non-contiguous inputs, in
// the emulator's three thread orders.
//
// Tolerance, FlashAttention's policy: on each output, the f32 kernel's max error against an f64
// reference (the CPU kernel in f64) is at most twice the CPU f32 kernel's error on the same
// inputs, plus a floor of 1e-6 x max(1, max|ref|) (at such small sizes the CPU's error can be a
// few ulp, or exactly 0 where both round the same way). The f64 kernel must agree with the
// reference within 1e-12 x max(1, max|ref|). The kernels reduce in a fixed tree, so the three
// thread orders must also give the same bits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceError, DTypeError, F, Generator, IndexError, rand, randint, randn, setSimOrder, tensor, tidy, type DType, type Tensor, ValueError } from '../../src/index.ts';
import { hasFusedKernel } from '../../src/tensor/device.ts';
import { isHalf } from '../../src/tensor/dtype.ts';
import { groupNormRows, normRows, setNormVersion } from '../../src/tensor/ops/norm.ts';
import { crossEntropyRows } from '../../src/tensor/ops/cross_entropy.ts';
import { adamwStep } from '../../src/tensor/ops/adamw.ts';
import { swiglu } from '../../src/tensor/ops/swiglu.ts';
import { AdamW } from '../../src/nn/optim/adamw.ts';

const ORDERS = ['sequential', 'reverse', 'random:11'];
const arr = (t: Tensor): number[] => Array.from(t.to('cpu').to('f64').data() as ArrayLike<number>, Number);

/** max |a - ref| and max |ref| (NaN anywhere in a counts as an infinite error). */
function maxErr(a: number[], ref: number[]): { err: number; scale: number } {
  assert.is(a.length, ref.length, 'lengths');
  let err = 0, scale = 0;
  a.forEach((v, i) => {
    const d = Math.abs(v - ref[i]);
    err = Number.isNaN(d) && !(Number.isNaN(v) && Number.isNaN(ref[i])) ? Infinity : Math.max(err, d || 0);
    scale = Math.max(scale, Math.abs(ref[i]) || 0);
  });
  return { err, scale };
}

/** A kernel input: a contiguous CPU tensor, the layout it gets on the device, whether it is a gradient leaf. */
interface Input { t: Tensor; layout?: 'transposed' | 'everyOther'; grad?: boolean }

/** The input on `device` in its layout: the same values, transposed in memory or every other element. */
function place(i: Input, device: 'cpu' | 'sim'): Tensor {
  let t = i.t.to(device);
  if (i.layout === 'transposed') t = t.transpose(0, -1).contiguous().transpose(0, -1);
  if (i.layout === 'everyOther') t = t.unsqueeze(-1).expand([...t.shape, 2]).contiguous().select(-1, 0);
  assert.is(t.isContiguous, !i.layout, 'layout');
  return i.grad ? t.requiresGrad_() : t;
}

/**
 * Runs `run` (inputs in, outputs out, on the inputs' device) on cpu in f64 (the reference) and
 * f32, and on sim in f32 in every thread order and in f64; checks each output by the policy above.
 */
function checkKernel(what: string, inputs: (dtype: DType) => Input[], run: (xs: Tensor[]) => Tensor[]): void {
  const outputs = (dtype: DType, device: 'cpu' | 'sim') => tidy(() => run(inputs(dtype).map((i) => place(i, device))).map(arr));
  const ref = outputs('f64', 'cpu'), cpu32 = outputs('f32', 'cpu');
  let first: number[][] | null = null;
  for (const order of ORDERS) {
    setSimOrder(order);
    const sim32 = outputs('f32', 'sim');
    sim32.forEach((o, i) => {
      const { err, scale } = maxErr(o, ref[i]);
      const bound = 2 * maxErr(cpu32[i], ref[i]).err + 1e-6 * Math.max(1, scale);
      assert.ok(err <= bound, `${what} output ${i} f32 sim[${order}]: error ${err} > ${bound}`);
    });
    if (first) assert.equal(sim32, first, `${what}: sim[${order}] gives other bits than sim[sequential]`);
    first = sim32;
  }
  setSimOrder('sequential');
  outputs('f64', 'sim').forEach((o, i) => {
    const { err, scale } = maxErr(o, ref[i]);
    assert.ok(err <= 1e-12 * Math.max(1, scale), `${what} output ${i} f64 sim: error ${err}`);
  });
}

test('sim has the fused training kernels', () => {
  for (const k of ['normForward', 'normBackward', 'groupNormForward', 'groupNormBackward', 'crossEntropy', 'crossEntropyBackward', 'adamw', 'swiglu', 'swigluBackward'] as const) {
    assert.ok(hasFusedKernel('sim', k), k);
  }
});

interface NormCase { N: number; D: number; rms: boolean; w?: boolean; b?: boolean; stridedX?: boolean; stridedW?: boolean; why: string }
const NORMS: NormCase[] = [
  { N: 7, D: 1, rms: false, w: true, b: true, why: 'D = 1' },
  { N: 5, D: 3, rms: true, w: true, why: 'D = 3, RMSNorm' },
  { N: 70, D: 37, rms: false, w: true, b: true, stridedX: true, why: 'strided x, three row blocks in the backward' },
  { N: 9, D: 130, rms: true, w: true, stridedW: true, why: 'strided weight; f64 rows in 16-byte chunks' },
  { N: 33, D: 132, rms: false, w: true, why: 'f32 rows in 16-byte chunks, two row blocks' },
  { N: 6, D: 64, rms: false, why: 'no weight or bias (groupNorm rows)' },
  { N: 3, D: 6200, rms: false, w: true, b: true, why: 'column sums past 48 KiB: in global memory' },
];

/** Runs f with norm.cu's `version` forced on sim, then restores the default. */
function withNormVersion(version: number, f: () => void): void {
  setNormVersion('sim', version);
  try {
    f();
  } finally {
    setNormVersion('sim', 0);
  }
}

// Each case's inputs (x, gout, w, b; seeded by its sizes) and its run (forward, then backward of
// sum(y * gout)), shared by the f32 / f64 tests here and the bf16 / f16 ones below.
const normInputs = (c: NormCase) => (dtype: DType): Input[] => {
  const g = new Generator(c.N * 1000 + c.D);
  const x = randn([c.N, c.D], { generator: g }).mul(2).add(0.5).to(dtype);
  const gout = randn([c.N, c.D], { generator: g }).to(dtype);
  const w = randn([c.D], { generator: g }).to(dtype), b = randn([c.D], { generator: g }).to(dtype);
  return [{ t: x, layout: c.stridedX ? 'transposed' : undefined, grad: true }, { t: gout },
    { t: w, layout: c.stridedW ? 'everyOther' : undefined, grad: true }, { t: b, grad: true }];
};
const normRun = (c: NormCase) => ([x, gout, w, b]: Tensor[]): Tensor[] => {
  const y = normRows(x, { weight: c.w ? w : null, bias: c.b ? b : null, eps: 1e-5, rms: c.rms });
  y.mul(gout).sum().backward();
  return [y, x.grad!, ...(c.w ? [w.grad!] : []), ...(c.b ? [b.grad!] : [])];
};

NORMS.forEach((c) => test(`norm ${c.rms ? 'rms' : 'layer'} [${c.N}, ${c.D}] on sim, v1 and v2, matches the CPU kernel, forward and backward (${c.why})`, () => {
  for (const version of [1, 2]) withNormVersion(version, () => checkKernel(`norm v${version} ${JSON.stringify(c)}`, normInputs(c), normRun(c)));
}));

test('setNormVersion: unknown versions and the CPU are errors; a forced version sticks until reset', () => tidy(() => {
  assert.throws(() => setNormVersion('sim', 3), (e: unknown) => e instanceof ValueError && /no version 3/.test((e as Error).message));
  assert.throws(() => setNormVersion('sim', 1.5), (e: unknown) => e instanceof ValueError && /integer/.test((e as Error).message));
  assert.throws(() => setNormVersion('cpu', 1), (e: unknown) => e instanceof DeviceError && /one norm version/.test((e as Error).message));
  const x = randn([5, 1000], { generator: new Generator(2) }).to('sim');
  const run = () => arr(normRows(x, { weight: null, bias: null, eps: 1e-5, rms: true }));
  const v2 = run();
  withNormVersion(1, () => assert.not.equal(run(), v2, 'v1 sums each row in another order: some bits differ'));
  assert.equal(run(), v2, 'back to v2');
}));

// GroupNorm rows with the per-channel affine: [N samples x groups, channels per row x inner].
interface GroupCase { N: number; C: number; groups: number; inner: number; w?: boolean; b?: boolean; stridedX?: boolean; stridedW?: boolean; why: string }
const GROUPS: GroupCase[] = [
  { N: 3, C: 6, groups: 3, inner: 35, w: true, b: true, stridedX: true, why: 'strided x, odd runs of 35' },
  { N: 2, C: 8, groups: 2, inner: 16, w: true, b: true, stridedW: true, why: 'f32 rows in 16-byte chunks, strided weight' },
  { N: 4, C: 4, groups: 4, inner: 1, b: true, why: 'one element per group, bias only' },
  { N: 37, C: 4, groups: 1, inner: 3, w: true, why: 'two row blocks in the backward, weight only' },
];

const groupInputs = (c: GroupCase) => (dtype: DType): Input[] => {
  const R = c.N * c.groups, D = (c.C / c.groups) * c.inner;
  const g = new Generator(c.N * 1000 + c.C * 10 + c.inner);
  const x = randn([R, D], { generator: g }).mul(2).add(0.5).to(dtype), gout = randn([R, D], { generator: g }).to(dtype);
  const w = randn([c.C], { generator: g }).to(dtype), b = randn([c.C], { generator: g }).to(dtype);
  return [{ t: x, layout: c.stridedX ? 'transposed' : undefined, grad: true }, { t: gout },
    { t: w, layout: c.stridedW ? 'everyOther' : undefined, grad: true }, { t: b, grad: true }];
};
const groupRun = (c: GroupCase) => ([x, gout, w, b]: Tensor[]): Tensor[] => {
  const y = groupNormRows(x, { weight: c.w ? w : null, bias: c.b ? b : null, eps: 1e-5, groups: c.groups, inner: c.inner });
  y.mul(gout).sum().backward();
  return [y, x.grad!, ...(c.w ? [w.grad!] : []), ...(c.b ? [b.grad!] : [])];
};

GROUPS.forEach((c) => test(`groupNorm [${c.N}, ${c.C}, ${c.inner}] / ${c.groups} on sim matches the CPU kernel, forward and backward (${c.why})`, () => {
  checkKernel(`groupNorm ${JSON.stringify(c)}`, groupInputs(c), groupRun(c));
}));

interface CeCase {
  N: number; V: number; smoothing: number; ignore: number; ignored: number; stridedX?: boolean;
  /** The last `masked` classes get logit -inf (a masked vocabulary; targets never fall there). */
  masked?: number;
  why: string;
}
const CES: CeCase[] = [
  { N: 9, V: 257, smoothing: 0, ignore: -100, ignored: 0.3, why: 'vocab 257, some rows ignored' },
  { N: 6, V: 260, smoothing: 0.1, ignore: 3, ignored: 0.3, why: 'f32 rows in 16-byte chunks, smoothing, ignore index a class id' },
  { N: 7, V: 37, smoothing: 0.2, ignore: -100, ignored: 0.2, stridedX: true, why: 'strided logits' },
  { N: 5, V: 1, smoothing: 0, ignore: -100, ignored: 0, why: 'one class' },
  { N: 4, V: 3, smoothing: 0.1, ignore: -1, ignored: 1, why: 'every row ignored' },
  { N: 5, V: 133, smoothing: 0, ignore: -100, ignored: 0.2, masked: 40, why: '-inf logits: exp gives 0, not NaN' },
];

const ceInputs = (c: CeCase) => (dtype: DType): Input[] => {
  const g = new Generator(c.N * 1000 + c.V);
  const open = tensor(Array.from({ length: c.V }, (_, j) => j < c.V - (c.masked ?? 0)));
  const x = randn([c.N, c.V], { generator: g }).mul(3).where(open, -Infinity).to(dtype);
  const t = randint(0, c.V - (c.masked ?? 0), [c.N], { generator: g }).where(rand([c.N], { generator: g }).ge(c.ignored), c.ignore);
  const gout = randn([c.N], { generator: g }).to(dtype);
  return [{ t: x, layout: c.stridedX ? 'transposed' : undefined, grad: true }, { t }, { t: gout }];
};
const ceRun = (c: CeCase) => ([x, t, gout]: Tensor[]): Tensor[] => {
  const loss = crossEntropyRows(x, t, { ignoreIndex: c.ignore, labelSmoothing: c.smoothing });
  assert.is(loss.dtype, isHalf(x.dtype) ? 'f32' : x.dtype, 'loss rows in f32 for 16-bit logits');
  loss.mul(gout.to(loss.dtype)).sum().backward();
  return [loss, x.grad!];
};

CES.forEach((c) => test(`crossEntropy [${c.N}, ${c.V}] on sim matches the CPU kernel, loss and dlogits (${c.why})`, () => {
  checkKernel(`crossEntropy ${JSON.stringify(c)}`, ceInputs(c), ceRun(c));
  if (c.ignored === 1) tidy(() => {
    const [x, t, gout] = ceInputs(c)('f32').map((i) => place(i, 'sim'));
    const loss = crossEntropyRows(x, t, { ignoreIndex: c.ignore, labelSmoothing: c.smoothing });
    loss.mul(gout).sum().backward();
    assert.ok([...arr(loss), ...arr(x.grad!)].every((v) => v === 0), 'every row ignored: zero losses and gradients');
  });
}));

test('crossEntropy on sim: an out-of-range target is the CPU\'s IndexError, forward and backward', () => tidy(() => {
  const x = randn([3, 5], { device: 'sim' }), lse = randn([3], { device: 'sim' });
  const t = tensor([1, 5, -100], { dtype: 'i32', device: 'sim' });
  const o = { ignoreIndex: -100, labelSmoothing: 0 };
  const is = (e: unknown) => e instanceof IndexError && /crossEntropy: target 5 is out of range for 5 classes/.test((e as Error).message);
  assert.throws(() => crossEntropyRows(x, t, o), is);
  assert.throws(() => crossEntropyRows(x, tensor([0, -2, 4], { dtype: 'i32', device: 'sim' }), o), (e: unknown) => e instanceof IndexError && /target -2/.test((e as Error).message));
  assert.ok(lse.device === 'sim');
}));

for (const [shape, layout] of [[[37, 5], 'contiguous'], [[9, 7], 'transposed']] as const) {
  for (const wd of [0, 0.1]) test(`adamw [${shape}] ${layout} on sim matches the CPU kernel over three steps (weight decay ${wd})`, () => {
    const inputs = (dtype: DType) => {
      const g = new Generator(shape[0] + 100 * wd);
      const make = (scale: number): Input => ({ t: randn([...shape], { generator: g }).mul(scale).to(dtype), layout: layout === 'transposed' ? layout : undefined });
      return [make(1), make(0), make(0), make(1), make(1), make(1)];
    };
    checkKernel(`adamw ${layout} wd ${wd}`, inputs, ([p, m, v, ...grads]) => {
      grads.forEach((gr, i) => adamwStep(p, gr, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: wd, step: i + 1 }));
      return [p, m, v];
    });
  });
}

// AdamW of bf16 and f16 parameters through their f32 master copies: on sim the optimizer takes
// the one-pass kernel (adamw_mixed); the general path (widen the gradient, adamw on the master,
// round back: three passes) must give the same bits, and the CPU (which has only the general
// path) the same values up to its own f32 kernel's rounding. Shapes: a vector-path length with a
// tail (37 x 5 = 185), a transposed (strided) parameter, one element.
class ThreePassAdamW extends AdamW {
  protected override updateMixed(): boolean {
    return false;
  }
}
for (const dtype of ['bf16', 'f16'] as const) {
  test(`AdamW on ${dtype} parameters on sim: the one-pass mixed-precision step equals the three-pass one, bit for bit, in every order`, () => tidy(() => {
    assert.ok(hasFusedKernel('sim', 'adamwMixed') && !hasFusedKernel('cpu', 'adamwMixed'));
    const run = (device: 'cpu' | 'sim', Opt: typeof AdamW, order: string): number[][] => {
      setSimOrder(order);
      try {
        const g = new Generator(3);
        const params = [randn([37, 5], { generator: g }), randn([7, 9], { generator: g }), randn([1], { generator: g })]
          .map((t, i) => (i === 1 ? t.to(dtype).to(device).transpose(0, 1) : t.to(dtype).to(device)).requiresGrad_());
        assert.ok(!params[1].isContiguous);
        const opt = new Opt(params, { lr: 1e-2, betas: [0.9, 0.95], weightDecay: 0.1 });
        for (let step = 0; step < 3; step++) {
          for (const p of params) p.grad = randn(p.shape as number[], { generator: g }).to(dtype).to(device);
          opt.step();
        }
        return params.flatMap((p) => [arr(p), ...['master', 'expAvg', 'expAvgSq'].map((b) => arr(opt.state.get(p)!.buffers[b]))]);
      } finally {
        setSimOrder('sequential');
      }
    };
    const want = run('sim', ThreePassAdamW, 'sequential'), cpu = run('cpu', AdamW, 'sequential');
    for (const order of ORDERS) assert.equal(run('sim', AdamW, order), want, `one pass vs three, ${order}`);
    want.forEach((w, i) => {
      const { err, scale } = maxErr(w, cpu[i]);
      assert.ok(err <= (i % 4 === 0 ? 2 ** -7 : 1e-6) * Math.max(1, scale), `buffer ${i}: sim vs cpu ${err}`);
    });
  }));
}

const swigluInputs = (shape: readonly number[], layout: 'contiguous' | 'transposed') => (dtype: DType): Input[] => {
  const g = new Generator(shape[0] + 7);
  const make = (scale: number, grad: boolean): Input => ({
    t: randn([...shape], { generator: g }).mul(scale).to(dtype), layout: layout === 'transposed' ? layout : undefined, grad,
  });
  return [make(3, true), make(1, true), make(1, false)];
};
const swigluRun = ([a, b, gout]: Tensor[]): Tensor[] => {
  const y = swiglu(a, b);
  y.mul(gout).sum().backward();
  return [y, a.grad!, b.grad!];
};

for (const [shape, layout] of [[[37, 5], 'contiguous'], [[9, 7], 'transposed'], [[3], 'contiguous']] as const) {
  test(`swiglu [${shape}] ${layout} on sim matches the CPU kernel, forward and backward`, () => {
    checkKernel(`swiglu ${layout} [${shape}]`, swigluInputs(shape, layout), swigluRun);
  });
}

// bf16 and f16 on sim: the norm, GroupNorm, cross-entropy and SwiGLU kernels read and write the
// 16-bit type and compute in f32 (statistics and cross-entropy's losses in f32). The CPU's path at
// that precision is the one the functional layer takes there: widen to f32, run the f32 kernel,
// round each output once to the dtype the sim kernel gives it. Policy as above: the sim kernel's
// error against the f64 reference (the same 16-bit inputs, widened) is at most twice that path's,
// plus half an ulp of the output's largest magnitude (both round once; at a rounding boundary
// their f32 sums may fall either side); the three orders give the same bits.
const HALF_ULP = { bf16: 2 ** -9, f16: 2 ** -12 } as const;

function checkHalf(what: string, half: 'bf16' | 'f16', inputs: (dtype: DType) => Input[], run: (xs: Tensor[]) => Tensor[]): void {
  const widened = (dtype: DType) => inputs(half).map((i) => ({ ...i, t: i.t.dtype === 'i32' ? i.t : i.t.to(dtype) }));
  const ref = tidy(() => run(widened('f64').map((i) => place(i, 'cpu'))).map(arr));
  let first: number[][] | null = null;
  for (const order of ORDERS) {
    setSimOrder(order);
    const [sim, cpu] = tidy(() => {
      const outs = run(inputs(half).map((i) => place(i, 'sim')));
      assert.ok(outs.every((o) => o.dtype === half || o.dtype === 'f32'), 'outputs in the 16-bit type or f32');
      const path = run(widened('f32').map((i) => place(i, 'cpu'))).map((o, k) => o.to(outs[k].dtype));
      return [outs.map(arr), path.map(arr)];
    });
    sim.forEach((o, i) => {
      const { err, scale } = maxErr(o, ref[i]);
      const bound = 2 * maxErr(cpu[i], ref[i]).err + HALF_ULP[half] * Math.max(1, scale);
      assert.ok(err <= bound, `${what} ${half} output ${i} sim[${order}]: error ${err} > ${bound}`);
    });
    if (first) assert.equal(sim, first, `${what} ${half}: sim[${order}] gives other bits than sim[sequential]`);
    first = sim;
  }
  setSimOrder('sequential');
}

for (const half of ['bf16', 'f16'] as const) {
  const NORMS16: NormCase[] = [
    { N: 70, D: 37, rms: false, w: true, b: true, stridedX: true, why: 'strided x, three row blocks' },
    { N: 33, D: 136, rms: true, w: true, why: 'rows in 16-byte chunks of 8' },
    { N: 9, D: 130, rms: false, w: true, b: true, stridedW: true, why: 'strided weight, chunks and a tail' },
    { N: 3, D: 6200, rms: true, w: true, why: 'f32 column sums past 48 KiB: in global memory' },
  ];
  NORMS16.forEach((c) => test(`norm ${c.rms ? 'rms' : 'layer'} [${c.N}, ${c.D}] ${half} on sim, v1 and v2: the CPU's f32 path's accuracy, mean and rstd in f32 (${c.why})`, () => {
    for (const version of [1, 2]) withNormVersion(version, () => checkHalf(`norm v${version} ${JSON.stringify(c)}`, half, normInputs(c), normRun(c)));
  }));

  test(`groupNorm ${half} on sim: the CPU's f32 path's accuracy (strided x, runs of 35; chunks of 8 with a strided weight)`, () => {
    for (const c of [GROUPS[0], GROUPS[1]]) checkHalf(`groupNorm ${JSON.stringify(c)}`, half, groupInputs(c), groupRun(c));
  });

  const CES16: CeCase[] = [
    { N: 6, V: 264, smoothing: 0.1, ignore: 3, ignored: 0.3, why: 'chunks of 8, smoothing, some rows ignored' },
    { N: 7, V: 37, smoothing: 0, ignore: -100, ignored: 0.2, stridedX: true, why: 'strided logits' },
    { N: 5, V: 133, smoothing: 0, ignore: -100, ignored: 0.2, masked: 40, why: '-inf logits' },
  ];
  CES16.forEach((c) => test(`crossEntropy [${c.N}, ${c.V}] ${half} logits on sim: the CPU's f32 path's accuracy, losses in f32 (${c.why})`, () => {
    checkHalf(`crossEntropy ${JSON.stringify(c)}`, half, ceInputs(c), ceRun(c));
  }));

  test(`swiglu ${half} on sim: the CPU's f32 path's accuracy (chunks of 8 with a tail; transposed)`, () => {
    for (const [shape, layout] of [[[37, 5], 'contiguous'], [[9, 7], 'transposed']] as const) {
      checkHalf(`swiglu ${layout} [${shape}]`, half, swigluInputs(shape, layout), swigluRun);
    }
  });
}

test('the CPU row kernels take f32 and f64 only: bf16 is a DTypeError naming the op, and F computes it in f32', () => tidy(() => {
  const x = randn([4, 8], { generator: new Generator(5) }).to('bf16');
  assert.throws(() => normRows(x, { weight: null, bias: null, eps: 1e-5, rms: true }), (e: unknown) => e instanceof DTypeError && /normRows: f32 or f64 only on cpu, got bf16/.test((e as Error).message));
  assert.throws(() => swiglu(x, x), (e: unknown) => e instanceof DTypeError && /swiglu: f32 or f64 only on cpu/.test((e as Error).message));
  assert.throws(() => crossEntropyRows(x, tensor([0, 1, 2, 3], { dtype: 'i32' }), { ignoreIndex: -100, labelSmoothing: 0 }), (e: unknown) => e instanceof DTypeError);
  const y = F.rmsNorm(x), ys = F.rmsNorm(x.to('sim'));
  assert.is(y.dtype, 'bf16');
  assert.is(ys.dtype, 'bf16');
  assert.equal(arr(ys), arr(y), 'sim\'s bf16 kernel and the CPU\'s f32 path round to the same bf16 values here');
}));

test.run();
