// sgd.ts: stochastic gradient descent with momentum, Nesterov momentum and (coupled) weight
// decay, step for step torch.optim.SGD with dampening 0:
//   d = g + wd * p
//   buf = momentum * buf + d           (buf starts at zero, so the first step sets buf = d)
//   d = nesterov ? d + momentum * buf : buf
//   p = p - lr * d
import type { Tensor } from '../../tensor/tensor.ts';
import { ValueError } from '../../tensor/errors.ts';
import { add, mul, sub } from '../../tensor/ops/elementwise.ts';
import { copyInto } from '../../tensor/ops/views.ts';
import { Optimizer, type ParamGroup, type ParamGroupSpec, type ParamState } from './optimizer.ts';

export type SGDOptions = {
  lr: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
};

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | ParamGroupSpec<SGDOptions>[], opts: Partial<SGDOptions> & { lr: number }) {
    super('SGD', params, { momentum: 0, weightDecay: 0, nesterov: false, ...opts });
  }

  protected override bufferNames(group: ParamGroup<SGDOptions>): string[] {
    return group.momentum !== 0 ? ['momentum'] : [];
  }

  protected override checkGroup(g: ParamGroup<SGDOptions>, i: number): void {
    if (!(g.lr >= 0 && Number.isFinite(g.lr))) throw new ValueError(`SGD: group ${i} lr must be a finite number >= 0, got ${g.lr}`);
    if (!(g.momentum >= 0 && g.momentum < 1)) throw new ValueError(`SGD: group ${i} momentum must be in [0, 1), got ${g.momentum}`);
    if (!(g.weightDecay >= 0 && Number.isFinite(g.weightDecay))) throw new ValueError(`SGD: group ${i} weightDecay must be a finite number >= 0, got ${g.weightDecay}`);
    if (typeof g.nesterov !== 'boolean') throw new ValueError(`SGD: group ${i} nesterov must be a boolean`);
    if (g.nesterov && g.momentum === 0) throw new ValueError(`SGD: group ${i} nesterov needs momentum > 0`);
  }

  protected override update(p: Tensor, g: Tensor, st: ParamState, group: ParamGroup<SGDOptions>): void {
    const { lr, momentum, weightDecay, nesterov } = group;
    let d = weightDecay !== 0 ? add(g, mul(p, weightDecay)) : g;
    if (momentum !== 0) {
      const buf = st.buffers.momentum;
      copyInto(buf, add(mul(buf, momentum), d));
      d = nesterov ? add(d, mul(buf, momentum)) : buf;
    }
    copyInto(p, sub(p, mul(d, lr)));
  }
}
