// pipeline.ts: Emu's image generation, end to end (shared/reference/emu-architecture.md 4.3-4.4):
// the prompt's N regressed visual embeddings condition the UNet, the empty prompt's embeddings
// are the unconditional branch of classifier-free guidance, the sampler (PNDM by default, as
// the release) denoises latents, and the VAE decodes them to pixels.
//
// The same call serves text-to-image (["a red circle"]), blending ([img1, img2], no text) and
// in-context generation (text and images interleaved), since all three are prompts followed by
// [IMG]; guidance 7.5 is the release's default (10 for in-context generation).
import type { Generator } from '../tensor/random.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { tidy } from '../tensor/memory.ts';
import { noGrad } from '../autograd/grad_mode.ts';
import { sample, type Scheduler } from './diffusion.ts';
import { emuVisualEmbeddings, type Emu, type Part } from './emu.ts';
import type { Tokenizer } from './tokenizer.ts';
import type { UNet2DConditionModel } from './unet.ts';
import type { AutoencoderKL } from './vae.ts';

export interface ImageOptions {
  guidanceScale?: number;
  steps?: number;
  scheduler?: 'pndm' | 'ddim' | Scheduler;
  generator?: Generator;
  /** Latent height and width (the image is this times the VAE's factor). */
  latentSize: number;
}

/** Pixels [1, 3, S, S] (in the VAE's output range) for an interleaved prompt. */
export function generateImage(model: Emu, tok: Tokenizer, unet: UNet2DConditionModel, vae: AutoencoderKL,
  parts: Part[], opts: ImageOptions): Tensor {
  return noGrad(() => tidy(() => {
    const condition = emuVisualEmbeddings(model, tok, parts);
    const uncondition = emuVisualEmbeddings(model, tok, [{ text: '' }]);
    const latents = sample(unet, {
      condition, uncondition, guidanceScale: opts.guidanceScale ?? 7.5, steps: opts.steps ?? 50,
      scheduler: opts.scheduler ?? 'pndm', generator: opts.generator,
      shape: [1, vae.config.latentChannels, opts.latentSize, opts.latentSize],
    });
    return vae.decodeLatents(latents);
  }));
}
