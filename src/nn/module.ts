// module.ts: Module, the base class of every layer and model (torch.nn.Module's contract), and
// the containers ModuleList, ModuleDict and Sequential.
//
// Registration is explicit: a subclass writes `this.weight = this.param('weight', t)` and
// `this.block = this.module('block', new Linear(...))`. The registry gives the dotted names
// ('layers.0.attn.q.weight') that stateDict, loadStateDict and the optimizers use. A parameter
// is a plain leaf Tensor with requiresGrad (made by `parameter(t)`).
//
// Registered tensors belong to the module: they are taken out of any tidy scope, so a model
// built inside tidy() survives it. Registering a name again replaces the entry and rebinds
// every field of the module that held the old value; to() and applyLoRA work this way. So
// to() gives a module new parameter tensors (the old ones are disposed): build the optimizer
// after to().
import { DTYPES, isFloat, type DType } from '../tensor/dtype.ts';
import type { Device } from '../tensor/device.ts';
import { CheckpointError, ValueError } from '../tensor/errors.ts';
import { shapeStr } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { checkTensor } from '../tensor/ops/dispatch.ts';
import { copyInto, to } from '../tensor/ops/views.ts';
import { keep, tidy } from '../tensor/memory.ts';
import { noGrad } from '../autograd/grad_mode.ts';

/** A trainable tensor: a leaf that requires grad. */
export type Parameter = Tensor;

/** t as a parameter: a leaf (t itself, or a detached view when t was computed) requiring grad. */
export function parameter(t: Tensor, requiresGrad = true): Parameter {
  checkTensor(t, 'parameter');
  if (requiresGrad && !isFloat(t.dtype)) throw new ValueError(`parameter: only float tensors can be trained, got ${t.dtype}`);
  const p = t.isLeaf ? t : t.detach();
  p.requiresGrad = requiresGrad;
  return p;
}

/** A module that maps one tensor to one tensor (what Sequential chains). */
export interface Layer {
  forward(x: Tensor): Tensor;
}

export type StateDict = Record<string, Tensor>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export class Module {
  /** Set by train() / eval(); layers such as Dropout read it. */
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #nonPersistent = new Set<string>();
  readonly #modules = new Map<string, Module>();

  #checkName(name: string, kind: string, own: Map<string, unknown>): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) {
      throw new ValueError(`${kind}: name must be a non-empty string without '.', got ${String(name)}`);
    }
    for (const m of [this.#params, this.#buffers, this.#modules] as Map<string, unknown>[]) {
      if (m !== own && m.has(name)) throw new ValueError(`${kind}: '${name}' is already registered as another kind of member`);
    }
  }

  /** Points every field of this module that held `old` at `now`. */
  #rebind(old: unknown, now: unknown): void {
    if (old === undefined) return;
    const self = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(self)) if (self[key] === old) self[key] = now;
  }

  /** Registers (or replaces) parameter `name`; returns it as a parameter. */
  param(name: string, t: Tensor, requiresGrad = true): Parameter {
    this.#checkName(name, 'param', this.#params);
    const p = keep(parameter(t, requiresGrad));
    this.#rebind(this.#params.get(name), p);
    this.#params.set(name, p);
    return p;
  }

  /** Registers (or replaces) buffer `name`: state that is saved but not trained (persistent: in stateDict). */
  buffer(name: string, t: Tensor, opts: { persistent?: boolean } = {}): Tensor {
    this.#checkName(name, 'buffer', this.#buffers);
    keep(checkTensor(t, 'buffer'));
    this.#rebind(this.#buffers.get(name), t);
    this.#buffers.set(name, t);
    if (opts.persistent === false) this.#nonPersistent.add(name);
    else this.#nonPersistent.delete(name);
    return t;
  }

  /** Registers (or replaces) submodule `name`; returns it. */
  module<M extends Module>(name: string, m: M): M {
    this.#checkName(name, 'module', this.#modules);
    if (!(m instanceof Module)) throw new ValueError(`module: '${name}' must be a Module`);
    this.#rebind(this.#modules.get(name), m);
    this.#modules.set(name, m);
    return m;
  }

  /** The direct submodule `name`, if any. */
  getModule(name: string): Module | undefined {
    return this.#modules.get(name);
  }

  *namedChildren(): Generator<[string, Module]> {
    yield* this.#modules;
  }
  children(): Module[] {
    return [...this.#modules.values()];
  }

  /** This module ('') and every submodule below it, each once, with dotted names. */
  *namedModules(prefix = '', seen = new Set<Module>()): Generator<[string, Module]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [n, m] of this.#modules) yield* m.namedModules(prefix ? `${prefix}.${n}` : n, seen);
  }
  modules(): Module[] {
    return [...this.namedModules()].map(([, m]) => m);
  }

  /** Every parameter with its dotted name; a tensor shared by two modules (tied weights) appears once. */
  namedParameters(): [string, Parameter][] {
    return this.#collect((m) => m.#params);
  }
  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }
  namedBuffers(): [string, Tensor][] {
    return this.#collect((m) => m.#buffers);
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  #collect(of: (m: Module) => Map<string, Tensor>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, t] of of(m)) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([prefix ? `${prefix}.${n}` : n, t]);
      }
    }
    return out;
  }

  /** Elements in all parameters (each shared tensor once); only trainable ones with { trainable: true }. */
  numParameters(opts: { trainable?: boolean } = {}): number {
    return this.parameters().filter((p) => !opts.trainable || p.requiresGrad).reduce((n, p) => n + p.numel, 0);
  }

  /** Sets the training flag of this module and every submodule. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new ValueError('train: mode must be a boolean');
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Calls fn on every submodule (children before parents, as PyTorch) and on this module. */
  apply(fn: (m: Module) => void): this {
    for (const m of this.children()) m.apply(fn);
    fn(this);
    return this;
  }

  /** Sets requiresGrad on every parameter (freezing with false). */
  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad = on;
    return this;
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /**
   * Moves every parameter and buffer to a device, or casts the float ones to a dtype (integer
   * and bool buffers keep theirs, as in PyTorch). Changed tensors are replaced by new ones
   * (same requiresGrad, no grad) and the old ones disposed; shared tensors stay shared.
   */
  to(target: DType | Device): this {
    const isDType = (DTYPES as readonly string[]).includes(target);
    if (isDType && (target === 'i32' || target === 'bool')) throw new ValueError(`Module.to: can only cast to a float dtype, got ${target}`);
    const moved = new Map<Tensor, Tensor>();
    const convert = (t: Tensor, isParam: boolean): Tensor => {
      const done = moved.get(t);
      if (done) return done;
      if ((isDType && (!isFloat(t.dtype) || t.dtype === target)) || (!isDType && t.device === target)) return t;
      const c = noGrad(() => to(t, target));
      const out = isParam ? parameter(c, t.requiresGrad) : c;
      moved.set(t, out);
      return out;
    };
    for (const m of this.modules()) {
      for (const [n, p] of m.#params) {
        const c = convert(p, true);
        if (c !== p) m.param(n, c, p.requiresGrad);
      }
      for (const [n, b] of m.#buffers) {
        const c = convert(b, false);
        if (c !== b) m.buffer(n, c, { persistent: !m.#nonPersistent.has(n) });
      }
    }
    for (const old of moved.keys()) {
      old.zeroGrad();
      old.dispose();
    }
    return this;
  }

  /** Parameters and persistent buffers by dotted name (the live tensors, not copies; tied tensors under each name). */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [prefix, m] of this.namedModules()) {
      const at = (n: string) => (prefix ? `${prefix}.${n}` : n);
      for (const [n, p] of m.#params) out[at(n)] = p;
      for (const [n, b] of m.#buffers) if (!m.#nonPersistent.has(n)) out[at(n)] = b;
    }
    return out;
  }

  /**
   * Copies the values of `dict` into this module's parameters and buffers (casting dtypes).
   * Nothing is copied unless everything fits: a shape mismatch always throws, and with strict
   * (the default) so do missing and unexpected keys; the CheckpointError lists every problem.
   */
  loadStateDict(dict: StateDict | Map<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const given = dict instanceof Map ? dict : new Map(Object.entries(dict ?? {}));
    const own = this.stateDict();
    const missingKeys = Object.keys(own).filter((k) => !given.has(k));
    const unexpectedKeys = [...given.keys()].filter((k) => !(k in own));
    const mismatched: string[] = [];
    for (const [k, t] of given) {
      if (!(k in own)) continue;
      if (!(t instanceof Tensor)) mismatched.push(`${k}: not a Tensor`);
      else if (shapeStr(t.shape) !== shapeStr(own[k].shape)) mismatched.push(`${k}: checkpoint ${shapeStr(t.shape)}, model ${shapeStr(own[k].shape)}`);
    }
    const problems: string[] = [];
    if (strict && missingKeys.length) problems.push(`missing keys: ${missingKeys.join(', ')}`);
    if (strict && unexpectedKeys.length) problems.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
    if (mismatched.length) problems.push(`shape mismatches: ${mismatched.join('; ')}`);
    if (problems.length) throw new CheckpointError(`loadStateDict: ${problems.join('; ')}`);
    noGrad(() => tidy(() => {
      // Like PyTorch's copy_, a checkpoint loaded on the CPU fills a model on any device.
      for (const [k, t] of given) if (k in own) copyInto(own[k], t.device === own[k].device ? t : to(t, own[k].device));
    }));
    return { missingKeys, unexpectedKeys };
  }
}

/** An indexed list of submodules, registered as '0', '1', ... */
export class ModuleList<M extends Module = Module> extends Module {
  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.push(m);
  }
  get length(): number {
    return this.children().length;
  }
  push(m: M): this {
    this.module(String(this.length), m);
    return this;
  }
  get(i: number): M {
    const m = this.getModule(String(i < 0 ? i + this.length : i));
    if (!m) throw new ValueError(`ModuleList: index ${i} is out of range for ${this.length} modules`);
    return m as M;
  }
  [Symbol.iterator](): Iterator<M> {
    return (this.children() as M[])[Symbol.iterator]();
  }
}

/** Submodules by name. */
export class ModuleDict<M extends Module = Module> extends Module {
  constructor(modules: Record<string, M> = {}) {
    super();
    for (const [k, m] of Object.entries(modules)) this.set(k, m);
  }
  set(key: string, m: M): this {
    this.module(key, m);
    return this;
  }
  get(key: string): M {
    const m = this.getModule(key);
    if (!m) throw new ValueError(`ModuleDict: no module '${key}'`);
    return m as M;
  }
  has(key: string): boolean {
    return this.getModule(key) !== undefined;
  }
  keys(): string[] {
    return [...this.namedChildren()].map(([k]) => k);
  }
}

/** Layers applied one after another. */
export class Sequential extends ModuleList<Module & Layer> {
  constructor(...layers: (Module & Layer)[]) {
    super(layers);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const layer of this) h = layer.forward(h);
      return h;
    });
  }
}
