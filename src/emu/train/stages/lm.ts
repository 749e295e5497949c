// lm.ts: stage `lm`, a text-only warm-up of the LLM (spec section 5: we have no pretrained
// LLaMA, so the tiny LLM first learns the language of the captions and documents: the
// pretraining mixture's text, recipe.ts textOnly). Questions and answers first appear in
// instruction tuning; the README ("What the tiny model learns") says what adding them here did.
// Next-token cross-entropy through Emu.loss on samples without images; only the LLM is trained
// and saved (as decoder.lm.*, the names it has inside Emu).
import { Emu } from '../../emu.ts';
import type { Sample } from '../../data/sample.ts';
import type { BatchSource, StageSpec } from '../loop.ts';
import { emuBatch, sampleLength } from '../samples.ts';
import { optimizer, type StageContext } from '../stage.ts';
import { PRETRAIN_HYPER } from './pretrain.ts';

export function lmStage(ctx: StageContext, data: BatchSource<Sample[]>): StageSpec<Sample[]> {
  const emu = new Emu(ctx.meta.config).to(ctx.device);
  emu.train();
  const { optimizer: opt, scheduler } = optimizer([{ params: emu.lm.parameters(), lrScale: 1 }], ctx.options, PRETRAIN_HYPER);
  return {
    name: 'lm', steps: ctx.options.steps, modules: { 'decoder.lm': emu.lm }, optimizer: opt, scheduler, data, generators: {},
    clipNorm: 1,
    step(samples) {
      const { ce } = emu.loss(emuBatch(emu, ctx.tok, samples), { regressionWeight: 0 });
      return { loss: ce };
    },
    count: (samples) => ({ items: samples.reduce((n, s) => n + sampleLength(emu.cfg, ctx.tok, s), 0), unit: 'tok' }),
  };
}
