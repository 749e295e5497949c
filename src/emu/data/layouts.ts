// layouts.ts: complete training samples in the four Emu sequence layouts of spec 2.2, plus the
// Emu-I dialogues, each a pure function of a seed (or of an MNIST entry):
//
//   image-text pair     I(img) caption </s>  or  caption I(img) </s>   (order drawn per sample:
//                       image first trains captioning, text first trains text-to-image)
//   interleaved doc     text I(img1) text I(img2) ... </s>              (documents.ts)
//   video-text pair     I(f1) ... I(f8) caption </s>                    (video.ts; frames as one video part)
//   interleaved video   t0 I(f0) t1 I(f1) ... I(fK-1) t_last </s>       (storyboard.ts)
//   dialogue            Emu-I template, loss on answers only            (dialogue.ts; scenes, clips, digits)
//
// BOS is left to the tokenizer; EOS is the last part (sample.ts).
import { documentParts, interleavedDocument } from './documents.ts';
import { digitDialogue, formatDialogue, imageDialogue, videoDialogue } from './dialogue.ts';
import { digitCaption, mnistImage, type DigitEntry } from './mnist.ts';
import { EOS, type Sample, type SamplePart } from './sample.ts';
import { caption, kindTwin, render, scene } from './shapes.ts';
import { rngFor } from './splits.ts';
import { storyboard, storyboardParts } from './storyboard.ts';
import { clip, motionCaption, renderClip } from './video.ts';

export interface LayoutOptions {
  /** Image side in pixels (default 32). */
  size?: number;
}

function pretraining(kind: Sample['kind'], parts: SamplePart[]): Sample {
  return { kind, parts: [...parts, { text: EOS }], loss: 'all' };
}

export interface PairOptions extends LayoutOptions {
  /** Image first (a captioning sample) or last (text-to-image); default drawn per sample. */
  imageFirst?: boolean;
}

/** An image and its text, the image first or last as `imageFirst` says. */
export function imageTextSample(image: Float32Array, text: string, imageFirst: boolean): Sample {
  return pretraining('image-text', imageFirst ? [{ image }, { text }] : [{ text }, { image }]);
}

/** The shapes scene of a seed with a caption, in random order. */
export function shapesPair(seed: number, opts: PairOptions = {}): Sample {
  const sc = scene(seed);
  const rng = rngFor(seed, 5);
  const text = caption(sc, rng);
  return imageTextSample(render(sc, opts.size ?? 32), text, opts.imageFirst ?? rng() < 0.5);
}

/**
 * The scene of a seed and its kind twin (shapes.ts kindTwin), each image followed by its caption,
 * both captions drawn with the same random stream so they share a template and differ only in the
 * shape words: hard negatives for the clip stage (stages/clip.ts), which splits it into two pairs.
 */
export function shapesTwins(seed: number, opts: LayoutOptions = {}): Sample {
  const sc = scene(seed);
  const scenes = [sc, kindTwin(sc, rngFor(seed, 10))];
  return pretraining('document', scenes.flatMap((s) => [{ image: render(s, opts.size ?? 32) }, { text: caption(s, rngFor(seed, 5)) }]));
}

/** An MNIST digit with a caption, in random order (both fixed per entry) unless `imageFirst` says. */
export function mnistPair(entry: DigitEntry, opts: PairOptions = {}): Sample {
  const rng = rngFor(entry.label * 65536 + entry.index, 6);
  const text = digitCaption(entry.label, rng);
  return imageTextSample(mnistImage(entry, opts.size ?? 32), text, opts.imageFirst ?? rng() < 0.5);
}

/** An interleaved document of 2-3 scenes. */
export function documentSample(seed: number, opts: LayoutOptions = {}): Sample {
  return pretraining('document', documentParts(interleavedDocument(seed), opts.size));
}

/** The clip of a seed (default 8 frames) followed by its motion caption. */
export function videoPair(seed: number, opts: LayoutOptions & { frames?: number } = {}): Sample {
  const c = clip(seed, opts.frames ?? 8);
  return pretraining('video-text', [{ video: renderClip(c, opts.size ?? 32) }, { text: motionCaption(c, rngFor(seed, 8)) }]);
}

/** Frames of a clip interleaved with subtitles (default 4 of 8 frames). */
export function storyboardSample(seed: number, opts: LayoutOptions & { frames?: number } = {}): Sample {
  return pretraining('storyboard', storyboardParts(storyboard(seed, { frames: opts.frames }), opts.size));
}

/** An Emu-I dialogue about a scene, or about a clip when `video` is set. */
export function dialogueSample(seed: number, opts: LayoutOptions & { video?: boolean; turns?: number } = {}): Sample {
  const d = opts.video ? videoDialogue(seed, opts) : imageDialogue(seed, opts);
  return { kind: 'dialogue', parts: formatDialogue(d), loss: 'answers' };
}

/** An Emu-I dialogue about an MNIST digit. */
export function digitDialogueSample(entry: DigitEntry, opts: LayoutOptions & { turns?: number } = {}): Sample {
  return { kind: 'dialogue', parts: formatDialogue(digitDialogue(entry, opts)), loss: 'answers' };
}
