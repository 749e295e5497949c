// instruct.ts: stage `instruct`, Emu-I (spec 3.3): the pretrained Emu frozen, two vocabulary
// rows added for [USER] and [ASSISTANT] (mean-initialised), LoRA on the LLM's q, k, v, o, and
// the cross-entropy on answer tokens only (each answer and the </s> closing its turn) of
// instruction dialogues built on the shapes world, images and videos.
import { Emu } from '../../emu.ts';
import type { Sample } from '../../data/sample.ts';
import type { BatchSource, StageSpec } from '../loop.ts';
import { makeInstruct } from '../run_dir.ts';
import { emuBatch, sampleLength } from '../samples.ts';
import { optimizer, stageGenerator, type StageContext } from '../stage.ts';
import { PRETRAIN_HYPER } from './pretrain.ts';

export function instructStage(ctx: StageContext, data: BatchSource<Sample[]>): StageSpec<Sample[]> {
  const emu = new Emu(ctx.meta.config);
  ctx.run.load('pretrain', 'emu', emu);
  // One generator initialises LoRA's A matrices and then draws its dropout masks; it is saved
  // with the checkpoint so a resumed run draws the same masks.
  const dropout = stageGenerator(ctx, 1);
  makeInstruct(emu, ctx.meta.lora, dropout);
  emu.to(ctx.device).train();
  const { optimizer: opt, scheduler } = optimizer([{ params: emu.parameters(), lrScale: 1 }], ctx.options, { ...PRETRAIN_HYPER, weightDecay: 0 });
  return {
    name: 'instruct', steps: ctx.options.steps, modules: { emu }, optimizer: opt, scheduler, data, generators: { dropout },
    clipNorm: 1,
    step(samples) {
      const { ce } = emu.loss(emuBatch(emu, ctx.tok, samples), { regressionWeight: 0 });
      return { loss: ce };
    },
    count: (samples) => ({ items: samples.reduce((n, s) => n + sampleLength(emu.cfg, ctx.tok, s), 0), unit: 'tok' }),
  };
}
