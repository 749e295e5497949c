// gemm.test.ts: the CUDA GEMM versions (native/cuda/gemm/, chosen by native/cuda/matmul.cu) on the
// device `sim`. Every version, at both block tiles the dispatcher can pick (versions 2/4 and 3/5),
// and the dispatcher itself (the public bmm), in the three thread orders, on odd sizes (tails in
// M, N and K), sizes past one 128x128 block tile, transposed, broadcast-batch and non-contiguous
// operands, with the 16-byte (cp.async) paths and the scalar fallbacks both taken, in every
// dtype each version takes. Tolerance, FlashAttention's policy: the kernel's max error against
// an f64 product is at most twice the CPU matmul's error at the same precision, plus one unit of
// the dtype at the largest output. Results must also be the same bits in every thread order.
// The parity table (test/parity.test.ts) runs matmul, bmm and linear through the public API on sim.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bmm, DeviceError, randn, setSimOrder, simOrder, Tensor, tidy, ValueError, zeros, type DType } from '../../src/index.ts';
import { native } from '../../src/tensor/native.ts';

const ORDERS = ['sequential', 'reverse', 'random:7'];

/** out = a @ b through CUDA GEMM version v on a's device; a [B,M,K] and b [B,K,N] may be any views. */
function matmulVersion(v: number, a: Tensor, b: Tensor): Tensor {
  const out = Tensor.empty([a.shape[0], a.shape[1], b.shape[2]], a.dtype, a.device);
  native.matmulVersion(v, out.handle, out.desc, a.handle, a.desc, b.handle, b.desc);
  return out;
}

const f64 = (t: Tensor): Float64Array => t.to('cpu').to('f64').data() as Float64Array;

interface Case {
  what: string;
  batch: number; M: number; N: number; K: number;
  ta?: boolean;      // a stored [B,K,M] and transposed: m has stride 1 (v3: the x-inner tile, ldmatrix.trans)
  tb?: boolean;      // b stored [B,N,K] and transposed: k has stride 1 (linear's weight layout)
  bcast?: boolean;   // b one matrix broadcast over the batch (stride 0)
  gaps?: boolean;    // both operands step-2 slices: no stride is 1, every read is scalar
  cut?: boolean;     // the stride-1 dims of both operands cut from rows padded to 8: aligned rows whose last 16-byte chunk is partial
}

const CASES: Case[] = [
  { what: 'odd sizes, row-major (unaligned rows: scalar reads)', batch: 1, M: 37, N: 45, K: 29 },
  { what: 'odd sizes, both transposed', batch: 2, M: 37, N: 45, K: 29, ta: true, tb: true },
  { what: 'b as N x K, broadcast over the batch, aligned k (16-byte reads), M tail', batch: 3, M: 21, N: 40, K: 48, tb: true, bcast: true },
  { what: 'past one 128x128 tile, aligned rows, 3 k slices with a tail', batch: 1, M: 150, N: 136, K: 72 },
  { what: 'a transposed and b row-major, both aligned (x-inner 16-byte reads)', batch: 2, M: 72, N: 24, K: 40, ta: true },
  { what: 'step-2 slices of both operands (no stride 1)', batch: 2, M: 19, N: 27, K: 33, gaps: true },
  { what: 'a transposed and b row-major, aligned rows cut to odd widths (partial chunks)', batch: 2, M: 37, N: 45, K: 24, ta: true, cut: true },
];

const padded = (n: number, c: Case): number => (c.cut ? Math.ceil(n / 8) * 8 : n);

/** The case's operands on cpu, and the same views of the same values on sim. */
function operands(c: Case, dtype: DType): { cpu: [Tensor, Tensor]; sim: [Tensor, Tensor] } {
  const { batch, M, N, K } = c;
  const bb = c.bcast ? 1 : batch;
  const baseA = c.ta ? randn([batch, K, padded(M, c)], { dtype }) : randn([batch, M, c.gaps ? 2 * K : padded(K, c)], { dtype });
  const baseB = c.tb ? randn([bb, N, padded(K, c)], { dtype }) : randn([bb, c.gaps ? 2 * K : K, c.gaps ? 2 * N : padded(N, c)], { dtype });
  const view = (a: Tensor, b: Tensor): [Tensor, Tensor] => {
    let va = c.ta ? a.transpose(1, 2) : a, vb = c.tb ? b.transpose(1, 2) : b;
    if (c.cut) {
      va = va.slice(1, 0, M).slice(2, 0, K);
      vb = vb.slice(1, 0, K).slice(2, 0, N);
    }
    if (c.gaps) {
      va = va.slice(2, 1, undefined, 2);
      vb = vb.slice(1, 0, undefined, 2).slice(2, 1, undefined, 2);
    }
    if (c.bcast) vb = vb.broadcastTo([batch, K, N]);
    return [va, vb];
  };
  return { cpu: view(baseA, baseB), sim: view(baseA.to('sim'), baseB.to('sim')) };
}

const maxError = (got: Float64Array, want: Float64Array): number => got.reduce((m, g, i) => Math.max(m, Math.abs(g - want[i])), 0);
const EPS: Record<string, number> = { f32: 2 ** -24, f64: 2 ** -53, bf16: 2 ** -9, f16: 2 ** -12 };

// [version, what it is, dtypes it runs in here]; version 0 is the dispatcher (bmm). f16 shares
// every kernel with bf16 but the mma instruction and the roundings, so it runs where those differ
// (the tensor-core versions, which the dispatcher picks for it) and in one SIMT tile (its 4-wide
// vector loads and stores).
const VERSIONS: [number, string, DType[]][] = [
  [0, 'the dispatcher (bmm)', ['f32', 'f64', 'bf16', 'f16']],
  [1, 'v1 16x16 tiles', ['f32', 'f64', 'bf16']],
  [2, 'v2 SIMT 128x128', ['f32', 'f64', 'bf16']],
  [4, 'v2 SIMT 64x64', ['f32', 'f64', 'bf16', 'f16']],
  [3, 'v3 mma 128x128', ['bf16', 'f16']],
  [5, 'v3 mma 64x64', ['bf16', 'f16']],
];

for (const [version, name, dtypes] of VERSIONS) {
  for (const dtype of dtypes) {
    test(`sim GEMM ${name} (${dtype}): within 2x the CPU's error, same bits in every thread order`, () => {
      const before = simOrder();
      try {
        tidy(() => {
          for (const c of CASES) {
            const { cpu, sim } = operands(c, dtype);
            const want = f64(bmm(cpu[0].to('f64'), cpu[1].to('f64')));
            const cpuError = maxError(f64(bmm(cpu[0], cpu[1])), want);
            // In f64 the reference is itself an f64 product (the CPU's error against it is 0 by
            // construction, and which path it matches depends on whether the CPU build fuses its
            // multiply-adds), so the allowance there is the standard bound for a K-term dot
            // product, K eps (|A| |B|); in the narrower types one ulp of the largest value.
            const floor = dtype === 'f64'
              ? c.K * EPS.f64 * f64(bmm(cpu[0].abs(), cpu[1].abs())).reduce((m, w) => Math.max(m, w), 0)
              : EPS[dtype] * want.reduce((m, w) => Math.max(m, Math.abs(w)), 0);
            let first: Float64Array | undefined;
            for (const order of ORDERS) {
              setSimOrder(order);
              const out = version === 0 ? bmm(sim[0], sim[1]) : matmulVersion(version, sim[0], sim[1]);
              assert.equal(out.shape, [c.batch, c.M, c.N]);
              const got = f64(out);
              const error = maxError(got, want);
              assert.ok(error <= 2 * cpuError + floor,
                `${c.what} [${c.batch},${c.M},${c.N},${c.K}], ${order}: max error ${error}, the CPU's ${cpuError} (floor ${floor})`);
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

test('sim GEMM versions with k = 0 write zeros, and empty outputs launch nothing', () => tidy(() => {
  for (const [version, , dtypes] of VERSIONS.filter(([v]) => v > 0)) {
    const dtype = dtypes[dtypes.length - 1];
    const a = zeros([2, 5, 0], { dtype, device: 'sim' }), b = zeros([2, 0, 7], { dtype, device: 'sim' });
    assert.equal([...f64(matmulVersion(version, a, b))], new Array(70).fill(0), `version ${version}`);
    const empty = matmulVersion(version, randn([2, 0, 4], { dtype, device: 'sim' }), randn([2, 4, 7], { dtype, device: 'sim' }));
    assert.equal(empty.shape, [2, 0, 7], `version ${version}`);
  }
}));

test('sim matmulVersion rejects an unknown version and a dtype the version does not take', () => tidy(() => {
  const a = randn([1, 3, 4], { device: 'sim' }), b = randn([1, 4, 5], { device: 'sim' });
  for (const v of [0, 6]) {
    assert.throws(() => matmulVersion(v, a, b), (e: unknown) => e instanceof ValueError && new RegExp(`no version ${v}`).test(e.message));
  }
  for (const v of [3, 5]) {
    assert.throws(() => matmulVersion(v, a, b),
      (e: unknown) => e instanceof ValueError && /version \d \(bf16\/f16 tensor cores\) does not take f32/.test(e.message));
  }
  assert.throws(() => matmulVersion(2, a, randn([1, 3, 5], { device: 'sim' })), (e: unknown) => e instanceof Error && /matmul/.test(e.message));
  assert.throws(() => matmulVersion(2, a, randn([1, 4, 5])), (e: unknown) => e instanceof DeviceError);
}));

test.run();
