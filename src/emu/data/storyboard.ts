// storyboard.ts: interleaved video-text of the shapes world, the YT-Storyboard layout of spec 2.2:
// `t0 I(f0) t1 I(f1) ... I(fK-1) t_last`, frames and subtitles merged in time order.
//
// A storyboard takes K frames, evenly spaced, of a moving-shapes clip (video.ts). The text before
// frame i is the subtitle "spoken" just before it: where a shape is at that moment ("now the red
// circle is at the top left"); the first one also says what happens (the clip's motion caption),
// and the trailing text says where things ended up. Positions are named by 3x3 zones of the
// 32-grid whose borders (10.75 and 21.75) lie between pixel centres and half-pixel offsets, so the
// zone of a shape's true centre equals the zone of the centre readBack measures (which can be
// half a pixel lower for a triangle).
import { ValueError } from '../../tensor/errors.ts';
import { appendText, type SamplePart } from './sample.ts';
import { pick, render, type Rng } from './shapes.ts';
import { rngFor } from './splits.ts';
import { clip, clipScene, motionCaption, movingName, shapeAt, type Clip } from './video.ts';

export interface Storyboard {
  clip: Clip;
  /** The clip frames shown, in time order. */
  frameIndices: number[];
  /** texts[i] precedes frame i; texts[K] follows the last frame. */
  texts: string[];
}

/** "top left", "left", "centre", ... for a centre on the reference 32 grid. */
export function zone(cx: number, cy: number): string {
  const h = cx < 10.75 ? 'left' : cx > 21.75 ? 'right' : '';
  const v = cy < 10.75 ? 'top' : cy > 21.75 ? 'bottom' : '';
  return [v, h].filter(Boolean).join(' ') || 'centre';
}

/** Evenly spaced indices of k frames out of n (first and last included). */
export function evenFrames(n: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 2 || k > n) throw new ValueError(`evenFrames: k must be an integer in [2, ${n}], got ${k}`);
  return Array.from({ length: k }, (_, i) => Math.round((i * (n - 1)) / (k - 1)));
}

/** "now the red circle is at the top left." for one shape (chosen at random) at frame t. */
function whereSentence(c: Clip, t: number, rng: Rng): string {
  const s = pick(rng, c.shapes);
  const at = shapeAt(s, t);
  return `${pick(rng, ['now ', ''])}the ${movingName(s)} is at the ${zone(at.cx, at.cy)}.`;
}

/** The storyboard of a seed: K frames (default 4) of an F-frame clip (default 8). */
export function storyboard(seed: number, opts: { frames?: number; clipFrames?: number } = {}): Storyboard {
  const c = clip(seed, opts.clipFrames ?? 8);
  const frameIndices = evenFrames(c.frames, opts.frames ?? 4);
  const rng = rngFor(seed, 2);
  const texts = frameIndices.map((t) => whereSentence(c, t, rng));
  texts[0] = `${motionCaption(c, rng)}. ${texts[0]}`;
  const last = c.frames - 1;
  const ending = c.shapes.map((s) => `the ${movingName(s)} ends at the ${zone(shapeAt(s, last).cx, shapeAt(s, last).cy)}`);
  texts.push(`${pick(rng, ['in the end, ', 'at last, '])}${ending.join(' and ')}.`);
  return { clip: c, frameIndices, texts };
}

/** The storyboard as ordered parts (no EOS): t0 I(f0) t1 I(f1) ... I(fK-1) t_last. */
export function storyboardParts(sb: Storyboard, size = 32): SamplePart[] {
  const parts: SamplePart[] = [];
  sb.frameIndices.forEach((t, i) => {
    appendText(parts, sb.texts[i]);
    parts.push({ image: render(clipScene(sb.clip, t), size) });
  });
  appendText(parts, sb.texts[sb.frameIndices.length]);
  return parts;
}
