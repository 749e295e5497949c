// data-documents.test.ts: interleaved documents (src/emu/data/documents.ts) and storyboards
// (storyboard.ts): determinism; layout (images and texts in the promised order); truth checked on
// the pixels: every shape a document sentence names is read back from the image next to it, and
// every storyboard subtitle's "X is at ZONE" holds in the frame that follows it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/tensor/errors.ts';
import { documentParts, interleavedDocument } from '../../src/emu/data/documents.ts';
import type { SamplePart } from '../../src/emu/data/sample.ts';
import { COLORS, KINDS, readBack } from '../../src/emu/data/shapes.ts';
import { evenFrames, storyboard, storyboardParts, zone } from '../../src/emu/data/storyboard.ts';

const NAMED = new RegExp(`\\b(${COLORS.join('|')}) (${KINDS.join('|')})\\b`, 'g');

/** The parts' layout as a string: I image, T text, V video. */
function shape(parts: SamplePart[]): string {
  return parts.map((p) => ('image' in p ? 'I' : 'text' in p ? 'T' : 'V')).join('');
}

test('documents are deterministic, have 2-3 images, and vary their order', () => {
  const counts = new Set<number>();
  const layouts = new Set<string>();
  for (let seed = 0; seed < 200; seed++) {
    const a = documentParts(interleavedDocument(seed)), b = documentParts(interleavedDocument(seed));
    assert.equal(a.map((p) => ('image' in p ? Array.from(p.image) : p)), b.map((p) => ('image' in p ? Array.from(p.image) : p)));
    const n = a.filter((p) => 'image' in p).length;
    counts.add(n);
    layouts.add(shape(a));
    for (let i = 1; i < a.length; i++) assert.ok(!('text' in a[i] && 'text' in a[i - 1]), 'adjacent text parts are merged');
  }
  assert.equal([...counts].sort(), [2, 3]);
  assert.ok(layouts.size >= 6, `only ${layouts.size} layouts`);
  assert.is(interleavedDocument(1, { images: 5 }).items.length, 5);
  assert.throws(() => interleavedDocument(1, { images: 0 }), (e: unknown) => e instanceof ValueError);
});

test('every shape a document sentence names is read back from the image next to that sentence', () => {
  let checked = 0;
  for (let seed = 100; seed < 400; seed++) {
    const doc = interleavedDocument(seed);
    const parts = documentParts(doc);
    // Walk the parts and find each item's sentence beside its image, as the item order says.
    const images = parts.flatMap((p, i) => ('image' in p ? [i] : []));
    assert.is(images.length, doc.items.length);
    doc.items.forEach((item, k) => {
      const neighbour = parts[images[k] + (item.imageFirst ? 1 : -1)];
      assert.ok(neighbour && 'text' in neighbour, `seed ${seed}: image ${k} has no text on its ${item.imageFirst ? 'right' : 'left'}`);
      assert.ok((neighbour as { text: string }).text.includes(item.sentence), `seed ${seed}: sentence ${k} is not beside its image`);
      const found = readBack((parts[images[k]] as { image: Float32Array }).image);
      for (const m of item.sentence.matchAll(NAMED)) {
        assert.ok(found.some((f) => f.color === m[1] && f.kind === m[2]), `seed ${seed}: "${item.sentence}" but image shows ${JSON.stringify(found.map((f) => `${f.color} ${f.kind}`))}`);
        checked++;
      }
    });
    const said = /\b(two|three) (pictures|drawings)\b/.exec(doc.intro);
    if (said) assert.is(['two', 'three'].indexOf(said[1]) + 2, doc.items.length);
  }
  assert.ok(checked > 500, `only ${checked} phrases checked`);
});

test('zone borders: read-back centres (possibly half a pixel lower) land in the same zone', () => {
  for (let c = 0; c <= 32; c++) {
    for (const v of [0, 16, 30]) {
      assert.is(zone(c + 0.5, v), zone(c, v), `x ${c}`);
      assert.is(zone(v, c + 0.5), zone(v, c), `y ${c}`);
    }
  }
  assert.is(zone(2, 2), 'top left');
  assert.is(zone(16, 16), 'centre');
  assert.is(zone(30, 16), 'right');
  assert.is(zone(16, 30), 'bottom');
});

test('storyboards: t0 I(f0) t1 I(f1) ... I(fK-1) t_last, and every subtitle is true of the next frame', () => {
  assert.equal(evenFrames(8, 4), [0, 2, 5, 7]);
  assert.equal(evenFrames(8, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => evenFrames(8, 9), (e: unknown) => e instanceof ValueError);
  for (let seed = 0; seed < 200; seed++) {
    const sb = storyboard(seed);
    const parts = storyboardParts(sb);
    assert.is(shape(parts), 'TITITITIT');
    assert.equal(storyboardParts(storyboard(seed)).map((p) => ('text' in p ? p.text : Array.from((p as { image: Float32Array }).image))),
      parts.map((p) => ('text' in p ? p.text : Array.from((p as { image: Float32Array }).image))));
    for (let i = 0; i < sb.frameIndices.length; i++) {
      const found = readBack((parts[2 * i + 1] as { image: Float32Array }).image);
      const text = (parts[2 * i] as { text: string }).text;
      const where = [...text.matchAll(/the (\w+) (\w+) is at the ([a-z ]+)\./g)];
      assert.is(where.length, 1, text);
      const [, color, kind, z] = where[0];
      const f = found.filter((x) => x.color === color && x.kind === kind);
      assert.is(f.length, 1, `seed ${seed}: ${color} ${kind} not in frame ${i}`);
      assert.is(zone(f[0].cx, f[0].cy), z, `seed ${seed} frame ${i}: "${text}"`);
    }
    // The ending: where each shape is in the clip's last frame (the last frame shown).
    const lastFound = readBack((parts[parts.length - 2] as { image: Float32Array }).image);
    const ending = (parts[parts.length - 1] as { text: string }).text;
    const ends = [...ending.matchAll(/the (\w+) (\w+) ends at the ([a-z ]+?)(?: and|\.)/g)];
    assert.is(ends.length, sb.clip.shapes.length, ending);
    for (const [, color, kind, z] of ends) {
      const f = lastFound.find((x) => x.color === color && x.kind === kind)!;
      assert.is(zone(f.cx, f.cy), z, `seed ${seed}: "${ending}"`);
    }
  }
  assert.is(shape(storyboardParts(storyboard(4, { frames: 8 }))), 'TITITITITITITITIT');
});

test.run();
