// elementwise.test.ts: native/cuda/elementwise.cu's vector path on `sim`. fill, copy/cast, unary,
// binary and where take 16-byte packs per thread when every operand is contiguous and aligned, and the
// strided grid-stride kernels otherwise; both compute each element with the same function, so
// they must give the same bits. Each case runs an op on contiguous operands (the vector path, or
// the strided one when shifted by an element: contiguous but not aligned) and on step-2 views
// holding the same values (always the strided path), and compares the bits. Lengths straddle the
// pack sizes (4 f32, 8 bf16/f16, 2 f64; the tail after the last whole pack); widths mix (a cast, a
// comparison writing bool, i32 arithmetic); three thread orders. test/parity.test.ts compares
// every op on sim with the CPU kernels.
//
// Reductions (reduce.cu) take a vector path too, when each output's reduced elements are
// contiguous and aligned: thread t then folds 16-byte packs t, t + blockDim, ... instead of
// elements t, t + blockDim, ..., a different summation order. Extremes, arg reductions and
// all/any must still equal the strided path's bits; sums, means, variances and log-sum-exps
// (accumulated in double) agree within a few units of the dtype; every order gives the same bits.
// Softmax and log-softmax read their lines in 16-byte chunks the same way (the sum in another
// order): within a few units too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { full, randn, setSimOrder, simOrder, stack, Tensor, tidy, zerosLike, type DType } from '../../src/index.ts';

const ORDERS = ['sequential', 'reverse', 'random:7'];
const LENGTHS = [1, 3, 7, 8, 9, 17, 1029];

const bits = (t: Tensor): number[] => Array.from(t.to('cpu').contiguous().to(t.dtype === 'bool' ? 'i32' : t.dtype === 'f64' ? 'f64' : 'f32').data() as ArrayLike<number>);

/** The ops under test on x and y (same shape, dtype). */
const OPS: [string, (x: Tensor, y: Tensor) => Tensor][] = [
  ['add', (x, y) => x.add(y)],
  ['mul', (x, y) => x.mul(y)],
  ['exp', (x) => x.exp()],
  ['gelu', (x) => x.gelu()],
  ['gt (bool out)', (x, y) => x.gt(y)],
  ['cast to bf16', (x) => x.to('bf16')],
  ['cast to f64', (x) => x.to('f64')],
  ['copy', (x) => x.contiguous().clone()],
  ['i32 add', (x, y) => x.mul(100).to('i32').add(y.mul(100).to('i32'))],
  ['fill', (x) => full(x.shape as number[], 1.5, { dtype: x.dtype, device: x.device })],
  ['where', (x, y) => x.where(x.gt(y), y)],
];

for (const dtype of ['f32', 'bf16', 'f16', 'f64'] as DType[]) {
  test(`sim element-wise ops (${dtype}): the vector and strided paths give the same bits in every thread order`, () => {
    const before = simOrder();
    try {
      tidy(() => {
        for (const n of LENGTHS) {
          for (const shift of [0, 1]) {
            // shift 1: views starting one element into their buffer, so not 16-byte aligned.
            const bx = randn([n + shift], { dtype: 'f32' }), by = randn([n + shift], { dtype: 'f32' });
            // The same values as step-2 views of interleaved buffers: the strided kernels.
            const strided = (t: Tensor) => stack([t, zerosLike(t)], 1).reshape([-1]).slice(0, 0, undefined, 2);
            const dev = (t: Tensor) => t.to(dtype).to('sim');
            const vx = dev(bx).slice(0, shift, n + shift), vy = dev(by).slice(0, shift, n + shift);
            const sx = strided(dev(bx).slice(0, shift, n + shift)), sy = strided(dev(by).slice(0, shift, n + shift));
            assert.ok(n === 1 || (!sx.isContiguous && vx.isContiguous));
            for (const [name, f] of OPS) {
              setSimOrder(ORDERS[0]);
              const want = bits(f(sx, sy));
              for (const order of ORDERS) {
                setSimOrder(order);
                assert.equal(bits(f(vx, vy)), want, `${name}, n ${n}, shift ${shift}, ${order}`);
              }
            }
          }
        }
      });
    } finally {
      setSimOrder(before);
    }
  });
}

const REDUCTIONS: [string, (x: Tensor) => Tensor, boolean][] = [
  ['max', (x) => x.max(-1), true],
  ['argmin', (x) => x.argmin(-1), true],
  ['any', (x) => x.gt(0.5).any(-1), true],
  ['sum', (x) => x.sum(-1), false],
  ['mean', (x) => x.mean(-1), false],
  ['var', (x) => x.var(-1), false],
  ['logsumexp', (x) => x.logsumexp(-1), false],
  ['softmax', (x) => x.softmax(-1), false],
  ['logSoftmax', (x) => x.logSoftmax(-1), false],
];
const UNIT: Record<string, number> = { f32: 2 ** -22, bf16: 2 ** -6, f16: 2 ** -9, f64: 2 ** -50 };

for (const dtype of ['f32', 'bf16', 'f16', 'f64'] as DType[]) {
  test(`sim reductions over the last dim (${dtype}): the vector path agrees with the strided one, in every thread order`, () => {
    const before = simOrder();
    try {
      tidy(() => {
        for (const [rows, n] of [[3, 1029], [3, 1032], [5, 8], [2, 19], [1, 300]]) {
          const base = randn([rows, n], { dtype: 'f32' }).to(dtype).to('sim');
          // The same values with the last dim at stride 2: the strided path.
          const strided = stack([base, zerosLike(base)], -1).select(-1, 0);
          assert.ok(!strided.isContiguous);
          for (const [name, f, exact] of REDUCTIONS) {
            setSimOrder(ORDERS[0]);
            const want = bits(f(strided));
            let first: number[] | undefined;
            for (const order of ORDERS) {
              setSimOrder(order);
              const got = bits(f(base));
              first ??= got;
              assert.equal(got, first, `${name} [${rows},${n}], ${order}: the bits depend on the order`);
            }
            if (exact) assert.equal(first, want, `${name} [${rows},${n}]`);
            else first!.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= UNIT[dtype] * Math.max(1, Math.abs(want[i])), `${name} [${rows},${n}] output ${i}: ${g} vs ${want[i]}`));
          }
        }
      });
    } finally {
      setSimOrder(before);
    }
  });
}

test.run();
