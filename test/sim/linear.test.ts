// linear.test.ts: the GEMM's fused epilogue (native/cuda/gemm/gemm.cuh) behind F.linear on the
// device `sim`: out = act(x W^T + b) + residual in one launch, through every GEMM version that
// takes the dtype (1-5, forced) and the dispatcher (F.linear), in the three thread orders. Each
// result is compared with the same expression in f64 on the CPU, within FlashAttention's policy
// (twice the CPU's composed path's error at the same precision, plus one unit of the dtype at the
// largest output), and must be the same bits in every order. Operands come as odd sizes, as
// views the kernels read through their strides (a step-2 slice of x, W as a transposed [in, out]
// tensor, a strided bias, a transposed residual) and as aligned contiguous ones that take the
// vector stores. The backward (through the saved pre-activation) is checked against the CPU's
// composed gradients; gradcheck.test.ts checks it against finite differences on cpu and sim.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { F, randn, setSimOrder, simOrder, ShapeError, Tensor, tidy, ValueError, type DType } from '../../src/index.ts';
import { fusedLinear, type Activation } from '../../src/tensor/ops/linear.ts';

const ORDERS = ['sequential', 'reverse', 'random:7'];
const EPS: Record<string, number> = { f32: 2 ** -24, f64: 2 ** -53, bf16: 2 ** -9, f16: 2 ** -12 };
const f64 = (t: Tensor): Float64Array => t.to('cpu').to('f64').data() as Float64Array;
const maxError = (got: Float64Array, want: Float64Array): number => got.reduce((m, g, i) => Math.max(m, Math.abs(g - want[i])), 0);

interface Case {
  what: string;
  R: number; K: number; N: number;
  activation: Activation | null;
  bias: boolean;
  residual: boolean;
  views: boolean;  // x a step-2 slice, W the transpose of an [in, out] tensor, bias step 2, residual transposed
}

const CASES: Case[] = [
  { what: 'odd sizes, all three, as views', R: 37, K: 29, N: 45, activation: 'gelu', bias: true, residual: true, views: true },
  { what: 'aligned, past one 128x128 tile, bias and silu (vector stores)', R: 136, K: 40, N: 144, activation: 'silu', bias: true, residual: false, views: false },
  { what: 'odd sizes, relu without bias, as views', R: 21, K: 17, N: 19, activation: 'relu', bias: false, residual: false, views: true },
  { what: 'aligned, tanh gelu and residual, no bias', R: 24, K: 32, N: 40, activation: 'geluTanh', bias: false, residual: true, views: false },
  { what: 'odd sizes, bias only', R: 9, K: 33, N: 7, activation: null, bias: true, residual: false, views: false },
];

/** The case's operands (x, W, bias, residual) on cpu, and the same views of the same values on sim. */
function operands(c: Case, dtype: DType): { cpu: (Tensor | null)[]; sim: (Tensor | null)[] } {
  const x = randn([c.R, c.views ? 2 * c.K : c.K], { dtype });
  const w = c.views ? randn([c.K, c.N], { dtype }) : randn([c.N, c.K], { dtype });
  const b = c.bias ? randn([c.views ? 2 * c.N : c.N], { dtype }) : null;
  const r = c.residual ? (c.views ? randn([c.N, c.R], { dtype }) : randn([c.R, c.N], { dtype })) : null;
  const view = (ts: (Tensor | null)[]): (Tensor | null)[] => {
    const [vx, vw, vb, vr] = ts;
    if (!c.views) return ts;
    return [vx!.slice(1, 1, undefined, 2), vw!.transpose(0, 1), vb && vb.slice(0, 0, undefined, 2), vr && vr.transpose(0, 1)];
  };
  return { cpu: view([x, w, b, r]), sim: view([x, w, b, r].map((t) => t && t.to('sim'))) };
}

const linearOf = (ts: (Tensor | null)[], c: Case): Tensor => F.linear(ts[0]!, ts[1]!, ts[2], { activation: c.activation, residual: ts[3] });

// [version, what it is, dtypes]; version 0 is the dispatcher (F.linear).
const VERSIONS: [number, string, DType[]][] = [
  [0, 'the dispatcher (F.linear)', ['f32', 'f64', 'bf16', 'f16']],
  [1, 'v1 16x16 tiles', ['f32', 'bf16']],
  [2, 'v2 SIMT 128x128', ['f32', 'f64']],
  [4, 'v2 SIMT 64x64', ['f32', 'bf16']],
  [3, 'v3 mma 128x128', ['bf16', 'f16']],
  [5, 'v3 mma 64x64', ['bf16']],
];

for (const [version, name, dtypes] of VERSIONS) {
  for (const dtype of dtypes) {
    test(`sim linear epilogue, ${name} (${dtype}): within 2x the CPU's error, same bits in every thread order`, () => {
      const before = simOrder();
      try {
        tidy(() => {
          for (const c of CASES) {
            const { cpu, sim } = operands(c, dtype);
            const want = f64(linearOf(cpu.map((t) => t && t.to('f64')), c));
            const cpuError = maxError(f64(linearOf(cpu, c)), want);
            const floor = EPS[dtype] * want.reduce((m, w) => Math.max(m, Math.abs(w)), 0) * (dtype === 'f64' ? c.K : 1);
            let first: Float64Array | undefined;
            for (const order of ORDERS) {
              setSimOrder(order);
              const out = version === 0 ? linearOf(sim, c)
                : fusedLinear(sim[0]!, sim[1]!, { bias: sim[2], residual: sim[3], activation: c.activation, savePre: false, version });
              assert.equal(out.shape, [c.R, c.N]);
              const got = f64(out);
              const error = maxError(got, want);
              assert.ok(error <= 2 * cpuError + floor, `${c.what}, ${order}: max error ${error}, the CPU's ${cpuError} (floor ${floor})`);
              if (!first) first = got;
              else assert.ok(got.every((g, i) => Object.is(g, first![i])), `${c.what}, ${order}: the bits differ from ${ORDERS[0]}`);
            }
          }
        });
      } finally {
        setSimOrder(before);
      }
    });
  }
}

test('sim linear epilogue: gradients through the saved pre-activation match the CPU composition', () => tidy(() => {
  for (const c of CASES) {
    const { cpu, sim } = operands(c, 'f32');
    const grads = (ts: (Tensor | null)[]): Float64Array[] => {
      const leaves = ts.map((t) => t && t.detach().requiresGrad_());
      const out = linearOf(leaves, c);
      out.mul(out.detach()).sum().backward();
      return leaves.flatMap((t) => (t ? [f64(t.grad!)] : []));
    };
    const want = grads(cpu), got = grads(sim);
    want.forEach((g, i) => {
      const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(maxError(got[i], g) <= 1e-4 * scale, `${c.what}: gradient ${i} differs by ${maxError(got[i], g)} (scale ${scale})`);
    });
  }
}));

test('linear rejects an unknown activation, a residual of another shape and a bad version', () => tidy(() => {
  for (const device of ['cpu', 'sim'] as const) {
    const x = randn([3, 4], { device }), w = randn([5, 4], { device });
    assert.throws(() => F.linear(x, w, null, { activation: 'tanh' as Activation }), (e: unknown) => e instanceof ValueError && /activation must be one of relu, gelu, geluTanh, silu/.test(e.message));
    assert.throws(() => F.linear(x, w, null, { residual: randn([3, 4], { device }) }), (e: unknown) => e instanceof ShapeError && /residual must have the output's shape \[3,5\]/.test(e.message));
  }
  const x = randn([3, 4], { device: 'sim' }), w = randn([5, 4], { device: 'sim' });
  assert.throws(() => fusedLinear(x, w, { bias: null, residual: null, activation: null, savePre: false, version: 6 }), (e: unknown) => e instanceof ValueError && /no version 6/.test(e.message));
  assert.throws(() => fusedLinear(x, w, { bias: null, residual: null, activation: null, savePre: false, version: 3 }), (e: unknown) => e instanceof ValueError && /does not take f32/.test(e.message));
}));

test.run();
