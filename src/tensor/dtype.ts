// dtype.ts: element types, their sizes, typed-array mapping and type promotion.
//
// DTYPE_CODE must match enum DType in native/core/dtype.h. Promotion follows PyTorch's lattice
// bool < i32 < {bf16, f16} < f32 < f64, where bf16 with f16 gives f32 (neither holds the other:
// bf16 has the range, f16 the precision); a plain JS number does not widen a float tensor (x * 2
// stays bf16), and makes an integer tensor f32 only when it is not an integer (i32 + 0.5 -> f32).
import { DTypeError, ValueError } from './errors.ts';

export type DType = 'f32' | 'f64' | 'bf16' | 'f16' | 'i32' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'f64', 'bf16', 'f16', 'i32', 'bool'];

export const DTYPE_CODE: Record<DType, number> = { f32: 0, f64: 1, bf16: 2, i32: 3, bool: 4, f16: 5 };
export const DTYPE_SIZE: Record<DType, number> = { f32: 4, f64: 8, bf16: 2, f16: 2, i32: 4, bool: 1 };

const RANK: Record<DType, number> = { bool: 0, i32: 1, bf16: 2, f16: 2, f32: 3, f64: 4 };

export function isFloat(d: DType): boolean {
  return d === 'f32' || d === 'f64' || d === 'bf16' || d === 'f16';
}

/** Whether d is one of the 16-bit floats (bf16, f16): stored in 16 bits, computed in f32. */
export function isHalf(d: DType): d is 'bf16' | 'f16' {
  return d === 'bf16' || d === 'f16';
}

/**
 * The dtype the fused kernels save row statistics in (attention's and cross-entropy's log-sum-exp,
 * the norms' mean and rstd, cross-entropy's per-row loss): f32 for bf16 and f16 operands (a 16-bit
 * lse is too coarse to recompute the probabilities from), the operands' own otherwise.
 */
export function statDType(d: DType): DType {
  return isHalf(d) ? 'f32' : d;
}

export function checkDType(d: unknown, op: string, arg = 'dtype'): DType {
  if (typeof d !== 'string' || !(DTYPES as readonly string[]).includes(d)) {
    throw new ValueError(`${op}: ${arg} must be one of ${DTYPES.join(', ')}, got ${String(d)}`);
  }
  return d as DType;
}

export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if (RANK[a] === RANK[b]) return 'f32';  // bf16 with f16
  return RANK[a] >= RANK[b] ? a : b;
}

/** The dtype of `t op scalar`. */
export function promoteWithScalar(d: DType, s: number | boolean): DType {
  if (typeof s === 'boolean') return d;
  if (isFloat(d)) return d;
  if (Number.isInteger(s)) return d === 'bool' ? 'i32' : d;
  return 'f32';
}

/** The dtype a float op computes in: floats stay, i32 becomes f32, bool is an error. */
export function floatOpDType(d: DType, op: string): DType {
  if (isFloat(d)) return d;
  if (d === 'i32') return 'f32';
  throw new DTypeError(`${op}: not defined for dtype bool`);
}

export type TypedArrayOf<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f64'
    ? Float64Array
    : D extends 'i32'
      ? Int32Array
      : D extends 'bool'
        ? Uint8Array
        : Float32Array;

export type AnyTypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

/** bf16 <-> f32 and f16 <-> f32 on the host, rounding to nearest even like native/core/dtype.h. */
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function bf16BitsToFloat(bits: number): number {
  u32buf[0] = bits << 16;
  return f32buf[0];
}

export function floatToBf16Bits(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16BitsToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f, mantissa = bits & 0x3ff;
  if (exponent === 0x1f) {
    u32buf[0] = ((bits & 0x8000) << 16) | 0x7f800000 | (mantissa << 13);  // inf, NaN (payload kept)
    return f32buf[0];
  }
  if (exponent === 0) return sign * mantissa * 2 ** -24;  // subnormal
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/**
 * The f16 bits of x rounded to f32 and then to f16 (native's float_to_f16 takes an f32): nearest
 * even, into the subnormals; 65520 and above overflow to inf; NaN stays a quiet NaN.
 */
export function floatToF16Bits(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  const sign = (u >>> 16) & 0x8000, a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a >= 0x38800000) {
    const r = a - 0x38000000;
    return sign | ((r + 0xfff + ((r >>> 13) & 1)) >>> 13);
  }
  const shift = 126 - (a >>> 23);
  if (shift > 24) return sign;
  const m = (a & 0x7fffff) | 0x800000, halfway = 2 ** (shift - 1);
  const rest = m % (2 * halfway);
  let r = Math.floor(m / (2 * halfway));
  if (rest > halfway || (rest === halfway && (r & 1) === 1)) r++;
  return sign | r;
}
