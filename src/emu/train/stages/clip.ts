// clip.ts: stage `clip`, a CLIP-style warm-up of the vision tower (spec section 5: no pretrained
// EVA-CLIP exists at this size). The EVA tower with a projection head and a small text tower
// learn a shared embedding from matching (image, caption) pairs with the symmetric contrastive
// loss; the pretrain stage then takes the tower without its head and final norm, as Emu takes
// EVA-CLIP's.
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
