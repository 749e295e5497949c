// unet.ts: Stable Diffusion's UNet2DConditionModel (diffusers layout) built from a UnetConfig.
//
//   time_proj (sinusoidal, flip_sin_to_cos, shift 0) -> time_embedding.linear_1 - SiLU - linear_2 (4 * blockChannels)
//   conv_in -> down_blocks.{i}: resnets.{j} [+ attentions.{j} at attentionLevels] [+ downsamplers.0 except the last]
//   mid_block: resnets.0, attentions.0, resnets.1
//   up_blocks.{i} (level L-1-i): layersPerBlock + 1 resnets over [h, skip] concatenations [+ attentions] [+ upsamplers.0]
//   conv_norm_out - SiLU - conv_out -> epsilon
//
// Each attention is a Transformer2DModel (GroupNorm eps 1e-6, proj_in 1x1 conv, one
// BasicTransformerBlock: self-attention, cross-attention whose to_k / to_v read the condition's
// crossAttentionDim features, GEGLU feed-forward; proj_out 1x1 conv; residual), as SD 1.5
// (use_linear_projection false). `heads` is the number of heads at every level (SD 1.5's
// attention_head_dim = 8 is, in diffusers, the head count).
import { ShapeError, ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import { Tensor } from '../tensor/tensor.ts';
import { empty, tensor } from '../tensor/ops/creation.ts';
import { add, gelu, mul } from '../tensor/ops/elementwise.ts';
import { cat, chunk, permute, reshape, transpose } from '../tensor/ops/views.ts';
import * as F from '../nn/functional.ts';
import { Conv2d, Dropout, GroupNorm, LayerNorm, Linear } from '../nn/layers.ts';
import { Module, ModuleList } from '../nn/module.ts';
import type { UnetConfig } from './config.ts';
import { Downsample2D, ResnetBlock2D, Upsample2D, type BuildOptions } from './vae.ts';

const topts = (o: BuildOptions) => ({ device: o.device, dtype: o.dtype, generator: o.generator });

/**
 * diffusers' get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0):
 * freq_k = exp(-ln(10000) * k / half), features [cos(t * freq), sin(t * freq)] (float32, as a [B, dim] array).
 */
export function timestepFeatures(timesteps: number[], dim: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    for (let k = 0; k < half; k++) {
      const freq = Math.fround(Math.exp(Math.fround((-Math.log(maxPeriod) * k) / half)));
      const arg = Math.fround(timesteps[b] * freq);
      out[b * dim + k] = Math.cos(arg);
      out[b * dim + half + k] = Math.sin(arg);
    }
  }
  return out;
}

/** Timesteps as plain numbers: a number, a list, or a (cpu) tensor of shape [B] or []. */
export function timestepList(t: number | number[] | Tensor, batch: number): number[] {
  let ts: number[];
  if (typeof t === 'number') ts = [t];
  else if (Array.isArray(t)) ts = t;
  else if (t instanceof Tensor) ts = Array.from(t.data() as ArrayLike<number>, Number);
  else throw new ValueError('UNet: timesteps must be a number, a number[] or a Tensor');
  if (ts.length === 1 && batch > 1) ts = Array(batch).fill(ts[0]);
  if (ts.length !== batch) throw new ShapeError(`UNet: ${ts.length} timesteps for a batch of ${batch}`);
  return ts;
}

/** diffusers' Attention as used in BasicTransformerBlock: bias-free q, k, v; to_out.0 with bias. */
export class CrossAttention extends Module {
  toQ: Linear;
  toK: Linear;
  toV: Linear;
  toOut: ModuleList;
  constructor(readonly dim: number, readonly heads: number, contextDim: number | null, opts: BuildOptions = {}) {
    super();
    if (dim % heads !== 0) throw new ValueError(`CrossAttention: ${heads} heads must divide the width ${dim}`);
    const t = topts(opts), kv = contextDim ?? dim;
    this.toQ = this.module('to_q', new Linear(dim, dim, { ...t, bias: false }));
    this.toK = this.module('to_k', new Linear(kv, dim, { ...t, bias: false }));
    this.toV = this.module('to_v', new Linear(kv, dim, { ...t, bias: false }));
    this.toOut = this.module('to_out', new ModuleList([new Linear(dim, dim, t), new Dropout(0)]));
  }
  /** x [B, L, dim]; context [B, N, contextDim] (x itself for self-attention). */
  forward(x: Tensor, context: Tensor | null = null): Tensor {
    return tidy(() => {
      const c = context ?? x;
      const [B, L] = x.shape, N = c.shape[1], H = this.heads, d = this.dim / H;
      const split = (y: Tensor, n: number) => transpose(reshape(y, [B, n, H, d]), 1, 2);
      const a = F.scaledDotProductAttention(split(this.toQ.forward(x), L), split(this.toK.forward(c), N), split(this.toV.forward(c), N));
      return (this.toOut.get(0) as Linear).forward(reshape(transpose(a, 1, 2), [B, L, this.dim]));
    });
  }
}

/** GEGLU: proj to 2 * inner, hidden * gelu(gate). */
export class GEGLU extends Module {
  proj: Linear;
  constructor(dim: number, inner: number, opts: BuildOptions = {}) {
    super();
    this.proj = this.module('proj', new Linear(dim, 2 * inner, topts(opts)));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [h, g] = chunk(this.proj.forward(x), 2, -1);
      return mul(h, gelu(g));
    });
  }
}

/** ff.net: 0 GEGLU(dim -> 4 dim), 1 Dropout, 2 Linear(4 dim -> dim). */
export class FeedForward extends Module {
  net: ModuleList;
  constructor(dim: number, opts: BuildOptions = {}) {
    super();
    this.net = this.module('net', new ModuleList([new GEGLU(dim, 4 * dim, opts), new Dropout(0), new Linear(4 * dim, dim, topts(opts))]));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => (this.net.get(2) as Linear).forward((this.net.get(0) as GEGLU).forward(x)));
  }
}

/** x += attn1(norm1 x); x += attn2(norm2 x, context); x += ff(norm3 x). LayerNorm eps 1e-5. */
export class BasicTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: CrossAttention;
  norm2: LayerNorm;
  attn2: CrossAttention;
  norm3: LayerNorm;
  ff: FeedForward;
  constructor(dim: number, heads: number, contextDim: number, opts: BuildOptions = {}) {
    super();
    const n = { device: opts.device, dtype: opts.dtype, eps: 1e-5 };
    this.norm1 = this.module('norm1', new LayerNorm(dim, n));
    this.attn1 = this.module('attn1', new CrossAttention(dim, heads, null, opts));
    this.norm2 = this.module('norm2', new LayerNorm(dim, n));
    this.attn2 = this.module('attn2', new CrossAttention(dim, heads, contextDim, opts));
    this.norm3 = this.module('norm3', new LayerNorm(dim, n));
    this.ff = this.module('ff', new FeedForward(dim, opts));
  }
  forward(x: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      let h = add(x, this.attn1.forward(this.norm1.forward(x)));
      h = add(h, this.attn2.forward(this.norm2.forward(h), context));
      return add(h, this.ff.forward(this.norm3.forward(h)));
    });
  }
}

/** Transformer2DModel (continuous input, conv projections, one block). */
export class Transformer2DModel extends Module {
  norm: GroupNorm;
  projIn: Conv2d;
  transformerBlocks: ModuleList<BasicTransformerBlock>;
  projOut: Conv2d;
  constructor(readonly channels: number, heads: number, contextDim: number, groups: number, opts: BuildOptions = {}) {
    super();
    const t = topts(opts);
    this.norm = this.module('norm', new GroupNorm(groups, channels, { eps: 1e-6, device: opts.device, dtype: opts.dtype }));
    this.projIn = this.module('proj_in', new Conv2d(channels, channels, 1, t));
    this.transformerBlocks = this.module('transformer_blocks', new ModuleList([new BasicTransformerBlock(channels, heads, contextDim, opts)]));
    this.projOut = this.module('proj_out', new Conv2d(channels, channels, 1, t));
  }
  forward(x: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      const [B, C, H, W] = x.shape;
      let h = reshape(permute(this.projIn.forward(this.norm.forward(x)), [0, 2, 3, 1]), [B, H * W, C]);
      for (const blk of this.transformerBlocks) h = blk.forward(h, context);
      h = permute(reshape(h, [B, H, W, C]), [0, 3, 1, 2]);
      return add(this.projOut.forward(h), x);
    });
  }
}

interface BlockOpts extends BuildOptions {
  groups: number;
  eps: number;
  tembChannels: number;
}

/** CrossAttnDownBlock2D (with attentions) or DownBlock2D (without). */
export class UnetDownBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Transformer2DModel> | null;
  downsamplers: ModuleList<Downsample2D> | null;
  constructor(inC: number, outC: number, layers: number, attention: boolean, down: boolean, c: UnetConfig, opts: BlockOpts) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, j) => new ResnetBlock2D(j === 0 ? inC : outC, outC, opts))));
    this.attentions = attention
      ? this.module('attentions', new ModuleList(Array.from({ length: layers }, () => new Transformer2DModel(outC, c.heads, c.crossAttentionDim, c.groups, opts))))
      : null;
    this.downsamplers = down ? this.module('downsamplers', new ModuleList([new Downsample2D(outC, 1, opts)])) : null;
  }
  /** Returns the output and the skip states (one per resnet, plus the downsampled output). */
  forward(x: Tensor, temb: Tensor, context: Tensor): { h: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    let h = x;
    for (let j = 0; j < this.resnets.length; j++) {
      h = this.resnets.get(j).forward(h, temb);
      if (this.attentions) h = this.attentions.get(j).forward(h, context);
      skips.push(h);
    }
    if (this.downsamplers) {
      h = this.downsamplers.get(0).forward(h);
      skips.push(h);
    }
    return { h, skips };
  }
}

/** CrossAttnUpBlock2D or UpBlock2D: each resnet reads cat([h, skip], channels). */
export class UnetUpBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Transformer2DModel> | null;
  upsamplers: ModuleList<Upsample2D> | null;
  constructor(inC: number, outC: number, prevC: number, layers: number, attention: boolean, up: boolean, c: UnetConfig, opts: BlockOpts) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, j) => {
      const skipC = j === layers - 1 ? inC : outC;
      const resIn = j === 0 ? prevC : outC;
      return new ResnetBlock2D(resIn + skipC, outC, opts);
    })));
    this.attentions = attention
      ? this.module('attentions', new ModuleList(Array.from({ length: layers }, () => new Transformer2DModel(outC, c.heads, c.crossAttentionDim, c.groups, opts))))
      : null;
    this.upsamplers = up ? this.module('upsamplers', new ModuleList([new Upsample2D(outC, opts)])) : null;
  }
  /** skips: this block's skip states, in the order they were produced (consumed from the end). */
  forward(x: Tensor, skips: Tensor[], temb: Tensor, context: Tensor, upsampleSize?: [number, number]): Tensor {
    return tidy(() => {
      let h = x;
      for (let j = 0; j < this.resnets.length; j++) {
        h = this.resnets.get(j).forward(cat([h, skips[skips.length - 1 - j]], 1), temb);
        if (this.attentions) h = this.attentions.get(j).forward(h, context);
      }
      return this.upsamplers ? this.upsamplers.get(0).forward(h, upsampleSize) : h;
    });
  }
}

/** UNetMidBlock2DCrossAttn: resnets.0, attentions.0, resnets.1. */
export class UnetMidBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<Transformer2DModel>;
  constructor(ch: number, c: UnetConfig, opts: BlockOpts) {
    super();
    this.resnets = this.module('resnets', new ModuleList([new ResnetBlock2D(ch, ch, opts), new ResnetBlock2D(ch, ch, opts)]));
    this.attentions = this.module('attentions', new ModuleList([new Transformer2DModel(ch, c.heads, c.crossAttentionDim, c.groups, opts)]));
  }
  forward(x: Tensor, temb: Tensor, context: Tensor): Tensor {
    return tidy(() => {
      const h = this.attentions.get(0).forward(this.resnets.get(0).forward(x, temb), context);
      return this.resnets.get(1).forward(h, temb);
    });
  }
}

export class TimestepEmbedding extends Module {
  linear1: Linear;
  linear2: Linear;
  constructor(inDim: number, dim: number, opts: BuildOptions = {}) {
    super();
    this.linear1 = this.module('linear_1', new Linear(inDim, dim, topts(opts)));
    this.linear2 = this.module('linear_2', new Linear(dim, dim, topts(opts)));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.linear2.forward(F.silu(this.linear1.forward(x))));
  }
}

const UNET_EPS = 1e-5;

export class UNet2DConditionModel extends Module {
  timeEmbedding: TimestepEmbedding;
  convIn: Conv2d;
  downBlocks: ModuleList<UnetDownBlock>;
  midBlock: UnetMidBlock;
  upBlocks: ModuleList<UnetUpBlock>;
  convNormOut: GroupNorm;
  convOut: Conv2d;
  readonly channels: number[];

  constructor(readonly config: UnetConfig, opts: BuildOptions = {}) {
    super();
    const c = config, t = topts(opts);
    const ch = (this.channels = c.channelMult.map((m) => m * c.blockChannels));
    const L = ch.length, temb = 4 * c.blockChannels;
    for (const lvl of c.attentionLevels) if (!Number.isInteger(lvl) || lvl < 0 || lvl >= L) throw new ValueError(`UNet: attention level ${lvl} is out of range for ${L} levels`);
    const bo: BlockOpts = { ...opts, groups: c.groups, eps: UNET_EPS, tembChannels: temb };
    this.timeEmbedding = this.module('time_embedding', new TimestepEmbedding(c.blockChannels, temb, opts));
    this.convIn = this.module('conv_in', new Conv2d(c.inChannels, ch[0], 3, { ...t, padding: 1 }));
    this.downBlocks = this.module('down_blocks', new ModuleList(ch.map((out, i) =>
      new UnetDownBlock(i === 0 ? ch[0] : ch[i - 1], out, c.layersPerBlock, c.attentionLevels.includes(i), i < L - 1, c, bo))));
    this.midBlock = this.module('mid_block', new UnetMidBlock(ch[L - 1], c, bo));
    const rev = [...ch].reverse();
    this.upBlocks = this.module('up_blocks', new ModuleList(rev.map((out, i) => {
      const prev = i === 0 ? rev[0] : rev[i - 1];
      const inC = rev[Math.min(i + 1, L - 1)];
      return new UnetUpBlock(inC, out, prev, c.layersPerBlock + 1, c.attentionLevels.includes(L - 1 - i), i < L - 1, c, bo);
    })));
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.groups, ch[0], { eps: UNET_EPS, device: opts.device, dtype: opts.dtype }));
    this.convOut = this.module('conv_out', new Conv2d(ch[0], c.inChannels, 3, { ...t, padding: 1 }));
  }

  /** The [B, blockChannels] sinusoidal features of the timesteps, on x's device and dtype. */
  timeProj(timesteps: number | number[] | Tensor, batch: number, like: Tensor): Tensor {
    const dim = this.config.blockChannels;
    if (like.device === 'meta') return empty([batch, dim], { device: 'meta', dtype: like.dtype });
    const ts = timestepList(timesteps, batch);
    const f = tensor(timestepFeatures(ts, dim), { dtype: 'f32' }).reshape(batch, dim);
    if (like.dtype === 'f32' && like.device === 'cpu') return f;
    const out = f.to(like.device).to(like.dtype);
    f.dispose();
    return out;
  }

  /** latents [B, C, h, w], timesteps [B] (or one for all), condition [B, N, crossAttentionDim] -> epsilon [B, C, h, w]. */
  forward(latents: Tensor, timesteps: number | number[] | Tensor, condition: Tensor): Tensor {
    const c = this.config;
    if (latents.ndim !== 4 || latents.shape[1] !== c.inChannels) {
      throw new ShapeError(`UNet: expected latents [B, ${c.inChannels}, h, w], got [${latents.shape.join(', ')}]`);
    }
    const B = latents.shape[0];
    if (condition.ndim !== 3 || condition.shape[0] !== B || condition.shape[2] !== c.crossAttentionDim) {
      throw new ShapeError(`UNet: expected condition [${B}, N, ${c.crossAttentionDim}], got [${condition.shape.join(', ')}]`);
    }
    const f = 2 ** (this.channels.length - 1);
    if (latents.shape[2] % f !== 0 || latents.shape[3] % f !== 0) {
      throw new ShapeError(`UNet: latent height and width must be multiples of ${f}, got ${latents.shape[2]}x${latents.shape[3]}`);
    }
    return tidy(() => {
      const temb = this.timeEmbedding.forward(this.timeProj(timesteps, B, latents));
      let h = this.convIn.forward(latents);
      const skips: Tensor[] = [h];
      for (const blk of this.downBlocks) {
        const r = blk.forward(h, temb, condition);
        h = r.h;
        skips.push(...r.skips);
      }
      h = this.midBlock.forward(h, temb, condition);
      for (let i = 0; i < this.upBlocks.length; i++) {
        const blk = this.upBlocks.get(i);
        const n = blk.resnets.length;
        const mine = skips.splice(skips.length - n, n);
        const next = skips[skips.length - 1];
        const size: [number, number] | undefined = next ? [next.shape[2], next.shape[3]] : undefined;
        h = blk.forward(h, mine, temb, condition, size);
      }
      return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
    });
  }
}
