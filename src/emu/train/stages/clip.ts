// clip.ts: stage `clip`, a CLIP-style warm-up of the vision tower (spec section 5: no pretrained
// EVA-CLIP exists at this size). The EVA tower with a projection head and a small text tower
// learn a shared embedding from matching (image, caption) pairs with the symmetric contrastive
// loss; the pretrain stage then takes the tower without its head and final norm, as Emu takes
// EVA-CLIP's.
//
// Hard negatives. Each shapes sample is a scene and its kind twin (the same scene with every
// shape's kind changed, data/layouts.ts shapesTwins), split into two pairs in the same batch,
// so the loss can only separate them by shape. With random batches the tower gets by on colour,
// background and position. Measured on shapes-only batches of 32 pairs, with a linear probe on
// the tower's CLS and mean token (held-out single-shape scenes, chance 33%): the kind was
// readable 47% of the time after 800 steps of random pairs, 54-58% with twins, 83% with twins for
// 1600 steps at lr 1e-3, 93% for 3200 (colour 100% throughout). The recipe takes 1600: 3200 did
// not change what the pretrained LLM reads (README, "What the tiny model learns").
import { fromValues } from '../../../tensor/ops/creation.ts';
import { stack } from '../../../tensor/ops/views.ts';
import { ShapeError } from '../../../tensor/errors.ts';
import { ClipModel, clipTextConfigFor } from '../../clip.ts';
import type { BatchSource, StageSpec } from '../loop.ts';
import { imageTensor } from '../samples.ts';
import { optimizer, type StageContext } from '../stage.ts';

export interface Pair {
  image: Float32Array;
  caption: string;
}

/** Caption tokens the text tower reads (BOS, caption, EOS; longer captions are an error, never cut). */
export const CLIP_CONTEXT = 64;

export function clipModelFor(ctx: StageContext): ClipModel {
  const { config } = ctx.meta;
  return new ClipModel(config.vision, clipTextConfigFor(config.vision, { vocabSize: ctx.tok.pad + 1, contextLength: CLIP_CONTEXT }));
}

export function clipStage(ctx: StageContext, data: BatchSource<Pair[]>): StageSpec<Pair[]> {
  const clip = clipModelFor(ctx).to(ctx.device);
  clip.train();
  const { optimizer: opt, scheduler } = optimizer([{ params: clip.parameters(), lrScale: 1 }], ctx.options,
    { betas: [0.9, 0.98], eps: 1e-6, weightDecay: 0.1 });
  const size = ctx.meta.config.vision.imageSize;
  return {
    name: 'clip', steps: ctx.options.steps, modules: { clip }, optimizer: opt, scheduler, data, generators: {},
    step(pairs) {
      const rows = pairs.map((p) => [...ctx.tok.encode(p.caption), ctx.tok.eos]);
      const L = Math.max(...rows.map((r) => r.length));
      if (L > CLIP_CONTEXT) throw new ShapeError(`train clip: a caption has ${L} tokens, more than the text tower's ${CLIP_CONTEXT}`);
      const ids = fromValues(rows.flatMap((r) => [...r, ...new Array<number>(L - r.length).fill(ctx.tok.pad)]), [rows.length, L], 'i32', ctx.device);
      const pixels = stack(pairs.map((p) => imageTensor(p.image, size, ctx.device)));
      return { loss: clip.forward(pixels, ids, rows.map((r) => r.length - 1)) };
    },
    count: (pairs) => ({ items: pairs.length, unit: 'img' }),
  };
}
