// vision.ts: Emu's visual encoder, the EVA01-CLIP ViT tower (shared/reference/emu-architecture.md
// section 1.1), its image preprocessing, and the `ln_visual` LayerNorm Emu puts after it.
//
//   pixels [B, 3, S, S] -> patch_embed (Conv2d, kernel = stride = patch, with bias) -> [B, N, W]
//   -> prepend cls_token -> + pos_embed -> blocks (pre-norm: x += attn(norm1(x)); x += mlp(norm2(x)))
//   -> all T = N + 1 tokens of the last block, with NO final norm ([B, T, W]).
//
// Attention: one qkv Linear without bias plus learned q_bias and v_bias (the k bias is fixed at
// zero), heads of W / heads, scale head_dim^-0.5, then proj (with bias). MLP: fc1, exact GELU, fc2.
// LayerNorm eps from the config (1e-6).
//
// State-dict names follow EVA's released `VisionTransformer` (the tower is registered as
// `visual` by the Emu wrapper): patch_embed.proj.{weight,bias}, cls_token [1,1,W],
// pos_embed [1,T,W], blocks.{i}.norm1.*, blocks.{i}.attn.qkv.weight [3W,W], blocks.{i}.attn.q_bias,
// blocks.{i}.attn.v_bias, blocks.{i}.attn.proj.*, blocks.{i}.norm2.*, blocks.{i}.mlp.fc1.*,
// blocks.{i}.mlp.fc2.*. EVA's final `norm` and CLIP `head` are created only with
// { clipHead: { embedDim } } (for CLIP pretraining, see clip.ts); forward() never uses them, so a
// converted Emu checkpoint loads into the default encoder after dropping visual.norm.* and
// visual.head.* (see EVA_UNUSED_PREFIXES).
//
// Random init (EVA): Linear weights trunc-normal std 0.02 and zero biases, LayerNorms 1 / 0,
// pos_embed and cls_token trunc-normal 0.02, q/v biases 0, the patch conv PyTorch's default;
// attn.proj and mlp.fc2 weights divided by sqrt(2 * layer_id) (1-based); head weight
// trunc-normal 0.02 times 0.001 (EVA's init_scale).
import { ValueError, ShapeError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import type { Generator } from '../tensor/random.ts';
import type { DType } from '../tensor/dtype.ts';
import type { Device } from '../tensor/device.ts';
import { Tensor } from '../tensor/tensor.ts';
import { empty, fromValues, zeros } from '../tensor/ops/creation.ts';
import { add } from '../tensor/ops/elementwise.ts';
import { cat, expand, permute, reshape, select, transpose } from '../tensor/ops/views.ts';
import * as F from '../nn/functional.ts';
import { truncNormal_, zeros_ } from '../nn/init.ts';
import { Conv2d, LayerNorm, Linear } from '../nn/layers.ts';
import { Module, ModuleList, type Parameter } from '../nn/module.ts';
import type { VisionConfig } from './config.ts';

export interface VisionOptions {
  dtype?: DType;
  device?: Device;
  generator?: Generator;
  /**
   * Adds EVA-CLIP's final LayerNorm `norm` and projection `head` (Linear W -> embedDim, with
   * bias), used only by encodeImage() (CLIP pretraining). Emu's forward never uses them.
   */
  clipHead?: { embedDim: number };
}

/** State-dict prefixes (under `visual.`) that EVA-CLIP checkpoints have and Emu does not use. */
export const EVA_UNUSED_PREFIXES = ['norm.', 'head.'] as const;

/** OpenAI CLIP's per-channel normalisation, used by Emu's preprocessing. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** Tokens per image: (imageSize / patchSize)^2 patches + CLS. */
export function visionTokens(cfg: VisionConfig): number {
  return (cfg.imageSize / cfg.patchSize) ** 2 + 1;
}

/** The parameter count of VisionEncoder(cfg) (without the optional CLIP norm/head). */
export function visionParamCount(cfg: VisionConfig): number {
  const W = cfg.width, M = cfg.mlpDim, P = cfg.patchSize;
  const patch = 3 * P * P * W + W;
  const block = 2 * W /* norm1 */ + 3 * W * W + 2 * W /* qkv + q/v bias */ + W * W + W /* proj */ + 2 * W /* norm2 */
    + W * M + M /* fc1 */ + M * W + W; /* fc2 */
  return patch + W /* cls */ + visionTokens(cfg) * W /* pos */ + cfg.layers * block;
}

function checkConfig(cfg: VisionConfig): void {
  for (const k of ['imageSize', 'patchSize', 'width', 'layers', 'heads', 'mlpDim'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] <= 0) throw new ValueError(`VisionEncoder: ${k} must be a positive integer, got ${String(cfg[k])}`);
  }
  if (cfg.imageSize % cfg.patchSize !== 0) throw new ValueError(`VisionEncoder: patchSize ${cfg.patchSize} must divide imageSize ${cfg.imageSize}`);
  if (cfg.width % cfg.heads !== 0) throw new ValueError(`VisionEncoder: heads ${cfg.heads} must divide width ${cfg.width}`);
  if (!(cfg.eps > 0)) throw new ValueError(`VisionEncoder: eps must be positive, got ${String(cfg.eps)}`);
}

/** EVA's Linear init: trunc-normal(std) weight (absolute bounds +-2, as timm's), zero bias. */
function evaLinear(inF: number, outF: number, opts: VisionOptions, bias = true, std = 0.02): Linear {
  const l = new Linear(inF, outF, { dtype: opts.dtype, device: opts.device, bias, generator: opts.generator });
  // Drawing N(0, std) and dividing by s equals drawing N(0, std / s) with the bounds divided by s.
  const s = 0.02 / std;
  truncNormal_(l.weight, { std, a: -2 / s, b: 2 / s, generator: opts.generator });
  if (l.bias) zeros_(l.bias);
  return l;
}

/** EVA attention: qkv without bias, learned q_bias and v_bias, k bias fixed at zero. */
export class EvaAttention extends Module {
  qkv: Linear;
  q_bias: Parameter;
  v_bias: Parameter;
  proj: Linear;
  readonly heads: number;
  readonly headDim: number;
  readonly scale: number;
  constructor(width: number, heads: number, layerId: number, opts: VisionOptions = {}) {
    super();
    this.heads = heads;
    this.headDim = width / heads;
    this.scale = this.headDim ** -0.5;
    const t = { dtype: opts.dtype, device: opts.device };
    this.qkv = this.module('qkv', evaLinear(width, 3 * width, opts, false));
    this.q_bias = this.param('q_bias', zeros([width], t));
    this.v_bias = this.param('v_bias', zeros([width], t));
    this.proj = this.module('proj', evaLinear(width, width, opts, true, 0.02 / Math.sqrt(2 * layerId)));
  }
  forward(x: Tensor): Tensor {
    const [B, T, W] = x.shape;
    return tidy(() => {
      const kBias = zeros([W], { dtype: this.q_bias.dtype, device: this.q_bias.device });
      const qkv = F.linear(x, this.qkv.weight, cat([this.q_bias, kBias, this.v_bias], 0));
      // [B, T, 3, H, D] -> [3, B, H, T, D]
      const parts = permute(reshape(qkv, [B, T, 3, this.heads, this.headDim]), [2, 0, 3, 1, 4]);
      const o = F.scaledDotProductAttention(select(parts, 0, 0), select(parts, 0, 1), select(parts, 0, 2), { scale: this.scale });
      return this.proj.forward(reshape(transpose(o, 1, 2), [B, T, W]));
    });
  }
}

export class EvaMlp extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(width: number, hidden: number, layerId: number, opts: VisionOptions = {}) {
    super();
    this.fc1 = this.module('fc1', evaLinear(width, hidden, opts));
    this.fc2 = this.module('fc2', evaLinear(hidden, width, opts, true, 0.02 / Math.sqrt(2 * layerId)));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.fc1.forward(x, { activation: 'gelu' })));
  }
}

/** Pre-norm block: x += attn(norm1(x)); x += mlp(norm2(x)). No layer-scale, no drop-path. */
export class EvaBlock extends Module {
  norm1: LayerNorm;
  attn: EvaAttention;
  norm2: LayerNorm;
  mlp: EvaMlp;
  /** layerId is 1-based (it scales the init of attn.proj and mlp.fc2). */
  constructor(cfg: VisionConfig, layerId: number, opts: VisionOptions = {}) {
    super();
    const t = { dtype: opts.dtype, device: opts.device, eps: cfg.eps };
    this.norm1 = this.module('norm1', new LayerNorm(cfg.width, t));
    this.attn = this.module('attn', new EvaAttention(cfg.width, cfg.heads, layerId, opts));
    this.norm2 = this.module('norm2', new LayerNorm(cfg.width, t));
    this.mlp = this.module('mlp', new EvaMlp(cfg.width, cfg.mlpDim, layerId, opts));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = add(x, this.attn.forward(this.norm1.forward(x)));
      return add(h, this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

/** The patch embedding, named as EVA's `patch_embed.proj`. */
export class PatchEmbed extends Module {
  proj: Conv2d;
  constructor(readonly patchSize: number, width: number, opts: VisionOptions = {}) {
    super();
    this.proj = this.module('proj', new Conv2d(3, width, patchSize, { stride: patchSize, dtype: opts.dtype, device: opts.device, generator: opts.generator }));
  }
  /** [B, 3, S, S] -> [B, (S/p)^2, W] (row-major over the patch grid, as flatten(2).transpose(1, 2)). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.proj.forward(x);
      const [B, W] = y.shape;
      return transpose(reshape(y, [B, W, -1]), 1, 2);
    });
  }
}

/** EVA-CLIP ViT tower; forward gives all tokens of the last block, no final norm. */
export class VisionEncoder extends Module {
  readonly cfg: VisionConfig;
  readonly numTokens: number;
  patch_embed: PatchEmbed;
  cls_token: Parameter;
  pos_embed: Parameter;
  blocks: ModuleList<EvaBlock>;
  /** EVA's final LayerNorm: only with opts.clipHead, used only by encodeImage. */
  norm: LayerNorm | null = null;
  /** EVA-CLIP's projection to the contrastive space: only with opts.clipHead. */
  head: Linear | null = null;

  constructor(cfg: VisionConfig, opts: VisionOptions = {}) {
    super();
    checkConfig(cfg);
    this.cfg = { ...cfg };
    this.numTokens = visionTokens(cfg);
    const W = cfg.width, t = { dtype: opts.dtype, device: opts.device };
    const g = opts.generator;
    this.patch_embed = this.module('patch_embed', new PatchEmbed(cfg.patchSize, W, opts));
    this.cls_token = this.param('cls_token', truncNormal_(empty([1, 1, W], t), { std: 0.02, generator: g }));
    this.pos_embed = this.param('pos_embed', truncNormal_(empty([1, this.numTokens, W], t), { std: 0.02, generator: g }));
    this.blocks = this.module('blocks', new ModuleList<EvaBlock>());
    for (let i = 0; i < cfg.layers; i++) this.blocks.push(new EvaBlock(cfg, i + 1, opts));
    if (opts.clipHead) {
      const E = opts.clipHead.embedDim;
      if (!Number.isInteger(E) || E <= 0) throw new ValueError(`VisionEncoder: clipHead.embedDim must be a positive integer, got ${String(E)}`);
      this.norm = this.module('norm', new LayerNorm(W, { ...t, eps: cfg.eps }));
      this.head = this.module('head', evaLinear(W, E, opts, true, 0.02 * 0.001));
    }
  }

  /** pixels [B, 3, S, S] (preprocessed) -> [B, T, W], T = (S/patch)^2 + 1, CLS first. */
  forward(pixels: Tensor): Tensor {
    const S = this.cfg.imageSize;
    if (!(pixels instanceof Tensor) || pixels.ndim !== 4 || pixels.shape[1] !== 3 || pixels.shape[2] !== S || pixels.shape[3] !== S) {
      throw new ShapeError(`VisionEncoder: expected pixels [B, 3, ${S}, ${S}], got ${pixels instanceof Tensor ? `[${pixels.shape.join(',')}]` : String(pixels)}`);
    }
    return tidy(() => {
      const B = pixels.shape[0];
      const x0 = this.patch_embed.forward(pixels);
      let x = add(cat([expand(this.cls_token, [B, 1, this.cfg.width]), x0], 1), this.pos_embed);
      for (const blk of this.blocks) x = blk.forward(x);
      return x;
    });
  }

  /** CLIP image embedding (needs opts.clipHead): head(norm(forward(x))[:, 0]) -> [B, embedDim]. */
  encodeImage(pixels: Tensor): Tensor {
    if (!this.norm || !this.head) throw new ValueError('VisionEncoder.encodeImage: built without { clipHead }');
    return tidy(() => this.head!.forward(select(this.norm!.forward(this.forward(pixels)), 1, 0)));
  }
}

/** Emu's `ln_visual`: LayerNorm(width, eps) with weight 1 and bias 0, applied to the tower's output. */
export function createLnVisual(cfg: VisionConfig, opts: { dtype?: DType; device?: Device } = {}): LayerNorm {
  return new LayerNorm(cfg.width, { dtype: opts.dtype, device: opts.device, eps: cfg.eps });
}

// ---- preprocessing --------------------------------------------------------------------------

/** PIL's bicubic kernel (a = -0.5), support 2. */
function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/**
 * PIL's resampling coefficients (ImagingResample's precompute_coeffs): when shrinking, the
 * kernel is stretched by the scale (antialiasing); each output's weights are normalised to sum 1.
 */
function coeffs(inSize: number, outSize: number): { start: Int32Array; count: Int32Array; w: Float64Array[] } {
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = 2 * filterScale;
  const start = new Int32Array(outSize), count = new Int32Array(outSize), w: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0), hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const k = new Float64Array(Math.max(hi - lo, 0));
    let sum = 0;
    for (let i = 0; i < k.length; i++) sum += (k[i] = bicubic((i + lo - center + 0.5) / filterScale));
    if (sum !== 0) for (let i = 0; i < k.length; i++) k[i] /= sum;
    start[o] = lo;
    count[o] = k.length;
    w.push(k);
  }
  return { start, count, w };
}

export interface PreprocessOptions {
  /** The input's value range: 255 ([0, 255]) or 1 ([0, 1]). Default: 255 for a Uint8Array; for floats, 255 if any value exceeds 1. */
  range?: 255 | 1;
  dtype?: DType;
  device?: Device;
}

const PRECISION_BITS = 32 - 8 - 2;

/** PIL's 8-bit pass: fixed-point coefficients (22 bits), rounding, clip to [0, 255] after the pass. */
function fixedPoint(w: Float64Array[]): Float64Array[] {
  return w.map((k) => k.map((v) => Math.trunc(v < 0 ? -0.5 + v * 2 ** PRECISION_BITS : 0.5 + v * 2 ** PRECISION_BITS)));
}
function clip8(ss: number): number {
  return Math.min(Math.max(Math.floor(ss / 2 ** PRECISION_BITS), 0), 255);
}

/**
 * Emu/CLIP preprocessing of one RGB image, HxWx3 interleaved (row-major): resize to size x size
 * (no crop, aspect not kept) with PIL's antialiased bicubic (a = -0.5), scale to [0, 1],
 * normalise with CLIP's mean and std. Returns [3, size, size] (f32 unless opts.dtype).
 * A Uint8Array follows PIL's 8-bit path exactly (fixed-point weights, rounding and clipping to
 * 0..255 after each of the horizontal and vertical passes), so it reproduces
 * `Image.resize((size, size), BICUBIC)`; float input is resampled in float (as PIL's 'F' mode)
 * and clipped to its range at the end.
 */
export function preprocess(rgb: Float32Array | Uint8Array | Float64Array, H: number, W: number, size: number, opts: PreprocessOptions = {}): Tensor {
  for (const [v, n] of [[H, 'H'], [W, 'W'], [size, 'size']] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new ValueError(`preprocess: ${n} must be a positive integer, got ${String(v)}`);
  }
  if (!(rgb instanceof Float32Array || rgb instanceof Uint8Array || rgb instanceof Float64Array)) throw new ValueError('preprocess: rgb must be a Float32Array, Float64Array or Uint8Array');
  if (rgb.length !== H * W * 3) throw new ShapeError(`preprocess: rgb has ${rgb.length} values, expected H*W*3 = ${H * W * 3}`);
  let range = opts.range;
  if (range === undefined) {
    range = 1;
    if (rgb instanceof Uint8Array) range = 255;
    else for (let i = 0; i < rgb.length; i++) if (rgb[i] > 1) { range = 255; break; }
  }
  if (range !== 1 && range !== 255) throw new ValueError(`preprocess: range must be 255 or 1, got ${String(range)}`);
  const u8 = rgb instanceof Uint8Array;
  // Horizontal pass [H, size, 3], then vertical [size, size, 3], as PIL; a pass whose size does
  // not change is skipped (PIL skips it too; bicubic at scale 1 is the identity anyway).
  const pass = (src: ArrayLike<number>, rows: number, inLen: number, stride: number, step: number, outLen: number): Float64Array => {
    // Resamples along one axis: element (r, i, c) of src sits at r * stride + i * step + c.
    const cf = coeffs(inLen, outLen), w = u8 ? fixedPoint(cf.w) : cf.w;
    const dst = new Float64Array(rows * outLen * 3);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outLen; o++) {
        const k = w[o], s0 = cf.start[o];
        for (let c = 0; c < 3; c++) {
          let acc = u8 ? 2 ** (PRECISION_BITS - 1) : 0;
          for (let i = 0; i < k.length; i++) acc += k[i] * src[r * stride + (s0 + i) * step + c];
          dst[(r * outLen + o) * 3 + c] = u8 ? clip8(acc) : acc;
        }
      }
    }
    return dst;
  };
  // Horizontal: rows are image rows. Vertical: done on the transposed layout (rows = columns).
  let img: ArrayLike<number> = rgb;
  if (W !== size) img = pass(img, H, W, W * 3, 3, size); // -> [H, size, 3]
  const w1 = W !== size ? size : W;
  // Vertical pass over columns: output laid out [size(cols), size(rows), 3]; transposed back below.
  const colMajor = H !== size ? pass(img, w1, H, 3, w1 * 3, size) : null;
  const out = new Float32Array(3 * size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        const raw = colMajor ? colMajor[(x * size + y) * 3 + c] : img[(y * size + x) * 3 + c];
        const v = Math.min(Math.max(raw, 0), range) / range;
        out[(c * size + y) * size + x] = (v - CLIP_MEAN[c]) / CLIP_STD[c];
      }
    }
  }
  return fromValues(out, [3, size, size], opts.dtype ?? 'f32', opts.device ?? 'cpu');
}
