// views.ts: backward rules of the view and copy ops (reshape, permute, slice, cat, ...).
//
// A view's gradient is the output gradient put back where the view read from: reshaped back,
// inverse-permuted, summed over expanded dims, or written into a zero tensor at the sliced
// positions.
import { Tensor } from '../../tensor/tensor.ts';
import { tidy } from '../../tensor/memory.ts';
import { zeros } from '../../tensor/ops/creation.ts';
import * as V from '../../tensor/ops/views.ts';
import { defineBackward } from '../engine.ts';
import { sumToShape } from './broadcast.ts';

const rule = (name: string, f: (g: Tensor, x: Tensor, a: Record<string, unknown>) => Tensor) =>
  defineBackward(name, (g, ctx) => tidy(() => [f(g, ctx.inputs[0] as Tensor, ctx.attrs)]));

rule('reshape', (g, x) => V.reshape(g, x.shape as number[]));
rule('permute', (g, _x, a) => {
  const dims = a.dims as number[];
  const inv = new Array<number>(dims.length);
  dims.forEach((d, i) => (inv[d] = i));
  return V.permute(g, inv);
});
rule('expand', (g, x) => sumToShape(g, x.shape));
// contiguous, clone and no-op to(): the gradient passes through unchanged.
rule('identity', (g) => g);
// to(device): the gradient moves back to the input's device.
rule('toDevice', (g, x) => V.to(g, x.device));

/** Gradient of a strided window of x: zeros with g written where the window was. */
function scatterWindow(g: Tensor, x: Tensor, window: (z: Tensor) => Tensor): Tensor {
  const z = zeros(x.shape as number[], { dtype: g.dtype, device: g.device });
  const w = window(z);
  V.copyInto(w, g);
  w.dispose();
  return z;
}
rule('slice', (g, x, a) => scatterWindow(g, x, (z) => V.slice(z, a.dim as number, a.start as number, a.end as number, a.step as number)));
rule('select', (g, x, a) => scatterWindow(g, x, (z) => V.select(z, a.dim as number, a.index as number)));

defineBackward('cat', (g, ctx) => tidy(() => {
  const dim = ctx.attrs.dim as number;
  let at = 0;
  return (ctx.inputs as Tensor[]).map((t) => {
    if (t.ndim !== g.ndim) return null;  // a legacy empty 1-d input took no part
    const part = V.contiguous(V.narrow(g, dim, at, t.shape[dim]));
    at += t.shape[dim];
    return part;
  });
}));
