// loop.ts: the training loop every stage shares (clip, lm, pretrain, vae, decoder, instruct).
//
// A stage supplies what differs: the modules it trains and saves, an optimizer and LR scheduler,
// a batch source, and `step(batch)` that returns named scalar losses (one of them `loss`, the one
// that is differentiated). The loop owns what must be identical everywhere:
//   - one step = zeroGrad, forward, backward, optional gradient clipping, optimizer and scheduler
//     step, inside tidy() so a step's temporaries never outlive it;
//   - metrics: one JSONL record per step (losses, lr, items per second) and a reporter callback
//     (the progress bar);
//   - checkpoints every `checkpointEvery` steps and at the end: the stage's weights, the
//     optimizer and scheduler state, every generator the stage draws from, the batch source's
//     position and the step, in one safetensors file written atomically;
//   - resume: restore all of that, cut the metrics log back to the checkpoint's step, and go on.
//     Since nothing else carries state from one step to the next, the resumed run computes the
//     same bits as an uninterrupted one on the same device (test/emu/train.test.ts checks it).
import { existsSync, rmSync } from 'node:fs';
import '../../autograd/index.ts';
import { CheckpointError, ValueError } from '../../tensor/errors.ts';
import { tidy } from '../../tensor/memory.ts';
import type { Generator } from '../../tensor/random.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { Module } from '../../nn/module.ts';
import type { AdamW } from '../../nn/optim/adamw.ts';
import { clipGradNorm } from '../../nn/optim/clip.ts';
import type { LRScheduler } from '../../nn/schedule.ts';
import { loadCheckpoint, saveCheckpoint, type Json } from '../../nn/checkpoint.ts';
import { MetricsLog, readJsonl } from '../io/jsonl.ts';

/** Where a stage's batches come from; its position must be serialisable for resume. */
export interface BatchSource<B> {
  next(): B;
  state(): Json;
  restore(state: Json): void;
}

/** One step's figures as logged. */
export interface StepRecord {
  step: number;
  /** Scalar losses by name; `loss` is the optimised one. */
  losses: Record<string, number>;
  lr: number;
  /** Items (tokens, images, ...) in this step's batch, and the unit's name. */
  items: number;
  unit: string;
  seconds: number;
}

export interface StageSpec<B> {
  name: string;
  /** Total optimizer steps. */
  steps: number;
  /** Trained and saved modules, by the prefix their weights get in the checkpoint. */
  modules: Record<string, Module>;
  optimizer: AdamW;
  scheduler: LRScheduler;
  data: BatchSource<B>;
  /** Generators the step draws from (dropout masks, noise), saved and restored by name. */
  generators: Record<string, Generator>;
  /** Forward pass of one batch; returns named scalar losses, `loss` among them. */
  step(batch: B): Record<string, Tensor>;
  /** Items in a batch, for the rate figure. */
  count(batch: B): { items: number; unit: string };
  /** Clip the total gradient norm to this (none when undefined). */
  clipNorm?: number;
}

export interface RunOptions {
  /** The stage's folder: checkpoint.safetensors and metrics.jsonl live there. */
  dir: string;
  checkpointEvery: number;
  /** Continue from dir/checkpoint.safetensors if it exists. */
  resume?: boolean;
  /** Called after every step (the progress bar). */
  onStep?: (rec: StepRecord, total: number) => void;
  /** Stop after this many steps of this invocation (tests simulate a killed run with it). */
  stopAfter?: number;
}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const METRICS_FILE = 'metrics.jsonl';

/** Runs (or resumes) a stage; returns the records of every step of the stage so far. */
export function runStage<B>(spec: StageSpec<B>, opts: RunOptions): StepRecord[] {
  const op = `train ${spec.name}`;
  if (!Number.isInteger(spec.steps) || spec.steps < 1) throw new ValueError(`${op}: steps must be a positive integer, got ${spec.steps}`);
  if (!Number.isInteger(opts.checkpointEvery) || opts.checkpointEvery < 1) {
    throw new ValueError(`${op}: checkpointEvery must be a positive integer, got ${opts.checkpointEvery}`);
  }
  const ckptPath = `${opts.dir}/${CHECKPOINT_FILE}`;
  const metricsPath = `${opts.dir}/${METRICS_FILE}`;
  let start = 0;
  if (opts.resume && existsSync(ckptPath)) start = restore(spec, ckptPath);
  // The log reads like an uninterrupted run's: records past the checkpoint are dropped.
  if (start === 0) rmSync(metricsPath, { force: true });
  using log = new MetricsLog(metricsPath, start > 0 ? { resumeStep: start - 1 } : {});
  const records = readJsonl(metricsPath).records as unknown as StepRecord[];
  const params = Object.values(spec.modules).flatMap((m) => m.parameters().filter((p) => p.requiresGrad));
  const end = opts.stopAfter === undefined ? spec.steps : Math.min(spec.steps, start + opts.stopAfter);
  for (let step = start; step < end; step++) {
    const t0 = performance.now();
    const batch = spec.data.next();
    const lr = spec.optimizer.paramGroups[0].lr;
    const losses = tidy(() => {
      spec.optimizer.zeroGrad();
      const out = spec.step(batch);
      if (!out.loss) throw new ValueError(`${op}: step() must return a 'loss'`);
      out.loss.backward();
      if (spec.clipNorm !== undefined) clipGradNorm(params, spec.clipNorm);
      spec.optimizer.step();
      spec.scheduler.step();
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.item() as number]));
    });
    if (!Number.isFinite(losses.loss)) throw new ValueError(`${op}: the loss became ${losses.loss} at step ${step}`);
    const { items, unit } = spec.count(batch);
    const rec: StepRecord = { step, losses, lr, items, unit, seconds: (performance.now() - t0) / 1000 };
    records.push(rec);
    log.append(rec as unknown as Record<string, unknown>);
    opts.onStep?.(rec, spec.steps);
    if ((step + 1) % opts.checkpointEvery === 0 || step + 1 === spec.steps) save(spec, ckptPath, step + 1);
  }
  return records;
}

function save<B>(spec: StageSpec<B>, path: string, step: number): void {
  const model = new Map<string, Tensor>();
  for (const [prefix, m] of Object.entries(spec.modules)) for (const [k, t] of Object.entries(m.stateDict())) model.set(`${prefix}.${k}`, t);
  saveCheckpoint(path, {
    model,
    optimizer: spec.optimizer.stateDict(),
    scheduler: spec.scheduler.stateDict(),
    rng: Object.fromEntries(Object.entries(spec.generators).map(([k, g]) => [k, g.getState()])),
    extra: { stage: spec.name, step, data: spec.data.state() },
  });
}

/** Restores everything save() wrote; returns the step to continue from. */
function restore<B>(spec: StageSpec<B>, path: string): number {
  const ck = loadCheckpoint(path);
  try {
    const extra = ck.extra as { stage?: string; step?: number; data?: Json } | undefined;
    if (!extra || extra.stage !== spec.name || !Number.isInteger(extra.step)) {
      throw new CheckpointError(`train ${spec.name}: ${path} is not a checkpoint of this stage`);
    }
    for (const [prefix, m] of Object.entries(spec.modules)) {
      const mine = new Map([...ck.model].filter(([k]) => k.startsWith(prefix + '.')).map(([k, t]) => [k.slice(prefix.length + 1), t]));
      m.loadStateDict(mine);
    }
    if (!ck.optimizer || !ck.scheduler) throw new CheckpointError(`train ${spec.name}: ${path} has no optimizer or scheduler state`);
    spec.optimizer.loadStateDict(ck.optimizer);
    spec.scheduler.loadStateDict(ck.scheduler);
    for (const [k, g] of Object.entries(spec.generators)) {
      const s = ck.rng?.[k];
      if (!s) throw new CheckpointError(`train ${spec.name}: ${path} has no state for generator '${k}'`);
      g.setState(s);
    }
    spec.data.restore(extra.data ?? null);
    return extra.step!;
  } finally {
    for (const t of ck.model.values()) t.dispose();
    for (const s of Object.values(ck.optimizer?.state ?? {})) for (const t of Object.values(s.buffers)) t.dispose();
  }
}

