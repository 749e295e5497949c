// stage.ts: what the six training stages share: their options, their context (the run folder,
// tokenizer, config, seed) and the optimizer recipe (AdamW with per-group learning rates, linear
// warm-up then cosine decay, spec section 3.1).
import type { Device } from '../../tensor/device.ts';
import { ValueError } from '../../tensor/errors.ts';
import { Generator } from '../../tensor/random.ts';
import type { Parameter } from '../../nn/module.ts';
import { AdamW } from '../../nn/optim/adamw.ts';
import { LRScheduler, warmupCosine } from '../../nn/schedule.ts';
import type { Json } from '../../nn/checkpoint.ts';
import type { BatchSource } from './loop.ts';
import type { RunDir, RunMeta, StageName } from './run_dir.ts';
import type { Tokenizer } from '../tokenizer.ts';

export interface StageOptions {
  steps: number;
  batch: number;
  /** Peak learning rate (of the LLM's group where a stage has several). */
  lr: number;
  /** Fraction of the steps spent warming up (spec: 0.2). */
  warmup: number;
}

export interface StageContext {
  run: RunDir;
  meta: RunMeta;
  tok: Tokenizer;
  options: StageOptions;
  /** The stage's seed (the run's seed mixed with the stage's index). */
  seed: number;
  /** Where the stage trains: its models move there before the optimizer is built, its batches are made there. */
  device: Device;
}

export function checkStageOptions(name: StageName, o: StageOptions): void {
  for (const k of ['steps', 'batch'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new ValueError(`train ${name}: ${k} must be a positive integer, got ${String(o[k])}`);
  }
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new ValueError(`train ${name}: lr must be a positive number, got ${String(o.lr)}`);
  if (!(o.warmup >= 0 && o.warmup < 1)) throw new ValueError(`train ${name}: warmup must be in [0, 1), got ${String(o.warmup)}`);
}

export interface ParamGroupPlan {
  params: Parameter[];
  /** Multiple of the stage's lr. */
  lrScale: number;
}

/**
 * AdamW over groups (no weight decay on biases, norms, embeddings of positions and class
 * tokens: 1-D tensors and names the caller routes there) and its warm-up + cosine scheduler.
 */
export function optimizer(groups: ParamGroupPlan[], o: StageOptions, hyper: { betas: [number, number]; eps: number; weightDecay: number }):
  { optimizer: AdamW; scheduler: LRScheduler } {
  const specs = groups.flatMap(({ params, lrScale }) => {
    const trainable = params.filter((p) => p.requiresGrad);
    const decay = trainable.filter((p) => p.ndim >= 2);
    const noDecay = trainable.filter((p) => p.ndim < 2);
    return [
      { params: decay, lr: o.lr * lrScale, weightDecay: hyper.weightDecay },
      { params: noDecay, lr: o.lr * lrScale, weightDecay: 0 },
    ].filter((g) => g.params.length > 0);
  });
  if (specs.length === 0) throw new ValueError('optimizer: nothing to train');
  const opt = new AdamW(specs, { betas: hyper.betas, eps: hyper.eps });
  const scheduler = new LRScheduler(opt, warmupCosine({ warmupSteps: Math.round(o.warmup * o.steps), totalSteps: o.steps, minLrRatio: 0.05 }));
  return { optimizer: opt, scheduler };
}

/**
 * A batch source over a deterministic function of the batch index: batch i is make(i). Its
 * position is the next index, so resuming is exact.
 */
export function indexedBatches<B>(make: (index: number) => B): BatchSource<B> {
  let next = 0;
  return {
    next: () => make(next++),
    state: (): Json => next,
    restore(s: Json) {
      if (!Number.isInteger(s) || (s as number) < 0) throw new ValueError(`indexedBatches: bad position ${JSON.stringify(s)}`);
      next = s as number;
    },
  };
}

/** A generator seeded from the stage seed and a salt, so each use draws its own stream. */
export function stageGenerator(ctx: StageContext, salt: number): Generator {
  return new Generator((ctx.seed * 1009 + salt) % 2 ** 31);
}

/**
 * The first `switchAt` batches from `first`, the rest from `second`; both positions are saved,
 * so a resume on either side of the switch is exact.
 */
export function phasedBatches<B>(first: BatchSource<B>, second: BatchSource<B>, switchAt: number): BatchSource<B> {
  let taken = 0;
  return {
    next: () => (taken++ < switchAt ? first : second).next(),
    state: (): Json => ({ taken, first: first.state(), second: second.state() }),
    restore(s: Json) {
      const st = s as { taken?: unknown; first?: Json; second?: Json } | null;
      if (!st || !Number.isInteger(st.taken) || (st.taken as number) < 0) throw new ValueError(`phasedBatches: bad position ${JSON.stringify(s)}`);
      taken = st.taken as number;
      first.restore(st.first ?? null);
      second.restore(st.second ?? null);
    },
  };
}
