// diffusion.ts: Stable Diffusion's noise schedule, the DDPM epsilon-prediction training loss with
// condition dropout, the DDIM and PNDM (PLMS) samplers as diffusers implements them with SD 1.5's
// scheduler config, and classifier-free guided sampling.
//
//   betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 ("scaled_linear"), alphas_cumprod = cumprod(1 - betas)
//   x_t = sqrt(acp[t]) x0 + sqrt(1 - acp[t]) eps; the UNet predicts eps (MSE)
//   SD's scheduler config: steps_offset 1, "leading" spacing, set_alpha_to_one false, clip_sample false
//   CFG: eps = eps_u + s (eps_c - eps_u), both branches in one batch [uncond; cond]
//
// Scheduler state (PNDM's history) holds tensors that outlive tidy scopes; reset them with
// setTimesteps and free them with dispose().
import { ShapeError, ValueError } from '../tensor/errors.ts';
import { keep, tidy } from '../tensor/memory.ts';
import { rand, randint, randn, type Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { tensor, zeros } from '../tensor/ops/creation.ts';
import { add, lt, mul, sub, where } from '../tensor/ops/elementwise.ts';
import { cat, chunk, clone, expand, reshape } from '../tensor/ops/views.ts';
import { noGrad } from '../autograd/grad_mode.ts';
import * as F from '../nn/functional.ts';
import type { UNet2DConditionModel } from './unet.ts';

export interface NoiseScheduleOptions {
  trainTimesteps?: number;
  betaStart?: number;
  betaEnd?: number;
}

/** SD's scaled-linear schedule (float64): betas, alphas = 1 - betas, alphasCumprod. */
export class NoiseSchedule {
  readonly T: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  constructor(opts: NoiseScheduleOptions = {}) {
    const T = (this.T = opts.trainTimesteps ?? 1000);
    const b0 = opts.betaStart ?? 0.00085, b1 = opts.betaEnd ?? 0.012;
    if (!Number.isInteger(T) || T < 2) throw new ValueError(`NoiseSchedule: trainTimesteps must be an integer >= 2, got ${T}`);
    this.betas = new Float64Array(T);
    this.alphas = new Float64Array(T);
    this.alphasCumprod = new Float64Array(T);
    const s0 = Math.sqrt(b0), s1 = Math.sqrt(b1);
    let acp = 1;
    for (let i = 0; i < T; i++) {
      const s = s0 + ((s1 - s0) * i) / (T - 1);
      this.betas[i] = s * s;
      this.alphas[i] = 1 - this.betas[i];
      acp *= this.alphas[i];
      this.alphasCumprod[i] = acp;
    }
  }
  acp(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.T) throw new ValueError(`NoiseSchedule: timestep ${t} is out of range [0, ${this.T})`);
    return this.alphasCumprod[t];
  }
}

export const SD_SCHEDULE = new NoiseSchedule();

/** [B, 1, 1, ...] coefficients for x of rank r. */
function perSample(values: number[], like: Tensor): Tensor {
  return tensor(values, { dtype: like.dtype, device: like.device }).reshape([values.length, ...Array(like.ndim - 1).fill(1)]);
}

function timestepNumbers(t: number | number[] | Tensor, B: number): number[] {
  let ts: number[];
  if (typeof t === 'number') ts = [t];
  else if (Array.isArray(t)) ts = t;
  else ts = Array.from(t.data() as ArrayLike<number>, Number);
  if (ts.length === 1 && B > 1) ts = Array(B).fill(ts[0]);
  if (ts.length !== B) throw new ShapeError(`addNoise: ${ts.length} timesteps for a batch of ${B}`);
  return ts;
}

/** x_t = sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise, t per sample (or one for all). */
export function addNoise(x0: Tensor, noise: Tensor, t: number | number[] | Tensor, schedule: NoiseSchedule = SD_SCHEDULE): Tensor {
  const ts = timestepNumbers(t, x0.shape[0]);
  return tidy(() => {
    const a = ts.map((v) => Math.sqrt(schedule.acp(v))), s = ts.map((v) => Math.sqrt(1 - schedule.acp(v)));
    return add(mul(x0, perSample(a, x0)), mul(noise, perSample(s, x0)));
  });
}

export interface DdpmLossOptions {
  generator?: Generator;
  /** Fraction of samples whose condition is replaced by nullCondition (default 0.1, as Emu). */
  conditionDropout?: number;
  /** [N, D] or [1, N, D] or [B, N, D]; default zeros (what Emu used is not specified; the CFG uncond is Emu("")). */
  nullCondition?: Tensor | null;
  schedule?: NoiseSchedule;
  /** Fixed timesteps instead of uniform draws (for evaluation). */
  timesteps?: number[];
}

/**
 * DDPM epsilon-prediction loss: t ~ U{0..T-1}, noise ~ N(0, I), MSE(unet(x_t, t, c), noise), with
 * conditionDropout of the samples conditioned on nullCondition instead.
 */
export function ddpmLoss(unet: UNet2DConditionModel, latents: Tensor, condition: Tensor, opts: DdpmLossOptions = {}): Tensor {
  const sched = opts.schedule ?? SD_SCHEDULE;
  const p = opts.conditionDropout ?? 0.1;
  if (!(p >= 0 && p <= 1)) throw new ValueError(`ddpmLoss: conditionDropout must be in [0, 1], got ${p}`);
  const B = latents.shape[0], g = opts.generator;
  return tidy(() => {
    let ts: number[];
    if (opts.timesteps) ts = timestepNumbers(opts.timesteps, B);
    else ts = Array.from(randint(0, sched.T, [B], { generator: g }).data() as ArrayLike<number>, Number);
    const noise = randn(latents.shape as number[], { generator: g, dtype: latents.dtype, device: latents.device });
    const xt = addNoise(latents, noise, ts, sched);
    let cond = condition;
    if (p > 0) {
      const drop = reshape(lt(rand([B], { generator: g }), p), [B, 1, 1]);
      const nul = opts.nullCondition ?? zeros(condition.shape.slice(1) as number[], { dtype: condition.dtype, device: condition.device });
      const n3 = nul.ndim === 2 ? reshape(nul, [1, ...nul.shape]) : nul;
      cond = where(drop, expand(n3, condition.shape as number[]), condition);
    }
    return F.mseLoss(unet.forward(xt, ts, cond), noise);
  });
}

export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

export interface SchedulerOptions {
  schedule?: NoiseSchedule;
  /** Added to every inference timestep (SD: 1). */
  stepsOffset?: number;
  /** SD: 'leading'. */
  timestepSpacing?: TimestepSpacing;
  /** Use alpha_prod = 1 past the last step (SD: false, i.e. acp[0]). */
  setAlphaToOne?: boolean;
}

/** diffusers' inference timesteps, descending. */
export function inferenceTimesteps(n: number, T: number, spacing: TimestepSpacing, offset: number): number[] {
  if (!Number.isInteger(n) || n < 1 || n > T) throw new ValueError(`scheduler: steps must be an integer in [1, ${T}], got ${n}`);
  let ts: number[];
  if (spacing === 'leading') {
    const r = Math.floor(T / n);
    ts = Array.from({ length: n }, (_, i) => Math.round(i * r) + offset).reverse();
  } else if (spacing === 'trailing') {
    const r = T / n;
    ts = Array.from({ length: n }, (_, i) => Math.round(T - i * r) - 1);
  } else {
    ts = Array.from({ length: n }, (_, i) => Math.round(((T - 1) * (n - 1 - i)) / Math.max(1, n - 1)));
  }
  const bad = ts.find((t) => t < 0 || t >= T);
  if (bad !== undefined) throw new ValueError(`scheduler: timestep ${bad} (steps ${n}, offset ${offset}, ${spacing}) is outside [0, ${T}); diffusers would index past alphas_cumprod`);
  return ts;
}

export interface Scheduler {
  readonly timesteps: number[];
  setTimesteps(n: number): void;
  /** One reverse step: the model's eps at (sample, t) -> the previous sample (a new tensor). */
  step(eps: Tensor, t: number, sample: Tensor): Tensor;
  dispose(): void;
}

abstract class BaseScheduler implements Scheduler {
  readonly schedule: NoiseSchedule;
  readonly stepsOffset: number;
  readonly spacing: TimestepSpacing;
  readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  numInferenceSteps = 0;
  constructor(opts: SchedulerOptions) {
    this.schedule = opts.schedule ?? SD_SCHEDULE;
    this.stepsOffset = opts.stepsOffset ?? 1;
    this.spacing = opts.timestepSpacing ?? 'leading';
    this.finalAlphaCumprod = opts.setAlphaToOne ? 1 : this.schedule.alphasCumprod[0];
  }
  protected acpPrev(t: number): number {
    return t >= 0 ? this.schedule.acp(t) : this.finalAlphaCumprod;
  }
  abstract setTimesteps(n: number): void;
  abstract step(eps: Tensor, t: number, sample: Tensor): Tensor;
  dispose(): void {}
}

/** DDIM (eta 0, epsilon prediction, no clipping) with SD's config. */
export class DDIMScheduler extends BaseScheduler {
  /** The x0 predicted at the last step (kept until the next step or dispose). */
  predOriginalSample: Tensor | null = null;
  constructor(opts: SchedulerOptions = {}) {
    super(opts);
  }
  setTimesteps(n: number): void {
    this.timesteps = inferenceTimesteps(n, this.schedule.T, this.spacing, this.stepsOffset);
    this.numInferenceSteps = n;
  }
  step(eps: Tensor, t: number, sample: Tensor): Tensor {
    if (!this.numInferenceSteps) throw new ValueError('DDIMScheduler: call setTimesteps first');
    const prevT = t - Math.floor(this.schedule.T / this.numInferenceSteps);
    const a = this.schedule.acp(t), ap = this.acpPrev(prevT);
    const [prev, x0] = tidy(() => {
      const x0 = mul(sub(sample, mul(eps, Math.sqrt(1 - a))), 1 / Math.sqrt(a));
      return [add(mul(x0, Math.sqrt(ap)), mul(eps, Math.sqrt(1 - ap))), x0];
    });
    this.predOriginalSample?.dispose();
    this.predOriginalSample = keep(x0);
    return prev;
  }
  override dispose(): void {
    this.predOriginalSample?.dispose();
    this.predOriginalSample = null;
  }
}

/** PNDM with skip_prk_steps (PLMS only), as SD uses it; the second step is the Heun-like correction diffusers does. */
export class PNDMScheduler extends BaseScheduler {
  ets: Tensor[] = [];
  counter = 0;
  curSample: Tensor | null = null;
  constructor(opts: SchedulerOptions = {}) {
    super(opts);
  }
  setTimesteps(n: number): void {
    if (this.spacing !== 'leading') throw new ValueError('PNDMScheduler: only leading spacing is implemented');
    const base = inferenceTimesteps(n, this.schedule.T, 'leading', this.stepsOffset).reverse(); // ascending
    // diffusers: concat(_timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:])[::-1]
    const plms = n >= 2 ? [...base.slice(0, -1), base[base.length - 2], base[base.length - 1]].reverse() : [base[0]];
    this.timesteps = plms;
    this.numInferenceSteps = n;
    this.dispose();
  }
  step(eps: Tensor, timestep: number, sample: Tensor): Tensor {
    if (!this.numInferenceSteps) throw new ValueError('PNDMScheduler: call setTimesteps first');
    const stride = Math.floor(this.schedule.T / this.numInferenceSteps);
    let t = timestep, prevT = t - stride;
    if (this.counter !== 1) {
      while (this.ets.length > 3) this.ets.shift()!.dispose();
      this.ets.push(keep(clone(eps)));
    } else {
      prevT = t;
      t = t + stride;
    }
    const out = tidy(() => {
      const e = this.ets;
      let m: Tensor, x = sample;
      if (e.length === 1 && this.counter === 0) {
        m = eps;
        this.curSample?.dispose();
        this.curSample = keep(clone(sample));
      } else if (e.length === 1 && this.counter === 1) {
        m = mul(add(eps, e[0]), 0.5);
        x = this.curSample!;
      } else if (e.length === 2) {
        m = mul(sub(mul(e[1], 3), e[0]), 0.5);
      } else if (e.length === 3) {
        m = mul(add(sub(mul(e[2], 23), mul(e[1], 16)), mul(e[0], 5)), 1 / 12);
      } else {
        m = mul(sub(add(sub(mul(e[3], 55), mul(e[2], 59)), mul(e[1], 37)), mul(e[0], 9)), 1 / 24);
      }
      return this.prevSample(x, t, prevT, m);
    });
    if (this.counter === 1 && this.ets.length === 1) {
      this.curSample?.dispose();
      this.curSample = null;
    }
    this.counter++;
    return out;
  }
  /** diffusers' _get_prev_sample (formula (9) of the PNDM paper). */
  private prevSample(x: Tensor, t: number, prevT: number, eps: Tensor): Tensor {
    const a = this.schedule.acp(t), ap = this.acpPrev(prevT);
    const sampleCoeff = Math.sqrt(ap / a);
    const denom = a * Math.sqrt(1 - ap) + Math.sqrt(a * (1 - a) * ap);
    return sub(mul(x, sampleCoeff), mul(eps, (ap - a) / denom));
  }
  override dispose(): void {
    for (const e of this.ets) e.dispose();
    this.ets = [];
    this.curSample?.dispose();
    this.curSample = null;
    this.counter = 0;
  }
}

/**
 * Classifier-free guided epsilon: the UNet runs once on the batch [x; x] with [uncondition; condition],
 * then eps = eps_u + s (eps_c - eps_u). uncondition may be [1, N, D] (broadcast) or [B, N, D].
 */
export function guidedEps(
  unet: UNet2DConditionModel, x: Tensor, t: number, condition: Tensor, uncondition: Tensor, guidanceScale: number,
): Tensor {
  const B = x.shape[0];
  return tidy(() => {
    const u = uncondition.shape[0] === B ? uncondition : expand(uncondition, condition.shape as number[]);
    const out = unet.forward(cat([x, x], 0), Array(2 * B).fill(t), cat([u, condition], 0));
    const [eu, ec] = chunk(out, 2, 0);
    return add(eu, mul(sub(ec, eu), guidanceScale));
  });
}

export interface SampleOptions {
  /** [B, N, D]: Emu's regressed embeddings for the prompt. */
  condition: Tensor;
  /** [B or 1, N, D]: Emu's output for the empty prompt. */
  uncondition: Tensor;
  /** Default 7.5 (Emu's text-to-image). */
  guidanceScale?: number;
  /** Default 50. */
  steps?: number;
  scheduler?: 'pndm' | 'ddim' | Scheduler;
  /** Latent shape [B, C, h, w]. */
  shape: number[];
  generator?: Generator;
  /** Starting latents instead of N(0, I) draws (not disposed). */
  latents?: Tensor;
  schedulerOptions?: SchedulerOptions;
}

/** Guided reverse diffusion from N(0, I) latents to (unscaled) clean latents [B, C, h, w]. */
export function sample(unet: UNet2DConditionModel, opts: SampleOptions): Tensor {
  const s = opts.guidanceScale ?? 7.5, steps = opts.steps ?? 50;
  const sch: Scheduler = typeof opts.scheduler === 'object' ? opts.scheduler
    : (opts.scheduler ?? 'pndm') === 'pndm' ? new PNDMScheduler(opts.schedulerOptions)
    : opts.scheduler === 'ddim' ? new DDIMScheduler(opts.schedulerOptions)
    : (() => { throw new ValueError(`sample: scheduler must be 'pndm' or 'ddim', got ${String(opts.scheduler)}`); })();
  if (opts.condition.shape[0] !== opts.shape[0]) throw new ShapeError(`sample: condition batch ${opts.condition.shape[0]} differs from shape[0] ${opts.shape[0]}`);
  sch.setTimesteps(steps);
  return noGrad(() => {
    let x = opts.latents ? clone(opts.latents) : randn(opts.shape, { generator: opts.generator, dtype: opts.condition.dtype, device: opts.condition.device });
    try {
      for (const t of sch.timesteps) {
        const next = tidy(() => sch.step(guidedEps(unet, x, t, opts.condition, opts.uncondition, s), t, x));
        x.dispose();
        x = next;
      }
      return x;
    } finally {
      sch.dispose();
    }
  });
}
