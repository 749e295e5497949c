// reduce.ts: backward rules of reductions, softmax, log-softmax and cumsum.
//
// A reduction's gradient is broadcast back over the reduced dims: keepdim-shaped first
// (`unreduce`), then expanded to the input's shape.
import { Tensor } from '../../tensor/tensor.ts';
import { tidy } from '../../tensor/memory.ts';
import * as E from '../../tensor/ops/elementwise.ts';
import * as R from '../../tensor/ops/reduce.ts';
import { contiguous, expand, reshape, to } from '../../tensor/ops/views.ts';
import { defineBackward } from '../engine.ts';

type Attrs = { dims: number[]; keepdim: boolean };

/** g reshaped so it broadcasts against the input (size-1 at reduced dims). */
function unreduce(g: Tensor, x: Tensor, a: Attrs): Tensor {
  const shape = x.shape.map((s, d) => (a.dims.includes(d) ? 1 : s));
  return reshape(g, shape);
}

/** unreduce, then materialised at the input's shape. */
function spread(g: Tensor, x: Tensor, a: Attrs): Tensor {
  return contiguous(expand(unreduce(g, x, a), x.shape as number[]));
}

function count(x: Tensor, a: Attrs): number {
  return a.dims.reduce((n, d) => n * x.shape[d], 1);
}

const rule = (name: string, f: (g: Tensor, x: Tensor, out: Tensor, a: Attrs & Record<string, unknown>) => Tensor) =>
  defineBackward(name, (g, ctx) => tidy(() => [f(g, ctx.inputs[0] as Tensor, ctx.output, ctx.attrs as Attrs & Record<string, unknown>)]));

rule('sum', (g, x, _o, a) => spread(g, x, a));
rule('mean', (g, x, _o, a) => E.div(spread(g, x, a), count(x, a)));
// d prod / d x_i = prod / x_i, except at zeros: there it is the product of the others, which is
// the product of the non-zeros when x_i is the only zero of its group, and 0 otherwise.
rule('prod', (g, x, out, a) => {
  const zero = E.eq(x, 0);
  const others = E.div(unreduce(out, x, a), E.where(zero, 1, x));
  const nonzeros = unreduce(R.prod(E.where(zero, 1, x), a.dims, true), x, a);
  const lone = E.eq(R.sum(to(zero, 'i32'), a.dims, true), 1);
  return E.mul(spread(g, x, a), E.where(zero, E.where(lone, nonzeros, 0), others));
});
// amax/amin: the gradient is shared evenly among the elements equal to the extremum.
const extremum = (g: Tensor, x: Tensor, out: Tensor, a: Attrs) => {
  const hit = to(E.eq(x, unreduce(out, x, a)), g.dtype);
  const n = R.sum(hit, a.dims, true);
  return E.mul(E.div(unreduce(g, x, a), n), hit);
};
rule('max', extremum);
rule('min', extremum);
rule('var', (g, x, _o, a) => {
  const n = count(x, a) - (a.correction as number);
  const centered = E.sub(x, R.mean(x, a.dims, true));
  return E.mul(unreduce(g, x, a), E.mul(centered, 2 / n));
});
rule('logsumexp', (g, x, out, a) => E.mul(unreduce(g, x, a), E.exp(E.sub(x, unreduce(out, x, a)))));
rule('softmax', (g, _x, out, a) => {
  const dim = a.dim as number;
  return E.mul(out, E.sub(g, R.sum(E.mul(g, out), dim, true)));
});
rule('logSoftmax', (g, _x, out, a) => {
  const dim = a.dim as number;
  return E.sub(g, E.mul(E.exp(out), R.sum(g, dim, true)));
});
// The gradient of an inclusive cumsum is the reversed cumsum of g: sum(g) - cumsum(g) + g.
rule('cumsum', (g, x, _o, a) => {
  const dim = a.dim as number;
  const gx = E.add(E.sub(R.sum(g, dim, true), R.cumsum(g, dim)), g);
  return gx.dtype === x.dtype ? gx : to(gx, x.dtype);
});
