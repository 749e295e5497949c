// grad_scaler.ts: dynamic loss scaling for f16 mixed precision, the algorithm of PyTorch's
// torch.amp.GradScaler. f16's smallest step is 2^-24, so in an f16 backward (under
// autocast(fn, { dtype: 'f16' })) small gradients flush to zero. The scaler multiplies the loss
// by S (2^16 at first) before backward, so every gradient is S times larger and stays
// representable, and divides the parameters' gradients by S before the optimizer steps. When a
// scaled gradient overflowed (an inf or NaN anywhere), that step is skipped and S shrinks by
// backoffFactor; after growthInterval overflow-free steps in a row, S grows by growthFactor.
// bf16 has f32's exponent range and needs none of this.
//
//   const scaler = new GradScaler();
//   const loss = autocast(() => lossOf(model), { dtype: 'f16' });
//   scaler.scale(loss).backward();
//   scaler.step(opt);   // unscales the gradients, then steps unless one overflowed
//   scaler.update();    // adjusts S for the next iteration
//   opt.zeroGrad();
//
// Call unscale(opt) yourself between backward and step to clip the true gradients
// (clipGradNorm); step then does not unscale again.
import { ValueError } from '../../tensor/errors.ts';
import { isFloat } from '../../tensor/dtype.ts';
import { tidy } from '../../tensor/memory.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { isFinite, logicalNot, mul } from '../../tensor/ops/elementwise.ts';
import { any } from '../../tensor/ops/reduce.ts';
import { copyInto } from '../../tensor/ops/views.ts';
import { noGrad } from '../../autograd/grad_mode.ts';

export interface GradScalerOptions {
  /** The first scale S (default 2^16). */
  initScale?: number;
  /** S is multiplied by this after growthInterval overflow-free steps (default 2). */
  growthFactor?: number;
  /** S is multiplied by this after a step with an overflow (default 0.5). */
  backoffFactor?: number;
  /** Overflow-free steps in a row before S grows (default 2000). */
  growthInterval?: number;
  /** false: scale() returns the loss as it is and step() just steps (default true). */
  enabled?: boolean;
}

/** What the scaler needs of an optimizer (SGD, AdamW, ...): its parameters and its step. */
export interface ScaledOptimizer {
  readonly paramGroups: readonly { params: Tensor[] }[];
  step(): void;
}

/** What a checkpoint keeps of a scaler. */
export interface GradScalerState {
  scale: number;
  growthTracker: number;
}

export class GradScaler {
  readonly enabled: boolean;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  #scale: number;
  #growthTracker = 0;
  /** The optimizers unscaled since the last update, and whether each found an inf or NaN. */
  #unscaled = new Map<ScaledOptimizer, boolean>();

  constructor(opts: GradScalerOptions = {}) {
    const { initScale = 2 ** 16, growthFactor = 2, backoffFactor = 0.5, growthInterval = 2000, enabled = true } = opts;
    if (!(initScale > 0 && Number.isFinite(initScale))) throw new ValueError(`GradScaler: initScale must be a finite number > 0, got ${initScale}`);
    if (!(growthFactor > 1 && Number.isFinite(growthFactor))) throw new ValueError(`GradScaler: growthFactor must be > 1, got ${growthFactor}`);
    if (!(backoffFactor > 0 && backoffFactor < 1)) throw new ValueError(`GradScaler: backoffFactor must be in (0, 1), got ${backoffFactor}`);
    if (!(Number.isInteger(growthInterval) && growthInterval > 0)) {
      throw new ValueError(`GradScaler: growthInterval must be an integer > 0, got ${growthInterval}`);
    }
    this.enabled = enabled;
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
    this.#scale = initScale;
  }

  /** The current scale S (1 when disabled). */
  getScale(): number {
    return this.enabled ? this.#scale : 1;
  }

  /** loss * S, recorded for autograd: call backward() on the result. */
  scale(loss: Tensor): Tensor {
    loss.live('GradScaler.scale');
    if (!isFloat(loss.dtype)) throw new ValueError(`GradScaler.scale: the loss must be a float tensor, got ${loss.dtype}`);
    return this.enabled ? mul(loss, this.#scale) : loss;
  }

  /**
   * Divides the gradients of opt's parameters by S in place and notes whether any is inf or NaN.
   * Once per optimizer between two update() calls.
   */
  unscale(opt: ScaledOptimizer): void {
    if (!this.enabled) return;
    if (this.#unscaled.has(opt)) throw new ValueError('GradScaler.unscale: already called for this optimizer since the last update()');
    const grads = [...new Set(opt.paramGroups.flatMap((g) => g.params.flatMap((p) => (p.grad ? [p.grad.live('GradScaler.unscale')] : []))))];
    const inverse = 1 / this.#scale;
    const overflowed = noGrad(() => tidy(() => grads.some((g) => {
      const bad = any(logicalNot(isFinite(g))).item() as boolean;
      copyInto(g, mul(g, inverse));
      return bad;
    })));
    this.#unscaled.set(opt, overflowed);
  }

  /** Unscales (unless unscale(opt) already did) and steps opt unless a gradient overflowed; returns whether it stepped. */
  step(opt: ScaledOptimizer): boolean {
    if (!this.enabled) {
      opt.step();
      return true;
    }
    if (!this.#unscaled.has(opt)) this.unscale(opt);
    if (this.#unscaled.get(opt)) return false;
    opt.step();
    return true;
  }

  /** Adjusts S after this iteration's steps: backoff if any overflowed, growth after growthInterval clean ones. */
  update(): void {
    if (!this.enabled) return;
    if (this.#unscaled.size === 0) throw new ValueError('GradScaler.update: no optimizer was unscaled or stepped since the last update()');
    if ([...this.#unscaled.values()].some((overflowed) => overflowed)) {
      this.#scale *= this.backoffFactor;
      this.#growthTracker = 0;
    } else if (++this.#growthTracker >= this.growthInterval) {
      this.#scale *= this.growthFactor;
      this.#growthTracker = 0;
    }
    this.#unscaled.clear();
  }

  stateDict(): GradScalerState {
    return { scale: this.#scale, growthTracker: this.#growthTracker };
  }

  loadStateDict(s: GradScalerState): void {
    if (!(s && s.scale > 0 && Number.isFinite(s.scale) && Number.isInteger(s.growthTracker) && s.growthTracker >= 0)) {
      throw new ValueError('GradScaler.loadStateDict: expected { scale: finite number > 0, growthTracker: integer >= 0 }');
    }
    this.#scale = s.scale;
    this.#growthTracker = s.growthTracker;
    this.#unscaled.clear();
  }
}
