// dialogue.ts: Emu-I instruction dialogues built from shapes-world scenes and clips (spec 3.3).
//
// A dialogue is kept structurally (system message, turns of user parts and an assistant answer)
// and formatted in the Emu-I template, the multi-turn form of the reference's VisDial prompt:
//
//   {system} [USER]: {I}question [ASSISTANT]: answer</s> [USER]: question [ASSISTANT]: answer</s>
//
// where {I} is the image (or the video's frames) in the first user turn. The formatter marks each
// " answer" and the "</s>" closing its turn as answer parts, the only cross-entropy targets of
// instruction tuning, so the model learns to answer and to stop. Answers start with a space
// because inference prompts end with "[ASSISTANT]:". The system messages are the reference's,
// including their literal "[IMG]ImageContent[/IMG]". Questions and answers come from vqa /
// videoQA (single words) and captions, so every answer is true by construction. Dialogues about
// MNIST digits (a description and "what digit is this?") teach Emu-I to describe digits too.
import { ValueError } from '../../tensor/errors.ts';
import { EOS, appendText, type SamplePart } from './sample.ts';
import { caption, numberWord, randInt, render, scene, vqa, type QA, type Rng } from './shapes.ts';
import { rngFor } from './splits.ts';
import { clip, motionCaption, renderClip, videoQA } from './video.ts';
import { digitCaption, mnistImage, type DigitEntry } from './mnist.ts';

export const IMAGE_SYSTEM_MESSAGE = 'You will be presented with an image: [IMG]ImageContent[/IMG]. You will be able to see the image '
  + 'after I provide it to you. Please answer my questions based on the given image.';
export const VIDEO_SYSTEM_MESSAGE = 'You are a helpful assistant and you will be presented with a video consisting of multiple '
  + 'chronological images: [IMG]ImageContent[/IMG]. You will be able to see the video after I provide it to you. Please answer '
  + 'my questions based on the given video.';
/** The reference's captioning instruction (COCO evaluation wording). */
export const DESCRIBE_IMAGE = 'please provide an accurate and concise description of the given image.';
export const DESCRIBE_VIDEO = 'what happens in the video?';
/** The question about a digit's label (answered with its number word). */
export const WHICH_DIGIT = 'what digit is this?';

export interface DialogueTurn {
  /** The user's parts: the first turn carries the image or video, then the question. */
  user: SamplePart[];
  assistant: string;
}

export interface Dialogue {
  system: string;
  turns: DialogueTurn[];
}

export interface DialogueOptions {
  /** Number of turns (default 1-3 at random). */
  turns?: number;
  /** Image side in pixels (default 32). */
  size?: number;
}

/** Picks `n` turns: the description request with probability 1/2 first, then distinct QA pairs. */
function chooseTurns(describe: QA, qas: QA[], n: number, rng: Rng): QA[] {
  const pool = [...qas];
  const chosen: QA[] = rng() < 0.5 ? [describe] : [];
  while (chosen.length < n && pool.length) chosen.push(pool.splice(Math.floor(rng() * pool.length), 1)[0]);
  return chosen;
}

function turnCount(opts: DialogueOptions, rng: Rng, fn: string): number {
  const n = opts.turns ?? randInt(rng, 1, 3);
  if (!Number.isInteger(n) || n < 1) throw new ValueError(`${fn}: turns must be a positive integer, got ${n}`);
  return n;
}

function toTurns(visual: SamplePart, qas: QA[]): DialogueTurn[] {
  return qas.map((qa, i) => ({ user: i === 0 ? [visual, { text: qa.question }] : [{ text: qa.question }], assistant: qa.answer }));
}

/** A dialogue about the image of scene(seed). */
export function imageDialogue(seed: number, opts: DialogueOptions = {}): Dialogue {
  const sc = scene(seed);
  const rng = rngFor(seed, 3);
  const n = turnCount(opts, rng, 'imageDialogue');
  const qas = chooseTurns({ question: DESCRIBE_IMAGE, answer: caption(sc, rng) }, vqa(sc, rng), n, rng);
  return { system: IMAGE_SYSTEM_MESSAGE, turns: toTurns({ image: render(sc, opts.size ?? 32) }, qas) };
}

/** A dialogue about the 8-frame clip(seed). */
export function videoDialogue(seed: number, opts: DialogueOptions = {}): Dialogue {
  const c = clip(seed);
  const rng = rngFor(seed, 4);
  const n = turnCount(opts, rng, 'videoDialogue');
  const qas = chooseTurns({ question: DESCRIBE_VIDEO, answer: motionCaption(c, rng) }, videoQA(c, rng), n, rng);
  return { system: VIDEO_SYSTEM_MESSAGE, turns: toTurns({ video: renderClip(c, opts.size ?? 32) }, qas) };
}

/** A dialogue about an MNIST digit: its description, its label's word, or both (1-2 turns). */
export function digitDialogue(entry: DigitEntry, opts: DialogueOptions = {}): Dialogue {
  const rng = rngFor(entry.label * 65536 + entry.index, 9);
  const n = opts.turns ?? randInt(rng, 1, 2);
  if (!Number.isInteger(n) || n < 1 || n > 2) throw new ValueError(`digitDialogue: turns must be 1 or 2, got ${n}`);
  const qas = chooseTurns({ question: DESCRIBE_IMAGE, answer: digitCaption(entry.label, rng) }, [{ question: WHICH_DIGIT, answer: numberWord(entry.label) }], n, rng);
  return { system: IMAGE_SYSTEM_MESSAGE, turns: toTurns({ image: mnistImage(entry, opts.size ?? 32) }, qas) };
}

/** The dialogue in the Emu-I template, answers (and their closing EOS) marked `answer: true`. */
export function formatDialogue(d: Dialogue): SamplePart[] {
  if (d.turns.length === 0) throw new ValueError('formatDialogue: a dialogue needs at least one turn');
  const parts: SamplePart[] = [];
  d.turns.forEach((turn, i) => {
    appendText(parts, i === 0 ? `${d.system} [USER]: ` : ' [USER]: ', '');
    for (const p of turn.user) {
      if ('text' in p) appendText(parts, p.text, '');
      else parts.push(p);
    }
    appendText(parts, ' [ASSISTANT]:', '');
    parts.push({ text: ` ${turn.assistant}`, answer: true }, { text: EOS, answer: true });
  });
  return parts;
}
