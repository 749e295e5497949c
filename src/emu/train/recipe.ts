// recipe.ts: the stage plans of the built-in recipes, and the data each stage reads.
//
//   micro  CI: the micro preset, a few steps of every stage (checks that each loss falls).
//   quick  the tiny preset with short stages: `npm start -- --quick`, about a minute; a smoke run.
//   tiny   the demo: the tiny preset long enough to learn to caption, answer and draw
//          (`npm start`, at most 15 minutes on 2 cores: 10 min 32 s on a 2-core AMD EPYC).
//
// Learning rates follow spec section 5, scaled up for a small model trained for minutes; the
// pretrain lr is the LLM group's. Why the tiny recipe's other numbers are what they are (one run
// each; the README's "What the tiny model learns" has the whole story and the current figures):
// - clip: 1600 steps at lr 1e-3 on scenes with their kind twins (stages/clip.ts). With random
//   batches the tower told shapes apart by little more than chance; now the pretrained C-Former's
//   output tells a lone shape's kind 73% of the time (linear probe; 43% before).
// - pretrain ratio vision : LLM : C-Former = 0 : 3 : 3, not the paper's 4 : 3 : 10. At 4 : 3 : 10
//   the visual embeddings collapsed to image-independent ones within 50 steps (the CE gap between
//   the right image and a wrong one fell to 0.00); trained jointly at 1 : 3 : 3 the tower lost the
//   kinds the clip stage taught it (probe 92% frozen, 74% trained), so it stays frozen.
// - pretrain 1500 steps of batch 16 (the top of the spec's 8-16): against 1200 steps, held-out
//   VQA and few-shot captioning rose while digit and zero-shot captions fell; against batch 8
//   (1.8x faster) the LLM read a lone shape's kind 66% of the time instead of 42%.
// - vae 600 steps of 16: what it takes to reconstruct the shapes (stages/vae.ts).
// - decoder: a pool of 2048 precomputed pairs (with 512 its loss fell to 0.025, a memorised pool)
//   and 2000 steps (colour read back from 16 held-out prompts: 23% after 600 steps, 62% after 2000).
// - instruct: the reference's LoRA rank 16 (alpha 16), 600 steps at lr 5e-3; with rank 4 and 300
//   steps at 2e-3, Emu-I answered size questions with colours.
import { ValueError } from '../../tensor/errors.ts';
import type { DataSource, MixtureEntry } from '../data/sources.ts';
import { mnistSource, seededSource } from '../data/sources.ts';
import { dialogueSample, documentSample, shapesPair, shapesTwins, storyboardSample, videoPair } from '../data/layouts.ts';
import type { Sample } from '../data/sample.ts';
import type { StageName } from './run_dir.ts';
import type { StageOptions } from './stage.ts';

export interface Recipe {
  name: string;
  preset: 'micro' | 'tiny';
  stages: Record<StageName, StageOptions>;
  /** Pretraining mixture ratios: shapes pairs, MNIST pairs, documents, video pairs, storyboards. */
  mixture: [number, number, number, number, number];
  /** Pretraining learning-rate ratio vision : LLM : causal transformer (the paper's is 4 : 3 : 10); vision 0 freezes the tower. */
  pretrainRatio: [number, number, number];
  /** Training pairs whose conditions the decoder stage precomputes. */
  decoderPool: number;
  checkpointEvery: number;
}

const stage = (steps: number, batch: number, lr: number, warmup = 0.2): StageOptions => ({ steps, batch, lr, warmup });

export const RECIPES: Record<string, Recipe> = {
  micro: {
    name: 'micro', preset: 'micro', pretrainRatio: [4, 3, 10], checkpointEvery: 4, decoderPool: 8, mixture: [4, 4, 2, 1, 1],
    stages: {
      clip: stage(6, 4, 2e-3), lm: stage(6, 4, 3e-3), pretrain: stage(8, 4, 2e-3),
      vae: stage(6, 4, 2e-3), decoder: stage(6, 4, 2e-3), instruct: stage(10, 4, 3e-3),
    },
  },
  quick: {
    name: 'quick', preset: 'tiny', pretrainRatio: [1, 3, 3], checkpointEvery: 50, decoderPool: 64, mixture: [4, 4, 2, 1, 1],
    stages: {
      clip: stage(20, 16, 2e-3), lm: stage(30, 8, 2e-3), pretrain: stage(200, 8, 1.5e-3, 0.05),
      vae: stage(30, 16, 2e-3), decoder: stage(30, 16, 1e-3), instruct: stage(30, 8, 2e-3),
    },
  },
  tiny: {
    name: 'tiny', preset: 'tiny', pretrainRatio: [0, 3, 3], checkpointEvery: 100, decoderPool: 2048, mixture: [4, 4, 2, 1, 1],
    stages: {
      clip: stage(1600, 32, 1e-3), lm: stage(150, 16, 2e-3), pretrain: stage(1500, 16, 1.5e-3, 0.05),
      vae: stage(600, 16, 2e-3), decoder: stage(2000, 16, 1e-3), instruct: stage(600, 8, 5e-3),
    },
  },
};

export function recipe(name: string): Recipe {
  const r = RECIPES[name];
  if (!r) throw new ValueError(`unknown recipe '${name}'; choose one of ${Object.keys(RECIPES).join(', ')}`);
  return structuredClone(r);
}

/** The pretraining mixture (spec 3.1's five sources on built-in data) with the recipe's ratios. */
export function pretrainSources(r: Recipe): MixtureEntry[] {
  const [pairs, digits, docs, videos, boards] = r.mixture;
  return [
    { source: seededSource('shapes-pairs', (s) => shapesPair(s)), ratio: pairs },
    { source: mnistSource('train'), ratio: digits },
    { source: seededSource('documents', (s) => documentSample(s)), ratio: docs },
    { source: seededSource('video-pairs', (s) => videoPair(s)), ratio: videos },
    { source: seededSource('storyboards', (s) => storyboardSample(s)), ratio: boards },
  ];
}

/** Captioning pairs (image first) of shapes and digits: the first phase of pretraining. */
export function captionSources(): MixtureEntry[] {
  return [
    { source: seededSource('shapes-captions', (s) => shapesPair(s, { imageFirst: true })), ratio: 1 },
    { source: mnistSource('train', { imageFirst: true }), ratio: 1 },
  ];
}

/**
 * The clip stage's samples: shapes scenes each with its kind twin (two pairs that differ only in
 * the shapes' kinds, stages/clip.ts) and captioned digits (image first), 1 : 1 per batch.
 */
export function clipSources(): MixtureEntry[] {
  return [
    { source: seededSource('shapes-twins', (s) => shapesTwins(s)), ratio: 1 },
    { source: mnistSource('train', { imageFirst: true }), ratio: 1 },
  ];
}

/** Image-text pairs only (decoder stage): shapes and digits, half each. */
export function pairSources(): MixtureEntry[] {
  return [
    { source: seededSource('shapes-pairs', (s) => shapesPair(s)), ratio: 1 },
    { source: mnistSource('train'), ratio: 1 },
  ];
}

/** The vae stage's images: shapes and digits 3 : 1 (grey digits crowd out colour; stages/vae.ts). */
export function vaeSources(): MixtureEntry[] {
  return [
    { source: seededSource('shapes-pairs', (s) => shapesPair(s)), ratio: 3 },
    { source: mnistSource('train'), ratio: 1 },
  ];
}

/** Emu-I dialogues: about shapes scenes (3 in 5), clips (1 in 5) and MNIST digits (1 in 5). */
export function instructSources(): MixtureEntry[] {
  return [
    { source: seededSource('image-dialogues', (s) => dialogueSample(s)), ratio: 3 },
    { source: seededSource('video-dialogues', (s) => dialogueSample(s, { video: true })), ratio: 1 },
    { source: mnistSource('train', { dialogues: true }), ratio: 1 },
  ];
}

/** The same source with every image and video dropped (the lm stage's text). */
export function textOnly(source: DataSource): DataSource {
  return {
    name: `${source.name}-text`, size: source.size,
    get: (i): Sample => {
      const s = source.get(i);
      return { ...s, parts: s.parts.filter((p) => 'text' in p) };
    },
  };
}

/** What a config file may change in a recipe. */
export interface RecipeOverrides {
  stages?: Partial<Record<StageName, Partial<StageOptions>>>;
  mixture?: Recipe['mixture'];
  decoderPool?: number;
  checkpointEvery?: number;
}

/** The recipe with a config file's overrides applied; unknown keys are an error, not ignored. */
export function applyOverrides(r: Recipe, o: RecipeOverrides): Recipe {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ValueError('recipe config: expected a JSON object');
  const known = ['stages', 'mixture', 'decoderPool', 'checkpointEvery'];
  const bad = Object.keys(o).filter((k) => !known.includes(k));
  if (bad.length) throw new ValueError(`recipe config: unknown key${bad.length > 1 ? 's' : ''} ${bad.join(', ')} (known: ${known.join(', ')})`);
  const out = structuredClone(r);
  for (const [name, so] of Object.entries(o.stages ?? {})) {
    if (!(name in out.stages)) throw new ValueError(`recipe config: unknown stage '${name}' (stages: ${Object.keys(out.stages).join(', ')})`);
    const badOpt = Object.keys(so ?? {}).filter((k) => !['steps', 'batch', 'lr', 'warmup'].includes(k));
    if (badOpt.length) throw new ValueError(`recipe config: stages.${name}: unknown option ${badOpt.join(', ')} (options: steps, batch, lr, warmup)`);
    Object.assign(out.stages[name as StageName], so);
  }
  if (o.mixture !== undefined) {
    if (!Array.isArray(o.mixture) || o.mixture.length !== 5 || !o.mixture.every((x) => Number.isInteger(x) && x >= 1)) {
      throw new ValueError('recipe config: mixture must be 5 positive integers (shapes pairs, MNIST pairs, documents, video pairs, storyboards)');
    }
    out.mixture = [...o.mixture];
  }
  for (const k of ['decoderPool', 'checkpointEvery'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1) throw new ValueError(`recipe config: ${k} must be a positive integer, got ${String(v)}`);
    out[k] = v;
  }
  return out;
}
