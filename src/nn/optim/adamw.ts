// adamw.ts: Adam with decoupled weight decay (Loshchilov & Hutter), step for step
// torch.optim.AdamW with amsgrad off. At step t, for each parameter p with gradient g:
//   p = p * (1 - lr * wd)                       decay, independent of the gradient
//   m = b1 * m + (1 - b1) * g                   first moment
//   v = b2 * v + (1 - b2) * g^2                 second moment
//   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// computed in the parameter's dtype (f32 for bf16 and f16 parameters, through their master copy). On the
// CPU the four lines are one fused native pass (src/tensor/ops/adamw.ts), and so on sim and cuda,
// where a 16-bit parameter's step (gradient widened, master stepped, rounded back) is one pass
// too (updateMixed); elsewhere they are composed from tensor ops, as below.
import type { Tensor } from '../../tensor/tensor.ts';
import { ValueError } from '../../tensor/errors.ts';
import { add, div, mul, sqrt, sub } from '../../tensor/ops/elementwise.ts';
import { copyInto } from '../../tensor/ops/views.ts';
import { adamwMixedApplies, adamwMixedStep, adamwStep, adamwStepApplies } from '../../tensor/ops/adamw.ts';
import { Optimizer, type ParamGroup, type ParamGroupSpec, type ParamState } from './optimizer.ts';

export type AdamWOptions = {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
};

export class AdamW extends Optimizer<AdamWOptions> {
  /** Defaults as torch: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 0.01. */
  constructor(params: Tensor[] | ParamGroupSpec<AdamWOptions>[], opts: Partial<AdamWOptions> = {}) {
    super('AdamW', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, ...opts });
  }

  protected override bufferNames(): string[] {
    return ['expAvg', 'expAvgSq'];
  }

  protected override checkGroup(g: ParamGroup<AdamWOptions>, i: number): void {
    if (!(g.lr >= 0 && Number.isFinite(g.lr))) throw new ValueError(`AdamW: group ${i} lr must be a finite number >= 0, got ${g.lr}`);
    if (!Array.isArray(g.betas) || g.betas.length !== 2 || !g.betas.every((b) => b >= 0 && b < 1)) {
      throw new ValueError(`AdamW: group ${i} betas must be two numbers in [0, 1), got ${JSON.stringify(g.betas)}`);
    }
    if (!(g.eps >= 0 && Number.isFinite(g.eps))) throw new ValueError(`AdamW: group ${i} eps must be a finite number >= 0, got ${g.eps}`);
    if (!(g.weightDecay >= 0 && Number.isFinite(g.weightDecay))) throw new ValueError(`AdamW: group ${i} weightDecay must be a finite number >= 0, got ${g.weightDecay}`);
  }

  protected override updateMixed(p16: Tensor, master: Tensor, g16: Tensor, st: ParamState, group: ParamGroup<AdamWOptions>): boolean {
    const { expAvg: m, expAvgSq: v } = st.buffers;
    if (!adamwMixedApplies(p16, master, g16, m, v)) return false;
    // sim and cuda: the master, m and v stepped and p16 rounded from the master in one pass (native/cuda/adamw.cu).
    const { lr, betas: [beta1, beta2], eps, weightDecay } = group;
    adamwMixedStep(p16, master, g16, m, v, { lr, beta1, beta2, eps, weightDecay, step: st.step });
    return true;
  }

  protected override update(p: Tensor, g: Tensor, st: ParamState, group: ParamGroup<AdamWOptions>): void {
    const { lr, betas: [b1, b2], eps, weightDecay } = group;
    const { expAvg: m, expAvgSq: v } = st.buffers;
    if (adamwStepApplies(p, g, m, v)) {
      // One native pass over p, g, m and v (native/cpu/kernels/adamw.cpp), the same arithmetic.
      adamwStep(p, g, m, v, { lr, beta1: b1, beta2: b2, eps, weightDecay, step: st.step });
      return;
    }
    const decayed = weightDecay !== 0 ? mul(p, 1 - lr * weightDecay) : p;
    copyInto(m, add(mul(m, b1), mul(g, 1 - b1)));
    copyInto(v, add(mul(v, b2), mul(mul(g, g), 1 - b2)));
    const stepSize = lr / (1 - b1 ** st.step);
    const denom = add(div(sqrt(v), Math.sqrt(1 - b2 ** st.step)), eps);
    copyInto(p, sub(decayed, mul(div(m, denom), stepSize)));
  }
}
