// dispatch.ts: what every op does before its kernel runs: check that its tensor arguments are
// live Tensors on one device, turn JS scalars into tensors, and run the kernel only where there
// is memory (on `meta` an op is its shape and dtype inference alone).
import type { Device } from '../device.ts';
import { type DType } from '../dtype.ts';
import { DeviceError, ValueError } from '../errors.ts';
import { native } from '../native.ts';
import { Tensor, type TensorLike } from '../tensor.ts';

export function checkTensor(x: unknown, op: string, arg = 'input'): Tensor {
  if (!(x instanceof Tensor)) {
    const what = x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
    throw new ValueError(`${op}: ${arg} must be a Tensor, got ${what}`);
  }
  return x.live(op);
}

export function sameDevice(op: string, ...ts: Tensor[]): Device {
  const d = ts[0].device;
  for (const t of ts) {
    if (t.device !== d) throw new DeviceError(`${op}: tensors are on different devices (${d} and ${t.device})`);
  }
  return d;
}

/**
 * Runs `kernel` with the native module unless `out` lives on meta. The addon runs the kernel of the
 * device the operands live on; an op without a kernel there yet is its DeviceError.
 */
export function launch(out: Tensor, kernel: (k: typeof native) => void): Tensor {
  if (out.device === 'meta') return out;
  try {
    kernel(native);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** A 0-d tensor holding a JS scalar. */
export function scalarTensor(v: number | boolean, dtype: DType, device: Device): Tensor {
  const t = Tensor.empty([], dtype, device);
  return launch(t, (k) => k.fill(t.handle, t.desc, typeof v === 'boolean' ? Number(v) : v));
}

export function isScalar(x: unknown): x is number | boolean {
  return typeof x === 'number' || typeof x === 'boolean';
}

export function checkTensorLike(x: unknown, op: string, arg: string): TensorLike {
  if (isScalar(x)) return x;
  return checkTensor(x, op, arg);
}
