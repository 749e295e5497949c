// gradcheck.test.ts: every differentiable op's backward rule against central finite differences
// in f64 (src/autograd/gradcheck.ts), the table way.
//
// One list of cases (CASES below): each names its inputs (shape and value range) and a function
// of them that calls the op under test. Every case runs twice, as `gradcheck NAME contig` and
// `gradcheck NAME noncontig`: the second makes each input of 2 or more dims a transposed, step-2
// view of a larger tensor (and each 1-d input a step-2 slice) whose other elements are NaN, so
// a backward rule that reads a view as if it were contiguous shows up as NaN or a wrong value.
// A third run, `gradcheck NAME sim`, moves the contiguous inputs (and the constants the case
// makes) to the `sim` device, so every backward rule is also checked on the SIMT emulator.
//
// Values are drawn from a seeded PRNG so runs repeat exactly, and are kept away from the points
// where an op is not differentiable: every input's values are distinct with a minimum gap (no
// ties for max, min, maximum, max-pooling), `away0` keeps them off 0 (relu, abs, reciprocal),
// and ranges keep log, sqrt, pow in their domains. Shapes are small and odd, since gradcheck
// runs two forward passes per input element.
import { test } from 'uvu';
import {
  abs, add, arange, atan2, rope, avgPool2d, bmm, broadcastTo, cat, chunk, clamp, clone, contiguous, conv2d, cos, cumsum, div,
  embedding, erf, exp, expand, flatten, full, gather, gelu, gradcheck, indexSelect, log, log1p, logSoftmax, logsumexp,
  maskedFill, matmul, max, maximum, maxPool2d, mean, min, minimum, mul, narrow, neg, pad, permute, pow, powScalar, prod,
  reciprocal, relu, remainder, reshape, rsqrt, scatterAdd, select, sigmoid, silu, sin, slice, softmax, softplus, split,
  sqrt, square, squeeze, stack, std, sub, sum, tanh, tensor, Tensor, tidy, to, transpose, tril, triu, unbind, unsqueeze,
  upsampleNearest2d, variance, view, where, sign, floor, ceil, round, F, type Device,
} from '../src/index.ts';
import { mulberry32 } from '../src/emu/data/shapes.ts';

// ---- inputs ----------------------------------------------------------------------------------

/** A seeded PRNG per case (mulberry32, seeded from the case's name). */
function rng(name: string): () => number {
  let s = 0x9e3779b9;
  for (const ch of name) s = Math.imul(s ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return mulberry32(s);
}

interface Input {
  shape: number[];
  lo?: number;     // value range, default [-2, 2]
  hi?: number;
  away0?: boolean; // push values at least 0.2 away from 0
}

/**
 * n distinct values in [lo, hi], in random order, any two at least 0.4 (hi - lo) / n apart:
 * the k-th of n equal bins holds one value, jittered within the middle of its bin.
 */
function distinct(n: number, r: () => number, { lo = -2, hi = 2, away0 = false }: Input): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.map((k) => {
    const v = lo + ((hi - lo) * (k + 0.5 + 0.6 * (r() - 0.5))) / n;
    return away0 ? (v >= 0 ? v + 0.2 : v - 0.2) : v;
  });
}

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A contiguous f64 leaf requiring grad. */
function contigLeaf(spec: Input, r: () => number): Tensor {
  const values = distinct(numelOf(spec.shape), r, spec);
  return tensor(Float64Array.from(values), { dtype: 'f64' }).reshape(spec.shape).detach().requiresGrad_();
}

/**
 * A non-contiguous f64 leaf requiring grad: for 2+ dims, a transposed step-2 view of a larger
 * tensor (base [..., W, 2H] -> transpose -> [..., 2H, W] -> every other row); for 1 dim a step-2
 * slice. Elements of the base outside the view are NaN.
 */
function noncontigLeaf(spec: Input, r: () => number): Tensor {
  const s = spec.shape;
  if (s.length === 0) return contigLeaf(spec, r);
  const baseShape = s.length === 1 ? [2 * s[0]] : [...s.slice(0, -2), s[s.length - 1], 2 * s[s.length - 2]];
  const viewOf = (b: Tensor) => (s.length === 1 ? b.slice(0, 0, undefined, 2) : b.transpose(-1, -2).slice(-2, 0, undefined, 2));
  // Where each element of the view lives in the base (row-major over the view).
  const where = tidy(() => viewOf(arange(numelOf(baseShape), { dtype: 'f64' }).reshape(baseShape)).data());
  const values = distinct(numelOf(s), r, spec);
  const base = new Float64Array(numelOf(baseShape)).fill(NaN);
  values.forEach((v, i) => (base[where[i] as number] = v));
  return tidy(() => viewOf(tensor(base, { dtype: 'f64' }).reshape(baseShape)).detach().requiresGrad_());
}

// ---- the table -------------------------------------------------------------------------------

interface Case {
  name: string;
  inputs: Input[];
  fn: (...xs: Tensor[]) => Tensor;
  /** Layouts to run (default both); view() of a transposed tensor is an error, not a case. */
  layouts?: ('contig' | 'noncontig')[];
}

const CASES: Case[] = [];
/** The device of the constants the case functions make (masks, indices): the inputs' device. */
let constDevice: Device = 'cpu';
const add_ = (name: string, inputs: Input[], fn: Case['fn'], layouts?: Case['layouts']) => CASES.push({ name, inputs, fn, layouts });
const I = (shape: number[], opts: Omit<Input, 'shape'> = {}): Input => ({ shape, ...opts });
const POS = { lo: 0.5, hi: 2 };

// Binary ops: same shapes, broadcasting across ranks and size-1 dims, JS scalars on either side.
type Bin = (a: Tensor | number, b: Tensor | number) => Tensor;
const binaries: [string, Bin, Omit<Input, 'shape'>, Omit<Input, 'shape'>][] = [
  ['add', add as Bin, {}, {}],
  ['sub', sub as Bin, {}, {}],
  ['mul', mul as Bin, {}, {}],
  ['div', div as Bin, {}, { away0: true }],
  ['pow', pow as Bin, POS, { lo: -2, hi: 2 }],
  ['maximum', maximum as Bin, {}, {}],
  ['minimum', minimum as Bin, {}, {}],
  ['remainder', remainder as Bin, { lo: -3, hi: 3 }, { lo: 0.7, hi: 1.9 }],
  ['atan2', atan2 as Bin, { away0: true }, { away0: true }],
];
for (const [name, f, ra, rb] of binaries) {
  add_(`${name} same shape`, [I([3, 5], ra), I([3, 5], rb)], (a, b) => f(a, b));
  add_(`${name} broadcast ranks`, [I([2, 3, 5], ra), I([5], rb)], (a, b) => f(a, b));
  add_(`${name} broadcast size-1`, [I([3, 1], ra), I([2, 1, 4], rb)], (a, b) => f(a, b));
  add_(`${name} broadcast 0-d`, [I([3, 4], ra), I([], rb)], (a, b) => f(a, b));
}
add_('add scalar', [I([3, 5])], (a) => add(a, 2.5));
add_('add scalar left', [I([3, 5])], (a) => add(-1.5, a));
add_('sub scalar', [I([3, 5])], (a) => sub(a, 0.75));
add_('sub scalar left', [I([3, 5])], (a) => sub(1.5, a));
add_('mul scalar', [I([3, 5])], (a) => mul(a, -1.25));
add_('mul scalar left', [I([3, 5])], (a) => mul(3, a));
add_('div scalar', [I([3, 5])], (a) => div(a, 1.7));
add_('div scalar left', [I([3, 5], { away0: true })], (a) => div(2, a));
add_('pow scalar exponent', [I([3, 5], POS)], (a) => pow(a, 2.5));
add_('pow scalar exponent negative', [I([3, 5], POS)], (a) => pow(a, -1.5));
add_('pow scalar base', [I([3, 5])], (b) => pow(1.7, b));
add_('maximum scalar', [I([3, 5])], (a) => maximum(a, 0.3));
add_('maximum scalar left', [I([3, 5])], (a) => maximum(-0.3, a));
add_('minimum scalar', [I([3, 5])], (a) => minimum(a, 0.3));
add_('minimum scalar left', [I([3, 5])], (a) => minimum(-0.3, a));
add_('remainder scalar', [I([3, 5], { lo: -3, hi: 3 })], (a) => remainder(a, 0.7));
add_('remainder scalar left', [I([3, 5], { lo: 0.6, hi: 0.9 })], (b) => remainder(2.5, b));
add_('atan2 scalar', [I([3, 5])], (a) => atan2(a, 0.8));
add_('atan2 scalar left', [I([3, 5], { away0: true })], (b) => atan2(-0.6, b));
add_('pow same tensor both sides', [I([3, 5], POS)], (a) => pow(a, a));

// Unary ops.
const unaries: [string, (x: Tensor) => Tensor, Omit<Input, 'shape'>][] = [
  ['neg', neg, {}],
  ['abs', abs, { away0: true }],
  ['exp', exp, {}],
  ['log', log, POS],
  ['log1p', log1p, { lo: -0.5, hi: 2 }],
  ['sqrt', sqrt, POS],
  ['rsqrt', rsqrt, POS],
  ['sin', sin, { lo: -3, hi: 3 }],
  ['cos', cos, { lo: -3, hi: 3 }],
  ['tanh', tanh, {}],
  ['sigmoid', sigmoid, { lo: -4, hi: 4 }],
  ['relu', relu, { away0: true }],
  ['gelu', (x) => gelu(x), { lo: -3, hi: 3 }],
  ['gelu tanh', (x) => gelu(x, { approximate: 'tanh' }), { lo: -3, hi: 3 }],
  ['silu', silu, { lo: -4, hi: 4 }],
  ['softplus', softplus, { lo: -4, hi: 4 }],
  ['square', square, {}],
  ['reciprocal', reciprocal, { away0: true }],
  ['erf', erf, {}],
  ['clamp min', (x) => clamp(x, -0.5), {}],
  ['clamp max', (x) => clamp(x, null, 0.5), {}],
  ['clamp both', (x) => clamp(x, -0.7, 0.6), {}],
  ['powScalar 3', (x) => powScalar(x, 3), {}],
  ['powScalar 2', (x) => powScalar(x, 2), {}],
  ['powScalar 0.5', (x) => powScalar(x, 0.5), POS],
  ['powScalar -1.5', (x) => powScalar(x, -1.5), POS],
];
for (const [name, f, r] of unaries) {
  add_(name, [I([3, 5], r)], f);
  add_(`${name} 3-d`, [I([2, 3, 2], r)], f);
}
// Piecewise-constant ops: zero gradient (values kept off their jumps).
add_('sign', [I([3, 5], { away0: true })], (x) => mul(sign(x), x));
add_('floor', [I([3, 5], { lo: -2.9, hi: 2.9 })], (x) => add(floor(x), x));
add_('ceil', [I([3, 5], { lo: -2.9, hi: 2.9 })], (x) => add(ceil(x), x));
add_('round', [I([3, 5], { lo: -2.4, hi: 2.4 })], (x) => add(round(x), x));
add_('softplus large inputs', [I([3, 3], { lo: 21, hi: 30 })], softplus);

// where: tensor and scalar branches, broadcast condition.
const cond = (shape: number[]) => tensor(Array.from({ length: numelOf(shape) }, (_, i) => i % 3 !== 1), { device: constDevice }).reshape(shape);
/** A constant rotary-style table (f(i / 3) per element) on the case's device. */
const table = (shape: number[], f: (v: number) => number) => tensor(Array.from({ length: numelOf(shape) }, (_, i) => f(i / 3)), { device: constDevice }).reshape(shape);
add_('where', [I([3, 5]), I([3, 5])], (a, b) => where(cond([3, 5]), a, b));
add_('rope', [I([2, 3, 4, 6])], (x) => rope(x, table([1, 1, 4, 6], Math.cos), table([1, 1, 4, 6], Math.sin)));
add_('where broadcast cond', [I([3, 5]), I([5])], (a, b) => where(cond([3, 1]), a, b));
add_('where broadcast branches', [I([3, 1]), I([2, 1, 5])], (a, b) => where(cond([5]), a, b));
add_('where scalar other', [I([3, 5])], (a) => where(cond([3, 5]), a, 0.5));
add_('where scalar input', [I([3, 5])], (b) => where(cond([1, 5]), 1.5, b));

// Reductions: several dim sets, keepdim both ways, all dims.
const DIMSETS: [string, number | number[] | undefined, boolean][] = [
  ['all', undefined, false],
  ['all keepdim', [], true],
  ['dim 1', 1, false],
  ['dim -1 keepdim', -1, true],
  ['dims 0,2', [0, 2], false],
  ['dims 0,2 keepdim', [0, 2], true],
];
type Red = (x: Tensor, d: number | number[] | undefined, k: boolean) => Tensor;
const reductions: [string, Red, Omit<Input, 'shape'>][] = [
  ['sum', (x, d, k) => sum(x, d, k), {}],
  ['mean', (x, d, k) => mean(x, d, k), {}],
  ['prod', (x, d, k) => prod(x, d, k), { lo: -1.5, hi: 1.5, away0: true }],
  ['max', (x, d, k) => max(x, d, k), {}],
  ['min', (x, d, k) => min(x, d, k), {}],
  ['var', (x, d, k) => variance(x, d, { keepdim: k }), {}],
  ['var correction 0', (x, d, k) => variance(x, d, { keepdim: k, correction: 0 }), {}],
  ['std', (x, d, k) => std(x, d, { keepdim: k }), {}],
  ['logsumexp', (x, d, k) => logsumexp(x, d, k), {}],
];
for (const [name, f, r] of reductions) {
  for (const [dn, d, k] of DIMSETS) add_(`${name} ${dn}`, [I([3, 2, 5], r)], (x) => f(x, d, k));
}
add_('sum 0-d', [I([])], (x) => sum(x));
// prod at exact zeros is differentiable: the product of the other elements.
const zeroMask = () => tensor([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]], { dtype: 'f64', device: constDevice });
add_('prod with zeros dim 1', [I([3, 4], { away0: true })], (x) => prod(mul(x, zeroMask()), 1));
add_('prod with zeros dim 0 keepdim', [I([3, 4], { away0: true })], (x) => prod(mul(x, zeroMask()), 0, true));
add_('prod with zeros all', [I([3, 4], { lo: 0.5, hi: 1.5 })], (x) => prod(mul(x, zeroMask().select(0, 0))));
add_('logsumexp 1-d', [I([6])], (x) => logsumexp(x, 0));
add_('softmax 0-d', [I([])], (x) => softmax(x, 0));
add_('cumsum 0-d', [I([])], (x) => cumsum(x, 0));
add_('max 1-d', [I([7])], (x) => max(x, 0));
for (const d of [0, 1, -1]) {
  add_(`softmax dim ${d}`, [I([3, 2, 5])], (x) => softmax(x, d));
  add_(`logSoftmax dim ${d}`, [I([3, 2, 5])], (x) => logSoftmax(x, d));
  add_(`cumsum dim ${d}`, [I([3, 2, 5])], (x) => cumsum(x, d));
}

// Views and copies.
add_('reshape', [I([3, 5])], (x) => reshape(x, [5, 3]));
add_('reshape -1', [I([2, 3, 5])], (x) => reshape(x, [-1, 5, 1]));
add_('reshape flat', [I([3, 5])], (x) => reshape(x, [15]));
add_('view', [I([3, 5])], (x) => view(x, [5, 3]), ['contig']);
add_('view size-1 dims', [I([3, 5])], (x) => view(x, [3, 1, 5, 1]));
add_('permute', [I([2, 3, 4])], (x) => permute(x, [2, 0, 1]));
add_('transpose', [I([2, 3, 4])], (x) => transpose(x, 0, 2));
add_('transpose 2-d', [I([3, 5])], (x) => x.t());
add_('expand', [I([3, 1])], (x) => expand(x, [2, 3, 5]));
add_('expand -1', [I([1, 4])], (x) => expand(x, [3, -1]));
add_('broadcastTo', [I([5])], (x) => broadcastTo(x, [3, 5]));
add_('squeeze all', [I([3, 1, 5, 1])], (x) => squeeze(x));
add_('squeeze dim', [I([3, 1, 5])], (x) => squeeze(x, 1));
add_('unsqueeze', [I([3, 5])], (x) => unsqueeze(x, 1));
add_('unsqueeze -1', [I([3, 5])], (x) => unsqueeze(x, -1));
add_('flatten', [I([2, 3, 4])], (x) => flatten(x));
add_('flatten from 1', [I([2, 3, 4])], (x) => flatten(x, 1));
add_('narrow', [I([3, 5])], (x) => narrow(x, 1, 1, 3));
add_('slice step 2', [I([3, 7])], (x) => slice(x, 1, 1, undefined, 2));
add_('slice negative start step 3', [I([7, 3])], (x) => slice(x, 0, -6, undefined, 3));
add_('slice twice', [I([5, 6])], (x) => slice(slice(x, 0, 1, 4), 1, 0, 6, 2));
add_('select', [I([3, 5])], (x) => select(x, 1, 2));
add_('select negative', [I([3, 4, 2])], (x) => select(x, 0, -1));
/** Parts weighted differently so a gradient routed to the wrong part shows. */
const weighted = (parts: Tensor[]) => stack(parts.map((p, i) => sum(mul(square(p), i + 1))));
add_('chunk', [I([3, 7])], (x) => weighted(chunk(x, 3, 1)));
add_('split sizes', [I([3, 5])], (x) => weighted(split(x, [2, 3], 1)));
add_('split size', [I([5, 3])], (x) => weighted(split(x, 2, 0)));
add_('split one part used', [I([5, 3])], (x) => mul(split(x, [1, 3, 1], 0)[1], 2));
add_('unbind', [I([3, 4])], (x) => weighted(unbind(x, 1)));
add_('cat dim 1', [I([3, 2]), I([3, 1]), I([3, 4])], (a, b, c) => cat([a, b, c], 1));
add_('cat dim 0', [I([2, 3]), I([1, 3])], (a, b) => cat([a, b], 0));
add_('cat same tensor twice', [I([2, 3])], (a) => cat([a, a], 1));
add_('stack', [I([3, 4]), I([3, 4])], (a, b) => stack([a, b], 1));
add_('stack last', [I([2, 3]), I([2, 3]), I([2, 3])], (a, b, c) => stack([a, b, c], -1));
add_('contiguous', [I([3, 5])], (x) => contiguous(x));
add_('clone', [I([3, 5])], (x) => clone(x));
add_('to f64 identity', [I([3, 5])], (x) => to(x, 'f64'));

// matmul and bmm.
add_('matmul 2-d', [I([3, 4]), I([4, 5])], (a, b) => matmul(a, b));
add_('matmul batched broadcast', [I([2, 3, 4]), I([4, 5])], (a, b) => matmul(a, b));
add_('matmul batch dims broadcast', [I([2, 1, 3, 4]), I([3, 4, 2])], (a, b) => matmul(a, b));
add_('matmul 1-d left', [I([4]), I([4, 5])], (a, b) => matmul(a, b));
add_('matmul 1-d right', [I([3, 4]), I([4])], (a, b) => matmul(a, b));
add_('matmul 1-d both', [I([5]), I([5])], (a, b) => matmul(a, b));
add_('matmul 1-d left batched', [I([4]), I([2, 4, 3])], (a, b) => matmul(a, b));
add_('matmul 1-d right batched', [I([2, 3, 4]), I([4])], (a, b) => matmul(a, b));
add_('matmul transposed operands', [I([4, 3]), I([5, 4])], (a, b) => matmul(a.t(), b.t()));
add_('matmul same operand', [I([3, 3])], (a) => matmul(a, a));
add_('bmm', [I([2, 3, 4]), I([2, 4, 5])], (a, b) => bmm(a, b));

// Indexing.
const idx = (values: number[], shape: number[]) => tensor(Int32Array.from(values), { device: constDevice }).reshape(shape);
add_('gather dim 1', [I([3, 5])], (x) => gather(x, 1, idx([0, 4, 4, 1, 2, 2, 2, 0, 3, 1, 0, 4], [3, 4])));
add_('gather dim 0', [I([3, 5])], (x) => gather(x, 0, idx([2, 0, 1, 2, 2, 0, 0, 1, 1, 0], [2, 5])));
add_('scatterAdd', [I([3, 5]), I([3, 4])], (x, s) => scatterAdd(x, 1, idx([0, 4, 4, 1, 2, 2, 2, 0, 3, 1, 0, 4], [3, 4]), s));
add_('scatterAdd src larger than index', [I([4, 3]), I([3, 4])], (x, s) => scatterAdd(x, 0, idx([3, 0, 3, 1, 1, 2], [2, 3]), s));
add_('indexSelect dim 0', [I([4, 3])], (x) => indexSelect(x, 0, idx([2, 0, 2, 3, 2], [5])));
add_('indexSelect dim 1', [I([2, 5, 3])], (x) => indexSelect(x, 1, idx([4, 1, 1], [3])));
add_('embedding', [I([5, 4])], (w) => embedding(idx([1, 4, 1, 0, 3, 1], [2, 3]), w));
add_('maskedFill', [I([3, 5])], (x) => maskedFill(x, cond([5]), -1.5));
add_('maskedFill broadcast mask', [I([2, 3, 4])], (x) => maskedFill(x, cond([3, 1]), 0.25));
add_('tril', [I([4, 5])], (x) => tril(x));
add_('tril k=1 batched', [I([2, 3, 4])], (x) => tril(x, 1));
add_('triu', [I([5, 4])], (x) => triu(x));
add_('triu k=-1 batched', [I([2, 4, 3])], (x) => triu(x, -1));

// Images.
add_('conv2d', [I([2, 3, 5, 6]), I([4, 3, 3, 2]), I([4])], (x, w, b) => conv2d(x, w, b));
add_('conv2d no bias', [I([1, 2, 5, 5]), I([3, 2, 3, 3])], (x, w) => conv2d(x, w));
add_('conv2d stride', [I([1, 2, 7, 6]), I([3, 2, 3, 2]), I([3])], (x, w, b) => conv2d(x, w, b, { stride: [2, 3] }));
add_('conv2d padding', [I([1, 2, 4, 5]), I([2, 2, 3, 3]), I([2])], (x, w, b) => conv2d(x, w, b, { padding: [1, 2] }));
add_('conv2d dilation', [I([1, 2, 7, 7]), I([2, 2, 2, 3])], (x, w) => conv2d(x, w, null, { dilation: [2, 2], padding: 1 }));
add_('conv2d groups', [I([1, 4, 5, 5]), I([6, 2, 3, 3]), I([6])], (x, w, b) => conv2d(x, w, b, { groups: 2, stride: 2 }));
add_('conv2d depthwise', [I([2, 3, 4, 5]), I([3, 1, 2, 2])], (x, w) => conv2d(x, w, null, { groups: 3, padding: 1 }));
add_('conv2d unbatched', [I([2, 5, 6]), I([3, 2, 3, 3]), I([3])], (x, w, b) => conv2d(x, w, b, { padding: 1 }));
add_('maxPool2d', [I([2, 2, 5, 7])], (x) => maxPool2d(x, 2));
add_('maxPool2d stride padding', [I([1, 3, 6, 5])], (x) => maxPool2d(x, 3, { stride: 2, padding: 1 }));
add_('maxPool2d overlapping dilation', [I([1, 2, 7, 7])], (x) => maxPool2d(x, 2, { stride: 1, dilation: 2 }));
add_('maxPool2d unbatched', [I([2, 5, 5])], (x) => maxPool2d(x, [2, 3]));
add_('avgPool2d', [I([2, 2, 5, 7])], (x) => avgPool2d(x, 2));
add_('avgPool2d countIncludePad', [I([1, 3, 6, 5])], (x) => avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: true }));
add_('avgPool2d excludePad', [I([1, 3, 6, 5])], (x) => avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }));
add_('avgPool2d unbatched overlapping', [I([2, 5, 5])], (x) => avgPool2d(x, [3, 2], { stride: 1 }));
add_('upsampleNearest2d scale', [I([1, 2, 3, 4])], (x) => upsampleNearest2d(x, { scaleFactor: 2 }));
add_('upsampleNearest2d scale pair', [I([2, 1, 3, 2])], (x) => upsampleNearest2d(x, { scaleFactor: [2, 3] }));
add_('upsampleNearest2d size', [I([1, 2, 3, 4])], (x) => upsampleNearest2d(x, { size: [5, 7] }));
add_('upsampleNearest2d size down', [I([1, 2, 5, 6])], (x) => upsampleNearest2d(x, { size: [3, 4] }));
add_('upsampleNearest2d unbatched', [I([2, 3, 3])], (x) => upsampleNearest2d(x, { scaleFactor: 2 }));
add_('pad last dim', [I([3, 4])], (x) => pad(x, [1, 2]));
add_('pad two dims with value', [I([2, 3, 4])], (x) => pad(x, [1, 0, 2, 1], 0.5));
add_('pad negative', [I([4, 5])], (x) => pad(x, [-1, 1, 0, -2]));
add_('pad all negative', [I([2, 5, 6])], (x) => pad(x, [-2, -1, -1, -1]));

// Compositions: several ops sharing inputs, so gradients meet and sum.
add_('composite mlp', [I([3, 4]), I([4, 5]), I([5])], (x, w, b) => logSoftmax(tanh(add(matmul(x, w), b)), -1));
add_('composite layernorm', [I([3, 5]), I([5]), I([5])], (x, g, b) => {
  const mu = mean(x, -1, true);
  const c = sub(x, mu);
  return add(mul(div(c, sqrt(add(mean(square(c), -1, true), 1e-5))), g), b);
});
add_('composite attention', [I([2, 3, 4]), I([2, 3, 4]), I([2, 3, 4])], (q, k, v) =>
  matmul(softmax(maskedFill(div(matmul(q, transpose(k, -1, -2)), 2), triu(full([3, 3], 1, { device: constDevice }), 1).gt(0), -1e9), -1), v));
// The fused attention kernel (F.scaledDotProductAttention on f64; on sim the composed path): causal with Lq != Lk both
// ways, a bias broadcast over the batch, a key-padding mask with a fully hidden row.
const kpm = (): Tensor => tensor([[false, true, false, false, true, false, false], [true, true, true, true, true, true, true]], { device: constDevice });
add_('attention fused causal bias', [I([2, 2, 5, 3]), I([2, 2, 7, 3]), I([2, 2, 7, 2]), I([2, 5, 7])], (q, k, v, bias) =>
  F.scaledDotProductAttention(q, k, v, { causal: true, bias }));
add_('attention fused Lq > Lk key padding', [I([2, 1, 7, 4]), I([2, 1, 3, 4]), I([2, 1, 3, 3])], (q, k, v) =>
  F.scaledDotProductAttention(q, k, v, { causal: true, keyPaddingMask: kpm().narrow(1, 0, 3), scale: 0.7 }));
add_('attention fused key padding', [I([2, 3, 4]), I([2, 7, 4]), I([2, 7, 3])], (q, k, v) =>
  F.scaledDotProductAttention(q, k, v, { keyPaddingMask: kpm() }));
// The fused row kernels (native/cpu/kernels/norm.cpp, cross_entropy.cpp) behind F's norms and loss.
add_('layerNorm fused', [I([3, 2, 5]), I([2, 5]), I([2, 5])], (x, w, b) => F.layerNorm(x, [2, 5], w, b));
add_('rmsNorm fused', [I([4, 7]), I([7])], (x, w) => F.rmsNorm(x, w));
add_('groupNorm fused', [I([2, 4, 3]), I([4]), I([4])], (x, w, b) => F.groupNorm(x, 2, w, b));
// GroupNorm with its affine in the norm kernel (cpu): H W of 15 (not a vector width), one-channel groups,
// weight or bias alone.
add_('groupNorm fused affine 4-d', [I([2, 6, 3, 5]), I([6]), I([6])], (x, w, b) => F.groupNorm(x, 3, w, b));
add_('groupNorm fused one channel per group', [I([3, 4, 7]), I([4]), I([4])], (x, w, b) => F.groupNorm(x, 4, w, b));
add_('groupNorm fused weight only', [I([2, 4, 5]), I([4])], (x, w) => F.groupNorm(x, 2, w));
add_('groupNorm fused bias only', [I([2, 4, 5]), I([4])], (x, b) => F.groupNorm(x, 1, null, b));
add_('crossEntropy fused ignore smoothing', [I([5, 6])], (x) =>
  F.crossEntropy(x, tensor([1, -100, 5, 0, 2], { dtype: 'i32', device: constDevice }), { labelSmoothing: 0.1 }));
// The fused SwiGLU gate (native/cpu/kernels/swiglu.cpp) behind F.swiglu, and its composed path when shapes broadcast.
add_('swiglu fused', [I([3, 7]), I([3, 7])], (a, b) => F.swiglu(a, b));
add_('swiglu composed broadcast', [I([3, 7]), I([7])], (a, b) => F.swiglu(a, b));
// F.linear's activation and residual: on sim one GEMM with a fused epilogue (its backward reads the saved pre-activation),
// on the CPU the composed ops; leading dims folded, a 1-d input, no bias.
add_('linear gelu residual', [I([2, 3, 4]), I([5, 4]), I([5]), I([2, 3, 5])], (x, w, b, r) => F.linear(x, w, b, { activation: 'gelu', residual: r }));
add_('linear geluTanh', [I([3, 4]), I([5, 4]), I([5])], (x, w, b) => F.linear(x, w, b, { activation: 'geluTanh' }));
add_('linear silu no bias', [I([3, 4]), I([5, 4])], (x, w) => F.linear(x, w, null, { activation: 'silu' }));
add_('linear relu', [I([3, 4]), I([5, 4]), I([5])], (x, w, b) => F.linear(x, w, b, { activation: 'relu' }));
add_('linear 1-d residual', [I([4]), I([5, 4]), I([5])], (x, w, r) => F.linear(x, w, null, { residual: r }));

// ---- running -------------------------------------------------------------------------------

test('noncontig leaves are strided views with distinct values', () => {
  tidy(() => {
    const r = rng('layout');
    for (const shape of [[5], [3, 4], [2, 3, 4]]) {
      const x = noncontigLeaf(I(shape), r);
      if (x.isContiguous || x.shape.join() !== shape.join() || !x.requiresGrad || !x.isLeaf) throw new Error(`bad leaf ${shape}`);
      const vals = Array.from(x.data() as Float64Array);
      if (vals.some(Number.isNaN) || new Set(vals).size !== vals.length) throw new Error(`bad values ${shape}`);
    }
  });
});

for (const c of CASES) {
  for (const layout of c.layouts ?? ['contig', 'noncontig'] as const) {
    test(`gradcheck ${c.name} ${layout}`, () => {
      tidy(() => {
        const r = rng(`${c.name} ${layout}`);
        const xs = c.inputs.map((spec) => (layout === 'contig' ? contigLeaf(spec, r) : noncontigLeaf(spec, r)));
        gradcheck(c.fn, xs);
      });
    });
  }
  test(`gradcheck ${c.name} sim`, () => {
    constDevice = 'sim';
    try {
      tidy(() => {
        const r = rng(`${c.name} contig`);
        gradcheck(c.fn, c.inputs.map((spec) => contigLeaf(spec, r).to('sim').detach().requiresGrad_()));
      });
    } finally {
      constDevice = 'cpu';
    }
  });
}

test.run();
