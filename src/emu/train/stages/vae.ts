// vae.ts: stage `vae`, the KL autoencoder the UNet works in (spec section 5: no pretrained
// Stable-Diffusion VAE at this size). Images in [-1, 1]; loss = squared reconstruction error +
// beta * KL (per element), without LDM's GAN and perceptual terms, and gradients clipped to norm 1.
//
// Squared error, not LDM's L1, measured on the tiny preset by reading the reconstructions of 36
// held-out scenes back with the pixel checker of eval/attributes.ts (400 steps, batch 16, lr 2e-3,
// shapes and digits 3 : 1): with L1 they were background only (colour 0%, count 8%), since the
// shapes cover a tenth of the pixels and L1's optimum is the median, the background; with squared
// error colour 39%, count 47%. Grey MNIST digits crowd out colour (colour 29% at 1 : 1, 68% with
// shapes only), so the stage reads shapes and digits 3 : 1 (recipe.ts vaeSources). The tiny
// recipe's 600 steps of 16 reconstruct colour, size and position 100%, kind 75%, count 97%
// (the old L1 stage at 300 steps of 8: 0% on all), in about two minutes on two idle cores.
import { AutoencoderKL, vaeInput } from '../../vae.ts';
import type { BatchSource, StageSpec } from '../loop.ts';
import { optimizer, stageGenerator, type StageContext } from '../stage.ts';

/** KL weight: enough to keep the latents near unit scale without blurring 32x32 shapes. */
export const VAE_BETA = 1e-4;

export function vaeStage(ctx: StageContext, data: BatchSource<Float32Array[]>): StageSpec<Float32Array[]> {
  const vae = new AutoencoderKL(ctx.meta.config.vae).to(ctx.device);
  vae.train();
  const posterior = stageGenerator(ctx, 2);
  const { optimizer: opt, scheduler } = optimizer([{ params: vae.parameters(), lrScale: 1 }], ctx.options,
    { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  return {
    name: 'vae', steps: ctx.options.steps, modules: { vae }, optimizer: opt, scheduler, data, generators: { posterior },
    clipNorm: 1,
    step(images) {
      const { loss, rec, kl } = vae.loss(vaeInput(images, ctx.device), { generator: posterior, beta: VAE_BETA, reconstruction: 'mse' });
      return { loss, rec, kl };
    },
    count: (images) => ({ items: images.length, unit: 'img' }),
  };
}
