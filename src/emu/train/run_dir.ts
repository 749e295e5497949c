// run_dir.ts: the on-disk layout of a training run, and loading a trained Emu back from it.
//
//   runs/<name>/run.json                   the model config, the recipe and the seed
//   runs/<name>/tokenizer.json             the BPE tokenizer trained on the run's text
//   runs/<name>/<stage>/checkpoint.safetensors   weights + optimizer + RNG + data position
//   runs/<name>/<stage>/metrics.jsonl      one record per step
//   runs/<name>/<stage>/loss.png           the stage's loss curves
//
// Stages hand weights to each other through their checkpoints, under the names the stage gave
// them: clip saves `clip.*` (a ClipModel), lm `decoder.lm.*`, pretrain and instruct `emu.*`,
// vae `vae.*`, decoder `unet.*`. loadTrained() rebuilds what the CLI and the evaluation need:
// the pretrained Emu, Emu-I (the pretrained weights, two more vocabulary rows and LoRA on
// q, k, v, o), the VAE and the UNet, each only if its stage has run.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, ValueError } from '../../tensor/errors.ts';
import type { Generator } from '../../tensor/random.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { Module } from '../../nn/module.ts';
import { applyLoRA } from '../../nn/lora.ts';
import { loadSafetensors } from '../../nn/safetensors.ts';
import { vocabSize, type EmuConfig } from '../config.ts';
import { Emu } from '../emu.ts';
import { Tokenizer } from '../tokenizer.ts';
import { UNet2DConditionModel } from '../unet.ts';
import { AutoencoderKL } from '../vae.ts';
import { writeFileAtomic } from '../../nn/atomic_write.ts';
import { CHECKPOINT_FILE } from './loop.ts';

export const STAGES = ['clip', 'lm', 'pretrain', 'vae', 'decoder', 'instruct'] as const;
export type StageName = (typeof STAGES)[number];

/** Emu-I's LoRA: rank, alpha and dropout (spec section 5: r = 4, alpha = 4 for the tiny model). */
export interface LoraSpec {
  rank: number;
  alpha: number;
  dropout: number;
}

/** LoRA targets: the LLM's self-attention projections q, k, v, o in every layer. */
export const LORA_TARGETS = /self_attn\.(q|k|v|o)_proj$/;

export interface RunMeta {
  config: EmuConfig;
  seed: number;
  lora: LoraSpec;
  /** The recipe the run was made with (free-form, for the report). */
  recipe: unknown;
}

export class RunDir {
  constructor(readonly root: string) {
    if (typeof root !== 'string' || root === '') throw new ValueError('RunDir: root must be a non-empty path');
  }

  stageDir(stage: StageName): string {
    const d = join(this.root, stage);
    mkdirSync(d, { recursive: true });
    return d;
  }

  checkpoint(stage: StageName): string {
    return join(this.root, stage, CHECKPOINT_FILE);
  }

  has(stage: StageName): boolean {
    return existsSync(this.checkpoint(stage));
  }

  get tokenizerPath(): string {
    return join(this.root, 'tokenizer.json');
  }

  writeMeta(meta: RunMeta): void {
    mkdirSync(this.root, { recursive: true });
    writeFileAtomic(join(this.root, 'run.json'), [Buffer.from(JSON.stringify(meta, null, 2) + '\n')]);
  }

  readMeta(): RunMeta {
    const path = join(this.root, 'run.json');
    if (!existsSync(path)) throw new CheckpointError(`${this.root} is not a training run (no run.json); train one with: emu train --recipe tiny --out ${this.root}`);
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as RunMeta;
    } catch (e) {
      throw new CheckpointError(`${path}: not valid JSON (${(e as Error).message})`);
    }
  }

  tokenizer(): Tokenizer {
    return Tokenizer.load(this.tokenizerPath);
  }

  /**
   * Loads the weights `stage` saved under `prefix` into `into`, renamed by `rename` (return null
   * to skip a tensor). Strict: every tensor of `into` must be found.
   */
  load(stage: StageName, prefix: string, into: Module, rename: (name: string) => string | null = (n) => n): void {
    if (!this.has(stage)) throw new CheckpointError(`${this.root}: stage '${stage}' has not been trained (no ${this.checkpoint(stage)})`);
    const { tensors } = loadSafetensors(this.checkpoint(stage));
    const chosen = new Map<string, Tensor>();
    const p = `model.${prefix}.`;
    for (const [k, t] of tensors) {
      const name = k.startsWith(p) ? rename(k.slice(p.length)) : null;
      if (name === null) t.dispose();
      else chosen.set(name, t);
    }
    try {
      if (chosen.size === 0) throw new CheckpointError(`${this.checkpoint(stage)} holds no weights under '${prefix}.'`);
      into.loadStateDict(chosen);
    } finally {
      for (const t of chosen.values()) t.dispose();
    }
  }
}

/**
 * Emu-I built on a pretrained Emu: two more vocabulary rows, LoRA on q, k, v, o, and nothing
 * else trainable (spec 3.3): the vision tower, ln_visual and the C-Former are frozen here, since
 * applyLoRA freezes only the module it is given (the LLM). Left trainable, instruction tuning
 * moved them at its lr of 5e-3 and undid the clip stage's shape kinds (held-out VQA "what
 * shape" 39% of 85 with them trained, 53% frozen).
 */
export function makeInstruct(emu: Emu, lora: LoraSpec, generator?: Generator): void {
  emu.requiresGrad_(false);
  emu.lm.resizeTokenEmbeddings(vocabSize(emu.cfg.llm, true));
  applyLoRA(emu.lm, { targets: LORA_TARGETS, rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, generator });
}

export interface Trained {
  meta: RunMeta;
  tok: Tokenizer;
  /** The pretrained Emu (generation of images, in-context prompts). */
  emu: Emu;
  /** Emu-I, when the instruct stage has run (captioning, VQA, chat). */
  emuI: Emu | null;
  vae: AutoencoderKL | null;
  unet: UNet2DConditionModel | null;
}

/** Everything a run has trained, in eval mode. */
export function loadTrained(root: string): Trained {
  const run = new RunDir(root);
  const meta = run.readMeta();
  const tok = run.tokenizer();
  const emu = new Emu(meta.config);
  run.load('pretrain', 'emu', emu);
  emu.eval();
  let emuI: Emu | null = null;
  if (run.has('instruct')) {
    emuI = new Emu(meta.config);
    makeInstruct(emuI, meta.lora);
    run.load('instruct', 'emu', emuI);
    emuI.eval();
  }
  let vae: AutoencoderKL | null = null, unet: UNet2DConditionModel | null = null;
  if (run.has('decoder')) {
    vae = new AutoencoderKL(meta.config.vae);
    run.load('vae', 'vae', vae);
    unet = new UNet2DConditionModel(meta.config.unet);
    run.load('decoder', 'unet', unet);
    vae.eval();
    unet.eval();
  }
  return { meta, tok, emu, emuI, vae, unet };
}
