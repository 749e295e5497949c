// samples.ts: data samples (src/emu/data: plain pixels and strings) -> the model's inputs.
//
// Images become CLIP-normalised tensors at the vision tower's size (vision.ts preprocess); a
// sample whose loss is on answers only marks its answer parts as CE targets (Emu.tokenize then
// masks every other token). Tokenisation adds BOS but not EOS: samples end with "</s>" already.
import type { Device } from '../../tensor/device.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { Sample } from '../data/sample.ts';
import type { EmuConfig } from '../config.ts';
import type { Emu, EmuBatch, Part } from '../emu.ts';
import type { Tokenizer } from '../tokenizer.ts';
import { preprocess } from '../vision.ts';

/** Pixels HxWx3 in [0,1] (square) -> the model's normalised [3, S, S] input on `device`. */
export function imageTensor(pixels: Float32Array, imageSize: number, device: Device = 'cpu'): Tensor {
  const side = Math.round(Math.sqrt(pixels.length / 3));
  return preprocess(pixels, side, side, imageSize, { device });
}

/** A sample as model parts on `device` (tensors created here belong to the caller, e.g. a tidy scope). */
export function toParts(sample: Sample, imageSize: number, device: Device = 'cpu'): Part[] {
  const answersOnly = sample.loss === 'answers';
  return sample.parts.map((p): Part => {
    if ('text' in p) return answersOnly ? { text: p.text, target: p.answer === true } : { text: p.text };
    if ('image' in p) return { image: imageTensor(p.image, imageSize, device) };
    return { video: p.video.map((f) => imageTensor(f, imageSize, device)) };
  });
}

/** The sample's length in tokens (BOS, text, N + 2 per image or frame), without building tensors. */
export function sampleLength(cfg: EmuConfig, tok: Tokenizer, sample: Sample): number {
  const block = cfg.cformer.numQueries + 2;
  return sample.parts.reduce((n, p) => n + ('text' in p ? tok.encode(p.text, { bos: false }).length : 'image' in p ? block : block * p.video.length), 1);
}

/** A padded batch of samples on emu's device; call inside tidy() (the training step is) so the image tensors are freed with it. */
export function emuBatch(emu: Emu, tok: Tokenizer, samples: Sample[]): EmuBatch {
  const device = emu.lm.lm_head.weight.device;
  return emu.collate(samples.map((s) => emu.tokenize(tok, toParts(s, emu.cfg.vision.imageSize, device))));
}
