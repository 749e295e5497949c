// reduce.ts: reductions over any set of dims (sum, mean, max, ... with keepdim), softmax,
// log-softmax and cumsum.
//
// The op layer permutes the input (a free view) so the kept dims come first and the reduced
// dims last; the native kernel then reduces the trailing dims of a strided view, one output
// element per task, in a fixed order, so results are deterministic for any thread count.
import { floatOpDType, type DType } from '../dtype.ts';
import { DTypeError, ShapeError, ValueError } from '../errors.ts';
import { normDim, normDims } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { native } from '../native.ts';
import { record } from '../tape.ts';
import { checkTensor, launch } from './dispatch.ts';
import { copyAs } from './views.ts';

export type Dims = number | number[];
export interface VarOptions {
  /** Bessel's correction: 1 (default) for the unbiased estimate, 0 for the population value. */
  correction?: number;
  keepdim?: boolean;
}

const DIFFERENTIABLE = new Set<string>(['sum', 'mean', 'max', 'min', 'prod', 'var', 'logsumexp']);
const REDUCE = { sum: 0, mean: 1, max: 2, min: 3, prod: 4, argmax: 5, argmin: 6, all: 7, any: 8, var: 9, logsumexp: 10 } as const;
type ReduceName = keyof typeof REDUCE;

function reduce(name: ReduceName, x: Tensor, dim: Dims | undefined, keepdim: boolean, inDType: DType, outDType: DType, correction = 0): Tensor {
  checkTensor(x, name);
  if (typeof keepdim !== 'boolean') throw new ValueError(`${name}: keepdim must be a boolean`);
  let dims = normDims(dim, x.ndim, name);
  if (Array.isArray(dim) && dim.length === 0) dims = [...Array(x.ndim).keys()];
  const reduced = new Set(dims);
  const kept = [...Array(x.ndim).keys()].filter((d) => !reduced.has(d));
  const outShape = keepdim ? x.shape.map((s, d) => (reduced.has(d) ? 1 : s)) : kept.map((d) => x.shape[d]);
  const order = [...kept, ...dims];
  const src = x.dtype === inDType ? x : copyAs(x, inDType);
  const perm = src.viewAs(order.map((d) => x.shape[d]), order.map((d) => src.strides[d]), src.offset);
  try {
    const out = Tensor.empty(outShape, outDType, x.device);
    if (out.numel > 0) launch(out, (k) => k.reduce(REDUCE[name], out.handle, out.desc, perm.handle, perm.desc, kept.length, correction));
    return DIFFERENTIABLE.has(name) ? record(name, [x], out, { dims, keepdim, correction }) : out;
  } finally {
    perm.dispose();
    if (src !== x) src.dispose();
  }
}

/** Integer sums stay i32 (bool counts become i32); floats keep their dtype. */
function sumDType(d: DType): DType {
  return d === 'bool' ? 'i32' : d;
}

export function sum(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const d = sumDType(checkTensor(x, 'sum').dtype);
  return reduce('sum', x, dim, keepdim, d, d);
}
export function prod(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const d = sumDType(checkTensor(x, 'prod').dtype);
  return reduce('prod', x, dim, keepdim, d, d);
}
export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const d = floatOpDType(checkTensor(x, 'mean').dtype, 'mean');
  return reduce('mean', x, dim, keepdim, d, d);
}
/** The maximum over dims (PyTorch's amax); argmax gives the indices. NaN propagates. */
export function max(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const d = checkTensor(x, 'max').dtype;
  if (d === 'bool') return any(x, dim, keepdim);
  return reduce('max', x, dim, keepdim, d, d);
}
export function min(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const d = checkTensor(x, 'min').dtype;
  if (d === 'bool') return all(x, dim, keepdim);
  return reduce('min', x, dim, keepdim, d, d);
}

function argReduce(name: 'argmax' | 'argmin', x: Tensor, dim: number | undefined, keepdim: boolean): Tensor {
  checkTensor(x, name);
  if (x.dtype === 'bool') throw new DTypeError(`${name}: not defined for bool`);
  if (dim === undefined) {
    if (x.numel === 0) throw new ShapeError(`${name}: cannot reduce an empty tensor`);
    const flat = x.isContiguous ? x.viewAs([x.numel], [1], x.offset) : x.reshape([x.numel]);
    try {
      const r = reduce(name, flat, 0, false, x.dtype, 'i32');
      if (!keepdim) return r;
      const shaped = r.reshape(x.shape.map(() => 1));
      r.dispose();
      return shaped;
    } finally {
      flat.dispose();
    }
  }
  const d = normDim(dim, x.ndim, name);
  if (x.ndim > 0 && x.shape[d] === 0) throw new ShapeError(`${name}: cannot reduce over an empty dim ${d}`);
  return reduce(name, x, d, keepdim, x.dtype, 'i32');
}
/** Index of the first maximum along dim (of the flattened tensor when dim is omitted), as i32. */
export const argmax = (x: Tensor, dim?: number, keepdim = false): Tensor => argReduce('argmax', x, dim, keepdim);
export const argmin = (x: Tensor, dim?: number, keepdim = false): Tensor => argReduce('argmin', x, dim, keepdim);

export function all(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return reduce('all', x, dim, keepdim, checkTensor(x, 'all').dtype, 'bool');
}
export function any(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return reduce('any', x, dim, keepdim, checkTensor(x, 'any').dtype, 'bool');
}

function varOpts(opts: VarOptions | undefined, op: string): { correction: number; keepdim: boolean } {
  const correction = opts?.correction ?? 1, keepdim = opts?.keepdim ?? false;
  if (typeof correction !== 'number' || !Number.isFinite(correction) || correction < 0) {
    throw new ValueError(`${op}: correction must be a non-negative number, got ${String(correction)}`);
  }
  return { correction, keepdim };
}
export function variance(x: Tensor, dim?: Dims, opts?: VarOptions): Tensor {
  const d = floatOpDType(checkTensor(x, 'var').dtype, 'var');
  const { correction, keepdim } = varOpts(opts, 'var');
  return reduce('var', x, dim, keepdim, d, d, correction);
}
export function std(x: Tensor, dim?: Dims, opts?: VarOptions): Tensor {
  const v = variance(x, dim, opts);
  try {
    return v.sqrt();
  } finally {
    v.dispose();
  }
}
/** log(sum(exp(x))) computed stably. */
export function logsumexp(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const d = floatOpDType(checkTensor(x, 'logsumexp').dtype, 'logsumexp');
  return reduce('logsumexp', x, dim, keepdim, d, d);
}

/**
 * Runs a kernel that maps x to an output of the same shape along one dim (softmax, cumsum),
 * in `dtype`; a 0-d input is handled as a 1-element vector.
 */
function alongDim(name: string, x: Tensor, dim: number, dtype: DType,
  kernel: (o: Tensor, v: Tensor, d: number) => void): Tensor {
  if (dim === undefined) throw new ValueError(`${name}: dim is required`);
  const d = x.ndim === 0 ? (normDim(dim, 0, name), 0) : normDim(dim, x.ndim, name);
  const src = x.dtype === dtype ? x : copyAs(x, dtype);
  const v = x.ndim === 0 ? src.viewAs([1], [1], src.offset) : src;
  try {
    const out = Tensor.empty(x.shape, dtype, x.device);
    if (out.numel === 0) return record(name, [x], out, { dim: d });
    const o = x.ndim === 0 ? out.viewAs([1], [1], 0) : out;
    try {
      launch(out, () => kernel(o, v, d));
    } finally {
      if (o !== out) o.dispose();
    }
    return record(name, [x], out, { dim: d });
  } finally {
    if (v !== src) v.dispose();
    if (src !== x) src.dispose();
  }
}

function softmaxLike(name: 'softmax' | 'logSoftmax', x: Tensor, dim: number): Tensor {
  const dtype = floatOpDType(checkTensor(x, name).dtype, name);
  return alongDim(name, x, dim, dtype, (o, v, d) => native.softmax(o.handle, o.desc, v.handle, v.desc, d, name === 'logSoftmax'));
}
/** Softmax along dim, computed stably (max subtracted first). */
export const softmax = (x: Tensor, dim: number): Tensor => softmaxLike('softmax', x, dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => softmaxLike('logSoftmax', x, dim);

/** Inclusive cumulative sum along dim; bool and i32 sum as i32. */
export function cumsum(x: Tensor, dim: number): Tensor {
  const dtype = sumDType(checkTensor(x, 'cumsum').dtype);
  return alongDim('cumsum', x, dim, dtype, (o, v, d) => native.cumsum(o.handle, o.desc, v.handle, v.desc, d));
}
