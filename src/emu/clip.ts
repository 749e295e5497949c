// clip.ts: a CLIP text tower and contrastive loss, to pretrain Emu's vision encoder when no
// CLIP-pretrained EVA checkpoint is available (the reference starts from EVA01-CLIP-g-14).
//
// Layout and names follow EVA-CLIP's CustomCLIP (open_clip style), so a converted checkpoint maps
// one to one:
//   visual.*                       VisionEncoder with { clipHead }: EVA tower + visual.norm + visual.head
//   text.token_embedding.weight    [vocab, Wt]
//   text.positional_embedding      [ctx, Wt]
//   text.transformer.resblocks.{i}.ln_1.*, .attn.in_proj_weight [3Wt, Wt], .attn.in_proj_bias [3Wt],
//     .attn.out_proj.*, .ln_2.*, .mlp.c_fc.*, .mlp.c_proj.*      (pre-norm, causal, exact GELU)
//   text.ln_final.*
//   text.text_projection          [Wt, E] (x @ text_projection, no bias)
//   logit_scale                    scalar, init log(1 / 0.07)
// The text feature is the final-normed hidden state at the EOS token: by default the position
// of the largest id in each row (CLIP's argmax, EOS being the highest id), or given positions.
// The image feature is the CLS token after `visual.norm`, projected by `visual.head`.
//
// Init (open_clip): token embedding N(0, 0.02), positions N(0, 0.01), in_proj N(0, Wt^-0.5),
// out_proj and c_proj N(0, Wt^-0.5 (2 L)^-0.5), c_fc N(0, (2 Wt)^-0.5), text_projection
// N(0, Wt^-0.5), biases 0.
import { ValueError, ShapeError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import type { Generator } from '../tensor/random.ts';
import type { DType } from '../tensor/dtype.ts';
import type { Device } from '../tensor/device.ts';
import { Tensor } from '../tensor/tensor.ts';
import { arange, empty, full, tensor, zeros } from '../tensor/ops/creation.ts';
import { add, clamp, div, exp, mul, sqrt } from '../tensor/ops/elementwise.ts';
import { argmax, sum } from '../tensor/ops/reduce.ts';
import { indexSelect, matmul } from '../tensor/ops/linalg.ts';
import { permute, reshape, select, transpose } from '../tensor/ops/views.ts';
import * as F from '../nn/functional.ts';
import { normal_, zeros_ } from '../nn/init.ts';
import { Embedding, LayerNorm, Linear } from '../nn/layers.ts';
import { Module, ModuleList, type Parameter } from '../nn/module.ts';
import type { VisionConfig } from './config.ts';
import { VisionEncoder } from './vision.ts';

export interface ClipTextConfig {
  vocabSize: number;
  contextLength: number;
  width: number;
  layers: number;
  heads: number;
  /** Width of the shared contrastive space (the image head's and text projection's output). */
  embedDim: number;
  /** LayerNorm eps of the text tower (open_clip: 1e-5). */
  eps: number;
}

/**
 * Text-tower sizes for a vision tower: EVA01-CLIP-g-14's (49408 vocab, 77 ctx, 768 wide, 12
 * layers, 12 heads, embed 1024) for the full-size tower (width >= 1024), otherwise a small tower
 * as wide and deep as the vision tower with a 128-symbol vocabulary, 16 positions and
 * embedDim = width / 2 (at least 16). Any field can be overridden.
 */
export function clipTextConfigFor(vision: VisionConfig, overrides: Partial<ClipTextConfig> = {}): ClipTextConfig {
  const base: ClipTextConfig = vision.width >= 1024
    ? { vocabSize: 49408, contextLength: 77, width: 768, layers: 12, heads: 12, embedDim: 1024, eps: 1e-5 }
    : {
      vocabSize: 128, contextLength: 16, width: vision.width, layers: vision.layers, heads: vision.heads,
      embedDim: Math.max(16, Math.floor(vision.width / 2)), eps: 1e-5,
    };
  return { ...base, ...overrides };
}

export interface ClipOptions {
  dtype?: DType;
  device?: Device;
  generator?: Generator;
}

/** nn.MultiheadAttention-shaped causal self-attention (in_proj_weight/bias, out_proj). */
export class TextAttention extends Module {
  in_proj_weight: Parameter;
  in_proj_bias: Parameter;
  out_proj: Linear;
  constructor(readonly width: number, readonly heads: number, projStd: number, opts: ClipOptions = {}) {
    super();
    const t = { dtype: opts.dtype, device: opts.device };
    this.in_proj_weight = this.param('in_proj_weight', normal_(empty([3 * width, width], t), 0, width ** -0.5, { generator: opts.generator }));
    this.in_proj_bias = this.param('in_proj_bias', zeros([3 * width], t));
    this.out_proj = this.module('out_proj', new Linear(width, width, { ...t, generator: opts.generator }));
    normal_(this.out_proj.weight, 0, projStd, { generator: opts.generator });
    zeros_(this.out_proj.bias!);
  }
  forward(x: Tensor): Tensor {
    const [B, L, W] = x.shape, H = this.heads, D = W / H;
    return tidy(() => {
      const parts = permute(reshape(F.linear(x, this.in_proj_weight, this.in_proj_bias), [B, L, 3, H, D]), [2, 0, 3, 1, 4]);
      const o = F.scaledDotProductAttention(select(parts, 0, 0), select(parts, 0, 1), select(parts, 0, 2), { causal: true });
      return this.out_proj.forward(reshape(transpose(o, 1, 2), [B, L, W]));
    });
  }
}

export class TextMlp extends Module {
  c_fc: Linear;
  c_proj: Linear;
  constructor(width: number, projStd: number, opts: ClipOptions = {}) {
    super();
    const t = { dtype: opts.dtype, device: opts.device, generator: opts.generator };
    this.c_fc = this.module('c_fc', new Linear(width, 4 * width, t));
    this.c_proj = this.module('c_proj', new Linear(4 * width, width, t));
    normal_(this.c_fc.weight, 0, (2 * width) ** -0.5, { generator: opts.generator });
    normal_(this.c_proj.weight, 0, projStd, { generator: opts.generator });
    zeros_(this.c_fc.bias!);
    zeros_(this.c_proj.bias!);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.c_proj.forward(this.c_fc.forward(x, { activation: 'gelu' })));
  }
}

export class TextBlock extends Module {
  ln_1: LayerNorm;
  attn: TextAttention;
  ln_2: LayerNorm;
  mlp: TextMlp;
  constructor(cfg: ClipTextConfig, opts: ClipOptions = {}) {
    super();
    const n = { dtype: opts.dtype, device: opts.device, eps: cfg.eps };
    const projStd = cfg.width ** -0.5 * (2 * cfg.layers) ** -0.5;
    this.ln_1 = this.module('ln_1', new LayerNorm(cfg.width, n));
    this.attn = this.module('attn', new TextAttention(cfg.width, cfg.heads, projStd, opts));
    this.ln_2 = this.module('ln_2', new LayerNorm(cfg.width, n));
    this.mlp = this.module('mlp', new TextMlp(cfg.width, projStd, opts));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = add(x, this.attn.forward(this.ln_1.forward(x)));
      return add(h, this.mlp.forward(this.ln_2.forward(h)));
    });
  }
}

/** Holds `resblocks` so the names read text.transformer.resblocks.{i}.* as in open_clip. */
export class TextTransformerStack extends Module {
  resblocks: ModuleList<TextBlock>;
  constructor(cfg: ClipTextConfig, opts: ClipOptions = {}) {
    super();
    this.resblocks = this.module('resblocks', new ModuleList<TextBlock>());
    for (let i = 0; i < cfg.layers; i++) this.resblocks.push(new TextBlock(cfg, opts));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const b of this.resblocks) h = b.forward(h);
      return h;
    });
  }
}

/** CLIP's text tower: ids [B, L] (i32, L <= contextLength) -> [B, embedDim]. */
export class ClipTextTower extends Module {
  readonly cfg: ClipTextConfig;
  token_embedding: Embedding;
  positional_embedding: Parameter;
  transformer: TextTransformerStack;
  ln_final: LayerNorm;
  text_projection: Parameter;
  constructor(cfg: ClipTextConfig, opts: ClipOptions = {}) {
    super();
    for (const k of ['vocabSize', 'contextLength', 'width', 'layers', 'heads', 'embedDim'] as const) {
      if (!Number.isInteger(cfg[k]) || cfg[k] <= 0) throw new ValueError(`ClipTextTower: ${k} must be a positive integer, got ${String(cfg[k])}`);
    }
    if (cfg.width % cfg.heads !== 0) throw new ValueError(`ClipTextTower: heads ${cfg.heads} must divide width ${cfg.width}`);
    this.cfg = { ...cfg };
    const t = { dtype: opts.dtype, device: opts.device }, g = opts.generator;
    this.token_embedding = this.module('token_embedding', new Embedding(cfg.vocabSize, cfg.width, { ...t, generator: g }));
    normal_(this.token_embedding.weight, 0, 0.02, { generator: g });
    this.positional_embedding = this.param('positional_embedding', normal_(empty([cfg.contextLength, cfg.width], t), 0, 0.01, { generator: g }));
    this.transformer = this.module('transformer', new TextTransformerStack(cfg, opts));
    this.ln_final = this.module('ln_final', new LayerNorm(cfg.width, { ...t, eps: cfg.eps }));
    this.text_projection = this.param('text_projection', normal_(empty([cfg.width, cfg.embedDim], t), 0, cfg.width ** -0.5, { generator: g }));
  }

  /**
   * ids [B, L] i32. eos: the position of the feature token in each row (default: the position
   * of each row's largest id, CLIP's convention with EOS as the highest id). -> [B, embedDim].
   */
  forward(ids: Tensor, eos?: number[]): Tensor {
    if (!(ids instanceof Tensor) || ids.ndim !== 2 || ids.dtype !== 'i32') throw new ShapeError('ClipTextTower: ids must be an i32 tensor [B, L]');
    const [B, L] = ids.shape;
    if (L > this.cfg.contextLength) throw new ShapeError(`ClipTextTower: ${L} tokens exceed the context length ${this.cfg.contextLength}`);
    if (eos && (eos.length !== B || eos.some((p) => !Number.isInteger(p) || p < 0 || p >= L))) {
      throw new ValueError(`ClipTextTower: eos must hold ${B} positions in [0, ${L})`);
    }
    return tidy(() => {
      const pos = L === this.cfg.contextLength ? this.positional_embedding : this.positional_embedding.narrow(0, 0, L);
      let x = add(this.token_embedding.forward(ids), pos);
      x = this.ln_final.forward(this.transformer.forward(x));
      const where = eos
        ? tensor(eos.map((p, b) => b * L + p), { dtype: 'i32', device: ids.device })
        : add(argmax(ids, 1), mul(arange(B, { dtype: 'i32', device: ids.device }), L));
      const feats = indexSelect(reshape(x, [B * L, -1]), 0, where);
      return matmul(feats, this.text_projection);
    });
  }
}

/** EVA-CLIP-style model: visual (EVA tower + norm + head), text, logit_scale. */
export class ClipModel extends Module {
  visual: VisionEncoder;
  text: ClipTextTower;
  logit_scale: Parameter;
  constructor(vision: VisionConfig, textCfg: ClipTextConfig = clipTextConfigFor(vision), opts: ClipOptions = {}) {
    super();
    this.visual = this.module('visual', new VisionEncoder(vision, { ...opts, clipHead: { embedDim: textCfg.embedDim } }));
    this.text = this.module('text', new ClipTextTower(textCfg, opts));
    this.logit_scale = this.param('logit_scale', full([], Math.log(1 / 0.07), { dtype: opts.dtype, device: opts.device }));
  }
  encodeImage(pixels: Tensor): Tensor {
    return this.visual.encodeImage(pixels);
  }
  encodeText(ids: Tensor, eos?: number[]): Tensor {
    return this.text.forward(ids, eos);
  }
  /** exp(logit_scale), with logit_scale clamped to [0, log 100] as CLIP training does. */
  logitScale(): Tensor {
    return tidy(() => exp(clamp(this.logit_scale, 0, Math.log(100))));
  }
  /** The contrastive loss of a batch of matching (image, caption) pairs. */
  forward(pixels: Tensor, ids: Tensor, eos?: number[]): Tensor {
    return tidy(() => clipLoss(this.encodeImage(pixels), this.encodeText(ids, eos), this.logitScale()));
  }
}

/** x / max(||x||_2, 1e-12) along the last dim. */
export function l2Normalize(x: Tensor): Tensor {
  return tidy(() => div(x, clamp(sqrt(sum(mul(x, x), -1, true)), 1e-12)));
}

/**
 * CLIP's symmetric contrastive loss: with L2-normalised imageEmb [B, E] and textEmb [B, E],
 * logits = logitScale * img @ txt^T, loss = (CE(logits, arange B) + CE(logits^T, arange B)) / 2.
 * logitScale is the multiplier itself (exp of the learned log-scale, as open_clip's ClipLoss),
 * a number or a scalar tensor.
 */
export function clipLoss(imageEmb: Tensor, textEmb: Tensor, logitScale: Tensor | number): Tensor {
  if (imageEmb.ndim !== 2 || textEmb.ndim !== 2 || imageEmb.shape[0] !== textEmb.shape[0] || imageEmb.shape[1] !== textEmb.shape[1]) {
    throw new ShapeError(`clipLoss: expected imageEmb and textEmb of the same shape [B, E], got [${imageEmb.shape.join(',')}] and [${textEmb.shape.join(',')}]`);
  }
  const B = imageEmb.shape[0];
  return tidy(() => {
    const logits = mul(matmul(l2Normalize(imageEmb), transpose(l2Normalize(textEmb), 0, 1)), logitScale);
    const labels = arange(B, { dtype: 'i32', device: imageEmb.device });
    return mul(add(F.crossEntropy(logits, labels), F.crossEntropy(transpose(logits, 0, 1), labels)), 0.5);
  });
}
