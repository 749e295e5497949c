// schedule.ts: learning-rate schedules.
//
// A schedule is a pure function from the step (the number of scheduler.step() calls so far,
// 0 before the first) to a factor of each group's base lr:
//   warmupCosine: step / warmupSteps during warm-up (0 at step 0, 1 at warmupSteps), then a
//                 half cosine from 1 down to minLrRatio at totalSteps, flat after (the usual
//                 transformers get_cosine_schedule_with_warmup, with a floor).
//   stepDecay:    gamma^(steps // stepSize) (torch StepLR), or gamma^(milestones passed)
//                 (torch MultiStepLR).
//   constant:     1.
// LRScheduler applies one to an optimizer, torch.optim.lr_scheduler.LambdaLR's way: it remembers
// each group's base lr, sets lr = base * factor(0) at once and lr = base * factor(step) on each
// step(); its stateDict (step and base lrs) resumes it exactly.
import { ValueError } from '../tensor/errors.ts';

export type Schedule = (step: number) => number;

function checkCount(v: unknown, op: string, arg: string, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min) throw new ValueError(`${op}: ${arg} must be an integer >= ${min}, got ${String(v)}`);
  return v as number;
}

export interface WarmupCosineOptions {
  warmupSteps: number;
  /** The step at which the cosine reaches its floor (counted from 0, warm-up included). */
  totalSteps: number;
  /** The floor as a fraction of the base lr (default 0). */
  minLrRatio?: number;
}

export function warmupCosine({ warmupSteps, totalSteps, minLrRatio = 0 }: WarmupCosineOptions): Schedule {
  checkCount(warmupSteps, 'warmupCosine', 'warmupSteps', 0);
  checkCount(totalSteps, 'warmupCosine', 'totalSteps', warmupSteps);
  if (!(minLrRatio >= 0 && minLrRatio <= 1)) throw new ValueError(`warmupCosine: minLrRatio must be in [0, 1], got ${minLrRatio}`);
  return (step) => {
    if (step < warmupSteps) return step / warmupSteps;
    if (step >= totalSteps) return minLrRatio;
    const progress = (step - warmupSteps) / (totalSteps - warmupSteps);
    return minLrRatio + (1 - minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

export type StepDecayOptions = { gamma?: number } & ({ stepSize: number } | { milestones: number[] });

/** Multiplies the lr by gamma (default 0.1) every stepSize steps, or at each milestone step. */
export function stepDecay(opts: StepDecayOptions): Schedule {
  const gamma = opts.gamma ?? 0.1;
  if (!(gamma > 0 && Number.isFinite(gamma))) throw new ValueError(`stepDecay: gamma must be a finite number > 0, got ${gamma}`);
  if ('milestones' in opts) {
    const ms = opts.milestones;
    if (!Array.isArray(ms)) throw new ValueError('stepDecay: milestones must be an array of steps');
    ms.forEach((m, i) => checkCount(m, 'stepDecay', `milestones[${i}]`, 1));
    if (ms.some((m, i) => i > 0 && m <= ms[i - 1])) throw new ValueError(`stepDecay: milestones must increase, got [${ms}]`);
    return (step) => gamma ** ms.filter((m) => m <= step).length;
  }
  const size = checkCount(opts.stepSize, 'stepDecay', 'stepSize', 1);
  return (step) => gamma ** Math.floor(step / size);
}

export function constant(): Schedule {
  return () => 1;
}

/** What LRScheduler needs of an optimizer: groups whose lr it may set. */
export interface HasParamGroups {
  paramGroups: { lr: number }[];
}

export interface SchedulerState {
  step: number;
  baseLrs: number[];
}

export class LRScheduler {
  readonly baseLrs: number[];
  #step = 0;
  readonly #schedules: Schedule[];

  /** One schedule for every group, or one per group. */
  constructor(readonly optimizer: HasParamGroups, schedule: Schedule | Schedule[]) {
    const groups = optimizer?.paramGroups;
    if (!Array.isArray(groups)) throw new ValueError('LRScheduler: optimizer must have paramGroups');
    const list = Array.isArray(schedule) ? schedule : groups.map(() => schedule);
    if (list.length !== groups.length || !list.every((s) => typeof s === 'function')) {
      throw new ValueError(`LRScheduler: expected a schedule or ${groups.length} schedules (one per group)`);
    }
    this.#schedules = list;
    this.baseLrs = groups.map((g) => g.lr);
    this.apply();
  }

  /** Scheduler steps taken so far. */
  get lastStep(): number {
    return this.#step;
  }

  /** Advances one step and sets every group's lr. */
  step(): void {
    this.#step++;
    this.apply();
  }

  /** The lr each group has now. */
  getLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  private apply(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.baseLrs[i] * this.#schedules[i](this.#step);
    });
  }

  stateDict(): SchedulerState {
    return { step: this.#step, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(s: SchedulerState): void {
    if (!s || !Number.isInteger(s.step) || s.step < 0 || !Array.isArray(s.baseLrs) || s.baseLrs.length !== this.baseLrs.length
      || !s.baseLrs.every((v) => typeof v === 'number' && v >= 0)) {
      throw new ValueError(`LRScheduler.loadStateDict: expected { step: integer >= 0, baseLrs: ${this.baseLrs.length} numbers }`);
    }
    this.#step = s.step;
    this.baseLrs.splice(0, this.baseLrs.length, ...s.baseLrs);
    this.apply();
  }
}
