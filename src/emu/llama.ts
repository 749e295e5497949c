// llama.ts: the LLaMA decoder of Emu (HF `LlamaForCausalLM` subclass `LlamaForReg`), spec 1.3-1.6.
//
//   LlamaModel   embed_tokens [V, H] (padding row = [PAD]), `layers` of pre-norm blocks
//                (input_layernorm RMSNorm -> self_attn q/k/v/o (no bias, RoPE rotate-half, causal +
//                padding mask) -> residual; post_attention_layernorm -> SwiGLU mlp gate/up/down ->
//                residual), final `norm`.
//   LlamaForReg  `model` + untied `lm_head` (H -> V, no bias) + `stu_regress_head` (H -> H, no bias),
//                both applied to the final-normed hidden state.
// State-dict names follow HF (model.layers.0.self_attn.q_proj.weight, ..., lm_head.weight,
// stu_regress_head.weight); the Emu wrapper registers LlamaForReg as `decoder.lm`.
//
// KVCache holds, per layer, the RoPE-rotated keys and the values [B, heads, Lcached, D] and the
// accumulated padding mask; forward with { cache } appends to it and offsets the positions by
// its length. The cache is for inference (use it under noGrad; the generate.ts loops do); its
// tensors live outside tidy scopes until cache.dispose().
import type { LlmConfig } from './config.ts';
import { vocabSize as fullVocab } from './config.ts';
import { ShapeError, ValueError } from '../tensor/errors.ts';
import { keep, tidy } from '../tensor/memory.ts';
import type { Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import type { DType } from '../tensor/dtype.ts';
import type { Device } from '../tensor/device.ts';
import { fromValues, ones } from '../tensor/ops/creation.ts';
import { add, logicalNot, rope } from '../tensor/ops/elementwise.ts';
import { indexSelect } from '../tensor/ops/linalg.ts';
import { cat, contiguous, expand, narrow, reshape, to, transpose } from '../tensor/ops/views.ts';
import { noGrad } from '../autograd/grad_mode.ts';
import * as F from '../nn/functional.ts';
import { normal_, zeros_ } from '../nn/init.ts';
import { Embedding, Linear, RMSNorm } from '../nn/layers.ts';
import { Module, ModuleList } from '../nn/module.ts';

export interface LlamaOptions {
  /** Rows of embed_tokens / lm_head; default vocabSize(cfg) (base + 4 specials). */
  vocabSize?: number;
  /** The [PAD] id: embedding padding_idx (zero row, no gradient); default cfg.baseVocab. null for none. */
  padId?: number | null;
  /** Std of the HF LLaMA init N(0, std) for every Linear and the embedding (default 0.02). */
  initStd?: number;
  generator?: Generator;
  dtype?: DType;
  device?: Device;
}

/** Per-layer key/value cache for incremental decoding. */
export class KVCache {
  keys: (Tensor | null)[];
  values: (Tensor | null)[];
  /** bool [B, length], true = real token; null while every cached token is real. */
  mask: Tensor | null = null;
  /** Number of cached positions (also the position offset of the next forward). */
  length = 0;
  /** Batch size of the cached tensors (0 while empty). */
  batch = 0;

  constructor(readonly numLayers: number) {
    this.keys = Array(numLayers).fill(null);
    this.values = Array(numLayers).fill(null);
  }

  /** Appends layer i's new k, v [B, h, L, D]; returns the full cached k, v. */
  append(i: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const oldK = this.keys[i], oldV = this.values[i];
    const nk = keep(oldK ? cat([oldK, k], 2) : contiguous(k));
    const nv = keep(oldV ? cat([oldV, v], 2) : contiguous(v));
    oldK?.dispose();
    oldV?.dispose();
    this.keys[i] = nk;
    this.values[i] = nv;
    return [nk, nv];
  }

  /** Keeps batch rows `rows` (in that order, repeats allowed): beam reordering and expansion. */
  selectRows(rows: number[]): void {
    tidy(() => {
      const idx = fromValues(rows, [rows.length], 'i32', this.keys[0]?.device ?? 'cpu');
      const pick = (t: Tensor | null): Tensor | null => {
        if (!t) return null;
        const r = keep(indexSelect(t, 0, idx));
        t.dispose();
        return r;
      };
      this.keys = this.keys.map(pick);
      this.values = this.values.map(pick);
      this.mask = pick(this.mask);
    });
    this.batch = rows.length;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values, this.mask]) t?.dispose();
    this.keys.fill(null);
    this.values.fill(null);
    this.mask = null;
    this.length = 0;
    this.batch = 0;
  }
}

/**
 * cos and sin tables [B, 1, L, D] (HF layout: freqs repeated twice along D) for position ids
 * `pos` (B rows of L integers), base `base`, computed in f64 and stored as dtype.
 */
export function ropeTables(pos: number[][], D: number, base: number, dtype: DType, device: Device): [Tensor, Tensor] {
  const B = pos.length, L = pos[0]?.length ?? 0, h = D / 2;
  const c = new Float64Array(B * L * D), s = new Float64Array(B * L * D);
  const inv = Array.from({ length: h }, (_, i) => 1 / base ** ((2 * i) / D));
  for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) {
    const p = pos[b][l], at = (b * L + l) * D;
    for (let i = 0; i < h; i++) {
      const a = Math.fround(Math.fround(p) * Math.fround(inv[i]));  // f32 product, as HF
      c[at + i] = c[at + h + i] = Math.cos(a);
      s[at + i] = s[at + h + i] = Math.sin(a);
    }
  }
  const d = dtype === 'f64' ? 'f64' : 'f32';
  const mk = (v: Float64Array) => {
    const t = fromValues(v, [B, 1, L, D], d, device === 'meta' ? 'cpu' : device);
    return d === dtype ? t : to(t, dtype);
  };
  return [mk(c), mk(s)];
}

function initLinear(l: Linear, std: number, generator?: Generator): Linear {
  normal_(l.weight, 0, std, { generator });
  return l;
}

export class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  readonly heads: number;
  readonly headDim: number;
  constructor(cfg: LlmConfig, opts: LlamaOptions = {}) {
    super();
    const H = cfg.hidden, t = { dtype: opts.dtype, device: opts.device, bias: false, generator: opts.generator };
    if (H % cfg.heads !== 0 || (H / cfg.heads) % 2 !== 0) throw new ValueError(`LlamaAttention: hidden ${H} must split into ${cfg.heads} heads of even width`);
    this.heads = cfg.heads;
    this.headDim = H / cfg.heads;
    const std = opts.initStd ?? 0.02;
    this.q_proj = this.module('q_proj', initLinear(new Linear(H, H, t), std, opts.generator));
    this.k_proj = this.module('k_proj', initLinear(new Linear(H, H, t), std, opts.generator));
    this.v_proj = this.module('v_proj', initLinear(new Linear(H, H, t), std, opts.generator));
    this.o_proj = this.module('o_proj', initLinear(new Linear(H, H, t), std, opts.generator));
  }

  /**
   * x [B, L, H]; cos/sin [B|1, 1, L, D]; bias: additive mask [1, 1, L, Lk] (or null with causal);
   * keyPaddingMask bool [B, Lk] true = padding.
   */
  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: { causal: boolean; bias: Tensor | null; keyPaddingMask: Tensor | null },
    cache: KVCache | null, layer: number): Tensor {
    return tidy(() => {
      const [B, L, H] = x.shape;
      const split = (t: Tensor) => transpose(reshape(t, [B, L, this.heads, this.headDim]), 1, 2);
      const q = rope(split(this.q_proj.forward(x)), cos, sin);
      let k = rope(split(this.k_proj.forward(x)), cos, sin);
      let v = split(this.v_proj.forward(x));
      if (cache) [k, v] = cache.append(layer, k, v);
      const o = F.scaledDotProductAttention(q, k, v, { causal: mask.causal, bias: mask.bias, keyPaddingMask: mask.keyPaddingMask });
      return this.o_proj.forward(reshape(transpose(o, 1, 2), [B, L, H]));
    });
  }
}

export class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  constructor(cfg: LlmConfig, opts: LlamaOptions = {}) {
    super();
    const H = cfg.hidden, I = cfg.intermediate, std = opts.initStd ?? 0.02;
    const t = { dtype: opts.dtype, device: opts.device, bias: false, generator: opts.generator };
    this.gate_proj = this.module('gate_proj', initLinear(new Linear(H, I, t), std, opts.generator));
    this.up_proj = this.module('up_proj', initLinear(new Linear(H, I, t), std, opts.generator));
    this.down_proj = this.module('down_proj', initLinear(new Linear(I, H, t), std, opts.generator));
  }
  /** down(SiLU(gate(x)) * up(x)). */
  forward(x: Tensor): Tensor {
    return tidy(() => this.down_proj.forward(F.swiglu(this.gate_proj.forward(x), this.up_proj.forward(x))));
  }
}

export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(cfg: LlmConfig, opts: LlamaOptions = {}) {
    super();
    const n = { eps: cfg.eps, dtype: opts.dtype, device: opts.device };
    this.self_attn = this.module('self_attn', new LlamaAttention(cfg, opts));
    this.mlp = this.module('mlp', new LlamaMLP(cfg, opts));
    this.input_layernorm = this.module('input_layernorm', new RMSNorm(cfg.hidden, n));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(cfg.hidden, n));
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: { causal: boolean; bias: Tensor | null; keyPaddingMask: Tensor | null },
    cache: KVCache | null, layer: number): Tensor {
    return tidy(() => {
      const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), cos, sin, mask, cache, layer));
      return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
    });
  }
}

export interface LlamaForwardOptions {
  /** bool [B, L] for the new positions, true = real token (right padding). With a cache it is appended to the cached mask. */
  attentionMask?: Tensor | null;
  /** Position ids, i32 [B, L] or [L]; default cache.length .. cache.length + L - 1. */
  positionIds?: Tensor | number[] | null;
  /** Appended to (keys/values of the new positions), and attended over. */
  cache?: KVCache | null;
}

export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: RMSNorm;
  readonly padId: number | null;
  constructor(readonly cfg: LlmConfig, opts: LlamaOptions = {}) {
    super();
    const vocab = opts.vocabSize ?? fullVocab(cfg);
    this.padId = opts.padId === undefined ? cfg.baseVocab : opts.padId;
    this.embed_tokens = this.module('embed_tokens', new Embedding(vocab, cfg.hidden, {
      paddingIdx: this.padId, dtype: opts.dtype, device: opts.device, generator: opts.generator,
    }));
    normal_(this.embed_tokens.weight, 0, opts.initStd ?? 0.02, { generator: opts.generator });
    if (this.padId !== null && opts.device !== 'meta') {
      const w = this.embed_tokens.weight.detach(), row = narrow(w, 0, this.padId, 1);
      zeros_(row);
      row.dispose();
      w.dispose();
    }
    this.layers = this.module('layers', new ModuleList<LlamaDecoderLayer>());
    for (let i = 0; i < cfg.layers; i++) this.layers.push(new LlamaDecoderLayer(cfg, opts));
    this.norm = this.module('norm', new RMSNorm(cfg.hidden, { eps: cfg.eps, dtype: opts.dtype, device: opts.device }));
  }

  /** Rows of the token embedding (grows with resizeTokenEmbeddings). */
  get vocabSize(): number {
    return this.embed_tokens.weight.shape[0];
  }

  /** Token embeddings [..., H] of i32 ids. */
  embed(ids: Tensor): Tensor {
    return this.embed_tokens.forward(ids);
  }

  newCache(): KVCache {
    return new KVCache(this.cfg.layers);
  }

  /** Final-normed hidden states [B, L, H] of input embeddings [B, L, H]. */
  forward(inputsEmbeds: Tensor, opts: LlamaForwardOptions = {}): Tensor {
    if (inputsEmbeds.ndim !== 3 || inputsEmbeds.shape[2] !== this.cfg.hidden) {
      throw new ShapeError(`LlamaModel: inputsEmbeds must be [B, L, ${this.cfg.hidden}], got [${inputsEmbeds.shape.join(',')}]`);
    }
    const [B, L] = inputsEmbeds.shape;
    const cache = opts.cache ?? null;
    if (cache && cache.length > 0 && cache.batch !== B) throw new ShapeError(`LlamaModel: cache holds batch ${cache.batch}, input has ${B}`);
    const P = cache?.length ?? 0, Lk = P + L;
    const am = opts.attentionMask ?? null;
    if (am && (am.dtype !== 'bool' || am.ndim !== 2 || am.shape[0] !== B || am.shape[1] !== L)) {
      throw new ShapeError(`LlamaModel: attentionMask must be bool [${B}, ${L}], got ${am.dtype} [${am.shape.join(',')}]`);
    }
    const pos = this.#positions(opts.positionIds ?? null, B, L, P);
    const out = tidy(() => {
      const D = this.cfg.hidden / this.cfg.heads;
      const [cos, sin] = ropeTables(pos, D, this.cfg.ropeBase, inputsEmbeds.dtype, inputsEmbeds.device);
      // The full real-token mask over cached + new keys.
      let full: Tensor | null = null;
      if (cache) {
        if (cache.mask || am) {
          const prev = cache.mask ?? (P > 0 ? ones([B, P], { dtype: 'bool', device: inputsEmbeds.device }) : null);
          const cur = am ?? ones([B, L], { dtype: 'bool', device: inputsEmbeds.device });
          full = prev ? cat([prev, cur], 1) : to(cur, 'bool');
        }
      } else full = am;
      const keyPaddingMask = full ? logicalNot(full) : null;
      // Causal: query i (absolute P + i) sees keys j <= P + i. P = 0 is SDPA's top-left causal.
      let bias: Tensor | null = null;
      if (P > 0 && L > 1) {
        const v = new Float32Array(L * Lk);
        for (let i = 0; i < L; i++) for (let j = 0; j < Lk; j++) v[i * Lk + j] = j <= P + i ? 0 : -Infinity;
        bias = fromValues(v, [1, 1, L, Lk], 'f32', inputsEmbeds.device);
        if (inputsEmbeds.dtype !== 'f32') bias = to(bias, inputsEmbeds.dtype);
      }
      const mask = { causal: P === 0, bias, keyPaddingMask };
      let h = inputsEmbeds;
      for (const [i, layer] of [...this.layers].entries()) h = layer.forward(h, cos, sin, mask, cache, i);
      const normed = this.norm.forward(h);
      if (cache && full) {
        cache.mask?.dispose();
        cache.mask = keep(full);
      }
      return normed;
    });
    if (cache) {
      cache.length = Lk;
      cache.batch = B;
    }
    return out;
  }

  #positions(p: Tensor | number[] | null, B: number, L: number, P: number): number[][] {
    if (p === null) {
      const row = Array.from({ length: L }, (_, i) => P + i);
      return [row];
    }
    const vals = Array.isArray(p) ? p : Array.from(p.data() as ArrayLike<number>, Number);
    const shape = Array.isArray(p) ? [p.length] : p.shape;
    if (shape.length === 1 && shape[0] === L) return [vals];
    if (shape.length === 2 && shape[0] === B && shape[1] === L) return Array.from({ length: B }, (_, b) => vals.slice(b * L, (b + 1) * L));
    throw new ShapeError(`LlamaModel: positionIds must be [${L}] or [${B}, ${L}], got [${shape.join(',')}]`);
  }
}

export interface LlamaRegOutput {
  /** Final-normed hidden states [B, L, H]. */
  hidden: Tensor;
  /** lm_head(hidden) [B, L, V] (absent with { logits: false }). */
  logits?: Tensor;
  /** stu_regress_head(hidden) [B, L, H] (only with { regress: true }). */
  regress?: Tensor;
}

/** LLaMA with the untied LM head and Emu's regression head. */
export class LlamaForReg extends Module {
  model: LlamaModel;
  lm_head: Linear;
  stu_regress_head: Linear;
  constructor(readonly cfg: LlmConfig, opts: LlamaOptions = {}) {
    super();
    this.model = this.module('model', new LlamaModel(cfg, opts));
    const t = { dtype: opts.dtype, device: opts.device, bias: false, generator: opts.generator }, std = opts.initStd ?? 0.02;
    this.lm_head = this.module('lm_head', initLinear(new Linear(cfg.hidden, this.model.vocabSize, t), std, opts.generator));
    this.stu_regress_head = this.module('stu_regress_head', initLinear(new Linear(cfg.hidden, cfg.hidden, t), std, opts.generator));
  }

  get vocabSize(): number {
    return this.model.vocabSize;
  }

  embed(ids: Tensor): Tensor {
    return this.model.embed(ids);
  }

  /**
   * Grows the vocabulary to n rows (32004 -> 32006 when Emu-I adds [USER] and [ASSISTANT]): the
   * new rows of the input embedding and of the untied LM head start at the mean of the existing
   * rows (Alpaca's "smart resize", as the release does). Parameters keep their requiresGrad.
   */
  resizeTokenEmbeddings(n: number): void {
    const old = this.vocabSize;
    if (!Number.isInteger(n) || n < old) throw new ValueError(`resizeTokenEmbeddings: n must be an integer >= ${old}, got ${String(n)}`);
    if (n === old) return;
    noGrad(() => {
      for (const layer of [this.model.embed_tokens, this.lm_head] as (Module & { weight: Tensor })[]) {
        const w = layer.weight;
        const grown = tidy(() => cat([w, expand(w.mean(0, true), [n - old, w.shape[1]])], 0));
        layer.param('weight', grown, w.requiresGrad);
        w.dispose();
      }
    });
  }

  newCache(): KVCache {
    return this.model.newCache();
  }

  forward(inputsEmbeds: Tensor, opts: LlamaForwardOptions & { logits?: boolean; regress?: boolean } = {}): LlamaRegOutput {
    return tidy(() => {
      const hidden = this.model.forward(inputsEmbeds, opts);
      const out: LlamaRegOutput = { hidden };
      if (opts.logits ?? true) out.logits = this.lm_head.forward(hidden);
      if (opts.regress) out.regress = this.stu_regress_head.forward(hidden);
      return out;
    });
  }
}
