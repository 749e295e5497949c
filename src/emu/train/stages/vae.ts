// vae.ts: stage `vae`, the KL autoencoder the UNet works in (spec section 5: no pretrained
// Stable-Diffusion VAE at this size). Images in [-1, 1]; loss = L1 reconstruction + beta * KL
// (per element), as LDM trains its kl autoencoders (without their GAN and perceptual terms).
import { fromValues } from '../../../tensor/ops/creation.ts';
import type { Device } from '../../../tensor/device.ts';
import type { Tensor } from '../../../tensor/tensor.ts';
import { AutoencoderKL } from '../../vae.ts';
import type { BatchSource, StageSpec } from '../loop.ts';
import { optimizer, stageGenerator, type StageContext } from '../stage.ts';

/** KL weight: enough to keep the latents near unit scale without blurring 32x32 shapes. */
export const VAE_BETA = 1e-4;

/** Images HxWx3 in [0,1] -> a [B, 3, H, W] batch in [-1, 1] (the VAE's range) on `device`. */
export function vaeInput(images: Float32Array[], device: Device = 'cpu'): Tensor {
  const side = Math.round(Math.sqrt(images[0].length / 3)), n = side * side;
  const out = new Float32Array(images.length * 3 * n);
  images.forEach((img, b) => {
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[(b * 3 + c) * n + i] = img[i * 3 + c] * 2 - 1;
  });
  return fromValues(out, [images.length, 3, side, side], 'f32', device);
}

export function vaeStage(ctx: StageContext, data: BatchSource<Float32Array[]>): StageSpec<Float32Array[]> {
  const vae = new AutoencoderKL(ctx.meta.config.vae).to(ctx.device);
  vae.train();
  const posterior = stageGenerator(ctx, 2);
  const { optimizer: opt, scheduler } = optimizer([{ params: vae.parameters(), lrScale: 1 }], ctx.options,
    { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  return {
    name: 'vae', steps: ctx.options.steps, modules: { vae }, optimizer: opt, scheduler, data, generators: { posterior },
    step(images) {
      const { loss, rec, kl } = vae.loss(vaeInput(images, ctx.device), { generator: posterior, beta: VAE_BETA });
      return { loss, rec, kl };
    },
    count: (images) => ({ items: images.length, unit: 'img' }),
  };
}
