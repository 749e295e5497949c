// tensor.test.ts: tensor semantics that a numeric parity table does not cover: creation and
// dtype inference, reading back, views sharing storage, casts, type promotion, the meta device,
// the random number generator (reproducibility, statistics, the Philox stream layout, and its
// independence of the thread count), and the CPU kernel dispatch (each instruction-set build
// agrees with the others).
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inspect } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  add, arange, avgPool2d, floorDivide, remainder, bernoulli, bmm, cat, chunk, clamp, conv2d, cumsum, defaultGenerator, div, embedding, empty,
  emptyLike, eq, exp, eye, full, fullLike, gather, Generator, indexSelect, linspace, manualSeed, maskedFill, matmul,
  maxPool2d, memoryStats, mul, oneHot, ones, onesLike, pad, promoteTypes, rand, randint, randLike, randn, randnLike,
  randperm, runtimeInfo, scatterAdd, ShapeError, softmax, split, stack, sum, tensor, Tensor, tidy, upsampleNearest2d,
  where, zeros, zerosLike, type DType,
} from '../src/index.ts';
import { kernelReport, type KernelReport } from './fixtures/kernels.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

/** Float equality to f32 rounding (for values computed in f64 in the test). */
const f32 = Math.fround;

// ---- creation ------------------------------------------------------------------------------

test('tensor() infers shape and dtype from nested arrays, typed arrays, scalars and booleans', () => tidy(() => {
  const cases: [unknown, number[], DType][] = [
    [[[1, 2, 3], [4, 5, 6]], [2, 3], 'f32'],
    [3.5, [], 'f32'],
    [true, [], 'bool'],
    [[true, false, true], [3], 'bool'],
    [[[true], [1]], [2, 1], 'bool'],  // any boolean leaf makes it bool
    [new Float32Array([1, 2]), [2], 'f32'],
    [new Float64Array([1, 2, 3]), [3], 'f64'],
    [new Int32Array([1, 2]), [2], 'i32'],
    [new Uint8Array([1, 0, 1]), [3], 'bool'],
    [[new Int32Array([1, 2]), new Int32Array([3, 4])], [2, 2], 'i32'],
    [[], [0], 'f32'],
    [[[]], [1, 0], 'f32'],
    [[[[[1]]]], [1, 1, 1, 1], 'f32'],
  ];
  for (const [data, shape, dtype] of cases) {
    const t = tensor(data as never);
    assert.equal(t.shape, shape, `shape of ${inspect(data)}`);
    assert.is(t.dtype, dtype, `dtype of ${inspect(data)}`);
    assert.is(t.device, 'cpu');
    assert.ok(t.isContiguous);
  }
  assert.equal(tensor([[1, 2], [3, 4]]).toArray(), [[1, 2], [3, 4]]);
  assert.equal(tensor([true, false]).toArray(), [true, false]);
  assert.equal(tensor(new Uint8Array([2, 0])).toArray(), [true, false]);
  assert.equal(tensor([1.7, -1.7, 2], { dtype: 'i32' }).toArray(), [1, -1, 2]);
  assert.equal(tensor([1, 0, 2], { dtype: 'bool' }).toArray(), [true, false, true]);
  assert.equal(tensor([0.1], { dtype: 'f64' }).toArray(), [0.1]);
  assert.equal(tensor([0.1]).toArray(), [f32(0.1)]);
  assert.equal(tensor(new Float64Array([0.1]), { dtype: 'f32' }).toArray(), [f32(0.1)]);
  assert.is(tensor(7, { dtype: 'i32' }).item(), 7);
}));

test('zeros, ones, full, empty and the *Like variants', () => tidy(() => {
  assert.equal(zeros([2, 2]).toArray(), [[0, 0], [0, 0]]);
  assert.is(zeros([2]).dtype, 'f32');
  assert.equal(ones(3).toArray(), [1, 1, 1]);
  assert.equal(ones([]).shape, []);
  assert.is(ones([], { dtype: 'i32' }).item(), 1);
  assert.equal(zeros([0, 3]).shape, [0, 3]);
  assert.equal(full([2], 7).toArray(), [7, 7]);
  assert.is(full([2], 7).dtype, 'f32');
  assert.is(full([2], true).dtype, 'bool');
  assert.equal(full([2], true).toArray(), [true, true]);
  assert.equal(full([2], 2.9, { dtype: 'i32' }).toArray(), [2, 2]);
  assert.equal(full([1], 1 / 3, { dtype: 'f64' }).toArray(), [1 / 3]);
  assert.equal(empty([2, 5]).shape, [2, 5]);
  assert.is(empty([2], { dtype: 'bf16' }).dtype, 'bf16');
  const x = arange(6).reshape(2, 3);  // i32
  const z = zerosLike(x), o = onesLike(x, { dtype: 'f64' }), f = fullLike(x, 4), e = emptyLike(x);
  assert.equal([z.shape, z.dtype, z.toArray()], [[2, 3], 'i32', [[0, 0, 0], [0, 0, 0]]]);
  assert.equal([o.shape, o.dtype], [[2, 3], 'f64']);
  assert.equal(f.toArray(), [[4, 4, 4], [4, 4, 4]]);
  assert.equal([e.shape, e.dtype], [[2, 3], 'i32']);
  const m = zerosLike(x, { device: 'meta' });
  assert.equal([m.device, m.shape], ['meta', [2, 3]]);
}));

test('arange: every argument form and its dtype inference', () => tidy(() => {
  const check = (t: Tensor, dtype: DType, values: number[]) => {
    assert.is(t.dtype, dtype);
    assert.equal(t.toArray(), values);
  };
  check(arange(5), 'i32', [0, 1, 2, 3, 4]);
  check(arange(2, 5), 'i32', [2, 3, 4]);
  check(arange(0, 10, 3), 'i32', [0, 3, 6, 9]);
  check(arange(10, 0, -3), 'i32', [10, 7, 4, 1]);
  check(arange(-3, 0), 'i32', [-3, -2, -1]);
  check(arange(3, 3), 'i32', []);
  check(arange(5, 2), 'i32', []);
  check(arange(0, 1, 0.25), 'f32', [0, 0.25, 0.5, 0.75]);
  check(arange(0.5, 3), 'f32', [0.5, 1.5, 2.5]);
  check(arange(2.5), 'f32', [0, 1, 2]);
  check(arange(5, { dtype: 'f32' }), 'f32', [0, 1, 2, 3, 4]);
  check(arange(1, 4, { dtype: 'f64' }), 'f64', [1, 2, 3]);
  check(arange(0, 6, 2, { dtype: 'bf16' }), 'bf16', [0, 2, 4]);
  assert.equal(arange(1, 2, 0.1).shape, [10]);  // as torch.arange: ceil((end - start) / step)
  assert.is(arange(4, { device: 'meta' }).device, 'meta');
}));

test('linspace ends exactly at end; eye(n) and eye(n, m)', () => tidy(() => {
  assert.equal(linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
  const ranges: [number, number, number][] = [[0, 0.7, 8], [-1, 0.3, 11], [3, -2.2, 7], [0.1, 0.9, 1000]];
  for (const [a, b, n] of ranges) {
    const f = linspace(a, b, n).data(), d = linspace(a, b, n, { dtype: 'f64' }).data();
    assert.is(f[n - 1], f32(b), `f32 last value of linspace(${a}, ${b}, ${n})`);
    assert.is(d[n - 1], b, `f64 last value of linspace(${a}, ${b}, ${n})`);
    assert.is(d[0], a);
    for (let i = 1; i < n; i++) assert.ok(Math.abs(d[i] - d[i - 1] - (b - a) / (n - 1)) < 1e-12);
  }
  assert.equal(linspace(2, 5, 1).toArray(), [2]);
  assert.equal(linspace(2, 5, 0).shape, [0]);
  assert.is(linspace(0, 1, 3).dtype, 'f32');
  assert.equal(eye(3).toArray(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
  assert.equal(eye(2, 4).toArray(), [[1, 0, 0, 0], [0, 1, 0, 0]]);
  assert.equal(eye(3, 2).toArray(), [[1, 0], [0, 1], [0, 0]]);
  assert.equal(eye(2, { dtype: 'bool' }).toArray(), [[true, false], [false, true]]);
  assert.is(eye(2, 3, { dtype: 'i32' }).dtype, 'i32');
  assert.equal(eye(0).shape, [0, 0]);
}));

// ---- reading back --------------------------------------------------------------------------

test('toArray nesting, data() typed arrays (bf16 and f16 widened to Float32Array), item()', () => tidy(() => {
  assert.equal(arange(24).reshape(2, 3, 4).toArray(), [
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]],
    [[12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]],
  ]);
  assert.is(tensor(2.5).toArray(), 2.5);
  assert.is(tensor(false).toArray(), false);
  assert.equal(zeros([2, 0]).toArray(), [[], []]);
  const kinds: [DType, string][] = [['f32', 'Float32Array'], ['f64', 'Float64Array'], ['bf16', 'Float32Array'], ['f16', 'Float32Array'], ['i32', 'Int32Array'], ['bool', 'Uint8Array']];
  for (const [dtype, cls] of kinds) {
    const d = ones([3], { dtype }).data();
    assert.is(d.constructor.name, cls, dtype);
    assert.equal(Array.from(d), [1, 1, 1]);
  }
  assert.equal(Array.from(tensor([1.5, -2.25, 3.140625], { dtype: 'bf16' }).data()), [1.5, -2.25, 3.140625]);
  // data() of a view is the view's elements in row-major order
  const t = arange(6).reshape(2, 3).t();
  assert.equal(Array.from(t.data()), [0, 3, 1, 4, 2, 5]);
  assert.is(tensor([[4.5]]).item(), 4.5);
  assert.is(tensor([true]).item(), true);
  assert.is(arange(6).select(0, 4).item(), 4);
  assert.throws(() => arange(2).item(), (e: unknown) => e instanceof ShapeError && /^item: expected a tensor with one element/.test((e as Error).message));
}));

test('toString and util.inspect: a readable summary that elides big tensors', () => tidy(() => {
  assert.is(tensor([1, 2.5]).toString(), 'tensor([1.0000, 2.5000], shape=[2], dtype=f32, device=cpu)');
  assert.is(tensor([[1, 2], [3, 4]], { dtype: 'i32' }).toString(), 'tensor([[1, 2],\n        [3, 4]], shape=[2, 2], dtype=i32, device=cpu)');
  assert.is(tensor([true, false]).toString(), 'tensor([true, false], shape=[2], dtype=bool, device=cpu)');
  assert.is(tensor(5, { dtype: 'i32' }).toString(), 'tensor(5, shape=[], dtype=i32, device=cpu)');
  assert.is(tensor([NaN, Infinity, -Infinity, 1e6, 1e-6]).toString(),
    'tensor([nan, inf, -inf, 1.0000e+6, 1.0000e-6], shape=[5], dtype=f32, device=cpu)');
  assert.is(zeros([2, 3], { device: 'meta' }).toString(), 'tensor(..., shape=[2, 3], dtype=f32, device=meta)');
  assert.is(arange(64).reshape(8, 8).toString(), [
    'tensor([[0, 1, 2, ..., 5, 6, 7],',
    '        [8, 9, 10, ..., 13, 14, 15],',
    '        [16, 17, 18, ..., 21, 22, 23],',
    '        ...,',
    '        [40, 41, 42, ..., 45, 46, 47],',
    '        [48, 49, 50, ..., 53, 54, 55],',
    '        [56, 57, 58, ..., 61, 62, 63]], shape=[8, 8], dtype=i32, device=cpu)',
  ].join('\n'));
  const big = arange(1_000_000, { dtype: 'f32' }).reshape(100, 100, 100);
  const s = big.toString();
  assert.ok(s.length < 4000, `summary of a 100x100x100 tensor is ${s.length} characters`);
  assert.match(s, /^tensor\(\[\[\[0\.0000, 1\.0000, 2\.0000, \.\.\., 97\.0000, 98\.0000, 99\.0000\],/);
  assert.match(s, /1\.0000e\+6\]\]\], shape=\[100, 100, 100\], dtype=f32, device=cpu\)$/);
  assert.is(inspect(big), s);
  assert.is(inspect({ t: tensor([1]) }), '{ t: tensor([1.0000], shape=[1], dtype=f32, device=cpu) }');
  assert.is(`${tensor([2], { dtype: 'i32' })}`, 'tensor([2], shape=[1], dtype=i32, device=cpu)');
  const d = ones([2]);
  d.dispose();
  assert.is(d.toString(), 'tensor(<disposed>, shape=[2], dtype=f32, device=cpu)');
}));

// ---- views ---------------------------------------------------------------------------------

test('views share storage and have the expected shape, strides and offset', () => tidy(() => {
  const x = arange(12, { dtype: 'f32' }).reshape(3, 4);
  assert.equal([x.strides, x.offset, x.isContiguous], [[4, 1], 0, true]);
  const views: [Tensor, number[], number[], number, unknown][] = [
    [x.t(), [4, 3], [1, 4], 0, [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]],
    [x.select(1, 2), [3], [4], 2, [2, 6, 10]],
    [x.select(0, -1), [4], [1], 8, [8, 9, 10, 11]],
    [x.narrow(0, 1, 2), [2, 4], [4, 1], 4, [[4, 5, 6, 7], [8, 9, 10, 11]]],
    [x.slice(1, 1, 4, 2), [3, 2], [4, 2], 1, [[1, 3], [5, 7], [9, 11]]],
    [x.slice(0, -2), [2, 4], [4, 1], 4, [[4, 5, 6, 7], [8, 9, 10, 11]]],
    [x.unsqueeze(1), [3, 1, 4], [4, 4, 1], 0, [[[0, 1, 2, 3]], [[4, 5, 6, 7]], [[8, 9, 10, 11]]]],
    [x.select(0, 0).expand(2, 4), [2, 4], [0, 1], 0, [[0, 1, 2, 3], [0, 1, 2, 3]]],
    [x.reshape(2, 6), [2, 6], [6, 1], 0, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]],
    [x.view(4, 3).permute(1, 0), [3, 4], [1, 3], 0, [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]],
    [x.chunk(2, 1)[1], [3, 2], [4, 1], 2, [[2, 3], [6, 7], [10, 11]]],
    [x.split([1, 2], 0)[1], [2, 4], [4, 1], 4, [[4, 5, 6, 7], [8, 9, 10, 11]]],
    [x.unbind(1)[3], [3], [4], 3, [3, 7, 11]],
    [x.flatten(), [12], [1], 0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]],
    [x.t().squeeze(), [4, 3], [1, 4], 0, [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]],
  ];
  for (const [v, shape, strides, offset, values] of views) {
    assert.equal([v.shape, v.strides, v.offset], [shape, strides, offset]);
    assert.ok(v.storage === x.storage, 'a view shares its base storage');
    assert.equal(v.toArray(), values);
  }
  assert.not.ok(x.t().isContiguous);
  // a contiguous() of a contiguous tensor and to() the same dtype are views too
  assert.ok(x.contiguous().storage === x.storage);
  assert.ok(x.to('f32').storage === x.storage);
  assert.ok(x.clone().storage !== x.storage);
}));

test('reshape of a non-contiguous tensor copies; view() of it throws ShapeError', () => tidy(() => {
  const x = arange(12, { dtype: 'f32' }).reshape(3, 4);
  const t = x.t();
  const r = t.reshape(12);
  assert.ok(r.storage !== x.storage, 'reshape had to copy');
  assert.ok(r.isContiguous);
  assert.equal(r.toArray(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assert.throws(() => t.view(12), (e: unknown) => e instanceof ShapeError && /^view: .*not compatible with the strides/.test((e as Error).message));
  // a reshape the strides allow stays a view, even of a non-contiguous tensor
  const s = x.slice(1, 0, 4, 2);  // [3, 2] with strides [4, 2]
  const v = s.reshape(3, 2, 1);
  assert.ok(v.storage === x.storage);
  assert.equal(v.strides.slice(0, 2), [4, 2]);
  assert.equal(v.toArray(), [[[0], [2]], [[4], [6]], [[8], [10]]]);
  const c = t.contiguous();
  assert.ok(c.storage !== x.storage && c.isContiguous);
  assert.equal(c.toArray(), t.toArray());
}));

// ---- casts ---------------------------------------------------------------------------------

test('to(dtype): truncation toward zero, saturation, NaN -> 0, bf16 round-to-nearest-even', () => tidy(() => {
  const src = [1.7, -1.7, 0.5, -0.5, 2147483647.5, 3e10, -3e10, Infinity, -Infinity, NaN];
  const want = [1, -1, 0, 0, 2147483647, 2147483647, -2147483648, 2147483647, -2147483648, 0];
  assert.equal(tensor(src, { dtype: 'f64' }).to('i32').toArray(), want);
  assert.equal(tensor(src).to('i32').toArray(), want.map((v, i) => (i === 4 ? 2147483647 : v)));
  assert.equal(tensor(src, { dtype: 'i32' }).toArray(), want, 'tensor(..., {dtype: i32}) casts the same way as to(i32)');
  assert.equal(full([1], NaN, { dtype: 'i32' }).toArray(), [0]);
  // bf16 keeps 8 significant bits: ties go to the even mantissa
  const ties = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 257, 259, 2 ** 24 + 2 ** 16, -(1 + 2 ** -8)];
  const even = [1, 1 + 2 ** -6, 256, 260, 2 ** 24, -1];
  assert.equal(Array.from(tensor(ties).to('bf16').data()), even);
  assert.equal(Array.from(tensor(ties, { dtype: 'bf16' }).data()), even, 'the host conversion rounds the same way');
  assert.equal(Array.from(tensor([257, 259], { dtype: 'i32' }).to('bf16').data()), [256, 260]);
  assert.equal(Array.from(tensor([1 + 2 ** -8 + 2 ** -20]).to('bf16').data()), [1 + 2 ** -7], 'above the tie rounds up');
  const special = tensor([NaN, Infinity, -Infinity, 3.4e38]).to('bf16').data();
  assert.ok(Number.isNaN(special[0]));
  assert.equal(Array.from(special.subarray(1)), [Infinity, -Infinity, Infinity]);
  assert.equal(tensor([0.5, 0, NaN, -2]).to('bool').toArray(), [true, false, true, true]);
  assert.equal(tensor([true, false]).to('f32').toArray(), [1, 0]);
  assert.equal(tensor([0.1], { dtype: 'f64' }).to('f32').toArray(), [f32(0.1)]);
  assert.equal(tensor([2.5, -2.5]).to('bf16').to('i32').toArray(), [2, -2]);
}));

// ---- type promotion --------------------------------------------------------------------------

test('type promotion of binary ops', () => tidy(() => {
  const i = tensor([1, 2], { dtype: 'i32' }), b = tensor([true, false]), h = ones([2], { dtype: 'bf16' });
  const f = ones([2]), d = ones([2], { dtype: 'f64' });
  const cases: [Tensor, DType, unknown][] = [
    [i.add(0.5), 'f32', [1.5, 2.5]],
    [i.add(1), 'i32', [2, 3]],
    [i.mul(-2), 'i32', [-2, -4]],
    [h.mul(2), 'bf16', [2, 2]],
    [h.add(0.5), 'bf16', [1.5, 1.5]],
    [b.add(b), 'i32', [2, 0]],
    [b.mul(b), 'i32', [1, 0]],
    [b.add(1), 'i32', [2, 1]],
    [b.mul(1.5), 'f32', [1.5, 0]],
    [div(tensor([7, -7], { dtype: 'i32' }), tensor([2, 2], { dtype: 'i32' })), 'f32', [3.5, -3.5]],
    [i.div(2), 'f32', [0.5, 1]],
    [i.add(f), 'f32', [2, 3]],
    [i.add(h), 'bf16', [2, 3]],
    [h.add(f), 'f32', [2, 2]],
    [f.add(d), 'f64', [2, 2]],
    [i.add(b), 'i32', [2, 2]],
    [i.lt(2), 'bool', [true, false]],
    [eq(i, f), 'bool', [true, false]],
    [f.ge(d), 'bool', [true, true]],
    [b.logicalAnd(i), 'bool', [true, false]],
    [exp(tensor([0], { dtype: 'i32' })), 'f32', [1]],
    [i.neg(), 'i32', [-1, -2]],
    [i.abs(), 'i32', [1, 2]],
    [i.sqrt(), 'f32', [1, Math.fround(Math.SQRT2)]],
    [sum(b), 'i32', 1],
    [i.mean(), 'f32', 1.5],
    [cumsum(b, 0), 'i32', [1, 1]],
    [clamp(i, 0, 1), 'i32', [1, 1]],
    [clamp(i, 0, 1.5), 'f32', [1, 1.5]],
    [where(b, i, 0.5), 'f32', [1, 0.5]],
    [where(b, i, f), 'f32', [1, 1]],
    [i.pow(2), 'i32', [1, 4]],
    [floorDivide(tensor([7, -7], { dtype: 'i32' }), 2), 'i32', [3, -4]],
    [remainder(tensor([7, -7], { dtype: 'i32' }), 2), 'i32', [1, 1]],
    [floorDivide(tensor([7, -7]), 2), 'f32', [3, -4]],
  ];
  for (const [t, dtype, values] of cases) {
    assert.is(t.dtype, dtype);
    assert.equal(t.toArray(), values);
  }
  assert.is(promoteTypes('i32', 'bf16'), 'bf16');
  assert.is(promoteTypes('bool', 'i32'), 'i32');
  assert.is(promoteTypes('bf16', 'f32'), 'f32');
  assert.is(promoteTypes('f64', 'f32'), 'f64');
}));

// ---- the meta device ---------------------------------------------------------------------------

test('every op family runs on meta with the right shapes and dtypes and no memory', () => {
  const cpu0 = memoryStats('cpu'), meta0 = memoryStats('meta').liveTensors;
  const rng = defaultGenerator.getState();  // the random ops below advance it, as on any device
  tidy(() => {
    const meta = { device: 'meta' } as const;
    const check = (t: Tensor, shape: number[], dtype: DType = 'f32') => {
      assert.is(t.device, 'meta');
      assert.equal(t.shape, shape);
      assert.is(t.dtype, dtype);
    };
    // a full-size embedding table and a projection, as in a 13B LLaMA
    const table = zeros([32000, 5120], meta);
    check(table, [32000, 5120]);
    const tokens = randint(0, 32000, [2, 77], meta);
    check(tokens, [2, 77], 'i32');
    const h = embedding(tokens, table);
    check(h, [2, 77, 5120]);
    check(matmul(h, randn([5120, 13824], meta)), [2, 77, 13824]);
    check(bmm(ones([8, 64, 128], meta), ones([8, 128, 32], meta)), [8, 64, 32]);
    // creation
    check(ones([3], { device: 'meta', dtype: 'bf16' }), [3], 'bf16');
    check(full([2, 2], true, meta), [2, 2], 'bool');
    check(arange(10, meta), [10], 'i32');
    check(linspace(0, 1, 7, meta), [7]);
    check(eye(4, 5, meta), [4, 5]);
    check(empty([6], meta), [6]);
    check(rand([4, 4], { device: 'meta', dtype: 'f64' }), [4, 4], 'f64');
    check(randperm(100, meta), [100], 'i32');
    check(bernoulli(0.5, [3], meta), [3]);
    check(tensor([[1, 2], [3, 4]], meta), [2, 2]);
    check(randLike(table), [32000, 5120]);
    check(randnLike(table.select(0, 0)), [5120]);
    // views and copies
    const x = ones([4, 6, 8], meta);
    check(x.reshape(24, 8), [24, 8]);
    check(x.permute(2, 0, 1), [8, 4, 6]);
    check(x.transpose(0, 2).reshape(-1), [192]);
    check(x.slice(1, 1, 5, 2), [4, 2, 8]);
    check(x.select(2, 3), [4, 6]);
    check(x.narrow(0, 1, 2), [2, 6, 8]);
    check(x.unsqueeze(0).expand(3, 4, 6, 8), [3, 4, 6, 8]);
    check(x.flatten(1), [4, 48]);
    check(cat([x, x], 1), [4, 12, 8]);
    check(stack([x, x], 0), [2, 4, 6, 8]);
    assert.is(chunk(x, 3, 2).length, 3);
    assert.is(split(x, [1, 3], 0)[1].shape[0], 3);
    check(x.contiguous(), [4, 6, 8]);
    check(x.clone(), [4, 6, 8]);
    check(x.to('bf16'), [4, 6, 8], 'bf16');
    check(ones([2]).to('meta'), [2]);
    // element-wise and promotion
    check(add(x, ones([8], meta)), [4, 6, 8]);
    check(mul(arange(6, meta), 0.5), [6]);
    check(x.lt(0), [4, 6, 8], 'bool');
    check(where(x.gt(0), x, 0), [4, 6, 8]);
    check(x.gelu({ approximate: 'tanh' }).sigmoid().clamp(0, 1), [4, 6, 8]);
    check(x.pow(x), [4, 6, 8]);
    // reductions
    check(x.sum([0, 2]), [6]);
    check(x.mean(-1, true), [4, 6, 1]);
    check(x.argmax(1), [4, 8], 'i32');
    check(x.max(), []);
    check(x.var(1, { keepdim: true }), [4, 1, 8]);
    check(x.logsumexp(2), [4, 6]);
    check(softmax(x, 1), [4, 6, 8]);
    check(x.logSoftmax(2), [4, 6, 8]);
    check(x.cumsum(0), [4, 6, 8]);
    check(x.gt(0).all(1), [4, 8], 'bool');
    // indexing
    const idx = zeros([4, 2, 8], { device: 'meta', dtype: 'i32' });
    check(gather(x, 1, idx), [4, 2, 8]);
    check(scatterAdd(x, 1, idx, ones([4, 2, 8], meta)), [4, 6, 8]);
    check(indexSelect(x, 2, arange(3, meta)), [4, 6, 3]);
    check(maskedFill(x, ones([6, 8], { device: 'meta', dtype: 'bool' }), 0), [4, 6, 8]);
    check(x.tril(1), [4, 6, 8]);
    check(oneHot(arange(5, meta), 7), [5, 7], 'i32');
    // images
    const img = ones([2, 3, 32, 32], meta);
    check(conv2d(img, ones([16, 3, 3, 3], meta), ones([16], meta), { stride: 2, padding: 1 }), [2, 16, 16, 16]);
    check(maxPool2d(img, 2), [2, 3, 16, 16]);
    const [mp, mi] = maxPool2d(img, 3, { stride: 2, padding: 1, returnIndices: true });
    check(mp, [2, 3, 16, 16]);
    check(mi, [2, 3, 16, 16], 'i32');
    check(avgPool2d(img, 4), [2, 3, 8, 8]);
    check(upsampleNearest2d(img, { scaleFactor: 2 }), [2, 3, 64, 64]);
    check(pad(img, [1, 1, 2, 2]), [2, 3, 36, 34]);
  });
  const cpu1 = memoryStats('cpu');
  assert.is(cpu1.allocated, cpu0.allocated, 'meta tensors allocate nothing');
  assert.is(cpu1.reserved, cpu0.reserved);
  assert.is(cpu1.freshAllocations, cpu0.freshAllocations);
  assert.is(cpu1.liveTensors, cpu0.liveTensors);
  assert.is(memoryStats('meta').liveTensors, meta0);
  defaultGenerator.setState(rng);
});

// ---- random numbers ----------------------------------------------------------------------------

/** Philox 4x32-10 in plain JavaScript, straight from the Random123 definition (native/cpu/philox.h). */
function philox(counter: bigint, seed: bigint): number[] {
  const M = 0xffffffffn;
  let c = [counter & M, counter >> 32n, 0n, 0n];
  let k0 = seed & M, k1 = seed >> 32n;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + 0x9e3779b9n) & M;
      k1 = (k1 + 0xbb67ae85n) & M;
    }
    const p0 = 0xd2511f53n * c[0], p1 = 0xcd9e8d57n * c[2];
    c = [(p1 >> 32n) ^ c[1] ^ k0, p1 & M, (p0 >> 32n) ^ c[3] ^ k1, p0 & M];
  }
  return c.map(Number);
}

test('Philox stream layout: rand, randint and randperm follow native/cpu/philox.h', () => tidy(() => {
  // Random123's known-answer vectors for philox4x32_10 check the JavaScript reference itself.
  assert.equal(philox(0n, 0n), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  const seed = 2 ** 40 + 12345, g = new Generator(seed);
  g.offset = 7;
  const u = rand([10], { generator: g }).data();
  assert.is(g.offset, 7 + 3, 'ten f32 values use three blocks');
  for (let i = 0; i < 10; i++) {
    const w = philox(BigInt(7 + Math.floor(i / 4)), BigInt(seed))[i % 4];
    assert.is(u[i], (w >>> 8) / 2 ** 24, `rand element ${i}`);
  }
  const r = randint(-5, 1000, [9], { generator: g }).data();
  for (let i = 0; i < 9; i++) {
    const w = philox(BigInt(10 + Math.floor(i / 4)), BigInt(seed))[i % 4];
    assert.is(r[i], -5 + Number((BigInt(w) * 1005n) >> 32n), `randint element ${i}`);
  }
  assert.is(g.offset, 13);
  const p = Array.from(randperm(6, { generator: g }).data());
  const keys = [0, 1, 2, 3, 4, 5].map((i) => philox(BigInt(13 + Math.floor(i / 4)), BigInt(seed))[i % 4]);
  assert.equal(p, [0, 1, 2, 3, 4, 5].sort((a, b) => keys[a] - keys[b] || a - b));
  const d = rand([3], { dtype: 'f64', generator: new Generator(seed) }).data();
  for (let i = 0; i < 3; i++) {
    const w = philox(BigInt(Math.floor(i / 2)), BigInt(seed));
    const bits = (BigInt(w[2 * (i % 2)]) << 21n) | (BigInt(w[2 * (i % 2) + 1]) >> 11n);
    assert.is(d[i], Number(bits) / 2 ** 53, `f64 rand element ${i}`);
  }
}));

test('manualSeed reproduces; different seeds differ; generators resume from getState', () => tidy(() => {
  const saved = defaultGenerator.getState();
  manualSeed(42);
  const a = rand([1000]).data(), an = randn([7]).data();
  manualSeed(42);
  const b = rand([1000]).data(), bn = randn([7]).data();
  assert.equal(Array.from(a), Array.from(b));
  assert.equal(Array.from(an), Array.from(bn));
  manualSeed(43);
  const c = rand([1000]).data();
  assert.ok(a.some((v, i) => v !== c[i]));
  defaultGenerator.setState(saved);

  const g = new Generator(7);
  rand([10], { generator: g });
  const state = g.getState();
  assert.equal(state, { seed: 7, offset: 3 });
  const next = [randn([5], { generator: g }).data(), randint(0, 9, [6], { generator: g }).data(), rand([3], { dtype: 'f64', generator: g }).data()];
  const g2 = new Generator();
  g2.setState(state);
  const again = [randn([5], { generator: g2 }).data(), randint(0, 9, [6], { generator: g2 }).data(), rand([3], { dtype: 'f64', generator: g2 }).data()];
  for (let k = 0; k < 3; k++) assert.equal(Array.from(again[k]), Array.from(next[k]));
  assert.equal(g2.getState(), g.getState());
  // independent generators do not disturb each other or the default one
  const before = defaultGenerator.getState();
  rand([100], { generator: new Generator(1) });
  assert.equal(defaultGenerator.getState(), before);
}));

function moments(x: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0, s2 = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    s += x[i];
    s2 += x[i] * x[i];
    min = Math.min(min, x[i]);
    max = Math.max(max, x[i]);
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean), min, max };
}

test('distributions: rand, randn, randint, randperm, bernoulli', () => tidy(() => {
  const g = new Generator(12345);
  const n = 100_000;
  for (const dtype of ['f32', 'f64', 'bf16'] as const) {
    const m = moments(rand([n], { dtype, generator: g }).data());
    assert.ok(m.min >= 0 && m.max < 1, `${dtype} rand in [0, 1)`);
    assert.ok(Math.abs(m.mean - 0.5) < 0.01, `${dtype} rand mean ${m.mean}`);
  }
  const u = moments(rand([n], { generator: g }).mul(4).sub(2).data());
  assert.ok(u.min >= -2 && u.max < 2);
  const z = moments(randn([n], { generator: g }).data());
  assert.ok(Math.abs(z.mean) < 0.02, `randn mean ${z.mean}`);
  assert.ok(Math.abs(z.std - 1) < 0.02, `randn std ${z.std}`);
  const zs = moments(randn([n], { generator: g, mean: 3, std: 0.5 }).data());
  assert.ok(Math.abs(zs.mean - 3) < 0.01 && Math.abs(zs.std - 0.5) < 0.01);
  const ri = randint(-3, 5, [10_000], { generator: g });
  assert.is(ri.dtype, 'i32');
  const seen = new Set(ri.data());
  assert.equal([...seen].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3, 4]);
  const p = randperm(1000, { generator: g }).data();
  assert.equal(Array.from(p).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assert.ok(p.some((v, i) => v !== i), 'not the identity');
  const bern = bernoulli(0.3, [n], { generator: g });
  assert.is(bern.dtype, 'f32');
  assert.ok(Math.abs(moments(bern.data()).mean - 0.3) < 0.01);
  const probs = tensor([0, 1, 0.5]).expand(20_000, 3).contiguous();
  const bt = bernoulli(probs, { generator: g });
  const cols = bt.mean(0).data();
  assert.equal([cols[0], cols[1]], [0, 1]);
  assert.ok(Math.abs(cols[2] - 0.5) < 0.02);
}));

// ---- other processes: thread count and instruction set ----------------------------------------

const run = promisify(execFile);

/** The fixture's report from a child process with `env` added to a clean copy of ours. */
async function childReport(env: Record<string, string>): Promise<KernelReport> {
  const base = { ...process.env };
  delete base.EMU_NUM_THREADS;
  delete base.EMU_CPU_ISA;
  delete base.EMU_CPU_BF16_DOT;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'kernels.ts')], {
    cwd: root, env: { ...base, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 30_000,
  });
  return JSON.parse(stdout) as KernelReport;
}

function assertClose(actual: number[], expected: number[], what: string, rel = 1e-5, abs = 1e-5): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const tol = abs + rel * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) assert.unreachable(`${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

test('random streams and kernels are independent of the thread count and the instruction set', async () => {
  // The thread-count children run this process's instruction set (which EMU_CPU_ISA may have
  // chosen) and its EMU_CPU_BF16_DOT (which picks the bf16 matmul).
  const isa = runtimeInfo().cpuIsa, dotEnv = process.env.EMU_CPU_BF16_DOT;
  const same = { EMU_CPU_ISA: isa, ...(dotEnv === undefined ? {} : { EMU_CPU_BF16_DOT: dotEnv }) };
  const children = Promise.all([
    childReport({ EMU_NUM_THREADS: '1', ...same }),
    childReport({ EMU_NUM_THREADS: '3', ...same }),
    childReport({ EMU_CPU_ISA: 'generic' }),
    childReport({ EMU_CPU_ISA: 'avx2' }),
    childReport({ EMU_CPU_ISA: isa, EMU_CPU_BF16_DOT: '1' }),
  ]);
  const here_ = kernelReport();
  const [one, three, generic, avx2, dot] = await children;
  assert.is(one.threads, 1);
  assert.is(three.threads, 3);
  assert.is(here_.isa, runtimeInfo().cpuIsa);
  assert.is(generic.isa, 'generic');
  if (here_.isa !== 'generic') assert.is(avx2.isa, 'avx2');
  for (const child of [one, three]) {
    assert.equal(child.random, here_.random, `Philox streams with ${child.threads} threads`);
    assert.equal(child.ops, here_.ops, `op results with ${child.threads} threads are bit-identical`);
  }
  assert.is(generic.bf16Dot, 'absent');
  if (here_.bf16Dot !== 'absent') assert.is(dot.bf16Dot, 'default', 'EMU_CPU_BF16_DOT=1 makes the avx512_bf16 matmul the bf16 default');
  for (const child of [generic, avx2, dot]) {
    assert.equal(child.random, here_.random, `Philox streams with the ${child.isa} kernels`);
    for (const [name, values] of Object.entries(here_.ops)) {
      // bf16 matmul rounds f32 sums that differ in their last bits between kernels (fused or
      // separate multiply-adds, dot products of pairs), which may move a result by one bf16 unit.
      if (name === 'matmulBf16') assertClose(child.ops[name], values, `${child.isa} ${name}`, 2 ** -7, 1e-4);
      else assertClose(child.ops[name], values, `${child.isa} ${name}`);
    }
  }
});

test.run();
