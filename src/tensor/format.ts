// format.ts: reading a tensor back to JavaScript: data(), toArray(), item(), toString().
import { bf16BitsToFloat, DTYPE_SIZE, f16BitsToFloat, isFloat } from './dtype.ts';
import { DeviceError, ShapeError } from './errors.ts';
import { native } from './native.ts';
import type { Tensor } from './tensor.ts';
import { contiguous } from './ops/views.ts';

export type HostArray = Float32Array | Float64Array | Int32Array | Uint8Array;
export type NestedArray = number | boolean | NestedArray[];

/**
 * A copy of the elements in row-major order: Float32Array for f32 (and for bf16 and f16, widened),
 * Float64Array for f64, Int32Array for i32, Uint8Array (0/1) for bool.
 */
export function data(t: Tensor): HostArray {
  t.live('data');
  if (t.device === 'meta') throw new DeviceError('data: a meta tensor has no values');
  const c = t.isContiguous ? t : contiguous(t);
  try {
    const n = c.numel;
    const esize = DTYPE_SIZE[c.dtype];
    const buf = n === 0 ? new ArrayBuffer(0) : native.read(c.handle, c.offset * esize, n * esize);
    switch (c.dtype) {
      case 'f32': return new Float32Array(buf);
      case 'f64': return new Float64Array(buf);
      case 'i32': return new Int32Array(buf);
      case 'bool': return new Uint8Array(buf);
    }
    const bits = new Uint16Array(buf);  // bf16, f16: widen to f32
    const widen = c.dtype === 'bf16' ? bf16BitsToFloat : f16BitsToFloat;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = widen(bits[i]);
    return out;
  } finally {
    if (c !== t) c.dispose();
  }
}

export function toArray(t: Tensor): NestedArray {
  const flat = data(t);
  const isBool = t.dtype === 'bool';
  const shape = t.shape;
  if (shape.length === 0) return isBool ? flat[0] !== 0 : flat[0];
  let pos = 0;
  const build = (d: number): NestedArray[] => {
    const out: NestedArray[] = new Array(shape[d]);
    for (let i = 0; i < shape[d]; i++) {
      if (d === shape.length - 1) out[i] = isBool ? flat[pos++] !== 0 : flat[pos++];
      else out[i] = build(d + 1);
    }
    return out;
  };
  return build(0);
}

export function item(t: Tensor): number | boolean {
  if (t.live('item').numel !== 1) throw new ShapeError(`item: expected a tensor with one element, got shape [${t.shape.join(',')}]`);
  const v = data(t)[0];
  return t.dtype === 'bool' ? v !== 0 : v;
}

function fmt(v: number, isFloat: boolean, isBool: boolean): string {
  if (isBool) return v ? 'true' : 'false';
  if (!isFloat) return String(v);
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-4)) return v.toExponential(4);
  return v.toFixed(4);
}

/** A readable summary: values (elided past 6 per dim), then shape, dtype and device. */
export function format(t: Tensor): string {
  if (t.isDisposed) return `tensor(<disposed>, shape=[${t.shape.join(', ')}], dtype=${t.dtype}, device=${t.device})`;
  const tail = `shape=[${t.shape.join(', ')}], dtype=${t.dtype}, device=${t.device}`;
  if (t.device === 'meta') return `tensor(..., ${tail})`;
  const flat = data(t);
  const isF = isFloat(t.dtype);
  const isB = t.dtype === 'bool';
  const shape = t.shape;
  if (shape.length === 0) return `tensor(${fmt(flat[0], isF, isB)}, ${tail})`;
  const strides: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i];
  }
  const edge = 3;
  const render = (d: number, base: number, indent: string): string => {
    const n = shape[d];
    const idx: (number | null)[] = n > 2 * edge ? [...Array(edge).keys(), null, ...Array.from({ length: edge }, (_, i) => n - edge + i)] : [...Array(n).keys()];
    if (d === shape.length - 1) {
      return '[' + idx.map((i) => (i === null ? '...' : fmt(flat[base + i], isF, isB))).join(', ') + ']';
    }
    const inner = idx.map((i) => (i === null ? '...' : render(d + 1, base + i * strides[d], indent + ' ')));
    return '[' + inner.join(',\n' + indent + ' ') + ']';
  };
  return `tensor(${render(0, 0, '       ')}, ${tail})`;
}
