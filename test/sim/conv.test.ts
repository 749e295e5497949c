// conv.test.ts: the GPU convolution's kernel versions (native/cuda/conv.cu) on `sim`, in the
// emulator's three thread orders: v1 (direct) and v2 (implicit GEMM: SIMT for f32/f64, mma.sync
// for bf16 and f16) with each fast path the dispatcher picks (pointwise 1x1, 3x3 at stride 1 and 2, the
// general path for other windows, dilation and groups; split-K in the weight gradient), forward
// and both gradients, on odd sizes that leave tails in every tile, with non-contiguous views.
// Tolerance is FlashAttention's policy: the kernel's max error against an f64 reference (the CPU
// kernels in f64) is at most twice the CPU kernels' error at the same precision, plus a tiny floor
// (one ulp of the dtype at the result's scale, and an f64 ulp per term of the sum: the max over a
// handful of bias elements is otherwise a coin toss). The dispatcher's choice is checked by name (conv2dLastKernel), so a case that
// stops reaching its path fails instead of silently losing coverage.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv2d, DeviceError, Generator, randn, setSimOrder, tidy, ValueError, type Tensor, type DType } from '../../src/index.ts';
import { native } from '../../src/tensor/native.ts';
import { DEVICE_CODE } from '../../src/tensor/storage.ts';
import { conv2dBackwardInput, conv2dBackwardWeight } from '../../src/tensor/ops/image.ts';

const SIM = DEVICE_CODE.sim;
const ORDERS = ['sequential', 'reverse', 'random:11'];
const DTYPES: DType[] = ['f32', 'f64', 'bf16', 'f16'];

interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  bias: boolean;
  noncontig: boolean;
  path: string;  // v2's fast path, as the kernel's template arguments spell it: taps, stride (0, 0: the general path)
  direct?: boolean;  // the dispatcher picks v1 (few channels per group)
}

const CASES: Case[] = [
  { name: '3x3 stride 1 padded', x: [2, 3, 9, 9], w: [5, 3, 3, 3], padding: [1, 1], bias: true, noncontig: false, path: '3, 1' },
  { name: '3x3 stride 2 padded, strided views', x: [2, 3, 9, 9], w: [5, 3, 3, 3], stride: [2, 2], padding: [1, 1], bias: false, noncontig: true, path: '3, 2' },
  { name: 'pointwise 1x1', x: [1, 5, 7, 7], w: [3, 5, 1, 1], bias: true, noncontig: true, path: '1, 1' },
  { name: '1x1 stride 2 (general)', x: [2, 4, 7, 9], w: [6, 4, 1, 1], stride: [2, 2], bias: false, noncontig: false, path: '0, 0' },
  { name: 'general window: 2x3, stride (2,1), padding (1,2), dilation (2,1)', x: [1, 4, 9, 7], w: [6, 4, 2, 3], stride: [2, 1], padding: [1, 2], dilation: [2, 1], bias: true, noncontig: true, path: '0, 0' },
  { name: '3x3 dilated 2', x: [1, 3, 9, 9], w: [5, 3, 3, 3], padding: [2, 2], dilation: [2, 2], bias: false, noncontig: false, path: '3, 1' },
  { name: 'groups 2', x: [2, 6, 7, 7], w: [8, 3, 3, 3], padding: [1, 1], groups: 2, bias: true, noncontig: false, path: '3, 1' },
  { name: 'channels across a tile (70 outputs, depth 180)', x: [1, 20, 5, 5], w: [70, 20, 3, 3], padding: [1, 1], bias: true, noncontig: true, path: '3, 1' },
  { name: 'depthwise (direct by default)', x: [2, 4, 7, 7], w: [4, 1, 3, 3], padding: [1, 1], groups: 4, bias: true, noncontig: false, path: '3, 1', direct: true },
];

const f64 = (t: Tensor): Float64Array => t.to('cpu').to('f64').data() as Float64Array;

function maxError(got: Float64Array, want: Float64Array): number {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]));
  return Number.isNaN(got.reduce((a, b) => a + b, 0)) ? Infinity : e;
}

/** A tensor with t's values on sim; non-contiguous: stored with its two spatial dims swapped (or its first two for 1-d). */
function onSim(t: Tensor, noncontig: boolean): Tensor {
  if (!noncontig) return t.to('sim');
  if (t.ndim === 4) return t.transpose(2, 3).contiguous().to('sim').transpose(2, 3);
  return t.to('sim');
}

type Args = { stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number };
interface Results { out: Tensor; gx: Tensor; gw: Tensor; gb: Tensor | null }

const argsOf = (c: Case): Args =>
  ({ stride: c.stride ?? [1, 1], padding: c.padding ?? [0, 0], dilation: c.dilation ?? [1, 1], groups: c.groups ?? 1 });

function runAll(a: Args, x: Tensor, w: Tensor, b: Tensor | null, g: Tensor): Results {
  const out = conv2d(x, w, b, a);
  const gx = conv2dBackwardInput(g, w, x.shape, a);
  const [gw, gb] = conv2dBackwardWeight(g, x, w.shape, b !== null, a);
  return { out, gx, gw, gb };
}

/** The number of terms summed into one element of a pass's result (for the floor; the input's pixels bound the output's). */
function depthOf(c: Case, pass: string): number {
  const [O, Cg, KH, KW] = c.w;
  if (pass === 'forward') return Cg * KH * KW;
  if (pass === 'input') return (O / (c.groups ?? 1)) * KH * KW;
  return c.x[0] * c.x[2] * c.x[3];
}

/** One unit in the last place at 1 (bf16, f16, f32, f64): the floor allows an ulp at the result's scale, plus an f64 ulp per term. */
const EPS: Record<string, number> = { bf16: 2 ** -7, f16: 2 ** -10, f32: 2 ** -23, f64: 2 ** -52 };
const onTensorCores = (dtype: DType) => dtype === 'bf16' || dtype === 'f16';

const PASS_OP: Record<string, string> = { forward: 'Forward', input: 'BackwardInput', weight: 'BackwardWeight' };
const DIRECT: Record<string, string> = { forward: 'direct_forward_kernel', input: 'direct_backward_input_kernel', weight: 'direct_backward_weight_kernel' };

/**
 * The kernel a version runs for a case's pass. Version 0 is the dispatcher's choice: v1 for
 * depthwise-like groups; v3 (tap-major, general gathers) where the pass's K runs over taps of at
 * least 16 channels and the window is not pointwise; else v2 on its fast path. The weight gradient
 * has no v3 (its taps are in M) and runs v2, split-K where its depth (the output pixels) is more
 * than four slices (16 deep on SIMT, 32 on mma.sync): the test shapes fill fewer blocks than the
 * dispatcher's target, so that depth alone decides.
 */
function expected(c: Case, dtype: DType, version: number, pixels: number): (pass: string) => RegExp {
  const pointwise = c.w[2] === 1 && c.w[3] === 1 && !c.stride && !c.padding;
  return (pass) => {
    const tapChannels = pass === 'forward' ? c.w[1] : pass === 'input' ? c.w[0] / (c.groups ?? 1) : 0;
    let v = version || (c.direct ? 1 : tapChannels >= 16 && !pointwise ? 3 : 2);
    if (pass === 'weight' && v === 3) v = 2;
    if (v === 1) return new RegExp(`${DIRECT[pass]}<`);
    const kernel = onTensorCores(dtype) ? 'igemm_mma_kernel' : 'igemm_simt_kernel';
    const args = pass === 'weight' ? `${c.path}>` : v === 3 ? '0, 0, true>' : `${c.path}, false>`;
    const split = pass === 'weight' && pixels > 4 * (onTensorCores(dtype) ? 32 : 16) ? ', split-K \\d+$' : '>$';
    return new RegExp(`${kernel}<[^<]*${PASS_OP[pass]}<[^<>]+, ${args}.*${split}`);
  };
}

/** Runs the case on sim through `version` (each pass's kernel checked by name) and compares with the CPU at the same precision. */
function check(c: Case, dtype: DType, version: number): void {
  const a = argsOf(c);
  // Inputs of the case's own seed: the same whichever tests ran before (the twice-the-CPU's-error
  // policy is a statistical bound, so a failure must be reproducible to be looked at).
  const generator = new Generator(CASES.indexOf(c) + 1);
  const x = randn(c.x, { dtype, generator }), w = randn(c.w, { dtype, generator });
  const b = c.bias ? randn([c.w[0]], { dtype, generator }) : null;
  const g = randn([...conv2d(x, w, b, a).shape], { dtype, generator });
  const expect = expected(c, dtype, version, g.shape[0] * g.shape[2] * g.shape[3]);
  const ref = runAll(a, x.to('f64'), w.to('f64'), b?.to('f64') ?? null, g.to('f64'));
  const cpu = runAll(a, x, w, b, g);
  const nc = c.noncontig;
  const sx = onSim(x, nc), sw = onSim(w, nc), sb = b ? onSim(b, nc) : null, sg = onSim(g, nc);
  const passes: [string, () => [string, Tensor | null][], [Tensor | null, Tensor | null][]][] = [
    ['forward', () => [['out', conv2d(sx, sw, sb, a)]], [[ref.out, cpu.out]]],
    ['input', () => [['grad_in', conv2dBackwardInput(sg, sw, c.x, a)]], [[ref.gx, cpu.gx]]],
    ['weight', () => {
      const [gw, gb] = conv2dBackwardWeight(sg, sx, c.w, sb !== null, a);
      return [['grad_w', gw], ['grad_bias', gb]];
    }, [[ref.gw, cpu.gw], [ref.gb, cpu.gb]]],
  ];
  native.conv2dSetVersion(SIM, version);
  try {
    for (const [pass, run, wanted] of passes) {
      const results = run();
      assert.match(native.conv2dLastKernel(SIM), expect(pass), `${c.name} ${dtype} v${version} ${pass}: kernel`);
      results.forEach(([what, got], i) => {
        const [r, p] = wanted[i];
        if (!got || !r || !p) return;
        const want = f64(r);
        const cpuErr = maxError(f64(p), want), simErr = maxError(f64(got), want);
        const floor = (EPS[dtype] + 2 ** -50 * depthOf(c, pass)) * Math.max(1, ...want.map(Math.abs));
        assert.ok(simErr <= 2 * cpuErr + floor,
          `${c.name} ${dtype} v${version} ${what}: sim error ${simErr} > 2 x cpu error ${cpuErr} + ${floor}`);
      });
    }
  } finally {
    native.conv2dSetVersion(SIM, 0);
  }
}

// Every order runs the dispatcher's choice; sequential also forces v1, the others v3 (on shapes
// with few channels, so v3's zero-padded channel slices are exercised too); the depthwise case
// forces v2 as well.
const FORCED: Record<string, number> = { sequential: 1, reverse: 3, 'random:11': 3 };

for (const order of ORDERS) {
  for (const dtype of DTYPES) {
    test(`conv2d on sim[${order}] ${dtype}: the dispatcher's kernels and v${FORCED[order]} forced match the CPU`, () => tidy(() => {
      setSimOrder(order);
      try {
        for (const c of CASES) {
          check(c, dtype, 0);
          check(c, dtype, FORCED[order]);
          if (c.direct) check(c, dtype, 2);
        }
      } finally {
        setSimOrder('sequential');
      }
    }));
  }
}

test('conv2d on sim: v2 gives the same bits in every thread order (split-K partials added in a fixed order)', () => tidy(() => {
  const c = CASES[0];
  for (const dtype of ['f32', 'bf16'] as DType[]) {
    const x = randn(c.x, { dtype }).to('sim'), g = randn([2, 5, 9, 9], { dtype }).to('sim');
    const bits: number[][] = [];
    try {
      for (const order of ORDERS) {
        setSimOrder(order);
        const [gw, gb] = conv2dBackwardWeight(g, x, c.w, true, argsOf(c));
        assert.match(native.conv2dLastKernel(SIM), /split-K [2-9]/);
        bits.push([...f64(gw), ...f64(gb!)]);
      }
    } finally {
      setSimOrder('sequential');
    }
    assert.equal(bits[1], bits[0], `${dtype}: reverse order differs`);
    assert.equal(bits[2], bits[0], `${dtype}: random order differs`);
  }
}));

test('conv2dSetVersion: unknown versions are ValueErrors, the CPU has no versions', () => {
  for (const v of [4, -1, 1.5]) {
    assert.throws(() => native.conv2dSetVersion(SIM, v), (e: unknown) => e instanceof ValueError && /version/.test((e as Error).message));
  }
  assert.throws(() => native.conv2dSetVersion(DEVICE_CODE.cpu, 1), (e: unknown) => e instanceof DeviceError && /cpu/.test((e as Error).message));
  native.conv2dSetVersion(SIM, 0);
});

test.run();
