// layers.ts: the standard layers as Modules over functional.ts: Linear, Embedding, LayerNorm,
// RMSNorm, GroupNorm, Conv2d, Dropout, and the activations.
//
// Parameters start as in PyTorch (kaiming-uniform with a = sqrt(5) for Linear and Conv2d
// weights, U(-1/sqrt(fanIn), 1/sqrt(fanIn)) biases, N(0, 1) embeddings, norms at 1 and 0),
// drawn from the default generator unless { generator } is given. { dtype, device } place them
// (device 'meta' builds a model of any size without memory, e.g. to count parameters).
import type { Generator } from '../tensor/random.ts';
import { ValueError } from '../tensor/errors.ts';
import { Tensor } from '../tensor/tensor.ts';
import { empty, ones, zeros, type TensorOptions } from '../tensor/ops/creation.ts';
import { sigmoid, tanh, type GeluOptions } from '../tensor/ops/elementwise.ts';
import { narrow } from '../tensor/ops/views.ts';
import * as F from './functional.ts';
import { kaimingUniform_, normal_, uniform_, zeros_ } from './init.ts';
import { Module, type Layer, type Parameter } from './module.ts';

export interface LayerOptions extends TensorOptions {
  generator?: Generator;
}

function checkCount(n: unknown, layer: string, arg: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0) throw new ValueError(`${layer}: ${arg} must be a positive integer, got ${String(n)}`);
  return n;
}

/** PyTorch's Linear/Conv2d start: kaiming-uniform(a = sqrt(5)) weight, U(+-1/sqrt(fanIn)) bias. */
function resetAffine(weight: Tensor, bias: Tensor | null, fanIn: number, generator?: Generator): void {
  kaimingUniform_(weight, { a: Math.sqrt(5), generator });
  if (bias) uniform_(bias, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn), { generator });
}

/** y = x W^T + b; weight [out, in]. forward's options fuse an activation and a residual (F.linear). */
export class Linear extends Module implements Layer {
  weight: Parameter;
  bias: Parameter | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LayerOptions & { bias?: boolean } = {}) {
    super();
    checkCount(inFeatures, 'Linear', 'inFeatures');
    checkCount(outFeatures, 'Linear', 'outFeatures');
    const t = { dtype: opts.dtype, device: opts.device };
    this.weight = this.param('weight', empty([outFeatures, inFeatures], t));
    this.bias = opts.bias === false ? null : this.param('bias', empty([outFeatures], t));
    resetAffine(this.weight, this.bias, inFeatures, opts.generator);
  }
  forward(x: Tensor, opts?: F.LinearOptions): Tensor {
    return F.linear(x, this.weight, this.bias, opts);
  }
}

/** A lookup table of num vectors of size dim; the paddingIdx row starts at zero and gets no gradient. */
export class Embedding extends Module implements Layer {
  weight: Parameter;
  readonly paddingIdx: number | null;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: LayerOptions & { paddingIdx?: number | null } = {}) {
    super();
    checkCount(numEmbeddings, 'Embedding', 'numEmbeddings');
    checkCount(embeddingDim, 'Embedding', 'embeddingDim');
    const pad = opts.paddingIdx ?? null;
    if (pad !== null && (!Number.isInteger(pad) || pad < -numEmbeddings || pad >= numEmbeddings)) {
      throw new ValueError(`Embedding: paddingIdx ${pad} is out of range for ${numEmbeddings} rows`);
    }
    this.paddingIdx = pad === null ? null : pad < 0 ? pad + numEmbeddings : pad;
    this.weight = this.param('weight', empty([numEmbeddings, embeddingDim], { dtype: opts.dtype, device: opts.device }));
    normal_(this.weight, 0, 1, { generator: opts.generator });
    if (this.paddingIdx !== null) {
      const w = this.weight.detach(), row = narrow(w, 0, this.paddingIdx, 1);
      zeros_(row);
      row.dispose();
      w.dispose();
    }
  }
  forward(ids: Tensor): Tensor {
    return F.embedding(ids, this.weight, { paddingIdx: this.paddingIdx });
  }
}

export interface NormOptions extends TensorOptions {
  eps?: number;
  /** Learnable weight (and bias, for LayerNorm and GroupNorm); default true. */
  affine?: boolean;
}

export class LayerNorm extends Module implements Layer {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(normalizedShape: number | number[], opts: NormOptions & { bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.normalizedShape.forEach((n, i) => checkCount(n, 'LayerNorm', `normalizedShape[${i}]`));
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true, t = { dtype: opts.dtype, device: opts.device };
    this.weight = affine ? this.param('weight', ones(this.normalizedShape, t)) : null;
    this.bias = affine && opts.bias !== false ? this.param('bias', zeros(this.normalizedShape, t)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module implements Layer {
  weight: Parameter | null;
  readonly eps: number;
  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    checkCount(dim, 'RMSNorm', 'dim');
    this.eps = opts.eps ?? 1e-6;
    this.weight = opts.affine ?? true ? this.param('weight', ones([dim], { dtype: opts.dtype, device: opts.device })) : null;
  }
  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.weight, this.eps);
  }
}

export class GroupNorm extends Module implements Layer {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly eps: number;
  constructor(readonly numGroups: number, readonly numChannels: number, opts: NormOptions = {}) {
    super();
    checkCount(numGroups, 'GroupNorm', 'numGroups');
    checkCount(numChannels, 'GroupNorm', 'numChannels');
    if (numChannels % numGroups !== 0) throw new ValueError(`GroupNorm: numGroups ${numGroups} must divide numChannels ${numChannels}`);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true, t = { dtype: opts.dtype, device: opts.device };
    this.weight = affine ? this.param('weight', ones([numChannels], t)) : null;
    this.bias = affine ? this.param('bias', zeros([numChannels], t)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export interface Conv2dLayerOptions extends LayerOptions, F.Conv2dOptions {
  bias?: boolean;
}

/** 2-d convolution; weight [out, in / groups, kh, kw]. */
export class Conv2d extends Module implements Layer {
  weight: Parameter;
  bias: Parameter | null;
  readonly options: F.Conv2dOptions;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number], opts: Conv2dLayerOptions = {}) {
    super();
    checkCount(inChannels, 'Conv2d', 'inChannels');
    checkCount(outChannels, 'Conv2d', 'outChannels');
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    checkCount(kh, 'Conv2d', 'kernelSize');
    checkCount(kw, 'Conv2d', 'kernelSize');
    const groups = opts.groups ?? 1;
    if (!Number.isInteger(groups) || groups <= 0 || inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new ValueError(`Conv2d: groups ${groups} must divide inChannels ${inChannels} and outChannels ${outChannels}`);
    }
    this.options = { stride: opts.stride, padding: opts.padding, dilation: opts.dilation, groups };
    const t = { dtype: opts.dtype, device: opts.device };
    this.weight = this.param('weight', empty([outChannels, inChannels / groups, kh, kw], t));
    this.bias = opts.bias === false ? null : this.param('bias', empty([outChannels], t));
    resetAffine(this.weight, this.bias, (inChannels / groups) * kh * kw, opts.generator);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.options);
  }
}

/** Dropout while training (this.training), the identity in eval mode. */
export class Dropout extends Module implements Layer {
  constructor(readonly p = 0.5, readonly opts: F.DropoutOptions = {}) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ValueError(`Dropout: p must be in [0, 1], got ${String(p)}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, this.opts);
  }
}

export class ReLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export class GELU extends Module implements Layer {
  constructor(readonly opts: GeluOptions = {}) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, this.opts);
  }
}

export class SiLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}

export class Tanh extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}

export class Sigmoid extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}
