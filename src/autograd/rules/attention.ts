// attention.ts: the backward rule of the fused attention op (src/tensor/ops/attention.ts):
// one native pass (FlashAttention-2's backward) gives dq, dk, dv, and dbias when the bias
// needs one. The forward's output and row log-sum-exp are what it recomputes from.
import { Tensor } from '../../tensor/tensor.ts';
import { attentionBackward } from '../../tensor/ops/attention.ts';
import { defineBackward } from '../engine.ts';

defineBackward('attention', (g, ctx) => {
  const [q, k, v, bias] = ctx.inputs as [Tensor, Tensor, Tensor, Tensor | null];
  const a = ctx.attrs as { lse: Tensor; keyPaddingMask: Tensor | null; scale: number; causal: boolean };
  const opts = { bias, keyPaddingMask: a.keyPaddingMask, scale: a.scale, causal: a.causal };
  const [dq, dk, dv, db] = attentionBackward(g, ctx.output, a.lse, q, k, v, opts, bias !== null && ctx.needs[3]);
  return [dq, dk, dv, db];
});
