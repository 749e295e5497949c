// adamw.ts: one AdamW step of one parameter as a single native pass (native/cpu/kernels/adamw.cpp):
// p, g, m, v are each read once and p, m, v written once, in place. src/nn/optim/adamw.ts calls
// it for every parameter it applies to and composes the same update from tensor ops otherwise.
// adamwMixedStep is its form for a bf16 or f16 parameter with an f32 master copy (sim and cuda:
// native/cuda/adamw.cu): the gradient widened, the master stepped and rounded back into the
// parameter in the same pass.
import { DTypeError, ShapeError } from '../errors.ts';
import { sameShape, shapeStr } from '../shape.ts';
import type { Tensor } from '../tensor.ts';
import { hasFusedKernel } from '../device.ts';
import { native } from '../native.ts';
import { sameDevice } from './dispatch.ts';

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** t, counting this step (from 1). */
  step: number;
}

/** Whether the fused step runs these tensors: one device that has the kernel, one shape, one dtype, f32 or f64. */
export function adamwStepApplies(p: Tensor, g: Tensor, m: Tensor, v: Tensor): boolean {
  return [g, m, v].every((t) => t.device === p.device && t.dtype === p.dtype && sameShape(t.shape, p.shape)) &&
    hasFusedKernel(p.device, 'adamw') && (p.dtype === 'f32' || p.dtype === 'f64');
}

/** p, m and v after one AdamW step with gradient g (in place; returns p). */
export function adamwStep(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamWStep): Tensor {
  if (!adamwStepApplies(p, g, m, v)) {
    const what = [p, g, m, v].map((t) => `${t.dtype}${shapeStr(t.shape)}@${t.device}`).join(', ');
    if (p.dtype !== 'f32' && p.dtype !== 'f64') throw new DTypeError(`adamwStep: f32 or f64 parameters only, got ${what}`);
    sameDevice('adamwStep', p, g, m, v);
    throw new ShapeError(`adamwStep: p, g, m and v must share one shape and dtype, got ${what}`);
  }
  const bias2 = Math.sqrt(1 - h.beta2 ** h.step), stepSize = h.lr / (1 - h.beta1 ** h.step);
  // Not through launch(): on an error that would dispose p, a parameter the caller owns.
  native.adamw(p.handle, p.desc, g.handle, g.desc, m.handle, m.desc, v.handle, v.desc, h.lr, h.beta1, h.beta2, h.eps,
    h.weightDecay, bias2, stepSize);
  return p;
}

/** Whether the fused mixed-precision step runs these: one device with the kernel, one shape, p16 and g16 bf16 or f16, the rest f32. */
export function adamwMixedApplies(p16: Tensor, master: Tensor, g16: Tensor, m: Tensor, v: Tensor): boolean {
  return (p16.dtype === 'bf16' || p16.dtype === 'f16') && g16.dtype === p16.dtype &&
    [master, m, v].every((t) => t.dtype === 'f32') &&
    [master, g16, m, v].every((t) => t.device === p16.device && sameShape(t.shape, p16.shape)) && hasFusedKernel(p16.device, 'adamwMixed');
}

/** One AdamW step of the f32 master copy of p16 (with g16, m, v), written back rounded into p16, in one pass. */
export function adamwMixedStep(p16: Tensor, master: Tensor, g16: Tensor, m: Tensor, v: Tensor, h: AdamWStep): Tensor {
  if (!adamwMixedApplies(p16, master, g16, m, v)) {
    const what = [p16, master, g16, m, v].map((t) => `${t.dtype}${shapeStr(t.shape)}@${t.device}`).join(', ');
    throw new DTypeError(`adamwMixedStep: expects a bf16 or f16 parameter and gradient with f32 master, m and v of its shape on a device with the kernel, got ${what}`);
  }
  const bias2 = Math.sqrt(1 - h.beta2 ** h.step), stepSize = h.lr / (1 - h.beta1 ** h.step);
  native.adamwMixed(p16.handle, p16.desc, master.handle, master.desc, g16.handle, g16.desc, m.handle, m.desc, v.handle, v.desc,
    h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, bias2, stepSize);
  return p16;
}
