// recipe.ts: the stage plans of the built-in recipes, and the data each stage reads.
//
//   micro  CI: the micro preset, a few steps of every stage (checks that each loss falls).
//   quick  the tiny preset with short stages: `npm start -- --quick`, about two minutes.
//   tiny   the demo: the tiny preset long enough to learn to caption, answer and draw
//          (`npm start`, at most 15 minutes on 2 cores).
// Learning rates follow spec section 5 (the paper's, scaled up for a small model trained for
// minutes); the pretrain lr is the LLM group's. Measured on the tiny preset (CE on held-out
// captions with the right image vs a wrong one): at the paper's ratio vision : LLM : C-Former =
// 4 : 3 : 10 with lr 1.5e-3 the visual embeddings collapsed to image-independent ones within 50
// steps (gap 0.00); at 1 : 3 : 3, with a captioning phase first (stages/pretrain.ts), the gap
// grew to 0.17 by step 1500. The clip warm-up is cheap per image: with random batches, after 150
// steps its tower matched a held-out scene to its caption among 64 in 3% of cases (chance 1.6%),
// after 800 in 47%, but it told shapes apart by little more than chance (stages/clip.ts). It now
// trains on scenes with their kind twins, 1600 steps at lr 1e-3 (about 65 s): the pretrained
// C-Former's output then tells a single shape's kind 73% of the time (linear probe; 43% before),
// and Emu-I's captions and few-shot captions improved (figures below). The vae stage's 600 steps of 16 are what it takes to
// reconstruct the shapes (stages/vae.ts). The decoder draws from 2048 precomputed pairs, not 512
// (where its loss fell to 0.025, a sign of a memorised pool; not compared with the new VAE), and
// trains 2000 steps: its pictures of 16 held-out prompts read back colour 23% after 600 steps and
// 62% after 2000 (guidance 3). Emu-I uses the reference's LoRA rank 16
// (alpha 16) for 600 steps at lr 5e-3: with rank 4, 300 steps at 2e-3 it answered size
// questions with colours (0% of 42) and VQA overall 41%, with this 49% (288 held-out questions).
// Pretraining runs 1500 steps (it had been cut to 1200 to fit the old budget): one run each, at
// 1200 -> 1500 held-out VQA went 45.0% -> 54.2% (majority 51.7%), few-shot captioning at k = 4 / 8
// 71 / 35 -> 107 / 87, Emu-I captions 155 -> 165, but digit captions 59 -> 13 and the pretrained
// model's zero-shot captions 188 -> 162. Its batch is 16, the top of the spec's 8-16: twice the
// captions of batch 8 for 1.8x the time, and the LLM read a lone shape's kind 66% of the time
// instead of 42% (300 scenes); with Emu-I's LoRA-only fix (run_dir.ts makeInstruct) held-out VQA
// 53.8% -> 61.7%, Emu-I captions 174 -> 225, digit captions 46 -> 190, few-shot k = 2 / 4 / 8
// 111 / 136 / 99 -> 144 / 157 / 133, generated digits read back 10% -> 27%, shapes' colour 64% ->
// 52%, position 50% -> 70% (one run each). Measured with this recipe (`emu train --recipe tiny`
// then `emu eval`, what `npm start` runs): 10 min 32 s on a 2-core AMD EPYC with nothing else
// running (stages: clip 48 s, lm 13 s, pretrain 164 s, vae 126 s, decoder 87 s, instruct 141 s;
// the evaluation about 37 s; batch 8 took 9 min 14 s there); expect about 10% between runs.
// Pretraining keeps the clip stage's tower frozen (vision share 0; the paper trains it at
// 4 : 3 : 10). Trained jointly at 1 : 3 : 3 it lost the shape kinds the clip stage taught it: the
// report's probes of the visual embeddings read a lone shape's kind 74% (flattened) / 48% (mean)
// and the LLM 28%; frozen, 92% / 74% and 43%, the pretrained model's zero-shot captions 183.5 ->
// 248.5 and few-shot k = 2 / 4 89 -> 111 / 112 -> 136, Emu-I's VQA 57.9% -> 53.8% and digit
// captions 80 -> 46 (one run each).
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
