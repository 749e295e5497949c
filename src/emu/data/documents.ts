// documents.ts: interleaved image-text documents of the shapes world (the MMC4 layout of spec 2.2,
// `text I(img1) text I(img2) ...`).
//
// A document is an optional introduction and 2-3 items, each a scene with one sentence that is a
// true caption of that scene, behind a connective ("next, ", "finally, "). Each item's image comes
// right before or right after its own sentence (chosen at random per item, as the reference
// randomises image/sentence order), so every sentence is adjacent to the image it describes. The
// introduction only states the number of pictures. Item scenes come from subSeed(seed, i), so
// they stay in the seed's split.
import { ValueError } from '../../tensor/errors.ts';
import { appendText, type SamplePart } from './sample.ts';
import { caption, numberWord, pick, render, scene, type Scene } from './shapes.ts';
import { rngFor, subSeed } from './splits.ts';

export interface DocumentItem {
  scene: Scene;
  /** Connective plus caption, ending with a full stop. */
  sentence: string;
  /** Whether the image precedes its sentence. */
  imageFirst: boolean;
}

export interface InterleavedDocument {
  intro: string;
  items: DocumentItem[];
}

const FIRST = ['', 'first, ', 'to begin, '];
const MIDDLE = ['next, ', 'then ', 'after that, '];
const LAST = ['finally, ', 'and last, ', 'the last one: '];

/** The document of a seed (2 or 3 images unless `images` says how many, 1-5). */
export function interleavedDocument(seed: number, opts: { images?: number } = {}): InterleavedDocument {
  const rng = rngFor(seed, 1);
  const n = opts.images ?? (rng() < 0.5 ? 2 : 3);
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new ValueError(`interleavedDocument: images must be an integer in [1, 5], got ${n}`);
  const count = numberWord(n);
  const intro = pick(rng, ['', `here are ${count} pictures of shapes.`, `a page with ${count} drawings.`, `${count} pictures, one after another.`]);
  const items = Array.from({ length: n }, (_, i): DocumentItem => {
    const sc = scene(subSeed(seed, i + 1));
    const connective = n === 1 ? '' : i === 0 ? pick(rng, FIRST) : i === n - 1 ? pick(rng, LAST) : pick(rng, MIDDLE);
    return { scene: sc, sentence: `${connective}${caption(sc, rng)}.`, imageFirst: rng() < 0.5 };
  });
  return { intro, items };
}

/** The document as ordered parts (no EOS): intro, then each item's image and sentence in its order. */
export function documentParts(doc: InterleavedDocument, size = 32): SamplePart[] {
  const parts: SamplePart[] = [];
  appendText(parts, doc.intro);
  for (const item of doc.items) {
    const image = { image: render(item.scene, size) };
    if (item.imageFirst) {
      parts.push(image);
      appendText(parts, item.sentence);
    } else {
      appendText(parts, item.sentence);
      parts.push(image);
    }
  }
  return parts;
}
