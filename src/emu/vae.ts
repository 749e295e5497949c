// vae.ts: the KL autoencoder of Stable Diffusion (diffusers' AutoencoderKL layout), vaeInput (pixels
// to its [-1, 1] input, for training, encoding and the evaluation's reconstructions), and the
// convolutional pieces it shares with the UNet (ResnetBlock2D, Downsample2D, Upsample2D).
//
//   encoder: conv_in, down_blocks.{i} (resnets.{j}, downsamplers.0 except the last level),
//            mid_block (resnets.0, attentions.0, resnets.1), conv_norm_out, SiLU, conv_out -> 2 * latent
//   quant_conv (1x1) -> DiagonalGaussian (mean, logvar clamped to [-30, 20])
//   post_quant_conv (1x1) -> decoder: conv_in, mid_block, up_blocks.{i} (layersPerBlock + 1 resnets,
//            upsamplers.0 except the last), conv_norm_out, SiLU, conv_out
//
// The spatial factor is 2^(levels - 1). Norm eps is 1e-6 throughout, as diffusers' VAE.
// State-dict names are diffusers', so an SD checkpoint loads by name.
import type { Device } from '../tensor/device.ts';
import type { DType } from '../tensor/dtype.ts';
import { ShapeError, ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import { randn, type Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { fromValues } from '../tensor/ops/creation.ts';
import { pad } from '../tensor/ops/image.ts';
import { abs, add, clamp, div, exp, mul, square, sub } from '../tensor/ops/elementwise.ts';
import { mean, sum } from '../tensor/ops/reduce.ts';
import { chunk, permute, reshape } from '../tensor/ops/views.ts';
import * as F from '../nn/functional.ts';
import { Conv2d, Dropout, GroupNorm, Linear } from '../nn/layers.ts';
import { Module, ModuleList } from '../nn/module.ts';
import type { VaeConfig } from './config.ts';

/** Where and how parameters are made: device ('meta' to count without memory), dtype, init generator. */
export interface BuildOptions {
  device?: Device;
  dtype?: DType;
  generator?: Generator;
}

const topts = (o: BuildOptions) => ({ device: o.device, dtype: o.dtype, generator: o.generator });

/**
 * diffusers' ResnetBlock2D ("default" time-embedding norm, output scale 1):
 * h = conv1(silu(norm1(x))) [+ time_emb_proj(silu(temb))]; h = conv2(silu(norm2(h)));
 * out = shortcut(x) + h, with conv_shortcut a 1x1 conv when the channel count changes.
 */
export class ResnetBlock2D extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  timeEmbProj: Linear | null;
  norm2: GroupNorm;
  conv2: Conv2d;
  convShortcut: Conv2d | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    opts: BuildOptions & { groups: number; eps: number; tembChannels?: number | null },
  ) {
    super();
    const t = topts(opts), n = { eps: opts.eps, device: opts.device, dtype: opts.dtype };
    this.norm1 = this.module('norm1', new GroupNorm(opts.groups, inChannels, n));
    this.conv1 = this.module('conv1', new Conv2d(inChannels, outChannels, 3, { ...t, padding: 1 }));
    this.timeEmbProj = opts.tembChannels ? this.module('time_emb_proj', new Linear(opts.tembChannels, outChannels, t)) : null;
    this.norm2 = this.module('norm2', new GroupNorm(opts.groups, outChannels, n));
    this.conv2 = this.module('conv2', new Conv2d(outChannels, outChannels, 3, { ...t, padding: 1 }));
    this.convShortcut = inChannels !== outChannels ? this.module('conv_shortcut', new Conv2d(inChannels, outChannels, 1, t)) : null;
  }

  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    return tidy(() => {
      let h = this.conv1.forward(F.silu(this.norm1.forward(x)));
      if (this.timeEmbProj) {
        if (!temb) throw new ValueError('ResnetBlock2D: this block needs a time embedding');
        const e = this.timeEmbProj.forward(F.silu(temb));
        h = add(h, reshape(e, [e.shape[0], e.shape[1], 1, 1]));
      }
      h = this.conv2.forward(F.silu(this.norm2.forward(h)));
      const s = this.convShortcut ? this.convShortcut.forward(x) : x;
      return add(s, h);
    });
  }
}

/**
 * diffusers' Downsample2D with use_conv: a 3x3 stride-2 conv. padding 1 (the UNet) pads
 * symmetrically inside the conv; padding 0 (the VAE) first pads (0, 1, 0, 1), right and bottom.
 */
export class Downsample2D extends Module {
  conv: Conv2d;
  constructor(readonly channels: number, readonly padding: 0 | 1, opts: BuildOptions = {}) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, channels, 3, { ...topts(opts), stride: 2, padding }));
  }
  forward(x: Tensor): Tensor {
    if (this.padding === 1) return this.conv.forward(x);
    return tidy(() => this.conv.forward(pad(x, [0, 1, 0, 1])));
  }
}

/** diffusers' Upsample2D with use_conv: nearest x2 (or to `size`), then a 3x3 conv. */
export class Upsample2D extends Module {
  conv: Conv2d;
  constructor(readonly channels: number, opts: BuildOptions = {}) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, channels, 3, { ...topts(opts), padding: 1 }));
  }
  forward(x: Tensor, size?: [number, number]): Tensor {
    return tidy(() => this.conv.forward(F.upsampleNearest2d(x, size ? { size } : { scaleFactor: 2 })));
  }
}

/**
 * The VAE's mid-block attention (diffusers' Attention with one head over the pixels):
 * x + to_out.0(attn(to_q, to_k, to_v of group_norm(x) as [B, HW, C])).
 */
export class SpatialSelfAttention extends Module {
  groupNorm: GroupNorm;
  toQ: Linear;
  toK: Linear;
  toV: Linear;
  toOut: ModuleList;
  constructor(readonly channels: number, opts: BuildOptions & { groups: number; eps: number }) {
    super();
    const t = topts(opts);
    this.groupNorm = this.module('group_norm', new GroupNorm(opts.groups, channels, { eps: opts.eps, device: opts.device, dtype: opts.dtype }));
    this.toQ = this.module('to_q', new Linear(channels, channels, t));
    this.toK = this.module('to_k', new Linear(channels, channels, t));
    this.toV = this.module('to_v', new Linear(channels, channels, t));
    this.toOut = this.module('to_out', new ModuleList([new Linear(channels, channels, t), new Dropout(0)]));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [B, C, H, W] = x.shape;
      const h = reshape(permute(this.groupNorm.forward(x), [0, 2, 3, 1]), [B, H * W, C]);
      const a = F.scaledDotProductAttention(this.toQ.forward(h), this.toK.forward(h), this.toV.forward(h));
      const o = (this.toOut.get(0) as Linear).forward(a);
      return add(x, permute(reshape(o, [B, H, W, C]), [0, 3, 1, 2]));
    });
  }
}

/** UNetMidBlock2D without time embedding: resnets.0, attentions.0, resnets.1. */
export class VaeMidBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions: ModuleList<SpatialSelfAttention>;
  constructor(channels: number, opts: BuildOptions & { groups: number; eps: number }) {
    super();
    this.resnets = this.module('resnets', new ModuleList([new ResnetBlock2D(channels, channels, opts), new ResnetBlock2D(channels, channels, opts)]));
    this.attentions = this.module('attentions', new ModuleList([new SpatialSelfAttention(channels, opts)]));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.resnets.get(0).forward(x);
      return this.resnets.get(1).forward(this.attentions.get(0).forward(h));
    });
  }
}

class EncoderBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  downsamplers: ModuleList<Downsample2D> | null;
  constructor(inC: number, outC: number, layers: number, down: boolean, opts: BuildOptions & { groups: number; eps: number }) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, j) => new ResnetBlock2D(j === 0 ? inC : outC, outC, opts))));
    this.downsamplers = down ? this.module('downsamplers', new ModuleList([new Downsample2D(outC, 0, opts)])) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.downsamplers ? this.downsamplers.get(0).forward(h) : h;
    });
  }
}

class DecoderBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  upsamplers: ModuleList<Upsample2D> | null;
  constructor(inC: number, outC: number, layers: number, up: boolean, opts: BuildOptions & { groups: number; eps: number }) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, j) => new ResnetBlock2D(j === 0 ? inC : outC, outC, opts))));
    this.upsamplers = up ? this.module('upsamplers', new ModuleList([new Upsample2D(outC, opts)])) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.upsamplers ? this.upsamplers.get(0).forward(h) : h;
    });
  }
}

const VAE_EPS = 1e-6;

export class VaeEncoder extends Module {
  convIn: Conv2d;
  downBlocks: ModuleList<EncoderBlock>;
  midBlock: VaeMidBlock;
  convNormOut: GroupNorm;
  convOut: Conv2d;
  constructor(c: VaeConfig, opts: BuildOptions = {}) {
    super();
    const t = topts(opts), o = { ...opts, groups: c.groups, eps: VAE_EPS };
    const ch = c.channelMult.map((m) => m * c.blockChannels);
    this.convIn = this.module('conv_in', new Conv2d(c.inChannels, ch[0], 3, { ...t, padding: 1 }));
    this.downBlocks = this.module('down_blocks', new ModuleList(ch.map((out, i) => new EncoderBlock(i === 0 ? ch[0] : ch[i - 1], out, c.layersPerBlock, i < ch.length - 1, o))));
    const last = ch[ch.length - 1];
    this.midBlock = this.module('mid_block', new VaeMidBlock(last, o));
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.groups, last, { eps: VAE_EPS, device: opts.device, dtype: opts.dtype }));
    this.convOut = this.module('conv_out', new Conv2d(last, 2 * c.latentChannels, 3, { ...t, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.convIn.forward(x);
      for (const b of this.downBlocks) h = b.forward(h);
      h = this.midBlock.forward(h);
      return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
    });
  }
}

export class VaeDecoder extends Module {
  convIn: Conv2d;
  midBlock: VaeMidBlock;
  upBlocks: ModuleList<DecoderBlock>;
  convNormOut: GroupNorm;
  convOut: Conv2d;
  constructor(c: VaeConfig, opts: BuildOptions = {}) {
    super();
    const t = topts(opts), o = { ...opts, groups: c.groups, eps: VAE_EPS };
    const rev = c.channelMult.map((m) => m * c.blockChannels).reverse();
    this.convIn = this.module('conv_in', new Conv2d(c.latentChannels, rev[0], 3, { ...t, padding: 1 }));
    this.midBlock = this.module('mid_block', new VaeMidBlock(rev[0], o));
    this.upBlocks = this.module('up_blocks', new ModuleList(rev.map((out, i) => new DecoderBlock(i === 0 ? rev[0] : rev[i - 1], out, c.layersPerBlock + 1, i < rev.length - 1, o))));
    const first = rev[rev.length - 1];
    this.convNormOut = this.module('conv_norm_out', new GroupNorm(c.groups, first, { eps: VAE_EPS, device: opts.device, dtype: opts.dtype }));
    this.convOut = this.module('conv_out', new Conv2d(first, c.inChannels, 3, { ...t, padding: 1 }));
  }
  forward(z: Tensor): Tensor {
    return tidy(() => {
      let h = this.midBlock.forward(this.convIn.forward(z));
      for (const b of this.upBlocks) h = b.forward(h);
      return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
    });
  }
}

/**
 * diffusers' DiagonalGaussianDistribution: the encoder's moments split into mean and logvar
 * (clamped to [-30, 20]). Owns its tensors; dispose() frees them.
 */
export class DiagonalGaussian {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  constructor(moments: Tensor) {
    if (moments.ndim !== 4 || moments.shape[1] % 2 !== 0) throw new ShapeError('DiagonalGaussian: moments must be [B, 2C, h, w]');
    [this.mean, this.logvar] = tidy(() => {
      const [m, lv] = chunk(moments, 2, 1);
      return [m.contiguous(), clamp(lv, -30, 20)];
    });
  }
  /** exp(0.5 * logvar). */
  std(): Tensor {
    return tidy(() => exp(mul(this.logvar, 0.5)));
  }
  /** mean + std * N(0, 1) (the reparameterised sample; gradients reach mean and logvar). */
  sample(generator?: Generator): Tensor {
    return tidy(() => {
      const eps = randn(this.mean.shape as number[], { generator, dtype: this.mean.dtype, device: this.mean.device });
      return add(this.mean, mul(this.std(), eps));
    });
  }
  mode(): Tensor {
    return this.mean;
  }
  /** KL(q || N(0, I)) per sample: 0.5 * sum(mean^2 + var - 1 - logvar) over [C, h, w]; shape [B]. */
  kl(): Tensor {
    return tidy(() => mul(sum(sub(add(square(this.mean), exp(this.logvar)), add(this.logvar, 1)), [1, 2, 3]), 0.5));
  }
  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
  }
}

export interface VaeLossOptions {
  /** Draws the posterior sample; without one the default generator is used. */
  generator?: Generator;
  /** Weight of the KL term (LDM's kl-f8 uses 1e-6 with summed losses). Default 1e-6. */
  beta?: number;
  /** 'l1' (default, as LDM) or 'mse'. */
  reconstruction?: 'l1' | 'mse';
  /** Decode the posterior mean instead of a sample. */
  useMode?: boolean;
}

/** The three numbers of a VAE training step; loss = rec + beta * kl. */
export interface VaeLoss {
  loss: Tensor;
  /** Mean per-element reconstruction error (L1 or squared). */
  rec: Tensor;
  /** Mean over the batch of the per-sample KL (summed over the latent's elements), divided by the pixels per sample, so it is on rec's per-element scale. */
  kl: Tensor;
}

export class AutoencoderKL extends Module {
  encoder: VaeEncoder;
  decoder: VaeDecoder;
  quantConv: Conv2d;
  postQuantConv: Conv2d;
  constructor(readonly config: VaeConfig, opts: BuildOptions = {}) {
    super();
    const t = topts(opts);
    this.encoder = this.module('encoder', new VaeEncoder(config, opts));
    this.decoder = this.module('decoder', new VaeDecoder(config, opts));
    this.quantConv = this.module('quant_conv', new Conv2d(2 * config.latentChannels, 2 * config.latentChannels, 1, t));
    this.postQuantConv = this.module('post_quant_conv', new Conv2d(config.latentChannels, config.latentChannels, 1, t));
  }

  /** The spatial downsampling factor, 2^(levels - 1). */
  get factor(): number {
    return 2 ** (this.config.channelMult.length - 1);
  }

  /** Images [B, C, H, W] (H, W multiples of the factor) -> the posterior over latents [B, latent, H/f, W/f]. */
  encode(x: Tensor): DiagonalGaussian {
    if (x.ndim !== 4 || x.shape[1] !== this.config.inChannels) {
      throw new ShapeError(`AutoencoderKL.encode: expected images [B, ${this.config.inChannels}, H, W], got [${x.shape.join(', ')}]`);
    }
    const moments = tidy(() => this.quantConv.forward(this.encoder.forward(x)));
    const d = new DiagonalGaussian(moments);
    moments.dispose();
    return d;
  }

  /** Latents [B, latent, h, w] -> images [B, C, h*f, w*f]. */
  decode(z: Tensor): Tensor {
    if (z.ndim !== 4 || z.shape[1] !== this.config.latentChannels) {
      throw new ShapeError(`AutoencoderKL.decode: expected latents [B, ${this.config.latentChannels}, h, w], got [${z.shape.join(', ')}]`);
    }
    return tidy(() => this.decoder.forward(this.postQuantConv.forward(z)));
  }

  /** Images -> UNet latents: a posterior sample times scalingFactor (SD: 0.18215). */
  encodeLatents(x: Tensor, generator?: Generator): Tensor {
    const d = this.encode(x);
    try {
      return tidy(() => mul(d.sample(generator), this.config.scalingFactor));
    } finally {
      d.dispose();
    }
  }

  /** UNet latents -> images: decode(latents / scalingFactor) (SD: 1 / 0.18215). */
  decodeLatents(latents: Tensor): Tensor {
    return tidy(() => this.decode(mul(latents, 1 / this.config.scalingFactor)));
  }

  /** Reconstruction of x through a posterior sample (or its mean with useMode). */
  forward(x: Tensor, opts: { generator?: Generator; useMode?: boolean } = {}): Tensor {
    const d = this.encode(x);
    try {
      return tidy(() => this.decode(opts.useMode ? d.mode() : d.sample(opts.generator)));
    } finally {
      d.dispose();
    }
  }

  /** The training loss pieces: rec (L1 or MSE, per element) + beta * kl (per pixel of the input). */
  loss(x: Tensor, opts: VaeLossOptions = {}): VaeLoss {
    const beta = opts.beta ?? 1e-6;
    const kind = opts.reconstruction ?? 'l1';
    if (kind !== 'l1' && kind !== 'mse') throw new ValueError(`AutoencoderKL.loss: reconstruction must be 'l1' or 'mse', got ${String(kind)}`);
    const d = this.encode(x);
    try {
      return tidy(() => {
        const z = opts.useMode ? d.mode() : d.sample(opts.generator);
        const xr = this.decode(z);
        const diff = sub(xr, x);
        const rec = mean(kind === 'l1' ? abs(diff) : square(diff));
        const perPixel = x.shape[1] * x.shape[2] * x.shape[3];
        const kl = div(mean(d.kl()), perPixel);
        return { loss: add(rec, mul(kl, beta)), rec, kl };
      });
    } finally {
      d.dispose();
    }
  }
}

/** Images HxWx3 in [0,1] -> a [B, 3, H, W] batch in [-1, 1] (the VAE's range, Stable Diffusion's) on `device`. */
export function vaeInput(images: Float32Array[], device: Device = 'cpu'): Tensor {
  const side = Math.round(Math.sqrt(images[0].length / 3)), n = side * side;
  const out = new Float32Array(images.length * 3 * n);
  images.forEach((img, b) => {
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[(b * 3 + c) * n + i] = img[i * 3 + c] * 2 - 1;
  });
  return fromValues(out, [images.length, 3, side, side], 'f32', device);
}
