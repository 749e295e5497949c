// cformer.ts: Emu's Causal Transformer ("C-Former", spec section 1.2): the decoder stack of a
// randomly initialised T5 with N learned queries as its input, cross-attending to the vision
// tokens, then a Linear (with bias) to the LLM width.
//
//   x = Drop(causal_tokens)                                  [B, N, d]
//   bias = T5 relative position bias, computed once (block 0's table) and shared by all blocks
//   per block: x += Drop(SelfAttn(RMS(x); causal, bias))
//              x += Drop(CrossAttn(RMS(x), vision tokens))    K, V projected from the vision width
//              x += Drop(wo(Drop(relu(wi(RMS(x))))))
//   out = projection(Drop(RMS(x)))                           [B, N, llmWidth]
//
// T5 conventions: logits = q k^T + bias with no 1/sqrt(d) scaling, softmax in f32, RMSNorm
// without mean subtraction or bias, bias-free projections inside the stack. Parameter names
// follow HF's T5 decoder (`decoder.block.{i}.layer.{0,1,2}...`), so the released checkpoint's
// `cformer.*` tensors load by name under the Emu wrapper.
import { ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import type { Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { empty, tensor, type TensorOptions } from '../tensor/ops/creation.ts';
import { add } from '../tensor/ops/elementwise.ts';
import { expand, permute, reshape, to, transpose, unsqueeze } from '../tensor/ops/views.ts';
import * as F from '../nn/functional.ts';
import { normal_ } from '../nn/init.ts';
import { Dropout, Embedding, Linear, RMSNorm } from '../nn/layers.ts';
import { Module, ModuleList, type Parameter } from '../nn/module.ts';
import type { CformerConfig } from './config.ts';

export interface CformerOptions extends TensorOptions {
  /** Draws the initial weights and the dropout masks (the default generator when absent). */
  generator?: Generator;
}

/**
 * T5's relative position bucket, unidirectional (decoder, bidirectional = false).
 * relPos = memory_position - query_position. Only the past counts: n = -min(relPos, 0), so
 * every future position (relPos > 0) lands in bucket 0. Distances below numBuckets / 2 get their
 * own bucket; larger ones are log-spaced up to maxDistance, and everything beyond is the last bucket.
 */
export function t5RelativeBucket(relPos: number, numBuckets: number, maxDistance: number): number {
  if (!Number.isInteger(relPos)) throw new ValueError(`t5RelativeBucket: relPos must be an integer, got ${String(relPos)}`);
  if (!Number.isInteger(numBuckets) || numBuckets < 2) throw new ValueError(`t5RelativeBucket: numBuckets must be an integer >= 2, got ${String(numBuckets)}`);
  const maxExact = Math.floor(numBuckets / 2);
  if (!(typeof maxDistance === 'number' && maxDistance > maxExact)) {
    throw new ValueError(`t5RelativeBucket: maxDistance must exceed numBuckets / 2 (${maxExact}), got ${String(maxDistance)}`);
  }
  const n = -Math.min(relPos, 0);
  if (n < maxExact) return n;
  const large = maxExact + Math.trunc((Math.log(n / maxExact) / Math.log(maxDistance / maxExact)) * (numBuckets - maxExact));
  return Math.min(large, numBuckets - 1);
}

const tOpts = (o: CformerOptions) => ({ dtype: o.dtype, device: o.device });

/** A bias-free Linear with weight ~ N(0, std^2) (T5's initialisation). */
function t5Linear(inF: number, outF: number, std: number, o: CformerOptions): Linear {
  const l = new Linear(inF, outF, { ...tOpts(o), bias: false, generator: o.generator });
  normal_(l.weight, 0, std, { generator: o.generator });
  return l;
}

/** T5Attention: q, k, v, o without bias; the relative bias table only where it is computed (block 0). */
export class T5Attention extends Module {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  relative_attention_bias: Embedding | null;
  readonly heads: number;
  readonly dKv: number;
  readonly dropoutP: number;
  readonly generator?: Generator;

  constructor(readonly cfg: CformerConfig, kvWidth: number, hasRelativeBias: boolean, o: CformerOptions = {}) {
    super();
    const d = cfg.dModel, inner = cfg.heads * cfg.dKv;
    this.heads = cfg.heads;
    this.dKv = cfg.dKv;
    this.dropoutP = cfg.dropout;
    this.generator = o.generator;
    this.q = this.module('q', t5Linear(d, inner, (d * cfg.dKv) ** -0.5, o));
    // The spec (and HF's _init_weights) uses d_model for k and v even when they read the vision width.
    this.k = this.module('k', t5Linear(kvWidth, inner, d ** -0.5, o));
    this.v = this.module('v', t5Linear(kvWidth, inner, d ** -0.5, o));
    this.o = this.module('o', t5Linear(inner, d, inner ** -0.5, o));
    if (hasRelativeBias) {
      const e = this.module('relative_attention_bias', new Embedding(cfg.relBuckets, cfg.heads, { ...tOpts(o), generator: o.generator }));
      normal_(e.weight, 0, d ** -0.5, { generator: o.generator });
      this.relative_attention_bias = e;
    } else {
      this.relative_attention_bias = null;
    }
  }

  /** The position bias [1, heads, lq, lk] from this layer's table (block 0 only). */
  computeBias(lq: number, lk: number): Tensor {
    const table = this.relative_attention_bias;
    if (!table) throw new ValueError('T5Attention.computeBias: this layer has no relative_attention_bias (only block 0 has one)');
    const ids: number[][] = [];
    for (let i = 0; i < lq; i++) {
      const row: number[] = [];
      for (let j = 0; j < lk; j++) row.push(t5RelativeBucket(j - i, this.cfg.relBuckets, this.cfg.relMaxDistance));
      ids.push(row);
    }
    return tidy(() => {
      const idx = tensor(ids, { dtype: 'i32', device: table.weight.device });
      return unsqueeze(permute(F.embedding(idx, table.weight), [2, 0, 1]), 0); // [lq, lk, H] -> [1, H, lq, lk]
    });
  }

  #heads(x: Tensor): Tensor {
    const [B, L] = x.shape;
    return transpose(reshape(x, [B, L, this.heads, this.dKv]), 1, 2); // [B, H, L, dKv]
  }

  /**
   * x [B, Lq, d]; kv [B, Lk, kvWidth] (x itself for self-attention). logits = q k^T + bias
   * (scale 1), the causal mask when asked, softmax in f32, dropout on the probabilities.
   */
  forward(x: Tensor, kv: Tensor, opts: { bias?: Tensor | null; causal?: boolean } = {}): Tensor {
    return tidy(() => {
      const [B, Lq] = x.shape;
      let q = this.#heads(this.q.forward(x)), k = this.#heads(this.k.forward(kv)), v = this.#heads(this.v.forward(kv));
      let bias = opts.bias ?? null;
      const low = q.dtype !== 'f32' && q.dtype !== 'f64';
      if (low) {
        // softmax in f32 (T5 upcasts the logits); the whole product is done in f32 here.
        [q, k, v] = [to(q, 'f32'), to(k, 'f32'), to(v, 'f32')];
        if (bias) bias = to(bias, 'f32');
      }
      let ctx = F.scaledDotProductAttention(q, k, v, {
        scale: 1, causal: opts.causal ?? false, bias, dropoutP: this.dropoutP, training: this.training, generator: this.generator,
      });
      if (low) ctx = to(ctx, x.dtype);
      return this.o.forward(reshape(transpose(ctx, 1, 2), [B, Lq, this.heads * this.dKv]));
    });
  }
}

/** Sub-layer 0: x + Drop(SelfAttention(layer_norm(x))), causal, with the shared position bias. */
export class T5LayerSelfAttention extends Module {
  SelfAttention: T5Attention;
  layer_norm: RMSNorm;
  dropout: Dropout;
  constructor(cfg: CformerConfig, hasRelativeBias: boolean, o: CformerOptions) {
    super();
    this.SelfAttention = this.module('SelfAttention', new T5Attention(cfg, cfg.dModel, hasRelativeBias, o));
    this.layer_norm = this.module('layer_norm', new RMSNorm(cfg.dModel, { ...tOpts(o), eps: cfg.eps }));
    this.dropout = this.module('dropout', new Dropout(cfg.dropout, { generator: o.generator }));
  }
  forward(x: Tensor, bias: Tensor): Tensor {
    return tidy(() => {
      const h = this.layer_norm.forward(x);
      return add(x, this.dropout.forward(this.SelfAttention.forward(h, h, { bias, causal: true })));
    });
  }
}

/** Sub-layer 1: x + Drop(EncDecAttention(layer_norm(x), vision tokens)); no position bias, no mask. */
export class T5LayerCrossAttention extends Module {
  EncDecAttention: T5Attention;
  layer_norm: RMSNorm;
  dropout: Dropout;
  constructor(cfg: CformerConfig, visionWidth: number, o: CformerOptions) {
    super();
    this.EncDecAttention = this.module('EncDecAttention', new T5Attention(cfg, visionWidth, false, o));
    this.layer_norm = this.module('layer_norm', new RMSNorm(cfg.dModel, { ...tOpts(o), eps: cfg.eps }));
    this.dropout = this.module('dropout', new Dropout(cfg.dropout, { generator: o.generator }));
  }
  forward(x: Tensor, vision: Tensor): Tensor {
    return tidy(() => add(x, this.dropout.forward(this.EncDecAttention.forward(this.layer_norm.forward(x), vision))));
  }
}

/** wo(Drop(relu(wi(x)))), both bias-free. */
export class T5DenseReluDense extends Module {
  wi: Linear;
  wo: Linear;
  dropout: Dropout;
  constructor(cfg: CformerConfig, o: CformerOptions) {
    super();
    this.wi = this.module('wi', t5Linear(cfg.dModel, cfg.dFF, cfg.dModel ** -0.5, o));
    this.wo = this.module('wo', t5Linear(cfg.dFF, cfg.dModel, cfg.dFF ** -0.5, o));
    this.dropout = this.module('dropout', new Dropout(cfg.dropout, { generator: o.generator }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.wo.forward(this.dropout.forward(this.wi.forward(x, { activation: 'relu' }))));
  }
}

/** Sub-layer 2: x + Drop(DenseReluDense(layer_norm(x))). */
export class T5LayerFF extends Module {
  DenseReluDense: T5DenseReluDense;
  layer_norm: RMSNorm;
  dropout: Dropout;
  constructor(cfg: CformerConfig, o: CformerOptions) {
    super();
    this.DenseReluDense = this.module('DenseReluDense', new T5DenseReluDense(cfg, o));
    this.layer_norm = this.module('layer_norm', new RMSNorm(cfg.dModel, { ...tOpts(o), eps: cfg.eps }));
    this.dropout = this.module('dropout', new Dropout(cfg.dropout, { generator: o.generator }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => add(x, this.dropout.forward(this.DenseReluDense.forward(this.layer_norm.forward(x)))));
  }
}

/** One decoder block: `layer.0` self-attention, `layer.1` cross-attention, `layer.2` feed-forward. */
export class T5Block extends Module {
  layer: ModuleList;
  readonly selfAttn: T5LayerSelfAttention;
  readonly crossAttn: T5LayerCrossAttention;
  readonly ff: T5LayerFF;
  constructor(cfg: CformerConfig, visionWidth: number, hasRelativeBias: boolean, o: CformerOptions) {
    super();
    this.selfAttn = new T5LayerSelfAttention(cfg, hasRelativeBias, o);
    this.crossAttn = new T5LayerCrossAttention(cfg, visionWidth, o);
    this.ff = new T5LayerFF(cfg, o);
    this.layer = this.module('layer', new ModuleList([this.selfAttn, this.crossAttn, this.ff]));
  }
  /** x [B, N, d], vision [B, T, visionWidth], bias [1, H, N, N] (the shared position bias). */
  forward(x: Tensor, vision: Tensor, bias: Tensor): Tensor {
    return tidy(() => this.ff.forward(this.crossAttn.forward(this.selfAttn.forward(x, bias), vision)));
  }
}

/** The T5 decoder stack without token embeddings: blocks, final_layer_norm, dropouts. */
export class T5DecoderStack extends Module {
  block: ModuleList<T5Block>;
  final_layer_norm: RMSNorm;
  dropout: Dropout;
  constructor(cfg: CformerConfig, visionWidth: number, o: CformerOptions) {
    super();
    const blocks: T5Block[] = [];
    for (let i = 0; i < cfg.layers; i++) blocks.push(new T5Block(cfg, visionWidth, i === 0, o));
    this.block = this.module('block', new ModuleList(blocks));
    this.final_layer_norm = this.module('final_layer_norm', new RMSNorm(cfg.dModel, { ...tOpts(o), eps: cfg.eps }));
    this.dropout = this.module('dropout', new Dropout(cfg.dropout, { generator: o.generator }));
  }
  /** The position bias [1, H, n, n], from block 0's table; every block uses this one tensor. */
  positionBias(n: number): Tensor {
    return this.block.get(0).selfAttn.SelfAttention.computeBias(n, n);
  }
  /** inputs [B, N, d] (the query embeddings), vision [B, T, visionWidth] -> [B, N, d] after final norm and dropout. */
  forward(inputs: Tensor, vision: Tensor): Tensor {
    return tidy(() => {
      const bias = this.positionBias(inputs.shape[1]);
      let h = this.dropout.forward(inputs);
      for (const b of this.block) h = b.forward(h, vision, bias);
      return this.dropout.forward(this.final_layer_norm.forward(h));
    });
  }
}

/** Emu's Causal Transformer: N learned queries -> T5 decoder over the vision tokens -> Linear to the LLM width. */
export class CausalTransformer extends Module {
  causal_tokens: Parameter;
  decoder: T5DecoderStack;
  projection: Linear;

  constructor(readonly cfg: CformerConfig, readonly visionWidth: number, readonly llmWidth: number, opts: CformerOptions = {}) {
    super();
    for (const [k, v] of Object.entries({ visionWidth, llmWidth, ...cfg })) {
      if (k === 'dropout' || k === 'eps') continue;
      if (!Number.isInteger(v) || (v as number) <= 0) throw new ValueError(`CausalTransformer: ${k} must be a positive integer, got ${String(v)}`);
    }
    if (!(cfg.dropout >= 0 && cfg.dropout <= 1)) throw new ValueError(`CausalTransformer: dropout must be in [0, 1], got ${String(cfg.dropout)}`);
    this.causal_tokens = this.param('causal_tokens', empty([1, cfg.numQueries, cfg.dModel], tOpts(opts)));
    normal_(this.causal_tokens, 0, 0.02, { generator: opts.generator });
    this.decoder = this.module('decoder', new T5DecoderStack(cfg, visionWidth, opts));
    this.projection = this.module('projection', new Linear(cfg.dModel, llmWidth, { ...tOpts(opts), generator: opts.generator }));
  }

  /** visionTokens [B, T, visionWidth] -> [B, N, llmWidth]; output k depends on the image and queries <= k only. */
  forward(visionTokens: Tensor): Tensor {
    if (!(visionTokens instanceof Tensor) || visionTokens.ndim !== 3 || visionTokens.shape[2] !== this.visionWidth) {
      const got = visionTokens instanceof Tensor ? `[${visionTokens.shape.join(',')}]` : String(visionTokens);
      throw new ValueError(`CausalTransformer.forward: expected vision tokens [B, T, ${this.visionWidth}], got ${got}`);
    }
    return tidy(() => {
      const B = visionTokens.shape[0];
      const queries = expand(this.causal_tokens, [B, this.cfg.numQueries, this.cfg.dModel]);
      return this.projection.forward(this.decoder.forward(queries, visionTokens));
    });
  }
}
