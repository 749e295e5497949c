// pretrain.ts: stage `pretrain`, Emu's unified objective (spec 2.1 and 3.1): every module trained
// end to end on the four sequence layouts (image-text pairs with the image before or after the
// text, interleaved documents, video-text pairs, interleaved video-text), loss = CE on text +
// regression of the next visual embedding. AdamW (0.9, 0.98), eps 1e-6, weight decay 0.05;
// learning-rate groups vision : LLM : causal transformer = 4 : 3 : 10; warm-up then cosine.
// Starts from the clip stage's vision tower and the lm stage's LLM when those have run.
//
// Captioning first. With the regression on from step 0, the tiny model's visual embeddings
// collapse: the C-Former learns an image-independent output (a constant is the easiest thing to
// regress, and the warmed-up LLM predicts captions well without the image), and CE on held-out
// captions stops depending on the image within ~50 steps. So the first CAPTION_WARMUP of the
// steps train on captioning pairs (image first) with CE only (regression weight 0), as Emu2's
// first stage does, until the model reads the image; the unified objective on the full mixture
// follows (train.ts gives this stage the two phases' data). The learning-rate groups are
// vision : LLM : C-Former in the recipe's ratio (the paper's 4 : 3 : 10 by default; the tiny
// recipe uses 1 : 3 : 3, see recipe.ts); the recipe's lr is the LLM's.
import { Emu } from '../../emu.ts';
import { EVA_UNUSED_PREFIXES } from '../../vision.ts';
import type { Sample } from '../../data/sample.ts';
import type { StageSpec } from '../loop.ts';
import { emuBatch, sampleLength } from '../samples.ts';
import { optimizer, type StageContext } from '../stage.ts';
import type { BatchSource } from '../loop.ts';

export const PRETRAIN_HYPER = { betas: [0.9, 0.98] as [number, number], eps: 1e-6, weightDecay: 0.05 };

/** The pretrained Emu's starting point: random, then the earlier stages' towers where present. */
export function initialEmu(ctx: StageContext): Emu {
  const emu = new Emu(ctx.meta.config);
  if (ctx.run.has('clip')) {
    ctx.run.load('clip', 'clip', emu.visual, (n) => {
      if (!n.startsWith('visual.')) return null;
      const k = n.slice('visual.'.length);
      return EVA_UNUSED_PREFIXES.some((p) => k.startsWith(p)) ? null : k;
    });
  }
  if (ctx.run.has('lm')) ctx.run.load('lm', 'decoder.lm', emu.lm);
  return emu;
}

/** Fraction of the pretrain steps trained with CE only before the regression loss joins. */
export const CAPTION_WARMUP = 0.4;

/** The paper's learning-rate ratio vision : LLM : causal transformer. */
export const PAPER_LR_RATIO: [number, number, number] = [4, 3, 10];

export function pretrainStage(ctx: StageContext, data: BatchSource<Sample[]>, ratio: readonly [number, number, number] = PAPER_LR_RATIO): StageSpec<Sample[]> {
  const emu = initialEmu(ctx).to(ctx.device);
  emu.train();
  const vision = [...emu.visual.parameters(), ...emu.ln_visual.parameters()];
  // A vision share of 0 freezes the tower (and ln_visual) at the clip stage's weights (recipe.ts).
  if (ratio[0] === 0) for (const p of vision) p.requiresGrad = false;
  const { optimizer: opt, scheduler } = optimizer([
    { params: vision, lrScale: ratio[0] / ratio[1] },
    { params: emu.lm.parameters(), lrScale: 1 },
    { params: emu.cformer.parameters(), lrScale: ratio[2] / ratio[1] },
  ], ctx.options, PRETRAIN_HYPER);
  return {
    name: 'pretrain', steps: ctx.options.steps, modules: { emu }, optimizer: opt, scheduler, data, generators: {},
    clipNorm: 1,
    step(samples) {
      const captioning = scheduler.lastStep < CAPTION_WARMUP * ctx.options.steps;
      const { loss, ce, mse } = emu.loss(emuBatch(emu, ctx.tok, samples), captioning ? { regressionWeight: 0 } : {});
      return { loss, ce, mse };
    },
    count: (samples) => ({ items: samples.reduce((n, s) => n + sampleLength(emu.cfg, ctx.tok, s), 0), unit: 'tok' }),
  };
}
