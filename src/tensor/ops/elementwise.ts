// elementwise.ts: unary and binary math, comparisons, logical ops and where, with NumPy
// broadcasting on any strided input.
//
// Operands are brought to one dtype first (promotion rules in dtype.ts); a JS number becomes a
// 0-d tensor, broadcast with stride 0, so the kernel sees it as a normal operand. The op codes
// mirror UnaryOp/BinaryOp in native/cpu/kernels.h.
import { floatOpDType, isFloat, promoteTypes, promoteWithScalar, type DType } from '../dtype.ts';
import { DTypeError, ShapeError, ValueError } from '../errors.ts';
import { broadcastShapes, broadcastStrides, sameShape, shapeStr, type Shape } from '../shape.ts';
import { Tensor, type TensorLike } from '../tensor.ts';
import { checkTensor, checkTensorLike, launch, sameDevice, scalarTensor } from './dispatch.ts';
import { record } from '../tape.ts';
import { copyAs } from './views.ts';

export const UNARY = {
  neg: 0, abs: 1, exp: 2, log: 3, log1p: 4, sqrt: 5, rsqrt: 6, sin: 7, cos: 8, tanh: 9, sigmoid: 10, relu: 11,
  geluErf: 12, geluTanh: 13, silu: 14, softplus: 15, clamp: 16, powScalar: 17, logicalNot: 18, isFinite: 19,
  isNaN: 20, sign: 21, floor: 22, ceil: 23, round: 24, reciprocal: 25, square: 26, erf: 27,
} as const;

export const BINARY = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6, eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12,
  logicalAnd: 13, logicalOr: 14, logicalXor: 15, remainder: 16, floorDivide: 17, atan2: 18, siluGradMul: 19,
} as const;
type BinaryName = keyof typeof BINARY;

/** The descriptor of x seen with the shape `target` (stride 0 on broadcast dims). */
function broadcastDesc(x: Tensor, target: Shape): Float64Array {
  if (sameShape(x.shape, target)) return x.desc;
  return x.descAs(target, broadcastStrides(x.shape, x.strides, target));
}

/** x in dtype d: x itself, or a cast copy the caller must dispose (the op records x itself). */
function asDType(x: Tensor, d: DType): Tensor {
  return x.dtype === d ? x : copyAs(x, d);
}

function operandDType(a: TensorLike, b: TensorLike): DType {
  if (a instanceof Tensor && b instanceof Tensor) return promoteTypes(a.dtype, b.dtype);
  if (a instanceof Tensor) return promoteWithScalar(a.dtype, b as number | boolean);
  return promoteWithScalar((b as Tensor).dtype, a as number | boolean);
}

const PREDICATES = new Set<BinaryName>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logicalAnd', 'logicalOr', 'logicalXor']);
const DIFFERENTIABLE = new Set<string>(['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'remainder', 'atan2']);
const INT_OK = new Set<BinaryName>(['add', 'sub', 'mul', 'maximum', 'minimum', 'pow', 'remainder', 'floorDivide']);

function binary(name: BinaryName, a: TensorLike, b: TensorLike): Tensor {
  checkTensorLike(a, name, 'input');
  checkTensorLike(b, name, 'other');
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) throw new ValueError(`${name}: at least one argument must be a Tensor`);
  const device = a instanceof Tensor && b instanceof Tensor ? sameDevice(name, a, b) : (a instanceof Tensor ? a : (b as Tensor)).device;
  let dtype = operandDType(a, b);
  const pred = PREDICATES.has(name);
  if (!pred) {
    if (name === 'div' || name === 'atan2' || name === 'siluGradMul') dtype = isFloat(dtype) ? dtype : 'f32';
    else if (dtype === 'bool') {
      if (name === 'add' || name === 'mul' || name === 'maximum' || name === 'minimum') dtype = 'i32';
      else throw new DTypeError(`${name}: not defined for two bool operands`);
    } else if (dtype === 'i32' && !INT_OK.has(name)) dtype = 'f32';
  }
  const ta = a instanceof Tensor ? asDType(a, dtype) : scalarTensor(a, dtype, device);
  const tb = b instanceof Tensor ? asDType(b, dtype) : scalarTensor(b, dtype, device);
  try {
    // Equal shapes (the common case) share the operand's frozen shape array.
    const shape = sameShape(ta.shape, tb.shape) ? ta.shape : broadcastShapes(ta.shape, tb.shape, name);
    const out = Tensor.empty(shape, pred ? 'bool' : dtype, device);
    if (out.numel > 0) {
      const da = broadcastDesc(ta, shape), db = broadcastDesc(tb, shape);
      launch(out, (k) => k.binary(BINARY[name], out.handle, out.desc, ta.handle, da, tb.handle, db));
    }
    return DIFFERENTIABLE.has(name) ? record(name, [a, b], out) : out;
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', a, b);
/** True division: integer operands give f32. */
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', a, b);
export const pow = (a: TensorLike, b: TensorLike): Tensor => binary('pow', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('minimum', a, b);
/** Python's %: the result takes the sign of the divisor. */
export const remainder = (a: TensorLike, b: TensorLike): Tensor => binary('remainder', a, b);
export const floorDivide = (a: TensorLike, b: TensorLike): Tensor => binary('floorDivide', a, b);
export const atan2 = (a: TensorLike, b: TensorLike): Tensor => binary('atan2', a, b);
/** Internal (autograd): g * silu'(x) in one pass, silu's backward. */
export const siluGradMul = (x: TensorLike, g: TensorLike): Tensor => binary('siluGradMul', x, g);
export const eq = (a: TensorLike, b: TensorLike): Tensor => binary('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike): Tensor => binary('ne', a, b);
export const lt = (a: TensorLike, b: TensorLike): Tensor => binary('lt', a, b);
export const le = (a: TensorLike, b: TensorLike): Tensor => binary('le', a, b);
export const gt = (a: TensorLike, b: TensorLike): Tensor => binary('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike): Tensor => binary('ge', a, b);
export const logicalAnd = (a: TensorLike, b: TensorLike): Tensor => binary('logicalAnd', a, b);
export const logicalOr = (a: TensorLike, b: TensorLike): Tensor => binary('logicalOr', a, b);
export const logicalXor = (a: TensorLike, b: TensorLike): Tensor => binary('logicalXor', a, b);

type UnaryName = keyof typeof UNARY;

/** Float ops promote i32 to f32 and reject bool; `intOk` ops also run on i32 as is. */
function unary(name: UnaryName, x: Tensor, opts: { intOk?: boolean; outBool?: boolean; a?: number; b?: number } = {}): Tensor {
  checkTensor(x, name);
  let dtype: DType;
  if (opts.outBool) dtype = x.dtype;
  else if (opts.intOk && x.dtype === 'i32') dtype = 'i32';
  else dtype = floatOpDType(x.dtype, name);
  const src = asDType(x, dtype);
  try {
    const out = Tensor.empty(x.shape, opts.outBool ? 'bool' : dtype, x.device);
    if (out.numel > 0) launch(out, (k) => k.unary(UNARY[name], out.handle, out.desc, src.handle, src.desc, opts.a ?? NaN, opts.b ?? NaN));
    return opts.outBool ? out : record(name, [x], out, { min: opts.a ?? NaN, max: opts.b ?? NaN, p: opts.a ?? NaN });
  } finally {
    if (src !== x) src.dispose();
  }
}

export const neg = (x: Tensor): Tensor => unary('neg', x, { intOk: true });
export const abs = (x: Tensor): Tensor => unary('abs', x, { intOk: true });
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const log1p = (x: Tensor): Tensor => unary('log1p', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('relu', x, { intOk: true });
export const silu = (x: Tensor): Tensor => unary('silu', x);
/** log(1 + e^x), linear above 20 as in PyTorch. */
export const softplus = (x: Tensor): Tensor => unary('softplus', x);
export const square = (x: Tensor): Tensor => unary('square', x, { intOk: true });
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x);
export const erf = (x: Tensor): Tensor => unary('erf', x);
export const sign = (x: Tensor): Tensor => unary('sign', x, { intOk: true });
export const floor = (x: Tensor): Tensor => unary('floor', x);
export const ceil = (x: Tensor): Tensor => unary('ceil', x);
/** Rounds half to even, as torch.round. */
export const round = (x: Tensor): Tensor => unary('round', x);
export const logicalNot = (x: Tensor): Tensor => unary('logicalNot', x, { outBool: true });
export const isFinite = (x: Tensor): Tensor => unary('isFinite', x, { outBool: true });
export const isNaN = (x: Tensor): Tensor => unary('isNaN', x, { outBool: true });

export interface GeluOptions {
  /** 'none' (default): exact erf form; 'tanh': the tanh approximation. */
  approximate?: 'none' | 'tanh';
}
export function gelu(x: Tensor, opts: GeluOptions = {}): Tensor {
  const approx = opts.approximate ?? 'none';
  if (approx !== 'none' && approx !== 'tanh') throw new ValueError(`gelu: approximate must be 'none' or 'tanh', got ${String(approx)}`);
  return unary(approx === 'tanh' ? 'geluTanh' : 'geluErf', x);
}

/** Clamps to [min, max]; either bound may be null/undefined. */
export function clamp(x: Tensor, min?: number | null, max?: number | null): Tensor {
  checkTensor(x, 'clamp');
  const lo = min ?? NaN, hi = max ?? NaN;
  if (typeof lo !== 'number' || typeof hi !== 'number') throw new ValueError('clamp: min and max must be numbers or null');
  if (Number.isNaN(lo) && Number.isNaN(hi)) throw new ValueError('clamp: at least one of min and max must be given');
  const intBounds = (Number.isNaN(lo) || Number.isInteger(lo)) && (Number.isNaN(hi) || Number.isInteger(hi));
  return unary('clamp', x, { intOk: intBounds, a: lo, b: hi });
}

/** x ** p for a JS number p (p = 2 and 0.5 take exact fast paths). */
export function powScalar(x: Tensor, p: number): Tensor {
  return unary('powScalar', x, { a: p });
}

/** Elements of a where cond is true, else of b; cond must be bool. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  checkTensor(cond, 'where', 'condition');
  if (cond.dtype !== 'bool') throw new DTypeError(`where: condition must be bool, got ${cond.dtype}`);
  checkTensorLike(a, 'where', 'input');
  checkTensorLike(b, 'where', 'other');
  const tensors = [cond, a, b].filter((t): t is Tensor => t instanceof Tensor);
  const device = sameDevice('where', ...tensors);
  const dtype = a instanceof Tensor || b instanceof Tensor ? operandDType(a, b) : promoteWithScalar('f32', 0);
  const ta = a instanceof Tensor ? asDType(a, dtype) : scalarTensor(a, dtype, device);
  const tb = b instanceof Tensor ? asDType(b, dtype) : scalarTensor(b, dtype, device);
  try {
    const shape = broadcastShapes(broadcastShapes(cond.shape, ta.shape, 'where'), tb.shape, 'where');
    const out = Tensor.empty(shape, dtype, device);
    if (out.numel > 0) {
      const dc = broadcastDesc(cond, shape), da = broadcastDesc(ta, shape), db = broadcastDesc(tb, shape);
      launch(out, (k) => k.where(out.handle, out.desc, cond.handle, dc, ta.handle, da, tb.handle, db));
    }
    return record('where', [cond, a, b], out);
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}

/**
 * Rotary position embedding in its rotate-half form (LLaMA's), in one pass:
 * x * cos + rotateHalf(x) * sin, where rotateHalf([x1, x2]) = [-x2, x1] splits the last dim
 * (even) in halves. cos and sin broadcast to x's shape (tables [B|1, 1, L, D] against
 * [B, heads, L, D]) and are constants: they get no gradient.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return rotate(x, cos, sin, false);
}

/** Internal (autograd): the transposed rotation, rope's backward (the inverse rotation for LLaMA's tables). */
export function ropeInverse(g: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return rotate(g, cos, sin, true);
}

function rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
  checkTensor(x, 'rope', 'input');
  checkTensor(cos, 'rope', 'cos');
  checkTensor(sin, 'rope', 'sin');
  const device = sameDevice('rope', x, cos, sin);
  if (!isFloat(x.dtype)) throw new DTypeError(`rope: expected a float input, got ${x.dtype}`);
  if (cos.requiresGrad || sin.requiresGrad) throw new ValueError('rope: cos and sin are constant tables and cannot require grad');
  if (x.ndim === 0 || x.shape[x.ndim - 1] % 2 !== 0) throw new ShapeError(`rope: the last dim of x ${shapeStr(x.shape)} must be even`);
  const shape = broadcastShapes(broadcastShapes(x.shape, cos.shape, 'rope'), sin.shape, 'rope');
  if (!sameShape(shape, x.shape)) {
    throw new ShapeError(`rope: cos ${shapeStr(cos.shape)} and sin ${shapeStr(sin.shape)} must broadcast to x's shape ${shapeStr(x.shape)}`);
  }
  const tc = asDType(cos, x.dtype), ts = asDType(sin, x.dtype);
  try {
    const out = Tensor.empty(shape, x.dtype, device);
    if (out.numel > 0) {
      launch(out, (k) => k.rope(out.handle, out.desc, x.handle, x.desc, tc.handle, broadcastDesc(tc, shape), ts.handle, broadcastDesc(ts, shape), inverse));
    }
    return inverse ? out : record('rope', [x, cos, sin], out);
  } finally {
    if (tc !== cos) tc.dispose();
    if (ts !== sin) ts.dispose();
  }
}
