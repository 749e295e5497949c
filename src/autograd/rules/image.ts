// image.ts: backward rules of conv2d, the poolings, nearest upsampling and pad.
//
// conv2d, avgPool2d and upsampleNearest2d have native adjoint kernels
// (native/cpu/kernels/image_backward.cpp); maxPool2d routes each gradient to the index of its
// window's maximum with scatterAdd; pad's adjoint is pad with the amounts negated (crop).
import { Tensor } from '../../tensor/tensor.ts';
import { tidy } from '../../tensor/memory.ts';
import { zeros } from '../../tensor/ops/creation.ts';
import {
  avgPool2dBackward, conv2dBackwardInput, conv2dBackwardWeight, pad, upsampleNearest2dBackward,
} from '../../tensor/ops/image.ts';
import { scatterAdd } from '../../tensor/ops/linalg.ts';
import { reshape } from '../../tensor/ops/views.ts';
import { defineBackward } from '../engine.ts';

type ConvAttrs = { stride: number[]; padding: number[]; dilation: number[]; groups: number };

defineBackward('conv2d', (g, ctx) => tidy(() => {
  const [x, w, b] = ctx.inputs as [Tensor, Tensor, Tensor | null];
  const a = ctx.attrs as ConvAttrs;
  const gx = ctx.needs[0] ? conv2dBackwardInput(g, w, x.shape, a) : null;
  const [gw, gb] = ctx.needs[1] || ctx.needs[2] ? conv2dBackwardWeight(g, x, w.shape, b !== null, a) : [null, null];
  return [gx, gw, gb];
}));

defineBackward('maxPool2d', (g, ctx) => tidy(() => {
  const x = ctx.inputs[0] as Tensor;
  const idx = ctx.attrs.indices as Tensor;
  const [N, C, H, W] = x.shape;
  const flat = zeros([N, C, H * W], { dtype: g.dtype, device: g.device });
  const gi = scatterAdd(flat, 2, reshape(idx, [N, C, -1]), reshape(g, [N, C, -1]));
  return [reshape(gi, [N, C, H, W])];
}));

defineBackward('avgPool2d', (g, ctx) => tidy(() => [
  avgPool2dBackward(g, (ctx.inputs[0] as Tensor).shape, ctx.attrs as { kernel: number[]; stride: number[]; padding: number[]; countIncludePad: boolean }),
]));

defineBackward('upsampleNearest2d', (g, ctx) => tidy(() => [upsampleNearest2dBackward(g, (ctx.inputs[0] as Tensor).shape)]));

defineBackward('pad', (g, ctx) => tidy(() => [pad(g, (ctx.attrs.padding as number[]).map((p) => -p))]));
