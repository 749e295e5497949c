// broadcast.ts: undoing broadcasting in backward: a gradient of the broadcast shape is summed
// over the dims that broadcasting added or stretched, back to the input's shape.
// (Rules run inside tidy, so intermediates made here are freed with the rule's scope.)
import { sameShape, type Shape } from '../../tensor/shape.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { sum } from '../../tensor/ops/reduce.ts';
import { reshape } from '../../tensor/ops/views.ts';

/** g summed down to `shape` (the shape g's was broadcast from); g itself when equal. */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  }
  return reshape(dims.length ? sum(g, dims, true) : g, shape as number[]);
}

/** The gradient for a binary op's operand: summed to its shape, or null for a JS scalar. */
export function gradFor(x: unknown, g: Tensor): Tensor | null {
  return x instanceof Tensor ? sumToShape(g, x.shape) : null;
}
