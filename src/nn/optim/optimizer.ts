// optimizer.ts: what every optimizer shares: parameter groups, zeroGrad, step, and a stateDict
// that lets a run resume bit for bit.
//
// An optimizer holds parameter groups (torch.optim's param_groups): each group is a list of
// parameter tensors with its own hyper-parameters (lr, weightDecay, ...), so the vision encoder,
// the causal transformer and the LLM can train at different rates. Per parameter it keeps a step
// count and state buffers (momentum, Adam moments) in the parameter's "work" dtype: the
// parameter's own dtype, except bf16 and f16 parameters, which are updated through an f32 master copy
// kept in the state (buffer `master`) and written back rounded after each step. The master copy
// is taken at the parameter's first step; to overwrite weights later, load the optimizer's state
// too (or make a fresh optimizer).
//
// step() writes into the parameters' existing storage (modules hold them), under noGrad and in a
// tidy scope per parameter, so a training loop of any length keeps memory flat.
//
// stateDict() is torch's layout: state keyed by the parameter's index in group order, and the
// groups' hyper-parameters with those indices. flattenStateDict/unflattenStateDict turn it into
// named tensors plus a JSON string, which is what a safetensors file holds.
import { isFloat, isHalf, type DType } from '../../tensor/dtype.ts';
import { CheckpointError, ShapeError, ValueError } from '../../tensor/errors.ts';
import { keep, tidy } from '../../tensor/memory.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { zeros } from '../../tensor/ops/creation.ts';
import { copyAs, copyInto, to } from '../../tensor/ops/views.ts';
import { noGrad } from '../../autograd/grad_mode.ts';

/** A hyper-parameter value: a number, a flag, or a tuple such as AdamW's betas. */
export type HyperValue = number | boolean | readonly number[];
export type Hyper = Record<string, HyperValue>;

/** A parameter group as given to a constructor: params plus any hyper-parameter overrides. */
export type ParamGroupSpec<H extends Hyper> = { params: Tensor[] } & Partial<H>;
/** A parameter group as the optimizer holds it; set `lr` (or use a scheduler) to change it. */
export type ParamGroup<H extends Hyper> = H & { params: Tensor[] };

export interface ParamState {
  /** Steps taken by this parameter. */
  step: number;
  /** Named buffers, each with the parameter's shape, in its work dtype. */
  buffers: Record<string, Tensor>;
}

export interface OptimizerStateDict {
  /** Parameter index (counting through the groups in order) -> its state. */
  state: Record<number, ParamState>;
  paramGroups: (Record<string, HyperValue> & { params: number[] })[];
}

/** The dtype a parameter is updated in: its own, with bf16 and f16 through an f32 master copy. */
function workDType(p: Tensor): DType {
  return isHalf(p.dtype) ? 'f32' : p.dtype;
}

export abstract class Optimizer<H extends Hyper> {
  readonly paramGroups: ParamGroup<H>[];
  readonly state = new Map<Tensor, ParamState>();
  readonly defaults: H;
  protected readonly name: string;

  constructor(name: string, params: Tensor[] | ParamGroupSpec<H>[], defaults: H) {
    this.name = name;
    this.defaults = defaults;
    if (!Array.isArray(params) || params.length === 0) throw new ValueError(`${name}: params must be a non-empty array of tensors or of param groups`);
    const specs: ParamGroupSpec<H>[] = params.every((p) => p instanceof Tensor)
      ? [{ params: params as Tensor[] } as ParamGroupSpec<H>]
      : (params as ParamGroupSpec<H>[]);
    const seen = new Set<Tensor>();
    this.paramGroups = specs.map((spec, gi) => {
      if (spec === null || typeof spec !== 'object' || !Array.isArray(spec.params)) {
        throw new ValueError(`${name}: params[${gi}] must be a Tensor or a group { params: Tensor[], ... }`);
      }
      for (const k of Object.keys(spec)) {
        if (k !== 'params' && !(k in defaults)) throw new ValueError(`${name}: group ${gi} has unknown option ${k}`);
      }
      spec.params.forEach((p, i) => {
        if (!(p instanceof Tensor)) throw new ValueError(`${name}: group ${gi} params[${i}] is not a Tensor`);
        p.live(name);
        if (!isFloat(p.dtype)) throw new ValueError(`${name}: group ${gi} params[${i}] has dtype ${p.dtype}; only float tensors can be optimized`);
        if (p.device === 'meta') throw new ValueError(`${name}: group ${gi} params[${i}] is a meta tensor`);
        if (seen.has(p)) throw new ValueError(`${name}: group ${gi} params[${i}] appears in more than one place`);
        seen.add(p);
      });
      const group = { ...defaults, ...spec, params: [...spec.params] } as ParamGroup<H>;
      this.checkGroup(group, gi);
      return group;
    });
  }

  /** Names of the zero-initialised buffers a parameter of `group` needs (besides `master`). */
  protected abstract bufferNames(group: ParamGroup<H>): string[];

  /** Throws ValueError when a group's hyper-parameters are out of range. */
  protected abstract checkGroup(group: ParamGroup<H>, index: number): void;

  /**
   * Updates one parameter in place: `param` is the tensor to write (the parameter, or its f32
   * master copy), `grad` its gradient in the same dtype; st.step already counts this step.
   * Runs under noGrad inside a tidy scope.
   */
  protected abstract update(param: Tensor, grad: Tensor, st: ParamState, group: ParamGroup<H>): void;

  /**
   * The update of a 16-bit parameter and its f32 master copy in one fused pass, where the
   * optimizer and the device have one (the same arithmetic as update on the master, then the
   * rounding back); false to take the general path: widen the gradient, update the master, round
   * it into the parameter.
   */
  protected updateMixed(_param: Tensor, _master: Tensor, _grad: Tensor, _st: ParamState, _group: ParamGroup<H>): boolean {
    return false;
  }

  /** Drops every parameter's gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad();
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    for (const [gi, group] of this.paramGroups.entries()) {
      this.checkGroup(group, gi);
      for (const p of group.params) {
        if (!p.grad) continue;
        p.live(`${this.name}.step`);
        const st = this.stateOf(p, group);
        st.step++;
        noGrad(() => tidy(() => {
          const master = st.buffers.master;
          if (master && this.updateMixed(p, master, p.grad!, st, group)) return;
          const work = master ?? p;
          const grad = p.grad!.dtype === work.dtype ? p.grad! : copyAs(p.grad!, work.dtype);
          this.update(work, grad, st, group);
          if (master) copyInto(p, master);
        }));
      }
    }
  }

  /** p's state, made at its first step; a buffer the group needs only now (momentum turned on) starts at zero. */
  private stateOf(p: Tensor, group: ParamGroup<H>): ParamState {
    let st = this.state.get(p);
    if (!st) {
      st = { step: 0, buffers: isHalf(p.dtype) ? { master: keep(copyAs(p, 'f32')) } : {} };
      this.state.set(p, st);
    }
    for (const n of this.bufferNames(group)) st.buffers[n] ??= keep(zeros(p.shape as number[], { dtype: workDType(p), device: p.device }));
    return st;
  }

  /** The optimizer's state; its tensors are the live buffers (copy them to keep a snapshot). */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((group) => {
      const { params, ...hyper } = group;
      const ids = params.map((p) => {
        const st = this.state.get(p);
        if (st) state[index] = { step: st.step, buffers: { ...st.buffers } };
        return index++;
      });
      return { ...(hyper as Record<string, HyperValue>), params: ids };
    });
    return { state, paramGroups };
  }

  /**
   * Restores a stateDict taken from an optimizer of the same kind over parameters of the same
   * shapes, in the same groups: hyper-parameters, step counts, and copies of the buffers.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = `${this.name}.loadStateDict`;
    if (!sd || typeof sd !== 'object' || !Array.isArray(sd.paramGroups) || !sd.state || typeof sd.state !== 'object') {
      throw new ValueError(`${op}: expected { state, paramGroups }`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new ValueError(`${op}: the state has ${sd.paramGroups.length} param groups, this optimizer ${this.paramGroups.length}`);
    }
    const params: [Tensor, number][] = [];
    const hypers = this.paramGroups.map((group, gi) => {
      const saved = sd.paramGroups[gi];
      if (!Array.isArray(saved.params) || saved.params.length !== group.params.length) {
        throw new ValueError(`${op}: group ${gi} has ${group.params.length} params, the state's ${saved.params?.length}`);
      }
      const hyper: Record<string, HyperValue> = {};
      for (const [k, v] of Object.entries(this.defaults)) {
        const s = saved[k];
        const ok = Array.isArray(v) ? Array.isArray(s) && s.length === v.length && s.every((x) => typeof x === 'number') : typeof s === typeof v;
        if (!ok) throw new ValueError(`${op}: group ${gi} option ${k} is ${JSON.stringify(s)}, expected a ${Array.isArray(v) ? `list of ${v.length} numbers` : typeof v}`);
        hyper[k] = Array.isArray(s) ? [...s] : s;
      }
      this.checkGroup({ ...group, ...hyper }, gi);
      for (const p of group.params) params.push([p, gi]);
      return hyper;
    });
    const loaded = new Map<Tensor, ParamState>();
    try {
      for (const [key, st] of Object.entries(sd.state)) {
        const i = Number(key);
        if (!Number.isInteger(i) || i < 0 || i >= params.length) throw new ValueError(`${op}: state for parameter ${key}, but there are ${params.length}`);
        const [p, gi] = params[i];
        if (!st || !Number.isInteger(st.step) || st.step < 0 || !st.buffers || typeof st.buffers !== 'object') {
          throw new ValueError(`${op}: state of parameter ${i} must be { step: integer >= 0, buffers }`);
        }
        const want = [...(isHalf(p.dtype) ? ['master'] : []), ...this.bufferNames({ ...this.paramGroups[gi], ...hypers[gi] })].sort();
        const have = Object.keys(st.buffers).sort();
        if (want.join() !== have.join()) throw new ValueError(`${op}: parameter ${i} has buffers [${have}], expected [${want}]`);
        const buffers: Record<string, Tensor> = {};
        loaded.set(p, { step: st.step, buffers });
        for (const n of want) {
          const b = st.buffers[n];
          if (!(b instanceof Tensor)) throw new ValueError(`${op}: buffer ${n} of parameter ${i} is not a Tensor`);
          b.live(op);
          if (b.shape.length !== p.shape.length || b.shape.some((d, k) => d !== p.shape[k])) {
            throw new ShapeError(`${op}: buffer ${n} of parameter ${i} has shape [${b.shape}], the parameter [${p.shape}]`);
          }
          if (b.dtype !== workDType(p)) throw new ValueError(`${op}: buffer ${n} of parameter ${i} is ${b.dtype}, expected ${workDType(p)}`);
          buffers[n] = keep(b.device === p.device ? copyAs(b, b.dtype) : to(b, p.device));
        }
      }
    } catch (e) {
      for (const st of loaded.values()) for (const b of Object.values(st.buffers)) b.dispose();
      throw e;
    }
    for (const st of this.state.values()) for (const b of Object.values(st.buffers)) b.dispose();
    this.state.clear();
    for (const [p, st] of loaded) this.state.set(p, st);
    this.paramGroups.forEach((group, gi) => Object.assign(group, hypers[gi]));
  }

  /** Frees every state buffer (the optimizer can go on; state restarts from zero). */
  dispose(): void {
    for (const st of this.state.values()) for (const b of Object.values(st.buffers)) b.dispose();
    this.state.clear();
  }
}

/** An optimizer stateDict as named tensors (`<prefix><index>.<buffer>`) and a JSON string of the rest. */
export function flattenStateDict(sd: OptimizerStateDict, prefix = ''): { tensors: Record<string, Tensor>; metadata: string } {
  const tensors: Record<string, Tensor> = {};
  const steps: Record<string, number> = {};
  for (const [i, st] of Object.entries(sd.state)) {
    steps[i] = st.step;
    for (const [n, t] of Object.entries(st.buffers)) tensors[`${prefix}${i}.${n}`] = t;
  }
  return { tensors, metadata: JSON.stringify({ paramGroups: sd.paramGroups, steps }) };
}

/**
 * The inverse of flattenStateDict: picks the tensors named `<prefix><index>.<buffer>` out of
 * `tensors` (others are ignored). Malformed input is a CheckpointError.
 */
export function unflattenStateDict(tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: string, prefix = ''): OptimizerStateDict {
  let meta: { paramGroups?: unknown; steps?: unknown };
  try {
    meta = JSON.parse(metadata);
  } catch (e) {
    throw new CheckpointError(`optimizer state: metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!meta || typeof meta !== 'object' || !Array.isArray(meta.paramGroups) || !meta.steps || typeof meta.steps !== 'object') {
    throw new CheckpointError('optimizer state: metadata must be { paramGroups: [...], steps: {...} }');
  }
  const state: Record<number, ParamState> = {};
  for (const [i, step] of Object.entries(meta.steps as Record<string, unknown>)) {
    if (!/^\d+$/.test(i) || !Number.isInteger(step)) throw new CheckpointError(`optimizer state: bad step entry ${i}: ${JSON.stringify(step)}`);
    state[Number(i)] = { step: step as number, buffers: {} };
  }
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of entries) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.(.+)$/.exec(name.slice(prefix.length));
    if (!m || !state[Number(m[1])]) throw new CheckpointError(`optimizer state: tensor ${name} belongs to no parameter with a step count`);
    state[Number(m[1])].buffers[m[2]] = t;
  }
  return { state, paramGroups: meta.paramGroups as OptimizerStateDict['paramGroups'] };
}
