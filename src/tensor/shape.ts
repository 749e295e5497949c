// shape.ts: shapes, strides, broadcasting and argument checks shared by every op.
import { IndexError, ShapeError, ValueError } from './errors.ts';

export type Shape = readonly number[];
export const MAX_DIMS = 8;

export function shapeStr(s: Shape): string {
  return `[${s.join(',')}]`;
}

export function numelOf(s: Shape): number {
  let n = 1;
  for (const d of s) n *= d;
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function contiguousStrides(s: Shape): number[] {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

export function isContiguous(shape: Shape, strides: Shape): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** A size argument: a finite, non-negative integer. */
export function checkSize(n: unknown, op: string, arg: string): number {
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new ShapeError(`${op}: ${arg} must be a finite number, got ${String(n)}`);
  }
  if (!Number.isInteger(n) || n < 0) throw new ShapeError(`${op}: ${arg} must be a non-negative integer, got ${n}`);
  return n;
}

/** A shape argument: an array (or the rest arguments) of sizes. */
export function checkShape(s: unknown, op: string, arg = 'shape'): number[] {
  if (!Array.isArray(s)) throw new ValueError(`${op}: ${arg} must be an array of sizes, got ${typeof s}`);
  if (s.length > MAX_DIMS) throw new ShapeError(`${op}: ${arg} has ${s.length} dims; at most ${MAX_DIMS} are supported`);
  const out = s.map((d, i) => checkSize(d, op, `${arg}[${i}]`));
  const n = numelOf(out);
  if (n > Number.MAX_SAFE_INTEGER) throw new ShapeError(`${op}: ${arg} ${shapeStr(out)} has too many elements`);
  return out;
}

/** An integer argument (may be negative). */
export function checkInt(n: unknown, op: string, arg: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new ValueError(`${op}: ${arg} must be an integer, got ${String(n)}`);
  }
  return n;
}

export function checkNumber(n: unknown, op: string, arg: string): number {
  if (typeof n !== 'number') throw new ValueError(`${op}: ${arg} must be a number, got ${typeof n}`);
  return n;
}

/** Normalises a possibly negative dim; `ndim` dims are valid (ndim + 1 for insert positions). */
export function normDim(dim: unknown, ndim: number, op: string, arg = 'dim'): number {
  const d = checkInt(dim, op, arg);
  const lo = -Math.max(ndim, 1), hi = Math.max(ndim, 1) - 1;
  if (d < lo || d > hi) throw new IndexError(`${op}: ${arg} ${d} is out of range for a tensor with ${ndim} dims`);
  return d < 0 ? d + Math.max(ndim, 1) : d;
}

/** Normalises a list of dims (or all dims when undefined); rejects repeats. */
export function normDims(dims: number | readonly number[] | undefined, ndim: number, op: string): number[] {
  if (dims === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  if (!Array.isArray(list)) throw new ValueError(`${op}: dim must be a number or an array of numbers`);
  const out = list.map((d) => (ndim === 0 ? (normDim(d, 0, op), 0) : normDim(d, ndim, op)));
  if (ndim === 0) return [];
  if (new Set(out).size !== out.length) throw new IndexError(`${op}: dim ${shapeStr(list)} repeats a dim`);
  return out.sort((a, b) => a - b);
}

export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of (shape, strides) as `target` (stride 0 on broadcast dims). */
export function broadcastStrides(shape: Shape, strides: Shape, target: Shape): number[] {
  const off = target.length - shape.length;
  return target.map((_, i) => {
    if (i < off) return 0;
    return shape[i - off] === 1 && target[i] !== 1 ? 0 : strides[i - off];
  });
}

/**
 * Strides for viewing (shape, strides) as `newShape` without copying, or null when the memory
 * layout does not allow it (PyTorch's computeStride: each run of merged dims must be contiguous).
 */
export function viewStrides(shape: Shape, strides: Shape, newShape: Shape): number[] | null {
  const newStrides = new Array<number>(newShape.length);
  if (numelOf(shape) === 0) return contiguousStrides(newShape);
  let viewD = newShape.length - 1;
  let chunkBase = strides.length ? strides[strides.length - 1] : 1;
  let tensorNumel = 1, viewNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorNumel *= shape[d];
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorNumel * chunkBase)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
        newStrides[viewD] = viewNumel * chunkBase;
        viewNumel *= newShape[viewD];
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkBase = strides[d - 1];
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  if (viewD !== -1) return null;
  return newStrides;
}
