// linalg.ts: backward rules of matmul and the indexing ops.
//
// matmul: dA = dC B^T and dB = A^T dC, with 1-d operands promoted the way the forward promoted
// them and broadcast batch dims summed away. linear (the fused op, act(x W^T + b) + r): dr = g,
// dpre = g act'(pre) from the saved pre-activation, then db = the column sums of dpre, dx =
// dpre W and dW = dpre^T x. gather and indexSelect scatter their gradient
// back with scatterAdd (deterministic: no float atomics anywhere).
import { Tensor } from '../../tensor/tensor.ts';
import { tidy } from '../../tensor/memory.ts';
import { zeros } from '../../tensor/ops/creation.ts';
import { matmul, gather, scatterAdd, tril, triu } from '../../tensor/ops/linalg.ts';
import { contiguous, copyInto, expand, narrow, reshape, transpose, unsqueeze } from '../../tensor/ops/views.ts';
import { sum } from '../../tensor/ops/reduce.ts';
import { InternalError } from '../../tensor/errors.ts';
import { ACTIVATION_OP, type Activation } from '../../tensor/ops/linear.ts';
import { defineBackward } from '../engine.ts';
import { sumToShape } from './broadcast.ts';
import { activationGrad } from './elementwise.ts';

defineBackward('matmul', (g, ctx) => tidy(() => {
  const [a, b] = ctx.inputs as [Tensor, Tensor];
  const a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
  const b2 = b.ndim === 1 ? unsqueeze(b, -1) : b;
  let g2 = g;
  if (a.ndim === 1) g2 = unsqueeze(g2, b.ndim === 1 ? -1 : -2);
  if (b.ndim === 1) g2 = unsqueeze(g2, -1);
  const ga = ctx.needs[0] ? reshape(sumToShape(matmul(g2, transpose(b2, -1, -2)), a2.shape), a.shape as number[]) : null;
  const gb = ctx.needs[1] ? reshape(sumToShape(matmul(transpose(a2, -1, -2), g2), b2.shape), b.shape as number[]) : null;
  return [ga, gb];
}));

defineBackward('linear', (g, ctx) => tidy(() => {
  const [x, w] = ctx.inputs as [Tensor, Tensor];
  const activation = ctx.attrs.activation as Activation | null, pre = ctx.attrs.pre as Tensor | null;
  if (activation && !pre) throw new InternalError('linear: the forward saved no pre-activation for its backward');
  const dpre = activation ? activationGrad[ACTIVATION_OP[activation]](g, pre!) : g;
  return [
    ctx.needs[0] ? matmul(dpre, w) : null,
    ctx.needs[1] ? matmul(transpose(dpre, 0, 1), x) : null,
    ctx.needs[2] ? sum(dpre, 0) : null,
    ctx.needs[3] ? g : null,
  ];
}));

defineBackward('gather', (g, ctx) => tidy(() => {
  const [x, , index] = ctx.inputs as [Tensor, number, Tensor];
  const dim = ctx.attrs.dim as number;
  return [scatterAdd(zeros(x.shape as number[], { dtype: g.dtype, device: g.device }), dim, index, g), null, null];
}));

defineBackward('scatterAdd', (g, ctx) => tidy(() => {
  const [, , index, src] = ctx.inputs as [Tensor, number, Tensor, Tensor];
  const dim = ctx.attrs.dim as number;
  let gsrc: Tensor | null = null;
  if (ctx.needs[3]) {
    // Only the window of src that index covers was added; the rest of src gets zero.
    const picked = gather(g, dim, index);
    if (picked.shape.every((d, i) => d === src.shape[i])) gsrc = picked;
    else {
      gsrc = zeros(src.shape as number[], { dtype: g.dtype, device: g.device });
      let window: Tensor = gsrc;
      index.shape.forEach((d, i) => (window = narrow(window, i, 0, d)));
      copyInto(window, picked);
    }
  }
  return [g, null, null, gsrc];
}));

defineBackward('indexSelect', (g, ctx) => tidy(() => {
  const [x, , index] = ctx.inputs as [Tensor, number, Tensor];
  const dim = ctx.attrs.dim as number;
  // Expand the 1-d index along every other dim so scatterAdd adds whole slices.
  const shape = g.shape.map((_, i) => (i === dim ? index.numel : 1));
  const idx = contiguous(expand(reshape(index, shape), g.shape as number[]));
  return [scatterAdd(zeros(x.shape as number[], { dtype: g.dtype, device: g.device }), dim, idx, g), null, null];
}));

defineBackward('tril', (g, ctx) => tidy(() => [tril(g, ctx.attrs.k as number)]));
defineBackward('triu', (g, ctx) => tidy(() => [triu(g, ctx.attrs.k as number)]));
