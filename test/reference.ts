// reference.ts: the f64 oracle of the backend-parity table (test/parity.test.ts).
//
// A Ref is an n-d array of plain JS numbers: a shape and its elements in row-major order in a
// Float64Array (bool as 0/1, i32 as integers). Every op here is a direct loop over output
// indices, written to be read and checked by eye, never for speed: the engine's kernels on every
// device are compared against it. Semantics follow PyTorch as the engine documents them: NumPy
// broadcasting, the first index on ties, NaN propagating through max/min, Python's remainder,
// nearest upsampling with a float scale, pooling with padding that never wins a max.
//
// Nothing here imports the engine's code except the Tensor type (fromTensor reads a tensor's
// values through its public data()).
import type { DType, Tensor } from '../src/index.ts';

export interface Ref {
  shape: number[];
  data: Float64Array;
}

// ---- making and reading Refs ---------------------------------------------------------------

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** A Ref of `shape` from values (row-major), a function of the flat index, or zeros. */
export function makeRef(shape: readonly number[], values?: ArrayLike<number> | ((i: number) => number)): Ref {
  const n = numel(shape);
  const data = new Float64Array(n);
  if (typeof values === 'function') for (let i = 0; i < n; i++) data[i] = values(i);
  else if (values) {
    if (values.length !== n) throw new Error(`makeRef: ${values.length} values for shape [${shape.join(',')}]`);
    for (let i = 0; i < n; i++) data[i] = values[i];
  }
  return { shape: [...shape], data };
}

export function scalarRef(v: number): Ref {
  return makeRef([], [v]);
}

/** The values of a tensor (on a device with memory) as a Ref. */
export function fromTensor(t: Tensor): Ref {
  return makeRef(t.shape, Float64Array.from(t.data() as ArrayLike<number>));
}

export function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= shape[d];
  }
  return st;
}

/** Calls f(index, flat) for every index of `shape` in row-major order. */
export function forEachIndex(shape: readonly number[], f: (idx: number[], flat: number) => void): void {
  const n = numel(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    f(idx, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/** A Ref of `shape` whose element at idx is f(idx). */
export function build(shape: readonly number[], f: (idx: number[]) => number): Ref {
  const out = makeRef(shape);
  forEachIndex(shape, (idx, flat) => {
    out.data[flat] = f(idx);
  });
  return out;
}

/** The element at idx (one index per dim). */
export function at(x: Ref, idx: readonly number[]): number {
  if (idx.length !== x.shape.length) throw new Error(`at: ${idx.length} indices for shape [${x.shape.join(',')}]`);
  let flat = 0;
  for (let d = 0; d < idx.length; d++) {
    if (idx[d] < 0 || idx[d] >= x.shape[d]) throw new Error(`at: index ${idx[d]} out of range for dim ${d} of [${x.shape.join(',')}]`);
    flat = flat * x.shape[d] + idx[d];
  }
  return x.data[flat];
}

/** The element of x seen at idx of a broadcast shape (idx aligned right; size-1 dims repeat). */
export function atBroadcast(x: Ref, idx: readonly number[]): number {
  const off = idx.length - x.shape.length;
  let flat = 0;
  for (let d = 0; d < x.shape.length; d++) flat = flat * x.shape[d] + (x.shape[d] === 1 ? 0 : idx[d + off]);
  return x.data[flat];
}

/** NumPy broadcasting of any number of shapes. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  const n = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(n).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const d = n - s.length + i;
      if (s[i] === out[d] || s[i] === 1) continue;
      if (out[d] !== 1) throw new Error(`broadcastShapes: [${s.join(',')}] does not broadcast to [${out.join(',')}]`);
      out[d] = s[i];
    }
  }
  return out;
}

export function map(x: Ref, f: (v: number) => number): Ref {
  return makeRef(x.shape, (i) => f(x.data[i]));
}

/** f over a and b broadcast together. */
export function zip(a: Ref, b: Ref, f: (x: number, y: number) => number): Ref {
  const shape = broadcastShapes(a.shape, b.shape);
  return build(shape, (idx) => f(atBroadcast(a, idx), atBroadcast(b, idx)));
}

export function zip3(a: Ref, b: Ref, c: Ref, f: (x: number, y: number, z: number) => number): Ref {
  const shape = broadcastShapes(a.shape, b.shape, c.shape);
  return build(shape, (idx) => f(atBroadcast(a, idx), atBroadcast(b, idx), atBroadcast(c, idx)));
}

function normDim(dim: number, ndim: number): number {
  const n = Math.max(ndim, 1);
  if (dim < -n || dim >= n) throw new Error(`dim ${dim} out of range for ${ndim} dims`);
  return dim < 0 ? dim + n : dim;
}

// ---- dtypes --------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 value x rounded to bfloat16, to nearest even (NaN stays NaN). */
export function bf16Round(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if (Number.isNaN(f32[0])) return NaN;
  u32[0] = (((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32[0];
}

/**
 * The f32 value x rounded to IEEE half (f16), to nearest even, by arithmetic on the exact value
 * rather than on bits (an independent oracle for the engine's bit manipulations): the quantum is
 * 2^-24 below 2^-14 (subnormals) and 2^(e-10) for x in [2^e, 2^(e+1)); 65520 and above overflow
 * to inf; NaN stays NaN.
 */
export function f16Round(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x), sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  if (a >= 65520) return sign * Infinity;
  let quantum = 2 ** -24;
  if (a >= 2 ** -14) {
    let e = -14;
    while (2 ** (e + 1) <= a) e++;
    quantum = 2 ** (e - 10);
  }
  const r = a / quantum, whole = Math.floor(r), frac = r - whole;
  const n = frac > 0.5 || (frac === 0.5 && whole % 2 === 1) ? whole + 1 : whole;
  return sign * n * quantum;
}

/** float -> i32 as the engine converts: toward zero, saturating, NaN -> 0. */
export function toI32(x: number): number {
  if (Number.isNaN(x)) return 0;
  if (x >= 2147483647) return 2147483647;
  if (x <= -2147483648) return -2147483648;
  return Math.trunc(x);
}

/** x as stored in dtype d (f64 -> bf16 and f16 go through f32, as the engine does). */
export function roundTo(x: number, d: DType): number {
  switch (d) {
    case 'f64': return x;
    case 'f32': return Math.fround(x);
    case 'bf16': return bf16Round(Math.fround(x));
    case 'f16': return f16Round(Math.fround(x));
    case 'i32': return toI32(x);
    case 'bool': return x !== 0 ? 1 : 0;  // NaN is true
  }
}

export function cast(x: Ref, d: DType): Ref {
  return map(x, (v) => roundTo(v, d));
}

// ---- scalar math ---------------------------------------------------------------------------

/** erf by its everywhere-convergent series of positive terms (no cancellation). */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a > 6) return Math.sign(x);
  // erf(a) = 2/sqrt(pi) * exp(-a^2) * sum_n (2^n a^(2n+1)) / (1*3*...*(2n+1))
  let term = a, sum = a;
  for (let n = 1; n < 500; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu = (x: number): number => x * sigmoid(x);
export const softplus = (x: number): number => (x > 20 ? x : Math.log1p(Math.exp(x)));
export const relu = (x: number): number => (x > 0 ? x : 0);
export const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : x);
/** Round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
/** Python's %: the result has the divisor's sign. */
export function remainder(x: number, y: number): number {
  const r = x % y;
  return r !== 0 && r < 0 !== y < 0 ? r + y : r;
}
/** NaN propagates, as torch.maximum / torch.minimum. */
export const maximum = (x: number, y: number): number => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y));
export const minimum = (x: number, y: number): number => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y));
export function clampValue(x: number, lo: number | null, hi: number | null): number {
  let r = x;
  if (lo !== null && r < lo) r = lo;
  if (hi !== null && r > hi) r = hi;
  return r;
}
const truth = (x: number): boolean => x !== 0;  // NaN is true
export const logicalAnd = (x: number, y: number): number => Number(truth(x) && truth(y));
export const logicalOr = (x: number, y: number): number => Number(truth(x) || truth(y));
export const logicalXor = (x: number, y: number): number => Number(truth(x) !== truth(y));
export const logicalNot = (x: number): number => Number(!truth(x));

/** Neumaier's compensated sum: the oracle's sums are exact to about one rounding. */
export function fsum(values: readonly number[]): number {
  let s = 0, c = 0;
  for (const v of values) {
    const t = s + v;
    c += Math.abs(s) >= Math.abs(v) ? s - t + v : v - t + s;
    s = t;
  }
  return s + c;
}

// ---- reductions ----------------------------------------------------------------------------

/** Normalised reduced dims: undefined or [] means all; a 0-d tensor has none. */
function reducedDims(ndim: number, dim: number | number[] | undefined): number[] {
  if (ndim === 0) return [];
  if (dim === undefined || (Array.isArray(dim) && dim.length === 0)) return [...Array(ndim).keys()];
  return (Array.isArray(dim) ? dim : [dim]).map((d) => normDim(d, ndim));
}

/**
 * Reduces x over `dim`: each output is f(values), the values of its reduced elements in
 * row-major order over the reduced dims.
 */
export function reduce(x: Ref, dim: number | number[] | undefined, keepdim: boolean, f: (values: number[]) => number): Ref {
  const dims = new Set(reducedDims(x.shape.length, dim));
  const kept = x.shape.map((_, d) => d).filter((d) => !dims.has(d));
  const red = x.shape.map((_, d) => d).filter((d) => dims.has(d));
  const outShape = keepdim ? x.shape.map((s, d) => (dims.has(d) ? 1 : s)) : kept.map((d) => x.shape[d]);
  const keptShape = kept.map((d) => x.shape[d]);
  const redShape = red.map((d) => x.shape[d]);
  const out = makeRef(outShape);
  forEachIndex(keptShape, (kidx, o) => {
    const values: number[] = [];
    forEachIndex(redShape, (ridx) => {
      const idx = new Array<number>(x.shape.length);
      kept.forEach((d, i) => (idx[d] = kidx[i]));
      red.forEach((d, i) => (idx[d] = ridx[i]));
      values.push(at(x, idx));
    });
    out.data[o] = f(values);
  });
  return out;
}

type Dims = number | number[] | undefined;
const hasNaN = (v: number[]) => v.some(Number.isNaN);

export const sum = (x: Ref, dim?: Dims, keepdim = false): Ref => reduce(x, dim, keepdim, fsum);
export const mean = (x: Ref, dim?: Dims, keepdim = false): Ref => reduce(x, dim, keepdim, (v) => fsum(v) / v.length);
/** With wrapI32, the product wraps modulo 2^32 as an i32 product does. */
export const prod = (x: Ref, dim?: Dims, keepdim = false, wrapI32 = false): Ref =>
  reduce(x, dim, keepdim, (v) => v.reduce((a, b) => (wrapI32 ? Math.imul(a, b) : a * b), 1));
export const max = (x: Ref, dim?: Dims, keepdim = false): Ref => reduce(x, dim, keepdim, (v) => (hasNaN(v) ? NaN : Math.max(...v)));
export const min = (x: Ref, dim?: Dims, keepdim = false): Ref => reduce(x, dim, keepdim, (v) => (hasNaN(v) ? NaN : Math.min(...v)));
export const all = (x: Ref, dim?: Dims, keepdim = false): Ref => reduce(x, dim, keepdim, (v) => Number(v.every(truth)));
export const any = (x: Ref, dim?: Dims, keepdim = false): Ref => reduce(x, dim, keepdim, (v) => Number(v.some(truth)));

/** Index of the first maximum (or minimum); the first NaN wins. */
function argExtreme(v: number[], isMax: boolean): number {
  let best = 0;
  for (let i = 0; i < v.length; i++) {
    if (Number.isNaN(v[i])) return i;
    if (isMax ? v[i] > v[best] : v[i] < v[best]) best = i;
  }
  return best;
}
/** Over one dim, or over the flattened tensor when dim is undefined. */
export function argmax(x: Ref, dim?: number, keepdim = false, isMax = true): Ref {
  if (dim === undefined) {
    const r = scalarRef(argExtreme([...x.data], isMax));
    return keepdim ? makeRef(x.shape.map(() => 1), r.data) : r;
  }
  return reduce(x, dim, keepdim, (v) => argExtreme(v, isMax));
}
export const argmin = (x: Ref, dim?: number, keepdim = false): Ref => argmax(x, dim, keepdim, false);

/** Two-pass variance dividing by max(0, n - correction) (0/0 = NaN, x/0 = inf). */
export function variance(x: Ref, dim: Dims, correction: number, keepdim: boolean): Ref {
  return reduce(x, dim, keepdim, (v) => {
    const m = fsum(v) / v.length;
    const ss = fsum(v.map((t) => (t - m) * (t - m)));
    return ss / Math.max(0, v.length - correction);
  });
}
export const std = (x: Ref, dim: Dims, correction: number, keepdim: boolean): Ref => map(variance(x, dim, correction, keepdim), Math.sqrt);

export function logsumexp(x: Ref, dim?: Dims, keepdim = false): Ref {
  return reduce(x, dim, keepdim, (v) => {
    if (v.length === 0) return -Infinity;
    let m = hasNaN(v) ? NaN : Math.max(...v);
    if (m === Infinity || m === -Infinity) m = 0;
    return Math.log(fsum(v.map((t) => Math.exp(t - m)))) + m;
  });
}

/** Calls f(line) for each line of x along dim; f returns the line's new values. */
function mapLines(x: Ref, dim: number, f: (line: number[]) => number[]): Ref {
  if (x.shape.length === 0) return makeRef([], f([x.data[0]]));
  const d = normDim(dim, x.shape.length);
  const out = makeRef(x.shape);
  const outer = x.shape.map((s, k) => (k === d ? 1 : s));
  forEachIndex(outer, (idx) => {
    const pos = (i: number) => {
      const j = [...idx];
      j[d] = i;
      let flat = 0;
      for (let k = 0; k < j.length; k++) flat = flat * x.shape[k] + j[k];
      return flat;
    };
    const line = Array.from({ length: x.shape[d] }, (_, i) => x.data[pos(i)]);
    f(line).forEach((v, i) => (out.data[pos(i)] = v));
  });
  return out;
}

export function softmax(x: Ref, dim: number): Ref {
  return mapLines(x, dim, (line) => {
    const m = Math.max(...line);
    const e = line.map((v) => Math.exp(v - m));
    const s = fsum(e);
    return e.map((v) => v / s);
  });
}

export function logSoftmax(x: Ref, dim: number): Ref {
  return mapLines(x, dim, (line) => {
    const m = Math.max(...line);
    const s = fsum(line.map((v) => Math.exp(v - m)));
    return line.map((v) => v - m - Math.log(s));
  });
}

/** Running sums, compensated as in fsum. */
export function cumsum(x: Ref, dim: number): Ref {
  return mapLines(x, dim, (line) => {
    let s = 0, c = 0;
    return line.map((v) => {
      const t = s + v;
      c += Math.abs(s) >= Math.abs(v) ? s - t + v : v - t + s;
      s = t;
      return s + c;
    });
  });
}

// ---- linear algebra and indexing -----------------------------------------------------------

/** torch.matmul: 1-d operands become a row (left) or column (right); batch dims broadcast. */
export function matmul(a: Ref, b: Ref): Ref {
  const A = a.shape.length === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const B = b.shape.length === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const [M, K] = A.shape.slice(-2), [K2, N] = B.shape.slice(-2);
  if (K !== K2) throw new Error(`matmul: ${K} != ${K2}`);
  const batch = broadcastShapes(A.shape.slice(0, -2), B.shape.slice(0, -2));
  // Both operands expanded to the full batch, so batch item t is at t*M*K and t*K*N.
  const Ae = expand(A, [...batch, M, K]), Be = expand(B, [...batch, K, N]);
  const out = makeRef([...batch, M, N]);
  const terms = new Array<number>(K);
  for (let t = 0; t < numel(batch); t++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        for (let k = 0; k < K; k++) terms[k] = Ae.data[(t * M + i) * K + k] * Be.data[(t * K + k) * N + j];
        out.data[(t * M + i) * N + j] = fsum(terms);
      }
    }
  }
  const shape = [...batch, ...(a.shape.length === 1 ? [] : [M]), ...(b.shape.length === 1 ? [] : [N])];
  return reshape(out, shape);
}

/** out[i][j] = x[i][index[i][j]] for dim 1, and so on (torch.gather). */
export function gather(x: Ref, dim: number, index: Ref): Ref {
  const d = normDim(dim, x.shape.length);
  return build(index.shape, (idx) => {
    const src = [...idx];
    src[d] = at(index, idx);
    return at(x, src);
  });
}

/** A copy of x with src[idx] added at idx with idx[dim] replaced by index[idx]. */
export function scatterAdd(x: Ref, dim: number, index: Ref, src: Ref): Ref {
  const d = normDim(dim, x.shape.length);
  const out = makeRef(x.shape, x.data);
  const terms = new Map<number, number[]>();
  forEachIndex(index.shape, (idx) => {
    const dst = [...idx];
    dst[d] = at(index, idx);
    let flat = 0;
    for (let k = 0; k < dst.length; k++) flat = flat * x.shape[k] + dst[k];
    if (!terms.has(flat)) terms.set(flat, [out.data[flat]]);
    terms.get(flat)!.push(at(src, idx));
  });
  for (const [flat, t] of terms) out.data[flat] = fsum(t);
  return out;
}

export function indexSelect(x: Ref, dim: number, index: Ref): Ref {
  const d = normDim(dim, x.shape.length);
  const ids = [...index.data];
  const shape = [...x.shape];
  shape[d] = ids.length;
  return build(shape, (idx) => {
    const src = [...idx];
    src[d] = ids[idx[d]];
    return at(x, src);
  });
}

/** Rows of weight [V, D] for every id: shape [...ids.shape, D]. */
export function embedding(ids: Ref, weight: Ref): Ref {
  return build([...ids.shape, weight.shape[1]], (idx) => at(weight, [at(ids, idx.slice(0, -1)), idx[idx.length - 1]]));
}

export function maskedFill(x: Ref, mask: Ref, value: number): Ref {
  return build(x.shape, (idx) => (atBroadcast(mask, idx) ? value : at(x, idx)));
}

/** Keeps j - i <= k (tril) or j - i >= k (triu) over the last two dims. */
export function triangle(x: Ref, k: number, upper: boolean): Ref {
  return build(x.shape, (idx) => {
    const i = idx[idx.length - 2], j = idx[idx.length - 1];
    const keep = upper ? j - i >= k : j - i <= k;
    return keep ? at(x, idx) : 0;
  });
}
export const tril = (x: Ref, k = 0): Ref => triangle(x, k, false);
export const triu = (x: Ref, k = 0): Ref => triangle(x, k, true);

export function oneHot(ids: Ref, numClasses?: number): Ref {
  const C = numClasses ?? (ids.data.length ? Math.max(...ids.data) + 1 : 0);
  return build([...ids.shape, C], (idx) => Number(at(ids, idx.slice(0, -1)) === idx[idx.length - 1]));
}

// ---- images (NCHW) -------------------------------------------------------------------------

type Pair = number | [number, number];
const pair = (p: Pair): [number, number] => (typeof p === 'number' ? [p, p] : p);
const outSize = (inp: number, k: number, s: number, p: number, d: number) => Math.floor((inp + 2 * p - d * (k - 1) - 1) / s) + 1;

/** Runs a 4-d op on a 3-d (CHW) input by adding and removing the batch dim. */
function unbatched(x: Ref, f: (x4: Ref) => Ref): Ref {
  if (x.shape.length !== 3) return f(x);
  const y = f(reshape(x, [1, ...x.shape]));
  return reshape(y, y.shape.slice(1));
}

export interface ConvArgs {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** Cross-correlation, as torch.nn.functional.conv2d. */
export function conv2d(x: Ref, w: Ref, bias: Ref | null, o: ConvArgs = {}): Ref {
  return unbatched(x, (x4) => {
    const [sh, sw] = pair(o.stride ?? 1), [ph, pw] = pair(o.padding ?? 0), [dh, dw] = pair(o.dilation ?? 1);
    const groups = o.groups ?? 1;
    const [N, C, H, W] = x4.shape, [O, Cg, KH, KW] = w.shape;
    const OH = outSize(H, KH, sh, ph, dh), OW = outSize(W, KW, sw, pw, dw);
    const Og = O / groups;
    return build([N, O, OH, OW], ([n, oc, oy, ox]) => {
      const g = Math.floor(oc / Og);
      const terms: number[] = bias ? [bias.data[oc]] : [];
      for (let c = 0; c < Cg; c++) {
        for (let ky = 0; ky < KH; ky++) {
          for (let kx = 0; kx < KW; kx++) {
            const y = oy * sh - ph + ky * dh, xx = ox * sw - pw + kx * dw;
            if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
            terms.push(at(x4, [n, g * Cg + c, y, xx]) * at(w, [oc, c, ky, kx]));
          }
        }
      }
      return fsum(terms);
    });
  });
}

export interface PoolArgs {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

/** [values, flat h*W+w indices]; padding never wins, the first maximum does (a NaN always takes over). */
export function maxPool2d(x: Ref, kernel: Pair, o: PoolArgs = {}): [Ref, Ref] {
  const [kh, kw] = pair(kernel), [sh, sw] = pair(o.stride ?? [kh, kw]), [ph, pw] = pair(o.padding ?? 0), [dh, dw] = pair(o.dilation ?? 1);
  let indices: Ref = makeRef([]);
  const values = unbatched(x, (x4) => {
    const [N, C, H, W] = x4.shape;
    const OH = outSize(H, kh, sh, ph, dh), OW = outSize(W, kw, sw, pw, dw);
    const shape = [N, C, OH, OW];
    const idxOut = makeRef(shape);
    const v = build(shape, ([n, c, oy, ox]) => {
      let best = -Infinity, arg = -1;
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          const y = oy * sh - ph + ky * dh, xx = ox * sw - pw + kx * dw;
          if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
          const t = at(x4, [n, c, y, xx]);
          if (arg < 0 || t > best || Number.isNaN(t)) {
            best = t;
            arg = y * W + xx;
          }
        }
      }
      idxOut.data[((n * C + c) * OH + oy) * OW + ox] = arg;
      return best;
    });
    indices = idxOut;
    return v;
  });
  if (x.shape.length === 3) indices = reshape(indices, indices.shape.slice(1));
  return [values, indices];
}

/** Window mean; countIncludePad divides by the window clipped to the padded input. */
export function avgPool2d(x: Ref, kernel: Pair, o: { stride?: Pair; padding?: Pair; countIncludePad?: boolean } = {}): Ref {
  const [kh, kw] = pair(kernel), [sh, sw] = pair(o.stride ?? [kh, kw]), [ph, pw] = pair(o.padding ?? 0);
  const includePad = o.countIncludePad ?? true;
  return unbatched(x, (x4) => {
    const [N, C, H, W] = x4.shape;
    const OH = outSize(H, kh, sh, ph, 1), OW = outSize(W, kw, sw, pw, 1);
    return build([N, C, OH, OW], ([n, c, oy, ox]) => {
      let y0 = oy * sh - ph, x0 = ox * sw - pw;
      let y1 = Math.min(y0 + kh, H + ph), x1 = Math.min(x0 + kw, W + pw);
      const padded = (y1 - y0) * (x1 - x0);
      y0 = Math.max(y0, 0);
      x0 = Math.max(x0, 0);
      y1 = Math.min(y1, H);
      x1 = Math.min(x1, W);
      const terms: number[] = [];
      for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) terms.push(at(x4, [n, c, y, xx]));
      return fsum(terms) / (includePad ? padded : (y1 - y0) * (x1 - x0));
    });
  });
}

/** PyTorch's 'nearest': src = min(floor(dst * scale), in - 1), scale = in / out in f32. */
export function upsampleNearest2d(x: Ref, OH: number, OW: number): Ref {
  const src = (i: number, inSize: number, outSz: number) => {
    const scale = Math.fround(inSize / outSz);
    return Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  };
  return unbatched(x, (x4) => {
    const [N, C, H, W] = x4.shape;
    return build([N, C, OH, OW], ([n, c, y, xx]) => at(x4, [n, c, src(y, H, OH), src(xx, W, OW)]));
  });
}

/** F.pad with a constant: [left, right] for the last dim, then the one before...; negative crops. */
export function pad(x: Ref, padding: number[], value: number): Ref {
  const nd = x.shape.length;
  const lo = new Array<number>(nd).fill(0);
  const shape = [...x.shape];
  for (let i = 0; i < padding.length / 2; i++) {
    const d = nd - 1 - i;
    lo[d] = padding[2 * i];
    shape[d] += padding[2 * i] + padding[2 * i + 1];
  }
  return build(shape, (idx) => {
    const src = idx.map((v, d) => v - lo[d]);
    return src.every((v, d) => v >= 0 && v < x.shape[d]) ? at(x, src) : value;
  });
}

// ---- copies and views ----------------------------------------------------------------------

export function reshape(x: Ref, shape: number[]): Ref {
  const known = shape.filter((s) => s !== -1);
  const full = shape.map((s) => (s === -1 ? x.data.length / numel(known) : s));
  if (numel(full) !== x.data.length) throw new Error(`reshape: [${x.shape.join(',')}] to [${shape.join(',')}]`);
  return makeRef(full, x.data);
}

export function permute(x: Ref, dims: number[]): Ref {
  const p = dims.map((d) => normDim(d, x.shape.length));
  return build(p.map((d) => x.shape[d]), (idx) => {
    const src = new Array<number>(p.length);
    p.forEach((d, i) => (src[d] = idx[i]));
    return at(x, src);
  });
}

export function transpose(x: Ref, d0: number, d1: number): Ref {
  if (x.shape.length < 2) return x;
  const p = [...x.shape.keys()];
  const a = normDim(d0, x.shape.length), b = normDim(d1, x.shape.length);
  [p[a], p[b]] = [p[b], p[a]];
  return permute(x, p);
}

export function expand(x: Ref, shape: number[]): Ref {
  const off = shape.length - x.shape.length;
  const full = shape.map((s, i) => (s === -1 ? x.shape[i - off] : s));
  return build(full, (idx) => atBroadcast(x, idx));
}

export function squeeze(x: Ref, dim?: number | number[]): Ref {
  const drop = dim === undefined
    ? x.shape.map((_, d) => d)
    : (Array.isArray(dim) ? dim : [dim]).map((d) => normDim(d, x.shape.length));
  return makeRef(x.shape.filter((s, d) => !(s === 1 && drop.includes(d))), x.data);
}

export function unsqueeze(x: Ref, dim: number): Ref {
  const d = normDim(dim, x.shape.length + 1);
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return makeRef(shape, x.data);
}

export function flatten(x: Ref, start = 0, end = -1): Ref {
  if (x.shape.length === 0) return makeRef([1], x.data);
  const s = normDim(start, x.shape.length), e = normDim(end, x.shape.length);
  return makeRef([...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)], x.data);
}

/** x[..., start:end:step, ...] along dim, Python rules (negative bounds count from the end). */
export function slice(x: Ref, dim: number, start?: number, end?: number, step = 1): Ref {
  const d = normDim(dim, x.shape.length), size = x.shape[d];
  const clampIdx = (v: number | undefined, dflt: number) => (v === undefined ? dflt : Math.min(Math.max(v < 0 ? v + size : v, 0), size));
  const s = clampIdx(start, 0), e = clampIdx(end, size);
  const picked: number[] = [];
  for (let i = s; i < e; i += step) picked.push(i);
  const shape = [...x.shape];
  shape[d] = picked.length;
  return build(shape, (idx) => {
    const src = [...idx];
    src[d] = picked[idx[d]];
    return at(x, src);
  });
}

export function narrow(x: Ref, dim: number, start: number, length: number): Ref {
  const d = normDim(dim, x.shape.length);
  const s = start < 0 ? start + x.shape[d] : start;
  return slice(x, d, s, s + length);
}

export function select(x: Ref, dim: number, index: number): Ref {
  const d = normDim(dim, x.shape.length);
  const i = index < 0 ? index + x.shape[d] : index;
  return build(x.shape.filter((_, k) => k !== d), (idx) => at(x, [...idx.slice(0, d), i, ...idx.slice(d)]));
}

export function split(x: Ref, sizes: number | number[], dim = 0): Ref[] {
  const d = normDim(dim, x.shape.length), total = x.shape[d];
  const parts: number[] = [];
  if (typeof sizes === 'number') {
    for (let s = 0; s < total; s += sizes) parts.push(Math.min(sizes, total - s));
    if (total === 0) parts.push(0);
  } else parts.push(...sizes);
  let start = 0;
  return parts.map((p) => {
    const r = narrow(x, d, start, p);
    start += p;
    return r;
  });
}

export function chunk(x: Ref, chunks: number, dim = 0): Ref[] {
  const d = normDim(dim, x.shape.length);
  return split(x, Math.max(1, Math.ceil(x.shape[d] / chunks)), d);
}

export function unbind(x: Ref, dim = 0): Ref[] {
  const d = normDim(dim, x.shape.length);
  return Array.from({ length: x.shape[d] }, (_, i) => select(x, d, i));
}

/** Concatenation along dim; 1-d empty tensors are skipped (PyTorch's legacy rule). */
export function cat(xs: Ref[], dim = 0): Ref {
  const parts = xs.filter((x) => !(x.shape.length === 1 && x.shape[0] === 0));
  if (parts.length === 0) return makeRef([0]);
  const nd = parts[0].shape.length, d = normDim(dim, nd);
  const shape = [...parts[0].shape];
  shape[d] = parts.reduce((a, x) => a + x.shape[d], 0);
  return build(shape, (idx) => {
    let i = idx[d];
    for (const x of parts) {
      if (i < x.shape[d]) return at(x, [...idx.slice(0, d), i, ...idx.slice(d + 1)]);
      i -= x.shape[d];
    }
    throw new Error('cat: index past the end');
  });
}

export function stack(xs: Ref[], dim = 0): Ref {
  const d = normDim(dim, xs[0].shape.length + 1);
  return cat(xs.map((x) => unsqueeze(x, d)), d);
}
