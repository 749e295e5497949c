// infer_fixture.ts: a training run folder of randomly initialised `micro` models, in the layout
// src/emu/train/run_dir.ts reads (run.json, tokenizer.json, <stage>/checkpoint.safetensors), so
// the inference tasks and the CLI can run end to end in tests. Outputs are nonsense; shapes,
// layouts, determinism and error paths are what the tests check.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator } from '../../src/tensor/random.ts';
import type { Module } from '../../src/nn/module.ts';
import { saveCheckpoint } from '../../src/nn/checkpoint.ts';
import { preset } from '../../src/emu/config.ts';
import { DESCRIBE_IMAGE, IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE } from '../../src/emu/data/dialogue.ts';
import { Emu } from '../../src/emu/emu.ts';
import { trainBPE } from '../../src/emu/tokenizer.ts';
import { UNet2DConditionModel } from '../../src/emu/unet.ts';
import { AutoencoderKL } from '../../src/emu/vae.ts';
import { RunDir, makeInstruct, type RunMeta, type StageName } from '../../src/emu/train/run_dir.ts';

export const MICRO = preset('micro');

const CORPUS = [
  IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE, DESCRIBE_IMAGE,
  'a small red circle to the left of a blue square', 'what colour is the circle? red', 'how many shapes are there? two',
  'the green triangle moves to the right', 'There are two dogs. There are three pandas.',
];

function save(run: RunDir, stage: StageName, prefix: string, m: Module): void {
  run.stageDir(stage);
  const model: Record<string, ReturnType<Module['stateDict']>[string]> = {};
  for (const [k, t] of Object.entries(m.stateDict())) model[`${prefix}.${k}`] = t;
  saveCheckpoint(run.checkpoint(stage), { model, extra: { stage, step: 0 } });
}

/**
 * Writes a micro run into a new temporary folder and returns its path. `stages` chooses which
 * checkpoints exist (default all: pretrain, instruct, vae, decoder).
 */
export function writeMicroRun(stages: readonly StageName[] = ['pretrain', 'instruct', 'vae', 'decoder']): string {
  const root = join(mkdtempSync(join(tmpdir(), 'emu-infer-')), 'run');
  const run = new RunDir(root);
  const meta: RunMeta = { config: MICRO, seed: 0, lora: { rank: 2, alpha: 2, dropout: 0 }, recipe: 'infer test fixture' };
  run.writeMeta(meta);
  trainBPE(CORPUS, { vocabSize: MICRO.llm.baseVocab }).save(run.tokenizerPath);
  if (stages.includes('pretrain')) save(run, 'pretrain', 'emu', new Emu(MICRO, { generator: new Generator(11) }));
  if (stages.includes('instruct')) {
    const emuI = new Emu(MICRO, { generator: new Generator(12) });
    makeInstruct(emuI, meta.lora);
    save(run, 'instruct', 'emu', emuI);
  }
  if (stages.includes('vae')) save(run, 'vae', 'vae', new AutoencoderKL(MICRO.vae, { generator: new Generator(13) }));
  if (stages.includes('decoder')) save(run, 'decoder', 'unet', new UNet2DConditionModel(MICRO.unet, { generator: new Generator(14) }));
  return root;
}

/** A deterministic square test image (HxWx3 in [0,1]) of side `size`. */
export function testImage(seed: number, size = 16): Float32Array {
  const out = new Float32Array(size * size * 3);
  for (let i = 0; i < out.length; i++) out[i] = ((i * 2654435761 + seed * 40503) >>> 0) % 1000 / 999;
  return out;
}
