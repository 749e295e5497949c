// tasks.ts: what a trained Emu does at inference (shared/reference/emu-architecture.md section 4),
// on a run loaded by src/emu/train/run_dir.ts loadTrained:
//
//   caption, vqa, videoQA, Chat    Emu-I (the instruct stage's LoRA model), Emu-I prompts
//   fewShot                        the pretrained Emu, k in-context {image, text} examples
//   generate, textToImage, blend,  the pretrained Emu's regressed visual embeddings -> the UNet
//   inContextGenerate              sampler with classifier-free guidance -> the VAE decoder
//   reconstruct                    the VAE alone: an image through its latents and back (what
//                                  the decoder could draw at best; the evaluation's ceiling row)
//
// Images come in as pixels: square HxWx3 Float32Arrays in [0,1] (what src/emu/io/image.ts
// readImage returns and src/emu/data renders), resized and CLIP-normalised to the vision tower's
// size here. Generated images go out the same way, at the vision tower's size by default.
//
// Decoding follows the reference's settings (spec 4.1, 4.2) with the token budgets shrunk to
// our short synthetic texts: beam search of width 5 everywhere; length penalty 0 for captions
// and chat (the demo's), -1 for VQA, 1 for video QA and few-shot prompts. VQA answers are
// post-processed as the reference does (src/emu/eval/vqa.ts emuShortAnswer). Every option can be
// overridden per call.
//
// The VAE decodes to [-1, 1] (Stable Diffusion's convention; the vae stage trains on
// vae.ts vaeInput, pixels * 2 - 1), so generated pixels are (x + 1) / 2, clamped.
import { checkDevice, type Device } from '../../tensor/device.ts';
import { CheckpointError, DeviceError, ShapeError, ValueError } from '../../tensor/errors.ts';
import { tidy } from '../../tensor/memory.ts';
import { Generator } from '../../tensor/random.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { emuShortAnswer } from '../eval/vqa.ts';
import { emuGenerate, type Emu, type Part } from '../emu.ts';
import type { GenerateOptions } from '../generate.ts';
import { generateImage } from '../pipeline.ts';
import { vaeInput } from '../vae.ts';
import { loadTrained, type Trained } from '../train/run_dir.ts';
import { preprocess } from '../vision.ts';
import {
  IMAGE_SYSTEM_MESSAGE, blendPrompt, captionPrompt, chatPrompt, fewShotPrompt, inContextImagePrompt, videoQAPrompt, vqaPrompt,
  type ChatTurn, type Wording,
} from './prompts.ts';

/** An image as the tasks take and give it: square, row-major HxWx3, values in [0,1]. */
export type Pixels = Float32Array;

/** Text decoding settings (src/emu/generate.ts), without the eos (the tokenizer's). */
export type Decoding = Omit<GenerateOptions, 'eos'>;

/** The default decoding of each text task. */
export const DECODING = {
  caption: { strategy: 'beam', numBeams: 5, maxNewTokens: 48, lengthPenalty: 0 },
  vqa: { strategy: 'beam', numBeams: 5, maxNewTokens: 20, lengthPenalty: -1 },
  videoQA: { strategy: 'beam', numBeams: 5, maxNewTokens: 48, lengthPenalty: 1 },
  chat: { strategy: 'beam', numBeams: 5, maxNewTokens: 128, lengthPenalty: 0 },
  fewShot: { strategy: 'beam', numBeams: 5, maxNewTokens: 20, lengthPenalty: 1 },
} as const satisfies Record<string, Decoding>;

/** Frames a video question sees (spec 4.2). */
export const VIDEO_FRAMES = 8;

export interface TextAnswer {
  /** The answer: the generated text trimmed (VQA: the reference's short answer). */
  text: string;
  /** The generated text as decoded, special tokens left out. */
  raw: string;
  /** The generated token ids (the final EOS included when produced). */
  tokens: number[];
}

/** Loads a run (run_dir.ts loadTrained) and moves every model to `device`. */
export function loadForInference(root: string, device: Device = 'cpu'): Trained {
  checkDevice(device, 'loadForInference');
  if (device === 'meta') throw new DeviceError('loadForInference: the meta device holds no values; use cpu, sim or cuda');
  const trained = loadTrained(root);
  if (device !== 'cpu') {
    for (const m of [trained.emu, trained.emuI, trained.vae, trained.unet]) m?.to(device);
  }
  return trained;
}

function deviceOf(emu: Emu): Device {
  return emu.lm.lm_head.weight.device;
}

/** Side of a square HxWx3 image with `n` values, or a ShapeError naming fn. */
function squareSide(pixels: unknown, fn: string): number {
  if (!(pixels instanceof Float32Array)) throw new ValueError(`${fn}: an image must be a Float32Array of HxWx3 pixels in [0,1]`);
  const side = Math.round(Math.sqrt(pixels.length / 3));
  if (side < 1 || side * side * 3 !== pixels.length) throw new ShapeError(`${fn}: an image must be square HxWx3, got ${pixels.length} values`);
  return side;
}

/** Pixels -> the model's input [3, S, S] on the model's device (the caller disposes it, e.g. by tidy). */
function imageInput(emu: Emu, pixels: Pixels, fn: string): Tensor {
  const side = squareSide(pixels, fn);
  return preprocess(pixels, side, side, emu.cfg.vision.imageSize, { range: 1, device: deviceOf(emu) });
}

function instructModel(trained: Trained, fn: string): Emu {
  if (!trained.emuI) throw new CheckpointError(`${fn}: needs Emu-I, but this run has no instruct checkpoint (train it with: emu train --stage instruct)`);
  return trained.emuI;
}

/** Generates text after a prompt built inside tidy (its image tensors are freed with it). */
function answer(trained: Trained, emu: Emu, buildPrompt: () => Part[], decoding: Decoding, post: (raw: string) => string): TextAnswer {
  return tidy(() => {
    const r = emuGenerate(emu, trained.tok, buildPrompt(), { ...decoding, eos: trained.tok.eos });
    return { text: post(r.text), raw: r.text, tokens: r.tokens };
  });
}

const trim = (s: string): string => s.trim();

export interface TextTaskOptions {
  decoding?: Decoding;
  /** Prompt wording (prompts.ts): the training dialogues' ('data', default) or the reference's. */
  wording?: Wording;
}

/** A description of the image (Emu-I). */
export function caption(trained: Trained, image: Pixels, opts: TextTaskOptions = {}): TextAnswer {
  const emu = instructModel(trained, 'caption');
  return answer(trained, emu, () => captionPrompt(imageInput(emu, image, 'caption'), { wording: opts.wording }),
    { ...DECODING.caption, ...opts.decoding }, trim);
}

/** The answer to a question about the image (Emu-I), post-processed to the short answer. */
export function vqa(trained: Trained, image: Pixels, question: string, opts: TextTaskOptions = {}): TextAnswer {
  const emu = instructModel(trained, 'vqa');
  if (typeof question !== 'string' || question.trim() === '') throw new ValueError('vqa: the question must be a non-empty string');
  return answer(trained, emu, () => vqaPrompt(imageInput(emu, image, 'vqa'), question, { wording: opts.wording }),
    { ...DECODING.vqa, ...opts.decoding }, emuShortAnswer);
}

/** Python's round (half to even), which the reference's frame sampling uses through np.round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The reference's frame indices for a video of `total` frames (spec 4.2): segments of length
 * s = (total - 1) / n, index k = int(s / 2) + round(s * k), k = 0..n-1.
 */
export function sampleFrameIndices(total: number, n = VIDEO_FRAMES): number[] {
  if (!Number.isInteger(total) || total < 1) throw new ValueError(`sampleFrameIndices: total must be a positive integer, got ${String(total)}`);
  if (!Number.isInteger(n) || n < 1) throw new ValueError(`sampleFrameIndices: n must be a positive integer, got ${String(n)}`);
  const s = (total - 1) / n;
  return Array.from({ length: n }, (_, k) => Math.trunc(s / 2) + roundHalfEven(s * k));
}

export interface VideoAnswer extends TextAnswer {
  /** Which of the given frames the model saw. */
  frameIndices: number[];
}

export interface VideoQAOptions {
  decoding?: Decoding;
  /**
   * Feed every given frame instead of the reference's 8 sampled ones. Default: only when there
   * are at most 8 frames, since sampling 8 of an 8-frame clip repeats frame 4 and drops frame 7
   * ([0,1,2,3,4,4,5,6]), which is not how our clips are trained.
   */
  allFrames?: boolean;
}

/** The answer to a question about a video given as its frames in time order (Emu-I, 8 frames sampled evenly). */
export function videoQA(trained: Trained, frames: readonly Pixels[], question: string, opts: VideoQAOptions = {}): VideoAnswer {
  const emu = instructModel(trained, 'videoQA');
  if (!Array.isArray(frames) || frames.length === 0) throw new ValueError('videoQA: need at least one frame');
  if (typeof question !== 'string' || question.trim() === '') throw new ValueError('videoQA: the question must be a non-empty string');
  const whole = opts.allFrames ?? frames.length <= VIDEO_FRAMES;
  const frameIndices = whole ? frames.map((_, i) => i) : sampleFrameIndices(frames.length);
  const r = answer(trained, emu, () => videoQAPrompt(frameIndices.map((i) => imageInput(emu, frames[i], 'videoQA')), question),
    { ...DECODING.videoQA, ...opts.decoding }, trim);
  return { ...r, frameIndices };
}

/** A user message: text and images (pixels) in order. */
export type Message = readonly (string | Pixels)[];

/**
 * A multi-turn conversation with Emu-I in the instruction template (turns separated by </s>).
 * The history keeps pixels, not tensors, so a session holds no native memory between turns.
 */
export class Chat {
  readonly system: string;
  readonly decoding: Decoding;
  readonly #history: { user: Message; assistant: string }[] = [];

  constructor(readonly trained: Trained, opts: { system?: string; decoding?: Decoding } = {}) {
    instructModel(trained, 'Chat');
    this.system = opts.system ?? IMAGE_SYSTEM_MESSAGE;
    if (typeof this.system !== 'string') throw new ValueError('Chat: system must be a string');
    this.decoding = { ...DECODING.chat, ...opts.decoding };
  }

  /** Turns so far: the user's message and the assistant's answer. */
  get history(): readonly { user: Message; assistant: string }[] {
    return this.#history;
  }

  /** Sends one message and returns the answer, which joins the history. */
  ask(message: Message): TextAnswer {
    if (!Array.isArray(message) || message.length === 0) throw new ValueError('Chat.ask: a message needs some text or an image');
    for (const item of message) if (typeof item !== 'string') squareSide(item, 'Chat.ask');
    const emu = this.trained.emuI!;
    const toParts = (m: Message): Part[] => m.map((x) => (typeof x === 'string' ? { text: x } : { image: imageInput(emu, x, 'Chat.ask') }));
    const r = answer(this.trained, emu, () => {
      const history: ChatTurn[] = this.#history.map((t) => ({ user: toParts(t.user), assistant: t.assistant }));
      return chatPrompt(this.system, history, toParts(message));
    }, this.decoding, trim);
    this.#history.push({ user: [...message], assistant: r.text });
    return r;
  }

  /** Forgets the conversation. */
  reset(): void {
    this.#history.length = 0;
  }
}

/** An in-context example: an image and its text. */
export interface PixelExample {
  image: Pixels;
  text: string;
}

/** The pretrained model's continuation after k in-context examples and the query image. */
export function fewShot(trained: Trained, examples: readonly PixelExample[], query: Pixels, opts: { decoding?: Decoding } = {}): TextAnswer {
  if (!Array.isArray(examples)) throw new ValueError('fewShot: examples must be an array of { image, text }');
  const emu = trained.emu;
  return answer(trained, emu, () => fewShotPrompt(
    examples.map((ex) => ({ image: imageInput(emu, ex?.image, 'fewShot'), text: ex.text })), imageInput(emu, query, 'fewShot'),
  ), { ...DECODING.fewShot, ...opts.decoding }, trim);
}

export interface ImageGenOptions {
  /** Classifier-free guidance scale (default 7.5; 10 for inContextGenerate, as the reference). */
  guidanceScale?: number;
  /** Sampler steps (default 50, the reference's). */
  steps?: number;
  sampler?: 'pndm' | 'ddim';
  /** Seed of the initial latent noise (default 0): the same seed gives the same image. */
  seed?: number;
  /** Output side in pixels, a multiple of the VAE's factor (default: the vision tower's image size). */
  size?: number;
}

export interface GeneratedImage {
  /** HxWx3 in [0,1]. */
  pixels: Pixels;
  size: number;
}

function checkGenOptions(o: ImageGenOptions, factor: number, fn: string): Required<ImageGenOptions> {
  const r = { guidanceScale: o.guidanceScale ?? 7.5, steps: o.steps ?? 50, sampler: o.sampler ?? 'pndm', seed: o.seed ?? 0, size: o.size ?? 0 };
  if (typeof r.guidanceScale !== 'number' || !Number.isFinite(r.guidanceScale)) throw new ValueError(`${fn}: guidanceScale must be a finite number, got ${String(r.guidanceScale)}`);
  if (!Number.isInteger(r.steps) || r.steps < 1) throw new ValueError(`${fn}: steps must be a positive integer, got ${String(r.steps)}`);
  if (r.sampler !== 'pndm' && r.sampler !== 'ddim') throw new ValueError(`${fn}: sampler must be 'pndm' or 'ddim', got ${String(r.sampler)}`);
  if (!Number.isSafeInteger(r.seed) || r.seed < 0) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${String(r.seed)}`);
  if (!Number.isInteger(r.size) || r.size < factor || r.size % factor !== 0) {
    throw new ValueError(`${fn}: size must be a positive multiple of the VAE's factor ${factor}, got ${String(r.size)}`);
  }
  return r;
}

/** Decoded VAE output [1, 3, S, S] in [-1, 1] -> HxWx3 pixels in [0, 1]. */
function toPixels(x: Tensor): Pixels {
  const [, C, S] = x.shape;
  const chw = tidy(() => x.to('cpu').to('f32').data()) as Float32Array;
  const out = new Float32Array(S * S * 3);
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < S * S; p++) out[p * 3 + c] = Math.min(1, Math.max(0, (chw[c * S * S + p] + 1) / 2));
  }
  return out;
}

/** An image through the VAE's latents (posterior mean) and back: the best picture the decoder's latents can hold. */
export function reconstruct(trained: Trained, image: Pixels): GeneratedImage {
  const { vae } = trained;
  if (!vae) throw new CheckpointError('reconstruct: needs the VAE, but this run has no vae checkpoint (train it with: emu train --stage vae)');
  const side = squareSide(image, 'reconstruct');
  if (side % vae.factor !== 0) throw new ValueError(`reconstruct: the image side ${side} must be a multiple of the VAE's factor ${vae.factor}`);
  return tidy(() => {
    const posterior = vae.encode(vaeInput([image], deviceOf(trained.emu)));
    return { pixels: toPixels(vae.decode(posterior.mode())), size: side };
  });
}

/** An image from an interleaved prompt built from pixel inputs (the pretrained Emu, UNet and VAE). */
function generateFrom(trained: Trained, build: (image: (p: Pixels) => Tensor) => Part[], opts: ImageGenOptions, fn: string): GeneratedImage {
  const { emu, unet, vae, tok } = trained;
  if (!unet || !vae) throw new CheckpointError(`${fn}: needs the decoder (UNet and VAE), but this run has no decoder checkpoint (train it with: emu train --stage decoder)`);
  const o = checkGenOptions({ ...opts, size: opts.size ?? emu.cfg.vision.imageSize }, vae.factor, fn);
  return tidy(() => {
    const parts = build((p) => imageInput(emu, p, fn));
    const x = generateImage(emu, tok, unet, vae, parts, {
      guidanceScale: o.guidanceScale, steps: o.steps, scheduler: o.sampler, generator: new Generator(o.seed), latentSize: o.size / vae.factor,
    });
    return { pixels: toPixels(x), size: o.size };
  });
}

/**
 * An image for an interleaved prompt of text and images in order (Emu regresses the visual
 * embeddings after it): text only is text-to-image, images only blend them.
 */
export function generate(trained: Trained, prompt: readonly (string | Pixels)[], opts: ImageGenOptions = {}): GeneratedImage {
  if (!Array.isArray(prompt)) throw new ValueError('generate: the prompt must be an array of texts and images');
  return generateFrom(trained, (image) => inContextImagePrompt(prompt.map((x) => (typeof x === 'string' ? x : image(x)))), opts, 'generate');
}

/** Text-to-image. */
export function textToImage(trained: Trained, text: string, opts: ImageGenOptions = {}): GeneratedImage {
  if (typeof text !== 'string') throw new ValueError('textToImage: text must be a string');
  return generate(trained, [text], opts);
}

/** Blending: the image Emu regresses after two images and no text. */
export function blend(trained: Trained, a: Pixels, b: Pixels, opts: ImageGenOptions = {}): GeneratedImage {
  return generateFrom(trained, (image) => blendPrompt(image(a), image(b)), opts, 'blend');
}

/** In-context generation: texts and example images in order, guidance 10 by default (the reference's). */
export function inContextGenerate(trained: Trained, prompt: readonly (string | Pixels)[], opts: ImageGenOptions = {}): GeneratedImage {
  return generate(trained, prompt, { ...opts, guidanceScale: opts.guidanceScale ?? 10 });
}
