// attention.test.ts: the fused attention kernels of native/cuda/attention/ on `sim`: each version
// (v1 CUDA cores, v2 and v3 bf16/f16 tensor cores) at each launch configuration its dispatcher can
// pick (v2: padded head widths 32, 64, 80, 96, 128), in the emulator's three thread orders, forward
// and every gradient, through F.scaledDotProductAttention (which takes the fused path on sim).
//
// Tolerance, FlashAttention's policy: the kernel's max error against an f64 reference is at most
// twice the error of the CPU path at the same precision (for f32 and f64 the CPU's fused kernel;
// for bf16 and f16 the composed path in that dtype, matmul / softmax / matmul each rounding, which
// is what the FlashAttention tests compare against), plus a tiny absolute floor. Sizes are small
// and odd (Lq = 13, Lk = 19, D = 24, ...), with cross-attention, causal masks, bias broadcast over
// the batch, key-padding masks, fully hidden rows and transposed (non-contiguous) operands.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DeviceError, F, Generator, rand, randn, setSimOrder, tensor, tidy, ValueError, type DType, type Tensor,
} from '../../src/index.ts';
import { setAttentionVersion } from '../../src/tensor/ops/attention.ts';

type Device = 'cpu' | 'sim';
interface Case {
  name: string;
  B: number; H: number; Lq: number; Lk: number; D: number; Dv: number;
  causal?: boolean;
  bias?: boolean;          // [H, Lq, Lk], broadcast over the batch (stride 0), with a gradient
  kpm?: 'some' | 'hideBatch1' | 'hideKey0';  // random keys; every key of batch 1; key 0 (with causal: row 0 sees nothing)
  transposed?: boolean;    // q, k, v as transposed views: no operand has contiguous rows
  scale?: number;
}

/** The inputs of a case (f64 on the CPU) and an output gradient. */
function inputs(c: Case, seed: number) {
  const g = new Generator(seed);
  const opts = { generator: g, dtype: 'f64' as const };
  // Transposed: stored [B, L, H, X] (or [B, H, X, Lk] for k) and viewed as [B, H, L, X].
  const q = c.transposed ? randn([c.B, c.Lq, c.H, c.D], opts) : randn([c.B, c.H, c.Lq, c.D], opts);
  const k = c.transposed ? randn([c.B, c.H, c.D, c.Lk], opts) : randn([c.B, c.H, c.Lk, c.D], opts);
  const v = c.transposed ? randn([c.B, c.Lk, c.H, c.Dv], opts) : randn([c.B, c.H, c.Lk, c.Dv], opts);
  const bias = c.bias ? randn([c.H, c.Lq, c.Lk], opts) : null;
  let kpm: Tensor | null = null;
  if (c.kpm) {
    const r = rand([c.B, c.Lk], opts).data() as Float64Array;
    const hidden = Array.from(r, (u, n) => {
      const b = Math.floor(n / c.Lk), j = n % c.Lk;
      return u < 0.25 || (c.kpm === 'hideBatch1' && b === 1) || (c.kpm === 'hideKey0' && j === 0);
    });
    kpm = tensor(hidden, { dtype: 'bool' }).reshape([c.B, c.Lk]);
  }
  return { q, k, v, bias, kpm, gout: randn([c.B, c.H, c.Lq, c.Dv], opts) };
}

type Inputs = ReturnType<typeof inputs>;

/**
 * out, dq, dk, dv (and dbias) of the case with the inputs rounded to `dtype` on `device`, as f64
 * arrays. `composed`: the composed path (matmul, softmax, matmul) instead of the fused kernel.
 */
function run(c: Case, x: Inputs, dtype: DType, device: Device, composed = false): Float64Array[] {
  return tidy(() => {
    const leaf = (t: Tensor) => t.to(dtype).to(device).detach().requiresGrad_();
    const [q0, k0, v0] = [x.q, x.k, x.v].map(leaf);
    const bias0 = x.bias ? leaf(x.bias) : null;
    const q = c.transposed ? q0.transpose(1, 2) : q0, v = c.transposed ? v0.transpose(1, 2) : v0;
    const k = c.transposed ? k0.transpose(2, 3) : k0;
    const kpm = x.kpm ? x.kpm.to(device) : null;
    const scale = c.scale ?? 1 / Math.sqrt(c.D);
    const y = composed
      ? F.composedAttention(q, k, v, bias0, kpm, scale, { causal: c.causal })
      : F.scaledDotProductAttention(q, k, v, { bias: bias0, keyPaddingMask: kpm, causal: c.causal, scale });
    y.mul(x.gout.to(dtype).to(device)).sum().backward();
    const f64 = (t: Tensor) => t.to('cpu').to('f64').contiguous().data() as Float64Array;
    return [y, q0.grad!, k0.grad!, v0.grad!, ...(bias0 ? [bias0.grad!] : [])].map(f64);
  });
}

const NAMES = ['out', 'dq', 'dk', 'dv', 'dbias'];

function maxErr(a: Float64Array, ref: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - ref[i]));  // NaN propagates
  return m;
}

/** max |x| over an array. */
const magnitude = (a: Float64Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

// The absolute floor: one rounding of the largest reference value (about one ulp of it: 2^-8 in
// bf16, 2^-11 in f16, 2^-23 in f32). In f64 the CPU path is the reference itself (error 0), so the
// floor is all there is: 64 ulps.
const FLOOR_ULPS: Record<string, number> = { f64: 2 ** -46, f32: 2 ** -23, bf16: 2 ** -8, f16: 2 ** -11 };

/** The kernel on sim against the f64 reference, within twice the CPU path's error plus the floor. */
function checkCase(c: Case, dtype: DType, version: number, seed = 5): void {
  tidy(() => checkInputs(c, inputs(c, seed), dtype, version));
}

function checkInputs(c: Case, x: Inputs, dtype: DType, version: number): void {
  const ref = run(c, x, 'f64', 'cpu');
  const base = run(c, x, dtype, 'cpu', dtype === 'bf16' || dtype === 'f16');
  setAttentionVersion('sim', version);
  let got: Float64Array[];
  try {
    got = run(c, x, dtype, 'sim');
  } finally {
    setAttentionVersion('sim', 0);
  }
  ref.forEach((r, n) => {
    const err = maxErr(got[n], r), allowed = 2 * maxErr(base[n], r) + FLOOR_ULPS[dtype] * magnitude(r);
    assert.ok(err <= allowed, `${c.name} ${dtype} v${version} ${NAMES[n]}: error ${err} > ${allowed}`);
  });
}

const ORDERS = ['sequential', 'reverse', 'random:11'];

// v1: any head dim, f32 and f64 (and bf16 and f16 where v2 does not apply).
const V1: Case[] = [
  { name: 'odd cross-attention with bias and padding', B: 2, H: 2, Lq: 13, Lk: 19, D: 24, Dv: 17, bias: true, kpm: 'some' },
  { name: 'causal, more queries than keys, a hidden batch', B: 2, H: 1, Lq: 19, Lk: 13, D: 7, Dv: 9, causal: true, kpm: 'hideBatch1' },
  { name: 'causal with bias, row 0 hidden, tiles crossed', B: 1, H: 2, Lq: 37, Lk: 35, D: 5, Dv: 3, causal: true, bias: true, kpm: 'hideKey0', scale: 0.7 },
  { name: 'transposed operands', B: 1, H: 3, Lq: 13, Lk: 19, D: 24, Dv: 24, causal: true, transposed: true },
];

for (const order of ORDERS) {
  test(`attention v1 on sim[${order}]: f32 and f64 against the CPU`, () => {
    setSimOrder(order);
    try {
      for (const c of V1) for (const dtype of ['f32', 'f64'] as const) checkCase(c, dtype, 1);
      for (const half of ['bf16', 'f16'] as const) checkCase({ ...V1[0], name: `${half} head dim 20`, D: 20, Dv: 20 }, half, 1);
    } finally {
      setSimOrder('sequential');
    }
  });
}

// v2: one case per launch configuration (padded head width), plus the features at small widths.
const V2: Case[] = [
  ...[32, 64, 80, 88, 96, 128].map((D) => ({ name: `head dim ${D}`, B: 1, H: 2, Lq: 13, Lk: 19, D, Dv: D, causal: D % 32 === 0 })),
  { name: 'tiles crossed, causal, bias, padding', B: 2, H: 1, Lq: 70, Lk: 67, D: 32, Dv: 16, causal: true, bias: true, kpm: 'some' },
  { name: 'keys beyond queries, hidden batch', B: 2, H: 1, Lq: 9, Lk: 75, D: 64, Dv: 40, causal: true, kpm: 'hideBatch1' },
  { name: 'unmasked tiles (v3 skips the mask), causal', B: 1, H: 1, Lq: 70, Lk: 140, D: 32, Dv: 32, causal: true },
  { name: 'three key tiles through two buffers', B: 1, H: 1, Lq: 13, Lk: 140, D: 32, Dv: 24 },
  { name: 'row 0 hidden, transposed', B: 1, H: 2, Lq: 17, Lk: 11, D: 48, Dv: 48, causal: true, kpm: 'hideKey0', transposed: true, bias: true },
];

// bf16 and f16 in every thread order (one kernel templated on the element type: the mma
// instruction and the roundings differ).
for (const order of ORDERS) {
  const halves: DType[] = ['bf16', 'f16'];
  test(`attention v2 and v3 (${halves.join(' and ')} tensor cores) on sim[${order}]: every head width against the CPU`, () => {
    setSimOrder(order);
    try {
      for (const dtype of halves) for (const c of V2) for (const version of [2, 3]) checkCase(c, dtype, version);
    } finally {
      setSimOrder('sequential');
    }
  });
}

test('attention on sim: the dispatcher picks v3 for bf16 and f16 and v1 otherwise, deterministically', () => tidy(() => {
  const c: Case = { name: 'dispatch', B: 1, H: 2, Lq: 21, Lk: 18, D: 32, Dv: 32, causal: true, bias: true };
  const x = inputs(c, 9);
  const bits = (dtype: DType, version: number) => {
    setAttentionVersion('sim', version);
    try {
      return run(c, x, dtype, 'sim');
    } finally {
      setAttentionVersion('sim', 0);
    }
  };
  assert.equal(bits('bf16', 0), bits('bf16', 3));
  assert.equal(bits('f16', 0), bits('f16', 3));
  assert.equal(bits('f32', 0), bits('f32', 1));
  assert.not.equal(bits('bf16', 1), bits('bf16', 2));
  assert.not.equal(bits('f16', 0), bits('bf16', 0));
  setSimOrder('random:3');
  try {
    assert.equal(bits('bf16', 0), bits('bf16', 3), 'the same bits in another thread order');
    assert.equal(bits('f32', 0), bits('f32', 1));
  } finally {
    setSimOrder('sequential');
  }
}));

test('attention on sim: fully hidden rows give zeros and zero gradients, not NaN', () => tidy(() => {
  for (const [dtype, version] of [['f32', 1], ['bf16', 2], ['bf16', 3], ['f16', 2], ['f16', 3]] as const) {
    const c: Case = { name: 'hidden', B: 2, H: 1, Lq: 5, Lk: 7, D: 16, Dv: 8, kpm: 'hideBatch1' };
    setAttentionVersion('sim', version);
    try {
      const [out, dq] = run(c, inputs(c, 4), dtype, 'sim');
      const half = (a: Float64Array) => Array.from(a.subarray(a.length / 2));
      assert.ok(half(out).every((v) => v === 0), `${dtype}: the hidden batch's output`);
      assert.ok(half(dq).every((v) => v === 0), `${dtype}: the hidden batch's dq`);
    } finally {
      setAttentionVersion('sim', 0);
    }
  }
}));

test('attention on sim: no queries or no keys', () => tidy(() => {
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    const q = randn([1, 2, 3, 16], { device: 'sim', dtype }).requiresGrad_();
    const none = randn([1, 2, 0, 16], { device: 'sim', dtype }).requiresGrad_();
    const y = F.scaledDotProductAttention(q, none, none);
    assert.equal(y.shape, [1, 2, 3, 16]);
    assert.ok(Array.from(y.to('f32').data()).every((v) => v === 0), `${dtype}: a row with no keys is 0`);
    y.sum().backward();
    assert.ok(Array.from(q.grad!.to('f32').data()).every((v) => v === 0), `${dtype}: and its dq`);
    assert.equal(F.scaledDotProductAttention(none, q, q).shape, [1, 2, 0, 16]);
  }
}));

test('setAttentionVersion: unknown versions, versions that cannot take a call and the CPU are errors', () => tidy(() => {
  assert.throws(() => setAttentionVersion('sim', 4), (e: unknown) => e instanceof ValueError && /no version 4/.test((e as Error).message));
  assert.throws(() => setAttentionVersion('sim', -1), (e: unknown) => e instanceof ValueError);
  assert.throws(() => setAttentionVersion('sim', 1.5), (e: unknown) => e instanceof ValueError && /integer/.test((e as Error).message));
  assert.throws(() => setAttentionVersion('cpu', 1), (e: unknown) => e instanceof DeviceError && /one attention version/.test((e as Error).message));
  const q = randn([1, 1, 3, 8], { device: 'sim' });
  setAttentionVersion('sim', 2);
  try {
    assert.throws(() => F.scaledDotProductAttention(q, q, q), (e: unknown) => e instanceof ValueError && /version 2 takes bf16 or f16/.test((e as Error).message));
    const odd = randn([1, 1, 3, 12], { device: 'sim', dtype: 'bf16' });
    assert.throws(() => F.scaledDotProductAttention(odd, odd, odd), (e: unknown) => e instanceof ValueError && /D = 12/.test((e as Error).message));
  } finally {
    setAttentionVersion('sim', 0);
  }
  // The CPU kernel takes no bf16 or f16: the functional layer computes them in f32 there.
  for (const dtype of ['bf16', 'f16'] as const) {
    const qc = randn([1, 2, 3, 8], { dtype });
    assert.is(F.scaledDotProductAttention(qc, qc, qc).dtype, dtype);
  }
}));

test.run();
