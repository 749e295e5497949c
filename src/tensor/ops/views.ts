// views.ts: ops that only re-describe memory (reshape, permute, slice, expand, ...) and the few
// that must copy it (contiguous, clone, to, cat, stack).
//
// A view shares its storage with its base: writing through one is seen by the other. Strides
// may be 0 (expand) and any permutation; kernels accept any strides, so views are free until an
// op needs contiguous memory.
import { checkDevice, type Device } from '../device.ts';
import { checkDType, DTYPE_SIZE, DTYPES, promoteTypes, type DType } from '../dtype.ts';
import { native } from '../native.ts';
import { IndexError, ShapeError, ValueError } from '../errors.ts';
import {
  broadcastStrides, checkInt, checkShape, checkSize, contiguousStrides, normDim, numelOf, shapeStr, viewStrides,
} from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { checkTensor, launch, sameDevice } from './dispatch.ts';

/** Accepts both f(2, 3) and f([2, 3]) argument styles. */
export function shapeArgs(args: number[] | [number[]]): number[] {
  return args.length === 1 && Array.isArray(args[0]) ? (args[0] as number[]) : (args as number[]);
}

/** Copies src (broadcast to dst's shape, any dtype) into the view dst. */
export function copyInto(dst: Tensor, src: Tensor): Tensor {
  const s = src.shape.length === dst.shape.length && src.shape.every((d, i) => d === dst.shape[i])
    ? src
    : src.viewAs(dst.shape, broadcastStrides(src.shape, src.strides, dst.shape), src.offset);
  try {
    if (dst.numel > 0) launch(dst, (k) => k.copy(dst.handle, dst.desc, s.handle, s.desc));
  } finally {
    if (s !== src) s.dispose();
  }
  return dst;
}

/** Internal: a contiguous copy of x in dtype, not recorded for autograd. */
export function copyAs(x: Tensor, dtype: DType): Tensor {
  const out = Tensor.empty(x.shape, dtype, x.device);
  if (x.numel === 0) return out;
  return launch(out, (k) => k.copy(out.handle, out.desc, x.handle, x.desc));
}

export function contiguous(x: Tensor): Tensor {
  checkTensor(x, 'contiguous');
  return record('identity', [x], x.isContiguous ? x.viewAs(x.shape, x.strides, x.offset) : copyAs(x, x.dtype));
}

export function clone(x: Tensor): Tensor {
  return record('identity', [x], copyAs(checkTensor(x, 'clone'), x.dtype));
}

/** Casts to a dtype or moves to a device; returns a new view when nothing changes. */
export function to(x: Tensor, target: DType | Device): Tensor {
  checkTensor(x, 'to');
  if ((DTYPES as readonly string[]).includes(target)) {
    const d = checkDType(target, 'to');
    return d === x.dtype ? record('identity', [x], x.viewAs(x.shape, x.strides, x.offset)) : record('to', [x], copyAs(x, d));
  }
  const dev = checkDevice(target, 'to');
  if (dev === x.device) return record('identity', [x], x.viewAs(x.shape, x.strides, x.offset));
  if (dev === 'meta') return Tensor.empty(x.shape, x.dtype, 'meta');
  if (x.device === 'meta') throw new ValueError(`to: cannot move a meta tensor to ${dev} (a meta tensor has no values)`);
  return record('toDevice', [x], moveTo(x, dev));
}

/** A contiguous copy of x on another device with memory (host <-> device copies of the bytes). */
function moveTo(x: Tensor, dev: Device): Tensor {
  const src = x.isContiguous ? x : copyAs(x, x.dtype);
  const out = Tensor.empty(x.shape, x.dtype, dev);
  try {
    const esize = DTYPE_SIZE[x.dtype];
    if (x.numel > 0) native.transfer(out.handle, 0, src.handle, src.offset * esize, x.numel * esize);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    if (src !== x) src.dispose();
  }
  return out;
}

export function reshape(x: Tensor, shape: number[]): Tensor {
  checkTensor(x, 'reshape');
  const target = inferShape(x, shape, 'reshape');
  const st = viewStrides(x.shape, x.strides, target);
  if (st) return record('reshape', [x], x.viewAs(target, st, x.offset));
  const c = copyAs(x, x.dtype);
  const out = c.viewAs(target, contiguousStrides(target), 0);
  c.dispose();
  return record('reshape', [x], out);
}

export function view(x: Tensor, shape: number[]): Tensor {
  checkTensor(x, 'view');
  const target = inferShape(x, shape, 'view');
  const st = viewStrides(x.shape, x.strides, target);
  if (!st) {
    throw new ShapeError(`view: shape ${shapeStr(target)} is not compatible with the strides of this ${shapeStr(x.shape)} tensor; use reshape (copies)`);
  }
  return record('reshape', [x], x.viewAs(target, st, x.offset));
}

/** Resolves one -1 in a target shape and checks the element count. */
function inferShape(x: Tensor, shape: unknown, op: string): number[] {
  if (!Array.isArray(shape)) throw new ValueError(`${op}: shape must be an array of sizes`);
  let infer = -1;
  const dims = shape.map((d, i) => {
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(`${op}: only one dim may be -1, got ${shapeStr(shape)}`);
      infer = i;
      return 1;
    }
    return checkSize(d, op, `shape[${i}]`);
  });
  checkShape(dims, op);
  const known = numelOf(dims);
  if (infer >= 0) {
    if (known === 0 || x.numel % known !== 0) {
      throw new ShapeError(`${op}: cannot reshape a tensor of ${x.numel} elements ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    }
    dims[infer] = x.numel / known;
  } else if (known !== x.numel) {
    throw new ShapeError(`${op}: cannot reshape a tensor of ${x.numel} elements ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  }
  return dims;
}

export function permute(x: Tensor, dims: number[]): Tensor {
  checkTensor(x, 'permute');
  if (!Array.isArray(dims) || dims.length !== x.ndim) {
    throw new ShapeError(`permute: expected ${x.ndim} dims for a tensor of shape ${shapeStr(x.shape)}, got ${String(dims)}`);
  }
  const p = dims.map((d) => normDim(d, x.ndim, 'permute'));
  if (new Set(p).size !== p.length) throw new IndexError(`permute: dims ${shapeStr(dims)} repeat a dim`);
  return record('permute', [x], x.viewAs(p.map((d) => x.shape[d]), p.map((d) => x.strides[d]), x.offset), { dims: p });
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  checkTensor(x, 'transpose');
  if (x.ndim < 2 && (dim0 === 0 || dim0 === -1) && (dim1 === 0 || dim1 === -1)) return record('identity', [x], x.viewAs(x.shape, x.strides, x.offset));
  const a = normDim(dim0, x.ndim, 'transpose', 'dim0'), b = normDim(dim1, x.ndim, 'transpose', 'dim1');
  const p = [...Array(x.ndim).keys()];
  p[a] = b;
  p[b] = a;
  return permute(x, p);
}

export function expand(x: Tensor, shape: number[]): Tensor {
  checkTensor(x, 'expand');
  if (!Array.isArray(shape) || shape.length < x.ndim) {
    throw new ShapeError(`expand: target ${String(shape)} has fewer dims than the tensor's ${shapeStr(x.shape)}`);
  }
  const off = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= off ? x.shape[i - off] : checkSize(d, 'expand', `shape[${i}]`)));
  checkShape(target, 'expand');
  for (let i = 0; i < x.ndim; i++) {
    const s = x.shape[i], t = target[i + off];
    if (s !== t && s !== 1) throw new ShapeError(`expand: cannot expand ${shapeStr(x.shape)} to ${shapeStr(target)} (dim ${i + off}: ${s} vs ${t})`);
  }
  return record('expand', [x], x.viewAs(target, broadcastStrides(x.shape, x.strides, target), x.offset));
}

export function broadcastTo(x: Tensor, shape: number[]): Tensor {
  return expand(x, shape);
}

export function squeeze(x: Tensor, dim?: number | number[]): Tensor {
  checkTensor(x, 'squeeze');
  const drop = new Set<number>();
  if (dim === undefined) x.shape.forEach((d, i) => d === 1 && drop.add(i));
  else for (const d of Array.isArray(dim) ? dim : [dim]) {
    const n = normDim(d, x.ndim, 'squeeze');
    if (x.ndim > 0 && x.shape[n] === 1) drop.add(n);
  }
  const keep = [...Array(x.ndim).keys()].filter((i) => !drop.has(i));
  return record('reshape', [x], x.viewAs(keep.map((i) => x.shape[i]), keep.map((i) => x.strides[i]), x.offset));
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  checkTensor(x, 'unsqueeze');
  const d = normDim(dim, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape], strides = [...x.strides];
  const st = d < x.ndim ? x.strides[d] * x.shape[d] : 1;
  shape.splice(d, 0, 1);
  strides.splice(d, 0, st);
  checkShape(shape, 'unsqueeze');
  return record('reshape', [x], x.viewAs(shape, strides, x.offset));
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  checkTensor(x, 'flatten');
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim(startDim, x.ndim, 'flatten', 'startDim'), e = normDim(endDim, x.ndim, 'flatten', 'endDim');
  if (s > e) throw new IndexError(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const shape = [...x.shape.slice(0, s), numelOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  checkTensor(x, 'narrow');
  const d = normDim(dim, x.ndim, 'narrow');
  const size = x.shape[d];
  let s = checkInt(start, 'narrow', 'start');
  if (s < 0) s += size;
  checkSize(length, 'narrow', 'length');
  if (s < 0 || s + length > size) throw new IndexError(`narrow: [${start}, ${start}+${length}) is out of range for dim ${d} of size ${size}`);
  const shape = [...x.shape];
  shape[d] = length;
  return record('slice', [x], x.viewAs(shape, x.strides, x.offset + s * x.strides[d]), { dim: d, start: s, end: s + length, step: 1 });
}

/** Python-style slice x[..., start:end:step, ...] along dim (negative start/end count from the end). */
export function slice(x: Tensor, dim: number, start?: number, end?: number, step = 1): Tensor {
  checkTensor(x, 'slice');
  const d = normDim(dim, x.ndim, 'slice');
  const size = x.shape[d];
  if (checkInt(step, 'slice', 'step') <= 0) throw new ValueError(`slice: step must be positive, got ${step}`);
  const clampIdx = (v: number | undefined, dflt: number, arg: string) => {
    if (v === undefined || v === null) return dflt;
    let i = checkInt(v, 'slice', arg);
    if (i < 0) i += size;
    return Math.min(Math.max(i, 0), size);
  };
  const s = clampIdx(start, 0, 'start'), e = clampIdx(end, size, 'end');
  const len = e > s ? Math.ceil((e - s) / step) : 0;
  const shape = [...x.shape], strides = [...x.strides];
  shape[d] = len;
  strides[d] = x.strides[d] * step;
  return record('slice', [x], x.viewAs(shape, strides, x.offset + (len > 0 ? s * x.strides[d] : 0)), { dim: d, start: s, end: e, step });
}

export function select(x: Tensor, dim: number, index: number): Tensor {
  checkTensor(x, 'select');
  if (x.ndim === 0) throw new IndexError('select: cannot select from a 0-d tensor');
  const d = normDim(dim, x.ndim, 'select');
  const size = x.shape[d];
  let i = checkInt(index, 'select', 'index');
  if (i < -size || i >= size) throw new IndexError(`select: index ${index} is out of range for dim ${d} of size ${size}`);
  if (i < 0) i += size;
  const shape = x.shape.filter((_, k) => k !== d), strides = x.strides.filter((_, k) => k !== d);
  return record('select', [x], x.viewAs(shape, strides, x.offset + i * x.strides[d]), { dim: d, index: i });
}

export function split(x: Tensor, sizes: number | number[], dim = 0): Tensor[] {
  checkTensor(x, 'split');
  const d = normDim(dim, x.ndim, 'split');
  const total = x.shape[d];
  let parts: number[];
  if (typeof sizes === 'number') {
    if (checkSize(sizes, 'split', 'sizes') === 0) throw new ValueError('split: split size must be positive');
    parts = [];
    for (let s = 0; s < total; s += sizes) parts.push(Math.min(sizes, total - s));
    if (total === 0) parts.push(0);
  } else {
    if (!Array.isArray(sizes)) throw new ValueError('split: sizes must be a number or an array of numbers');
    parts = sizes.map((s, i) => checkSize(s, 'split', `sizes[${i}]`));
    const sum = parts.reduce((a, b) => a + b, 0);
    if (sum !== total) throw new ShapeError(`split: sizes ${shapeStr(parts)} sum to ${sum}, but dim ${d} has size ${total}`);
  }
  const out: Tensor[] = [];
  let at = 0;
  for (const p of parts) {
    out.push(narrow(x, d, at, p));
    at += p;
  }
  return out;
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor(x, 'chunk');
  if (checkSize(chunks, 'chunk', 'chunks') === 0) throw new ValueError('chunk: chunks must be positive');
  const d = normDim(dim, x.ndim, 'chunk');
  const size = Math.max(1, Math.ceil(x.shape[d] / chunks));
  return split(x, size, d);
}

export function unbind(x: Tensor, dim = 0): Tensor[] {
  checkTensor(x, 'unbind');
  const d = normDim(dim, x.ndim, 'unbind');
  return Array.from({ length: x.shape[d] }, (_, i) => select(x, d, i));
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError('cat: expected a non-empty array of tensors');
  tensors.forEach((t, i) => checkTensor(t, 'cat', `tensors[${i}]`));
  const device = sameDevice('cat', ...tensors);
  const ref = tensors.find((t) => !(t.ndim === 1 && t.shape[0] === 0)) ?? tensors[0];
  const d = normDim(dim, ref.ndim, 'cat');
  let total = 0;
  let dtype = tensors[0].dtype;
  for (const [i, t] of tensors.entries()) {
    dtype = promoteTypes(dtype, t.dtype);
    if (t.ndim === 1 && t.shape[0] === 0 && ref.ndim !== 1) continue;  // legacy empty tensors, as in PyTorch
    if (t.ndim !== ref.ndim || t.shape.some((s, k) => k !== d && s !== ref.shape[k])) {
      throw new ShapeError(`cat: tensors[${i}] has shape ${shapeStr(t.shape)}, which does not match ${shapeStr(ref.shape)} outside dim ${d}`);
    }
    total += t.shape[d];
  }
  const shape = [...ref.shape];
  shape[d] = total;
  const out = Tensor.empty(shape, dtype, device);
  let at = 0;
  for (const t of tensors) {
    if (t.ndim !== ref.ndim) continue;
    const part = narrow(out, d, at, t.shape[d]);
    copyInto(part, t);
    part.dispose();
    at += t.shape[d];
  }
  return record('cat', tensors, out, { dim: d });
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError('stack: expected a non-empty array of tensors');
  tensors.forEach((t, i) => checkTensor(t, 'stack', `tensors[${i}]`));
  const ref = tensors[0];
  for (const [i, t] of tensors.entries()) {
    if (t.ndim !== ref.ndim || t.shape.some((s, k) => s !== ref.shape[k])) {
      throw new ShapeError(`stack: tensors[${i}] has shape ${shapeStr(t.shape)}, expected ${shapeStr(ref.shape)}`);
    }
  }
  const d = normDim(dim, ref.ndim + 1, 'stack');
  const parts = tensors.map((t) => unsqueeze(t, d));
  try {
    return cat(parts, d);
  } finally {
    for (const p of parts) p.dispose();
  }
}
