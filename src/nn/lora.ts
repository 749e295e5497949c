// lora.ts: LoRA (Hu et al., 2021) for Linear layers: y = x W^T + b + scale * B A dropout(x),
// with A [r, in] (kaiming-uniform) and B [out, r] (zeros, so a fresh LoRA model computes exactly
// what the base model does) and scale = alpha / r.
//
// applyLoRA swaps matching Linear submodules for LoRALinear and freezes every other parameter,
// so an optimizer over model.parameters() trains only the LoRA weights. A LoRALinear keeps the
// wrapped layer's weight and bias under the same names ('q.weight'), so base checkpoints still
// load (with { strict: false }, or after saving the LoRA weights 'q.loraA', 'q.loraB' too).
import { ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import type { Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { empty, zeros } from '../tensor/ops/creation.ts';
import { add, mul, sub } from '../tensor/ops/elementwise.ts';
import { matmul } from '../tensor/ops/linalg.ts';
import { copyInto } from '../tensor/ops/views.ts';
import { noGrad } from '../autograd/grad_mode.ts';
import * as F from './functional.ts';
import { kaimingUniform_ } from './init.ts';
import { Dropout, Linear } from './layers.ts';
import { Module, type Layer, type Parameter } from './module.ts';

export interface LoRAOptions {
  rank: number;
  /** scale = alpha / rank; default alpha = rank (scale 1). */
  alpha?: number;
  /** Dropout on the LoRA branch's input (default 0). */
  dropout?: number;
  generator?: Generator;
}

export class LoRALinear extends Module implements Layer {
  weight: Parameter;
  bias: Parameter | null;
  loraA: Parameter;
  loraB: Parameter;
  dropout: Dropout;
  readonly rank: number;
  readonly scale: number;
  /** Whether scale * B A is currently folded into weight (see merge()). */
  merged = false;

  constructor(base: Linear, opts: LoRAOptions) {
    super();
    if (!(base instanceof Linear)) throw new ValueError('LoRALinear: base must be a Linear');
    const r = opts.rank, alpha = opts.alpha ?? opts.rank;
    if (!Number.isInteger(r) || r <= 0) throw new ValueError(`LoRALinear: rank must be a positive integer, got ${String(r)}`);
    if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new ValueError(`LoRALinear: alpha must be a finite number, got ${String(alpha)}`);
    this.rank = r;
    this.scale = alpha / r;
    const w = base.weight, t = { dtype: w.dtype, device: w.device };
    this.weight = this.param('weight', w, w.requiresGrad);
    this.bias = base.bias ? this.param('bias', base.bias, base.bias.requiresGrad) : null;
    this.loraA = this.param('loraA', empty([r, w.shape[1]], t));
    kaimingUniform_(this.loraA, { a: Math.sqrt(5), generator: opts.generator });
    this.loraB = this.param('loraB', zeros([w.shape[0], r], t));
    this.dropout = this.module('dropout', new Dropout(opts.dropout ?? 0, { generator: opts.generator }));
  }

  forward(x: Tensor): Tensor {
    if (this.merged) return F.linear(x, this.weight, this.bias);
    return tidy(() => {
      const lora = F.linear(F.linear(this.dropout.forward(x), this.loraA), this.loraB);
      return add(F.linear(x, this.weight, this.bias), mul(lora, this.scale));
    });
  }

  /** weight += scale * B A: forward then costs one matmul and gives the same output. */
  merge(): this {
    if (this.merged) throw new ValueError('LoRALinear.merge: already merged');
    this.#fold(add);
    this.merged = true;
    return this;
  }

  /** Undoes merge() (weight -= scale * B A). */
  unmerge(): this {
    if (!this.merged) throw new ValueError('LoRALinear.unmerge: not merged');
    this.#fold(sub);
    this.merged = false;
    return this;
  }

  #fold(op: (a: Tensor, b: Tensor) => Tensor): void {
    noGrad(() => tidy(() => {
      copyInto(this.weight, op(this.weight, mul(matmul(this.loraB, this.loraA), this.scale)));
    }));
  }
}

export interface ApplyLoRAOptions extends LoRAOptions {
  /** Which Linear submodules get LoRA: a RegExp searched in the dotted name, or a string naming it or its last parts ('q' matches 'layers.0.attn.q'). */
  targets: RegExp | string | (RegExp | string)[];
}

/**
 * Replaces every Linear submodule of `model` whose dotted name matches `targets` with a
 * LoRALinear and freezes all other parameters. Returns the names replaced; throws if none matched.
 */
export function applyLoRA(model: Module, opts: ApplyLoRAOptions): string[] {
  if (!(model instanceof Module)) throw new ValueError('applyLoRA: model must be a Module');
  const patterns = Array.isArray(opts.targets) ? opts.targets : [opts.targets];
  if (patterns.length === 0 || patterns.some((p) => typeof p !== 'string' && !(p instanceof RegExp))) {
    throw new ValueError('applyLoRA: targets must be a RegExp, a string, or a non-empty array of them');
  }
  const matches = (name: string) =>
    patterns.some((p) => (typeof p === 'string' ? name === p || name.endsWith(`.${p}`) : name.search(p) >= 0));
  const all = new Map(model.namedModules());
  const chosen = [...all].filter(([name, m]) => name !== '' && m instanceof Linear && matches(name)).map(([name]) => name);
  if (chosen.length === 0) throw new ValueError(`applyLoRA: no Linear submodule matches ${patterns.map(String).join(', ')}`);
  model.requiresGrad_(false);
  for (const name of chosen) {
    const cut = name.lastIndexOf('.');
    const parent = all.get(cut < 0 ? '' : name.slice(0, cut))!;
    parent.module(name.slice(cut + 1), new LoRALinear(all.get(name) as Linear, opts));
  }
  return chosen;
}
