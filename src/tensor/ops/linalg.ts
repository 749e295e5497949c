// linalg.ts: matmul (with batch broadcasting) and the indexing ops: gather, scatterAdd,
// indexSelect, embedding, maskedFill, tril/triu, oneHot.
//
// Index tensors are i32. The kernels range-check every index and raise IndexError, so a bad
// token id can never read outside a weight matrix.
import { autocastOperands } from '../autocast.ts';
import { isFloat } from '../dtype.ts';
import { DTypeError, IndexError, ShapeError, ValueError } from '../errors.ts';
import { broadcastShapes, broadcastStrides, checkInt, checkSize, normDim, numelOf, shapeStr, viewStrides } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { checkTensor, launch, sameDevice, scalarTensor } from './dispatch.ts';
import { arange } from './creation.ts';
import { eq, where } from './elementwise.ts';
import { max, min } from './reduce.ts';
import { contiguous, copyAs, to } from './views.ts';

/** x as a 3-d view [B, r, c] of `batch` + [r, c] (broadcasting the batch dims), copying only if needed. */
function batched3d(x: Tensor, batch: number[], rows: number, cols: number): Tensor {
  const full = [...batch, rows, cols];
  const strides = broadcastStrides(x.shape, x.strides, full);
  const B = numelOf(batch);
  const st = viewStrides(full, strides, [B, rows, cols]);
  if (st) return x.viewAs([B, rows, cols], st, x.offset);
  const b = x.viewAs(full, strides, x.offset);
  try {
    const c = contiguous(b);
    const v = c.viewAs([B, rows, cols], [rows * cols, cols, 1], 0);
    c.dispose();
    return v;
  } finally {
    b.dispose();
  }
}

/**
 * Matrix product with torch.matmul's rules: 1-d operands are promoted to a row (left) or a
 * column (right) and the added dim removed afterwards; leading dims broadcast as batch dims.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'matmul', 'input');
  checkTensor(b, 'matmul', 'other');
  const [ca, cb] = autocastOperands(a, b);
  if (ca !== a || cb !== b) return matmul(ca, cb);
  const device = sameDevice('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) throw new ShapeError('matmul: both arguments need at least 1 dim (use mul for scalars)');
  if (a.dtype !== b.dtype) throw new DTypeError(`matmul: dtypes differ (${a.dtype} and ${b.dtype})`);
  if (!isFloat(a.dtype)) throw new DTypeError(`matmul: expected float tensors, got ${a.dtype}`);
  const as = a.ndim === 1 ? [1, a.shape[0]] : a.shape;
  const bs = b.ndim === 1 ? [b.shape[0], 1] : b.shape;
  const [M, K] = as.slice(-2), [K2, N] = bs.slice(-2);
  if (K !== K2) throw new ShapeError(`matmul: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} cannot be multiplied (${K} != ${K2})`);
  const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2), 'matmul');
  const av = a.ndim === 1 ? a.viewAs(as, [0, a.strides[0]], a.offset) : a;
  const bv = b.ndim === 1 ? b.viewAs(bs, [b.strides[0], 0], b.offset) : b;
  const a3 = batched3d(av, batch, M, K), b3 = batched3d(bv, batch, K, N);
  try {
    const out3 = Tensor.empty([numelOf(batch), M, N], a.dtype, device);
    if (out3.numel > 0) launch(out3, (k) => k.matmul(out3.handle, out3.desc, a3.handle, a3.desc, b3.handle, b3.desc));
    const shape = [...batch, ...(a.ndim === 1 ? [] : [M]), ...(b.ndim === 1 ? [] : [N])];
    const out = out3.reshape(shape);
    out3.dispose();
    return record('matmul', [a, b], out);
  } finally {
    a3.dispose();
    b3.dispose();
    if (av !== a) av.dispose();
    if (bv !== b) bv.dispose();
  }
}

/** Batched matmul of two 3-d tensors [B,M,K] x [B,K,N] (no broadcasting, as torch.bmm). */
export function bmm(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'bmm', 'input');
  checkTensor(b, 'bmm', 'other');
  if (a.ndim !== 3 || b.ndim !== 3 || a.shape[0] !== b.shape[0]) {
    throw new ShapeError(`bmm: expected [B,M,K] and [B,K,N], got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
  return matmul(a, b);
}

function checkIndex(index: Tensor, op: string): void {
  checkTensor(index, op, 'index');
  if (index.dtype !== 'i32') throw new DTypeError(`${op}: index must be an i32 tensor, got ${index.dtype}`);
}

/** out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (torch.gather). */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkTensor(x, 'gather');
  checkIndex(index, 'gather');
  const device = sameDevice('gather', x, index);
  const d = normDim(dim, x.ndim, 'gather');
  if (index.ndim !== x.ndim) throw new ShapeError(`gather: index has ${index.ndim} dims, input has ${x.ndim}`);
  index.shape.forEach((s, k) => {
    if (k !== d && s > x.shape[k]) throw new ShapeError(`gather: index shape ${shapeStr(index.shape)} exceeds input shape ${shapeStr(x.shape)} at dim ${k}`);
  });
  const out = Tensor.empty(index.shape, x.dtype, device);
  if (out.numel > 0) launch(out, (k) => k.gather(out.handle, out.desc, x.handle, x.desc, d, index.handle, index.desc));
  return record('gather', [x, dim, index], out, { dim: d });
}

/** A copy of x with src added at the positions index names along dim (torch.scatter_add). */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  checkTensor(x, 'scatterAdd');
  checkIndex(index, 'scatterAdd');
  checkTensor(src, 'scatterAdd', 'src');
  sameDevice('scatterAdd', x, index, src);
  if (x.dtype === 'bool') throw new DTypeError('scatterAdd: not defined for bool');
  if (src.dtype !== x.dtype) throw new DTypeError(`scatterAdd: src dtype ${src.dtype} differs from input dtype ${x.dtype}`);
  const d = normDim(dim, x.ndim, 'scatterAdd');
  if (index.ndim !== x.ndim || src.ndim !== x.ndim) throw new ShapeError('scatterAdd: input, index and src must have the same number of dims');
  index.shape.forEach((s, k) => {
    if (s > src.shape[k] || (k !== d && s > x.shape[k])) {
      throw new ShapeError(`scatterAdd: index shape ${shapeStr(index.shape)} exceeds src ${shapeStr(src.shape)} or input ${shapeStr(x.shape)} at dim ${k}`);
    }
  });
  const out = copyAs(x, x.dtype);
  if (index.numel > 0) launch(out, (k) => k.scatterAdd(out.handle, out.desc, d, index.handle, index.desc, src.handle, src.desc));
  return record('scatterAdd', [x, dim, index, src], out, { dim: d });
}

/** The entries of x at `index` (1-d, i32) along dim. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  checkTensor(x, 'indexSelect');
  checkIndex(index, 'indexSelect');
  const device = sameDevice('indexSelect', x, index);
  if (index.ndim > 1) throw new ShapeError(`indexSelect: index must be 1-d, got shape ${shapeStr(index.shape)}`);
  const idx = index.ndim === 0 ? index.viewAs([1], [1], index.offset) : index;
  try {
    if (x.ndim === 0) throw new IndexError('indexSelect: cannot index a 0-d tensor');
    const d = normDim(dim, x.ndim, 'indexSelect');
    const shape = [...x.shape];
    shape[d] = idx.shape[0];
    const out = Tensor.empty(shape, x.dtype, device);
    if (out.numel > 0) launch(out, (k) => k.indexSelect(out.handle, out.desc, x.handle, x.desc, d, idx.handle, idx.desc));
    return record('indexSelect', [x, dim, index], out, { dim: d });
  } finally {
    if (idx !== index) idx.dispose();
  }
}

/** Rows of weight [V, D] for every id in `indices` (any shape, i32): result [...indices.shape, D]. */
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  checkIndex(indices, 'embedding');
  checkTensor(weight, 'embedding', 'weight');
  if (weight.ndim !== 2) throw new ShapeError(`embedding: weight must be 2-d [num, dim], got ${shapeStr(weight.shape)}`);
  const flat = indices.reshape([indices.numel]);
  try {
    const rows = indexSelect(weight, 0, flat);
    const out = rows.reshape([...indices.shape, weight.shape[1]]);
    rows.dispose();
    return out;
  } catch (e) {
    // The kernel's range check names indexSelect; the caller called embedding.
    if (e instanceof IndexError) throw new IndexError(e.message.replace(/^indexSelect:/, 'embedding:'));
    throw e;
  } finally {
    flat.dispose();
  }
}

/** A copy of x with `value` where mask (bool, broadcastable to x) is true. */
export function maskedFill(x: Tensor, mask: Tensor, value: number | boolean): Tensor {
  checkTensor(x, 'maskedFill');
  checkTensor(mask, 'maskedFill', 'mask');
  if (mask.dtype !== 'bool') throw new DTypeError(`maskedFill: mask must be bool, got ${mask.dtype}`);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new ValueError('maskedFill: value must be a number or boolean');
  const shape = broadcastShapes(x.shape, mask.shape, 'maskedFill');
  if (shape.length !== x.ndim || shape.some((s, i) => s !== x.shape[i])) {
    throw new ShapeError(`maskedFill: mask ${shapeStr(mask.shape)} does not broadcast to the input's shape ${shapeStr(x.shape)}`);
  }
  const v = scalarTensor(value, x.dtype, sameDevice('maskedFill', x, mask));
  try {
    return where(mask, v, x);
  } finally {
    v.dispose();
  }
}

function triangle(name: string, x: Tensor, k: number, upper: boolean): Tensor {
  checkTensor(x, name);
  checkInt(k, name, 'diagonal');
  if (x.ndim < 2) throw new ShapeError(`${name}: expected at least 2 dims, got shape ${shapeStr(x.shape)}`);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  if (out.numel > 0) launch(out, (kern) => kern.triangle(out.handle, out.desc, x.handle, x.desc, k, upper));
  return record(name, [x], out, { k });
}
/** Keeps the lower triangle (j - i <= k) of the last two dims, zeroing the rest. */
export const tril = (x: Tensor, k = 0): Tensor => triangle('tril', x, k, false);
/** Keeps the upper triangle (j - i >= k) of the last two dims, zeroing the rest. */
export const triu = (x: Tensor, k = 0): Tensor => triangle('triu', x, k, true);

/** One-hot encoding of i32 indices: shape [...indices.shape, numClasses], i32. */
export function oneHot(indices: Tensor, numClasses?: number): Tensor {
  checkIndex(indices, 'oneHot');
  if (indices.device === 'meta' && numClasses === undefined) throw new ValueError('oneHot: numClasses is required on meta');
  let C = numClasses;
  if (indices.numel > 0 && indices.device !== 'meta') {
    const lo = min(indices), hi = max(indices);
    const lov = lo.item() as number, hiv = hi.item() as number;
    lo.dispose();
    hi.dispose();
    if (lov < 0) throw new IndexError(`oneHot: index ${lov} is negative`);
    C ??= hiv + 1;
    if (hiv >= C) throw new IndexError(`oneHot: index ${hiv} is out of range for ${C} classes`);
  }
  C = checkSize(C ?? 0, 'oneHot', 'numClasses');
  const classes = arange(C, { dtype: 'i32', device: indices.device });
  const col = indices.unsqueeze(-1);
  const hot = eq(col, classes);
  try {
    return to(hot, 'i32');
  } finally {
    hot.dispose();
    col.dispose();
    classes.dispose();
  }
}
