// creation.ts: making tensors: from JS data, filled (zeros, ones, full), ranges (arange,
// linspace), eye, and the *Like variants.
import { checkDevice, type Device } from '../device.ts';
import { checkDType, floatToBf16Bits, floatToF16Bits, type DType } from '../dtype.ts';
import { ShapeError, ValueError } from '../errors.ts';
import { native } from '../native.ts';
import { checkNumber, checkShape, checkSize, MAX_DIMS } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { checkTensor, launch } from './dispatch.ts';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
}

export function options(opts: TensorOptions | undefined, op: string, dflt: DType = 'f32'): { dtype: DType; device: Device } {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw new ValueError(`${op}: options must be an object`);
  return {
    dtype: opts?.dtype === undefined ? dflt : checkDType(opts.dtype, op),
    device: opts?.device === undefined ? 'cpu' : checkDevice(opts.device, op),
  };
}

/** A JS number as i32 the way the kernels cast: truncated toward zero, saturated, NaN -> 0. */
function toI32(v: number): number {
  if (Number.isNaN(v)) return 0;
  return v >= 2147483647 ? 2147483647 : v <= -2147483648 ? -2147483648 : Math.trunc(v);
}

/** Writes JS numbers into a fresh contiguous tensor. */
export function fromValues(values: ArrayLike<number>, shape: number[], dtype: DType, device: Device): Tensor {
  const out = Tensor.empty(shape, dtype, device);
  if (device === 'meta' || values.length === 0) return out;
  let buf: ArrayBufferView;
  switch (dtype) {
    case 'f32': buf = values instanceof Float32Array ? values : Float32Array.from(values); break;
    case 'f64': buf = values instanceof Float64Array ? values : Float64Array.from(values); break;
    case 'i32': buf = values instanceof Int32Array ? values : Int32Array.from(values, toI32); break;
    case 'bool': buf = Uint8Array.from(values, (v) => (v ? 1 : 0)); break;
    case 'bf16': buf = Uint16Array.from(values, floatToBf16Bits); break;
    case 'f16': buf = Uint16Array.from(values, floatToF16Bits); break;
  }
  native.write(out.handle, 0, buf);
  return out;
}

type Nested = number | boolean | Nested[] | ArrayLike<number>;

function typedDType(x: unknown): DType | undefined {
  if (x instanceof Float32Array) return 'f32';
  if (x instanceof Float64Array) return 'f64';
  if (x instanceof Int32Array) return 'i32';
  if (x instanceof Uint8Array) return 'bool';
  return undefined;
}

/**
 * A tensor from a number, boolean, nested array or typed array. The dtype defaults to the typed
 * array's (Float32Array f32, Float64Array f64, Int32Array i32, Uint8Array bool), bool for
 * booleans, and f32 for numbers.
 */
export function tensor(data: Nested, opts?: TensorOptions): Tensor {
  const shape: number[] = [];
  let probe: unknown = data;
  while (Array.isArray(probe) || ArrayBuffer.isView(probe)) {
    const len = (probe as ArrayLike<unknown>).length;
    shape.push(len);
    if (shape.length > MAX_DIMS) throw new ShapeError(`tensor: data nests deeper than ${MAX_DIMS} dims`);
    if (ArrayBuffer.isView(probe) || len === 0) break;
    probe = (probe as unknown[])[0];
  }
  const leafTyped = typedDType(probe);
  if (ArrayBuffer.isView(probe) && !leafTyped) throw new ValueError('tensor: typed arrays must be Float32Array, Float64Array, Int32Array or Uint8Array');
  const flat: number[] = [];
  let sawBool = false;
  const walk = (v: unknown, d: number, path: string): void => {
    if (d === shape.length) {
      if (typeof v === 'boolean') { sawBool = true; flat.push(v ? 1 : 0); return; }
      if (typeof v !== 'number') throw new ValueError(`tensor: element at ${path || '[]'} is ${v === null ? 'null' : typeof v}, expected a number or boolean`);
      flat.push(v);
      return;
    }
    const isArr = Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
    if (!isArr || (v as ArrayLike<unknown>).length !== shape[d]) {
      throw new ShapeError(`tensor: ragged nested array at ${path || '[]'}: expected ${shape[d]} entries at dim ${d}`);
    }
    if (ArrayBuffer.isView(v)) {
      if (d !== shape.length - 1) throw new ShapeError(`tensor: a typed array at ${path} must be innermost`);
      const arr = v as unknown as ArrayLike<number>;
      for (let i = 0; i < arr.length; i++) flat.push(arr[i]);
      return;
    }
    (v as unknown[]).forEach((x, i) => walk(x, d + 1, `${path}[${i}]`));
  };
  walk(data, 0, '');
  const { dtype, device } = options(opts, 'tensor', leafTyped ?? (sawBool ? 'bool' : 'f32'));
  return fromValues(flat, shape, dtype, device);
}

function parseShape(shape: unknown, op: string): number[] {
  return checkShape(typeof shape === 'number' ? [shape] : shape, op);
}

/** full, zeros and ones; `op` names the caller in errors. */
function filled(op: string, shape: unknown, value: number | boolean, opts: TensorOptions | undefined): Tensor {
  const s = parseShape(shape, op);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new ValueError(`${op}: value must be a number or boolean, got ${typeof value}`);
  const { dtype, device } = options(opts, op, typeof value === 'boolean' ? 'bool' : 'f32');
  const out = Tensor.empty(s, dtype, device);
  if (out.numel === 0) return out;
  return launch(out, (k) => k.fill(out.handle, out.desc, Number(value)));
}

/** A tensor of `shape` filled with `value`. */
export const full = (shape: number[] | number, value: number | boolean, opts?: TensorOptions): Tensor => filled('full', shape, value, opts);
export const zeros = (shape: number[] | number, opts?: TensorOptions): Tensor => filled('zeros', shape, 0, opts);
export const ones = (shape: number[] | number, opts?: TensorOptions): Tensor => filled('ones', shape, 1, opts);

/** Uninitialised memory (reused from the cache: contents are arbitrary). */
export function empty(shape: number[] | number, opts?: TensorOptions): Tensor {
  const s = parseShape(shape, 'empty');
  const { dtype, device } = options(opts, 'empty');
  return Tensor.empty(s, dtype, device);
}

function likeOpts(x: Tensor, opts: TensorOptions | undefined, op: string): TensorOptions {
  checkTensor(x, op);
  return { dtype: x.dtype, device: x.device, ...opts };
}
export const zerosLike = (x: Tensor, opts?: TensorOptions): Tensor => zeros(x.shape as number[], likeOpts(x, opts, 'zerosLike'));
export const onesLike = (x: Tensor, opts?: TensorOptions): Tensor => ones(x.shape as number[], likeOpts(x, opts, 'onesLike'));
export const fullLike = (x: Tensor, value: number | boolean, opts?: TensorOptions): Tensor =>
  full(x.shape as number[], value, likeOpts(x, opts, 'fullLike'));
export const emptyLike = (x: Tensor, opts?: TensorOptions): Tensor => empty(x.shape as number[], likeOpts(x, opts, 'emptyLike'));

/**
 * Values start, start + step, ... below end: arange(end), arange(start, end), arange(start,
 * end, step), each optionally followed by options. All-integer arguments give i32, else f32.
 */
export function arange(...args: (number | TensorOptions | undefined)[]): Tensor {
  const opts = typeof args[args.length - 1] === 'object' ? (args.pop() as TensorOptions) : undefined;
  const nums = args.filter((a) => a !== undefined);
  if (nums.length < 1 || nums.length > 3) throw new ValueError('arange: expected (end), (start, end) or (start, end, step)');
  nums.forEach((a, i) => checkNumber(a, 'arange', ['start', 'end', 'step'][nums.length === 1 ? 1 : i]));
  const [start, end, step] = (nums.length === 1 ? [0, nums[0], 1] : [nums[0], nums[1], nums[2] ?? 1]) as number[];
  if (![start, end, step].every(Number.isFinite)) throw new ValueError('arange: start, end and step must be finite');
  if (step === 0) throw new ValueError('arange: step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  checkSize(n, 'arange', 'length');
  const allInt = [start, end, step].every(Number.isInteger);
  const { dtype, device } = options(opts, 'arange', allInt ? 'i32' : 'f32');
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = start + i * step;
  return fromValues(values, [n], dtype, device);
}

/** `steps` values evenly spaced from start to end inclusive (f32 by default). */
export function linspace(start: number, end: number, steps: number, opts?: TensorOptions): Tensor {
  checkNumber(start, 'linspace', 'start');
  checkNumber(end, 'linspace', 'end');
  checkSize(steps, 'linspace', 'steps');
  const { dtype, device } = options(opts, 'linspace');
  const values = new Float64Array(steps);
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  // Fill from both ends, as PyTorch does, so the last value is exactly `end`.
  for (let i = 0; i < steps; i++) values[i] = i < steps / 2 ? start + i * step : end - (steps - 1 - i) * step;
  return fromValues(values, [steps], dtype, device);
}

/** An n x m identity matrix (m defaults to n). */
export function eye(n: number, m?: number | TensorOptions, opts?: TensorOptions): Tensor {
  if (typeof m === 'object') {
    opts = m;
    m = undefined;
  }
  const rows = checkSize(n, 'eye', 'n'), cols = checkSize(m ?? n, 'eye', 'm');
  const out = zeros([rows, cols], opts);
  if (out.device === 'meta' || out.numel === 0) return out;
  const diag = out.viewAs([Math.min(rows, cols)], [cols + 1], 0);  // the diagonal as a strided view
  launch(diag, (k) => k.fill(diag.handle, diag.desc, 1));
  diag.dispose();
  return out;
}
