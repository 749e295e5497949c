// sample.ts: what every data source of src/emu/data produces, before tokenisation.
//
// A Sample is one training sequence as an ordered list of parts: text, an image (HxWx3
// Float32Array in [0,1], row-major, the layout shapes.ts renders) or a video (its frames, each an
// image). The model side (Emu.tokenize) turns it into ids: BOS first, each text part BPE-encoded,
// each image an [IMG] <image>xN [/IMG] block, a video its frames as consecutive blocks.
//
// Conventions the trainer relies on:
//  - parts never contain BOS; they always END with the EOS text part "</s>" (the reference's
//    "EOS is appended by the data pipeline": this is the pipeline), so tokenise WITHOUT adding EOS;
//  - `loss: 'all'` (pretraining layouts): cross-entropy on every text token as usual;
//    `loss: 'answers'` (instruction dialogues): cross-entropy only on the tokens of text parts
//    marked `answer: true` (each assistant answer and the "</s>" that closes its turn), so the
//    trainer builds its target mask part by part.
// Pixels are plain arrays, no tensors, so samples are cheap to make, compare and test.

export type SamplePart =
  | { text: string; answer?: boolean }
  | { image: Float32Array }
  | { video: Float32Array[] };

/** The sequence layouts (spec 2.2) plus Emu-I dialogues. */
export type SampleKind = 'image-text' | 'document' | 'video-text' | 'storyboard' | 'dialogue';

export interface Sample {
  kind: SampleKind;
  parts: SamplePart[];
  loss: 'all' | 'answers';
}

/** The end-of-sequence string; the tokenizer maps it to the EOS id. */
export const EOS = '</s>';

/**
 * Appends (non-answer) text to parts, joining it with `separator` to a directly preceding plain
 * text part (not an answer, not the EOS part), so consecutive sentences become one part; an empty
 * string adds nothing.
 */
export function appendText(parts: SamplePart[], text: string, separator = ' '): void {
  if (!text) return;
  const last = parts[parts.length - 1];
  if (last && 'text' in last && !last.answer && last.text !== EOS) last.text = `${last.text}${separator}${text}`;
  else parts.push({ text });
}

/** Number of images a sample feeds the model (a video counts its frames). */
export function imageCount(sample: Sample): number {
  return sample.parts.reduce((n, p) => n + ('image' in p ? 1 : 'video' in p ? p.video.length : 0), 0);
}

/** The sample's text with each image (or video frame) written as `marker`: for tokenizer corpora and logs. */
export function sampleText(sample: Sample, marker = ''): string {
  return sample.parts.map((p) => ('text' in p ? p.text : 'image' in p ? marker : marker.repeat(p.video.length))).join('');
}
