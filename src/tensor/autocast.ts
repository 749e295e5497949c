// autocast.ts: mixed precision as torch.autocast does it. Inside autocast(fn), the ops whose
// speed comes from their matrix products (matmul and everything built on it: bmm, linear;
// conv2d; scaledDotProductAttention) cast their f32 operands to the autocast dtype (bf16, the
// default, or f16) and return it, while the model's parameters stay f32: the cast is an ordinary
// differentiable op, so the gradients reaching the parameters are f32 and the optimizer updates
// f32 "master" weights. Everything
// else runs in the dtype its inputs promote to: a bf16 activation meeting an f32 parameter in a
// norm, a residual add or the cross-entropy (which computes in f32) goes back to f32, so the
// numerically delicate reductions never run in 16 bits. Loss scaling is not needed for bf16,
// whose exponent range is f32's. f16 has 3 more mantissa bits but a range of only 2^-24 to
// 65504: small gradients flush to zero and large activations overflow to inf, so f16 training
// normally needs loss scaling: GradScaler (src/nn/optim/grad_scaler.ts, torch.amp.GradScaler's
// algorithm). bf16 is the simpler choice for training.
//
// f64 operands are never cast (PyTorch's rule too), so f64 gradient checks are unaffected.
// Backward (autograd/engine.ts) runs with autocast off: the gradients follow the dtypes the
// forward recorded.
import { ValueError } from './errors.ts';
import type { Tensor } from './tensor.ts';
import { to } from './ops/views.ts';

/** The dtypes autocast computes in: the 16-bit floats our tensor-core kernels accelerate. */
export type AutocastDType = 'bf16' | 'f16';

let current: AutocastDType | null = null;

/**
 * Runs fn with autocast on (or off, with enabled: false), restoring the previous state after,
 * even when fn throws. Nests like torch.autocast.
 */
export function autocast<T>(fn: () => T, opts: { dtype?: AutocastDType; enabled?: boolean } = {}): T {
  if (typeof fn !== 'function') throw new ValueError('autocast: expected a function');
  const dtype = opts.dtype ?? 'bf16';
  if (dtype !== 'bf16' && dtype !== 'f16') throw new ValueError(`autocast: dtype must be bf16 or f16, got ${String(dtype)}`);
  const prev = current;
  current = opts.enabled === false ? null : dtype;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** The dtype autocast casts to at this point of the program, or null when it is off. */
export function autocastDType(): AutocastDType | null {
  return current;
}

/**
 * The operands of a matrix-product op as autocast wants them: when autocast is on and any
 * operand is f32, every f32 operand cast to the autocast dtype (the others, 16-bit or f64 or non-float, as
 * they are). The casts are recorded for autograd.
 */
export function autocastOperands<T extends (Tensor | null | undefined)[]>(...ts: T): T {
  if (current === null || !ts.some((t) => t?.dtype === 'f32')) return ts;
  return ts.map((t) => (t && t.dtype === 'f32' ? to(t, current!) : t)) as T;
}
