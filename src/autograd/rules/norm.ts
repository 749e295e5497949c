// norm.ts: backward rules of the fused row ops: normRows (LayerNorm / RMSNorm,
// src/tensor/ops/norm.ts), groupNormRows (GroupNorm with its per-channel affine) and
// crossEntropyRows (src/tensor/ops/cross_entropy.ts), each one native pass that recomputes what it needs from the saved row statistics; and of the fused SwiGLU gate
// (src/tensor/ops/swiglu.ts), one native pass from its inputs.
import { Tensor } from '../../tensor/tensor.ts';
import { groupNormRowsBackward, normRowsBackward } from '../../tensor/ops/norm.ts';
import { crossEntropyRowsBackward, type CrossEntropyRowsOptions } from '../../tensor/ops/cross_entropy.ts';
import { swigluBackward } from '../../tensor/ops/swiglu.ts';
import { defineBackward } from '../engine.ts';

defineBackward('normRows', (g, ctx) => {
  const [x, w, b] = ctx.inputs as [Tensor, Tensor | null, Tensor | null];
  const { mean, rstd } = ctx.attrs as { mean: Tensor | null; rstd: Tensor };
  return normRowsBackward(g, x, w, mean, rstd, { weight: w !== null && ctx.needs[1], bias: b !== null && ctx.needs[2] });
});

defineBackward('groupNormRows', (g, ctx) => {
  const [x, w, b] = ctx.inputs as [Tensor, Tensor | null, Tensor | null];
  const { mean, rstd, groups, inner } = ctx.attrs as { mean: Tensor; rstd: Tensor; groups: number; inner: number };
  return groupNormRowsBackward(g, x, w, mean, rstd, { groups, inner }, { weight: w !== null && ctx.needs[1], bias: b !== null && ctx.needs[2] });
});

defineBackward('crossEntropyRows', (g, ctx) => {
  const a = ctx.attrs as unknown as CrossEntropyRowsOptions & { targets: Tensor; lse: Tensor };
  return [crossEntropyRowsBackward(g, ctx.inputs[0] as Tensor, a.targets, a.lse, a)];
});

defineBackward('swiglu', (g, ctx) => swigluBackward(g, ctx.inputs[0] as Tensor, ctx.inputs[1] as Tensor));
