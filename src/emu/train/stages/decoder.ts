// decoder.ts: stage `decoder`, the visual decoder (spec 3.2): a Stable-Diffusion-layout UNet
// learns to denoise the VAE's latents of an image conditioned on the N visual embeddings the
// frozen Emu regresses for that image's caption (prompt "caption [IMG]", greedy regression, spec
// 4.3). Epsilon-prediction with SD's scaled-linear betas; 10% of the conditions are replaced by
// Emu's regression for the empty prompt, which is what classifier-free guidance uses as the
// unconditional branch at sampling time (spec 4.4).
//
// Emu and the VAE are frozen, so each pair's condition and latents are computed once, before the
// first step, for a fixed pool of training pairs; batches then draw pool entries in a seeded
// shuffle per epoch. The pool's latents are the posterior means; the latents' scale is measured
// on the pool and written to run.json as config.vae.scalingFactor (SD's 0.18215 plays that role),
// so the UNet sees unit-variance latents here and at sampling time.
import { tidy } from '../../../tensor/memory.ts';
import type { Tensor } from '../../../tensor/tensor.ts';
import { fromValues } from '../../../tensor/ops/creation.ts';
import { indexSelect } from '../../../tensor/ops/linalg.ts';
import { cat, clone } from '../../../tensor/ops/views.ts';
import { noGrad } from '../../../autograd/grad_mode.ts';
import { Emu, emuVisualEmbeddings } from '../../emu.ts';
import { ddpmLoss } from '../../diffusion.ts';
import { UNet2DConditionModel } from '../../unet.ts';
import { AutoencoderKL, vaeInput } from '../../vae.ts';
import { shuffledIndex } from '../../data/shuffle.ts';
import { regressVisual } from '../../generate.ts';
import type { StageSpec } from '../loop.ts';
import type { Pair } from './clip.ts';
import { indexedBatches, optimizer, stageGenerator, type StageContext } from '../stage.ts';

/** Prompts of equal token length go through the regression together (it takes no padding). */
const REGRESS_CHUNK = 32;

/** Emu's N regressed embeddings [P, N, H] for each caption (greedy, KV cached). */
export function conditions(emu: Emu, ctx: StageContext, captions: string[]): Tensor {
  return noGrad(() => tidy(() => {
    const byLength = new Map<number, number[]>();
    const ids = captions.map((c) => ctx.tok.encode(c));
    ids.forEach((r, i) => byLength.set(r.length, [...(byLength.get(r.length) ?? []), i]));
    const rows: Tensor[] = new Array(captions.length);
    const img = emu.lm.embed(fromValues([emu.ids.img], [1], 'i32', ctx.device));
    for (const group of byLength.values()) {
      for (let s = 0; s < group.length; s += REGRESS_CHUNK) {
        const part = group.slice(s, s + REGRESS_CHUNK);
        const prefix = emu.embedWithImages(part.map((i) => ids[i]), null);
        const z = regressVisual(emu.lm, prefix, img, emu.cfg.cformer.numQueries);
        part.forEach((i, j) => { rows[i] = z.narrow(0, j, 1); });
      }
    }
    return cat(rows, 0);
  }));
}

export function decoderStage(ctx: StageContext, pool: Pair[]): StageSpec<number[]> {
  const emu = new Emu(ctx.meta.config);
  ctx.run.load('pretrain', 'emu', emu);
  emu.to(ctx.device).eval();
  const vae = new AutoencoderKL(ctx.meta.config.vae);
  ctx.run.load('vae', 'vae', vae);
  vae.to(ctx.device).eval();
  const { cond, uncond, latents } = noGrad(() => tidy(() => {
    const c = conditions(emu, ctx, pool.map((p) => p.caption));
    const u = emuVisualEmbeddings(emu, ctx.tok, [{ text: '' }]);
    const d = vae.encode(vaeInput(pool.map((p) => p.image), ctx.device));
    const mode = clone(d.mode());
    d.dispose();
    return { cond: c, uncond: u, latents: mode };
  }));
  const scale = 1 / (latents.std().item() as number);
  ctx.meta.config.vae.scalingFactor = scale;
  ctx.run.writeMeta(ctx.meta);
  const scaled = tidy(() => latents.mul(scale));
  latents.dispose();

  const unet = new UNet2DConditionModel(ctx.meta.config.unet).to(ctx.device);
  unet.train();
  const noise = stageGenerator(ctx, 3);
  const key = ctx.seed;
  const B = ctx.options.batch, P = pool.length;
  const data = indexedBatches((i) => Array.from({ length: B }, (_, j) => {
    const pos = i * B + j, epoch = Math.floor(pos / P);
    return shuffledIndex(pos % P, P, (key + epoch * 7919) >>> 0);
  }));
  const { optimizer: opt, scheduler } = optimizer([{ params: unet.parameters(), lrScale: 1 }], ctx.options,
    { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 });
  return {
    name: 'decoder', steps: ctx.options.steps, modules: { unet }, optimizer: opt, scheduler, data, generators: { noise },
    step(idx) {
      const at = fromValues(idx, [idx.length], 'i32', ctx.device);
      const loss = ddpmLoss(unet, indexSelect(scaled, 0, at), indexSelect(cond, 0, at), { generator: noise, conditionDropout: 0.1, nullCondition: uncond });
      return { loss };
    },
    count: (idx) => ({ items: idx.length, unit: 'img' }),
  };
}
