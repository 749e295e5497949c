// clip.ts: clipGradNorm, torch.nn.utils.clip_grad_norm_: scales every gradient by
// min(1, maxNorm / (total + 1e-6)), where total is the p-norm of all gradients taken together
// (the norm of the per-tensor norms), and returns total. Norms are computed in f32 (f64 for f64
// gradients); the gradients are scaled in place.
import { ValueError } from '../../tensor/errors.ts';
import { tidy } from '../../tensor/memory.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { abs, add, clamp, div, mul, powScalar, sqrt, square } from '../../tensor/ops/elementwise.ts';
import { max, sum } from '../../tensor/ops/reduce.ts';
import { copyAs, copyInto, stack } from '../../tensor/ops/views.ts';
import { noGrad } from '../../autograd/grad_mode.ts';

export interface ClipOptions {
  /** Throw when the total norm is NaN or infinite (default false: the grads become NaN). */
  errorIfNonfinite?: boolean;
}

/** The p-norm of x (p = Infinity: the largest magnitude). */
function norm(x: Tensor, p: number): Tensor {
  if (p === Infinity) return max(abs(x));
  if (p === 2) return sqrt(sum(square(x)));
  if (p === 1) return sum(abs(x));
  return powScalar(sum(powScalar(abs(x), p)), 1 / p);
}

/** Clips the gradients of `params` (those without one are skipped) to total norm maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2, opts: ClipOptions = {}): number {
  if (!Array.isArray(params)) throw new ValueError('clipGradNorm: params must be an array of tensors');
  if (!(maxNorm >= 0)) throw new ValueError(`clipGradNorm: maxNorm must be a number >= 0, got ${maxNorm}`);
  if (!(normType > 0)) throw new ValueError(`clipGradNorm: normType must be > 0 or Infinity, got ${normType}`);
  // Each gradient once, even if its parameter is listed twice (tied weights), so it is scaled once.
  const grads = [...new Set(params.flatMap((p) => (p.grad ? [p.grad.live('clipGradNorm')] : [])))];
  if (grads.length === 0) return 0;
  return noGrad(() => tidy(() => {
    const norms = grads.map((g) => norm(g.dtype === 'f64' || g.dtype === 'f32' ? g : copyAs(g, 'f32'), normType));
    const total = norm(stack(norms), normType);
    const value = total.item() as number;
    if (opts.errorIfNonfinite && !Number.isFinite(value)) {
      throw new ValueError(`clipGradNorm: the total ${normType}-norm of the gradients is ${value}`);
    }
    const coef = clamp(div(maxNorm, add(total, 1e-6)), null, 1);
    for (const g of grads) copyInto(g, mul(g, coef));
    return value;
  }));
}
