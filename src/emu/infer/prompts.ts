// prompts.ts: the prompts of Emu's inference procedures (shared/reference/emu-architecture.md
// sections 3.3 and 4), as interleaved part lists for Emu.tokenize.
//
// Emu-I (instruction-tuned) prompts use the template the instruct stage trained on:
//
//   {system} [USER]: {I}question [ASSISTANT]: answer</s> [USER]: question [ASSISTANT]:
//
// with the reference's image or video system message (literal "[IMG]ImageContent[/IMG]" included).
// The system messages and the captioning instructions are imported from src/emu/data/dialogue.ts,
// which builds the training dialogues, so training and inference cannot drift apart; the
// infer tests check that a prompt tokenizes to exactly the prefix of a training dialogue.
//
// Two wordings for the task prompts:
//   'data'       (default) the instruction dialogues' wording: "{I}{question} [ASSISTANT]:". The
//                tiny models only ever see this, so it is what they answer best.
//   'reference'  the released evaluation prompts (spec 4.1): the VQA instruction before the
//                question and "the answer is:" / "the image depicts a photo of" after [ASSISTANT]:.
//
// Pretrained-model prompts have no template: in-context (few-shot) examples are image blocks
// followed directly by their text, and image generation prompts are whatever precedes the
// [IMG] that Emu's regression continues (text-to-image, blending, in-context generation).
//
// Adjacent text is merged into one part: Emu.tokenize BPE-encodes each text part on its own, and
// the training dialogues split text only at word boundaries, so merged text gives the same ids.
import { ValueError } from '../../tensor/errors.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { DESCRIBE_IMAGE, DESCRIBE_VIDEO, IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE } from '../data/dialogue.ts';
import type { Part } from '../emu.ts';

export { DESCRIBE_IMAGE, DESCRIBE_VIDEO, IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE };

export type Wording = 'data' | 'reference';

/** The reference's VQA instruction (spec 4.1, VQAv2 / OKVQA / VizWiz row). */
export const VQA_INSTRUCTION = 'based on the content of the image and common sense, please provide an accurate answer consisting of only one word or phrase. ';
/** What the reference's evaluation prompts put after "[ASSISTANT]:". */
export const VQA_ANSWER_PREFIX = ' the answer is:';
export const CAPTION_ANSWER_PREFIX = ' the image depicts a photo of';

/** One finished exchange of a chat: the user's parts and the assistant's answer (without EOS). */
export interface ChatTurn {
  user: Part[];
  assistant: string;
}

/** Text pieces and parts in order -> parts, adjacent text merged, empty text dropped. */
export function joinParts(items: readonly (string | Part)[]): Part[] {
  const out: Part[] = [];
  for (const item of items) {
    const part: Part = typeof item === 'string' ? { text: item } : item;
    if ('text' in part) {
      if (typeof part.text !== 'string') throw new ValueError('joinParts: a text part must hold a string');
      if (part.text === '') continue;
      const last = out[out.length - 1];
      if (last && 'text' in last) {
        out[out.length - 1] = { text: last.text + part.text };
        continue;
      }
      out.push({ text: part.text });
    } else if ('image' in part || 'video' in part) {
      out.push(part);
    } else {
      throw new ValueError('joinParts: an item must be a string or a part with text, image or video');
    }
  }
  return out;
}

function checkWording(wording: Wording, fn: string): void {
  if (wording !== 'data' && wording !== 'reference') throw new ValueError(`${fn}: wording must be 'data' or 'reference', got ${String(wording)}`);
}

function checkText(text: unknown, fn: string, what: string): void {
  if (typeof text !== 'string') throw new ValueError(`${fn}: ${what} must be a string, got ${typeof text}`);
}

/**
 * The Emu-I chat template: `{system} [USER]: {turn 1} [ASSISTANT]: {answer 1}</s> [USER]: ...
 * [USER]: {user} [ASSISTANT]:` followed by `answerPrefix` (text the answer is forced to start
 * with; default none).
 */
export function chatPrompt(system: string, history: readonly ChatTurn[], user: readonly Part[], answerPrefix = ''): Part[] {
  checkText(system, 'chatPrompt', 'system');
  checkText(answerPrefix, 'chatPrompt', 'answerPrefix');
  if (!Array.isArray(history)) throw new ValueError('chatPrompt: history must be an array of { user, assistant } turns');
  const items: (string | Part)[] = [system];
  for (const [i, turn] of [...history, { user, assistant: null }].entries()) {
    if (!turn || !Array.isArray(turn.user)) throw new ValueError(`chatPrompt: turn ${i} must have user parts`);
    items.push(' [USER]: ', ...turn.user, ' [ASSISTANT]:');
    if (turn.assistant === null) break;
    checkText(turn.assistant, 'chatPrompt', `turn ${i}'s answer`);
    items.push(` ${turn.assistant}</s>`);
  }
  items.push(answerPrefix);
  return joinParts(items);
}

/** Emu-I captioning: the image system message, the image and the description request. */
export function captionPrompt(image: Tensor, opts: { wording?: Wording } = {}): Part[] {
  const wording = opts.wording ?? 'data';
  checkWording(wording, 'captionPrompt');
  return chatPrompt(IMAGE_SYSTEM_MESSAGE, [], [{ image }, { text: DESCRIBE_IMAGE }], wording === 'reference' ? CAPTION_ANSWER_PREFIX : '');
}

/** Emu-I visual question answering about one image. */
export function vqaPrompt(image: Tensor, question: string, opts: { wording?: Wording } = {}): Part[] {
  const wording = opts.wording ?? 'data';
  checkWording(wording, 'vqaPrompt');
  checkText(question, 'vqaPrompt', 'question');
  const ref = wording === 'reference';
  return chatPrompt(IMAGE_SYSTEM_MESSAGE, [], [{ image }, { text: (ref ? VQA_INSTRUCTION : '') + question }], ref ? VQA_ANSWER_PREFIX : '');
}

/** Emu-I video question answering: the video system message, the frames as consecutive image blocks, the question. */
export function videoQAPrompt(frames: readonly Tensor[], question: string = DESCRIBE_VIDEO): Part[] {
  if (!Array.isArray(frames) || frames.length === 0) throw new ValueError('videoQAPrompt: need at least one frame');
  checkText(question, 'videoQAPrompt', 'question');
  return chatPrompt(VIDEO_SYSTEM_MESSAGE, [], [{ video: [...frames] }, { text: question }]);
}

/** An in-context example for the pretrained model: an image and the text that goes with it. */
export interface FewShotExample {
  image: Tensor;
  text: string;
}

/** The pretrained model's in-context format (no template): `{I1}text1{I2}text2...{Iq}`. */
export function fewShotPrompt(examples: readonly FewShotExample[], query: Tensor): Part[] {
  if (!Array.isArray(examples)) throw new ValueError('fewShotPrompt: examples must be an array of { image, text }');
  const items: (string | Part)[] = [];
  for (const [i, ex] of examples.entries()) {
    checkText(ex?.text, 'fewShotPrompt', `example ${i}'s text`);
    items.push({ image: ex.image }, ex.text);
  }
  items.push({ image: query });
  return joinParts(items);
}

/** Text-to-image: the prompt text, after which Emu regresses the image (`<s>{text}[IMG]`). */
export function textToImagePrompt(text: string): Part[] {
  checkText(text, 'textToImagePrompt', 'text');
  return joinParts([text]);
}

/** Image blending: two images and no text (`<s>{I1}{I2}[IMG]`, spec 4.4 and issue #2). */
export function blendPrompt(a: Tensor, b: Tensor): Part[] {
  return [{ image: a }, { image: b }];
}

/**
 * In-context generation: text and images interleaved in the caller's order, e.g.
 * ["This is the first image: ", img1, "This is the second image: ", img2, "The animal ...: "].
 */
export function inContextImagePrompt(items: readonly (string | Tensor)[]): Part[] {
  if (!Array.isArray(items) || items.length === 0) throw new ValueError('inContextImagePrompt: need at least one text or image');
  return joinParts(items.map((x) => (typeof x === 'string' ? x : { image: x })));
}
