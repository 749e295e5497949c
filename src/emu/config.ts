// config.ts: the sizes of every Emu component, and the three presets.
//
//   emu-14b  the released model (shared/reference/emu-architecture.md section 1): EVA01-CLIP-g/14,
//            a 12-layer T5-base-style Causal Transformer with 32 queries, LLaMA-13B, and the
//            SD-1.5-layout UNet whose cross-attention reads the 5120-wide regressed embeddings.
//            Instantiate it on the `meta` device to count parameters without memory.
//   tiny     the CPU demo (minutes on 2 cores), same structure, sizes from the spec's section 5.
//   micro    unit tests and parity fixtures (seconds).
// Structure never changes between presets; only sizes do.
import { ValueError } from '../tensor/errors.ts';

export interface VisionConfig {
  imageSize: number;
  patchSize: number;
  width: number;
  layers: number;
  heads: number;
  mlpDim: number;
  /** LayerNorm eps of the blocks and of Emu's ln_visual. */
  eps: number;
}

export interface CformerConfig {
  /** N, the learned queries per image (= visual embeddings per image). */
  numQueries: number;
  layers: number;
  dModel: number;
  heads: number;
  dKv: number;
  dFF: number;
  relBuckets: number;
  relMaxDistance: number;
  dropout: number;
  eps: number;
}

export interface LlmConfig {
  /** Base vocabulary of the tokenizer (special tokens are appended after it). */
  baseVocab: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  ropeBase: number;
  eps: number;
}

export interface UnetConfig {
  /** Channels of the latent the UNet denoises (the VAE's latent channels). */
  inChannels: number;
  /** Channels of the first level; level i has blockChannels * channelMult[i]. */
  blockChannels: number;
  channelMult: number[];
  layersPerBlock: number;
  /** Levels (by index) that have transformer blocks. */
  attentionLevels: number[];
  heads: number;
  groups: number;
  /** Width of the condition vectors the cross-attention reads (the LLM width). */
  crossAttentionDim: number;
}

export interface VaeConfig {
  inChannels: number;
  latentChannels: number;
  blockChannels: number;
  channelMult: number[];
  layersPerBlock: number;
  groups: number;
  /** Latents are multiplied by this before the UNet sees them (SD: 0.18215). */
  scalingFactor: number;
}

export interface EmuConfig {
  name: string;
  vision: VisionConfig;
  cformer: CformerConfig;
  llm: LlmConfig;
  unet: UnetConfig;
  vae: VaeConfig;
  /** Weight of the regression loss: total = CE + lambda * MSE. */
  regressionWeight: number;
}

/** Special tokens appended after the base vocabulary, in the reference order. */
export const SPECIAL_TOKENS = ['[PAD]', '[IMG]', '[/IMG]', '<image>', '[USER]', '[ASSISTANT]'] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

const emu14b: EmuConfig = {
  name: 'emu-14b',
  vision: { imageSize: 224, patchSize: 14, width: 1408, layers: 40, heads: 16, mlpDim: 6144, eps: 1e-6 },
  cformer: { numQueries: 32, layers: 12, dModel: 768, heads: 12, dKv: 64, dFF: 3072, relBuckets: 32, relMaxDistance: 128, dropout: 0.1, eps: 1e-6 },
  llm: { baseVocab: 32000, hidden: 5120, layers: 40, heads: 40, intermediate: 13824, maxPositions: 2048, ropeBase: 10000, eps: 1e-6 },
  unet: {
    inChannels: 4, blockChannels: 320, channelMult: [1, 2, 4, 4], layersPerBlock: 2, attentionLevels: [0, 1, 2], heads: 8, groups: 32,
    crossAttentionDim: 5120,
  },
  vae: { inChannels: 3, latentChannels: 4, blockChannels: 128, channelMult: [1, 2, 4, 4], layersPerBlock: 2, groups: 32, scalingFactor: 0.18215 },
  regressionWeight: 1,
};

const tiny: EmuConfig = {
  name: 'tiny',
  vision: { imageSize: 32, patchSize: 8, width: 64, layers: 2, heads: 4, mlpDim: 256, eps: 1e-6 },
  cformer: { numQueries: 8, layers: 2, dModel: 64, heads: 4, dKv: 16, dFF: 128, relBuckets: 8, relMaxDistance: 16, dropout: 0, eps: 1e-6 },
  llm: { baseVocab: 512, hidden: 128, layers: 4, heads: 4, intermediate: 352, maxPositions: 512, ropeBase: 10000, eps: 1e-6 },
  unet: { inChannels: 4, blockChannels: 32, channelMult: [1, 2], layersPerBlock: 1, attentionLevels: [1], heads: 4, groups: 8, crossAttentionDim: 128 },
  vae: { inChannels: 3, latentChannels: 4, blockChannels: 32, channelMult: [1, 2, 2], layersPerBlock: 1, groups: 8, scalingFactor: 1 },
  regressionWeight: 1,
};

const micro: EmuConfig = {
  name: 'micro',
  vision: { imageSize: 16, patchSize: 8, width: 32, layers: 2, heads: 2, mlpDim: 64, eps: 1e-6 },
  cformer: { numQueries: 4, layers: 2, dModel: 32, heads: 2, dKv: 16, dFF: 64, relBuckets: 8, relMaxDistance: 16, dropout: 0, eps: 1e-6 },
  llm: { baseVocab: 320, hidden: 64, layers: 2, heads: 4, intermediate: 176, maxPositions: 256, ropeBase: 10000, eps: 1e-6 },
  unet: { inChannels: 4, blockChannels: 16, channelMult: [1, 2], layersPerBlock: 1, attentionLevels: [1], heads: 2, groups: 4, crossAttentionDim: 64 },
  vae: { inChannels: 3, latentChannels: 4, blockChannels: 16, channelMult: [1, 2], layersPerBlock: 1, groups: 4, scalingFactor: 1 },
  regressionWeight: 1,
};

export const PRESETS: Record<string, EmuConfig> = { 'emu-14b': emu14b, tiny, micro };

/** A deep copy of preset `name`. */
export function preset(name: string): EmuConfig {
  const p = PRESETS[name];
  if (!p) throw new ValueError(`preset: unknown preset ${String(name)}; choose one of ${Object.keys(PRESETS).join(', ')}`);
  return structuredClone(p);
}

/** The LLM's full vocabulary: the base vocabulary plus the special tokens (32004 / 32006 for Emu-14B). */
export function vocabSize(c: LlmConfig, instruct = false): number {
  return c.baseVocab + (instruct ? 6 : 4);
}
