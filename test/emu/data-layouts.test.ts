// data-layouts.test.ts: the four Emu sequence layouts and dialogues of src/emu/data/layouts.ts
// (parts in the promised order, EOS last, loss mode, image-before/after-text both drawn, sizes,
// determinism), the sample helpers, and the seed splits: training and held-out seeds never meet,
// including the scenes a sample derives from its seed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/tensor/errors.ts';
import { interleavedDocument } from '../../src/emu/data/documents.ts';
import {
  dialogueSample, documentSample, imageTextSample, mnistPair, shapesPair, shapesTwins, storyboardSample, videoPair,
} from '../../src/emu/data/layouts.ts';
import { mnistEntries } from '../../src/emu/data/mnist.ts';
import { EOS, appendText, imageCount, sampleText, type Sample, type SamplePart } from '../../src/emu/data/sample.ts';
import { GRID, KINDS, caption, kindTwin, readBack, scene } from '../../src/emu/data/shapes.ts';
import { toPairs } from '../../src/emu/train/train.ts';
import { rngFor } from '../../src/emu/data/splits.ts';
import { mnistSource, pretrainMixture, seededSource } from '../../src/emu/data/sources.ts';
import { SPLIT_SIZE, mix32, splitOf, splitSeed, subSeed } from '../../src/emu/data/splits.ts';

/** I image, V video, T text, A answer text, E the EOS part. */
function layout(s: Sample): string {
  return s.parts.map((p) => ('image' in p ? 'I' : 'video' in p ? 'V' : p.text === EOS ? 'E' : p.answer ? 'A' : 'T')).join('');
}

function plain(s: Sample): unknown {
  return s.parts.map((p: SamplePart) => ('image' in p ? Array.from(p.image) : 'video' in p ? p.video.map((f) => Array.from(f)) : p));
}

test('shapes centres lie on the GRID lattice, inside the image', () => {
  for (let seed = 0; seed < 300; seed++) {
    for (const s of scene(seed).shapes) {
      assert.is(s.cx % GRID, 0);
      assert.is(s.cy % GRID, 0);
    }
  }
});

test('kindTwin changes every kind and nothing else; shapesTwins pairs each image with its own caption', () => {
  let differing = 0;
  for (let seed = 0; seed < 200; seed++) {
    const sc = scene(seed);
    const twin = kindTwin(sc, rngFor(seed, 10)); // the stream shapesTwins draws the twin from
    assert.is(twin.background, sc.background);
    twin.shapes.forEach((t, i) => {
      const s = sc.shapes[i];
      assert.not.equal(t.kind, s.kind);
      assert.ok(KINDS.includes(t.kind));
      assert.equal({ ...t, kind: s.kind }, s);
    });
    const sample = shapesTwins(seed);
    assert.is(layout(sample), 'ITITE');
    const pairs = toPairs(sample);
    assert.is(pairs.length, 2);
    assert.is(pairs[0].caption, caption(sc, rngFor(seed, 5)));
    // The twin's picture reads back as its own kinds, in the same places and colours.
    const found = readBack(pairs[1].image).map((f) => `${f.kind} ${f.color}`).sort();
    assert.equal(found, twin.shapes.map((s) => `${s.kind} ${s.color}`).sort());
    // Same template: the two captions differ only in shape words.
    const strip = (c: string) => c.replace(/\b(circle|square|triangle)s?\b/g, '#');
    if (strip(pairs[0].caption) === strip(pairs[1].caption)) differing++;
  }
  assert.is(differing, 200);
});

test('toPairs: one pair per image from the text that follows it; an image without a caption is an error', () => {
  const img = new Float32Array(12);
  assert.equal(toPairs(imageTextSample(img, 'a red circle', true)), [{ image: img, caption: 'a red circle' }]);
  assert.throws(() => toPairs(imageTextSample(img, 'a red circle', false)), (e: unknown) => e instanceof ValueError && /not followed by its caption/.test(e.message));
});

test('image-text pairs: I T E or T I E, both orders drawn about equally, for shapes and MNIST', () => {
  const orders = { IT: 0, TI: 0 };
  for (let seed = 0; seed < 400; seed++) {
    const s = shapesPair(seed);
    assert.is(s.kind, 'image-text');
    assert.is(s.loss, 'all');
    const l = layout(s);
    assert.ok(l === 'ITE' || l === 'TIE', l);
    orders[l === 'ITE' ? 'IT' : 'TI']++;
  }
  assert.ok(orders.IT > 140 && orders.TI > 140, JSON.stringify(orders));
  const digits = mnistEntries('train').slice(0, 300).map((e) => layout(mnistPair(e)));
  assert.ok(digits.every((l) => l === 'ITE' || l === 'TIE'));
  assert.ok(digits.filter((l) => l === 'ITE').length > 100 && digits.filter((l) => l === 'TIE').length > 100);
  assert.equal(layout(imageTextSample(new Float32Array(12), 'x', true)), 'ITE');
});

test('documents, video pairs, storyboards and dialogues have their layouts; EOS is always last', () => {
  for (let seed = 0; seed < 100; seed++) {
    const doc = documentSample(seed);
    assert.ok(/^[IT]+E$/.test(layout(doc)) && !layout(doc).includes('TT'), layout(doc));
    assert.is(imageCount(doc), interleavedDocument(seed).items.length);
    const v = videoPair(seed);
    assert.is(layout(v), 'VTE');
    assert.is(imageCount(v), 8);
    assert.is(v.kind, 'video-text');
    assert.is(layout(storyboardSample(seed)), 'TITITITITE');
    const d = dialogueSample(seed);
    assert.is(d.kind, 'dialogue');
    assert.is(d.loss, 'answers');
    assert.ok(/^TITAE(TAE)*$/.test(layout(d)), layout(d));
    assert.ok(/^TVTAE(TAE)*$/.test(layout(dialogueSample(seed, { video: true }))));
    for (const s of [doc, v, d]) assert.is((s.parts[s.parts.length - 1] as { text: string }).text, EOS);
  }
  assert.is(layout(storyboardSample(1, { frames: 2 })), 'TITITE');
  assert.is(imageCount(videoPair(1, { frames: 4 })), 4);
});

test('layouts honour the image size and are pure functions of the seed', () => {
  const pixels = (s: Sample) => s.parts.flatMap((p) => ('image' in p ? [p.image] : 'video' in p ? p.video : []));
  for (const make of [shapesPair, documentSample, videoPair, storyboardSample, dialogueSample]) {
    for (const img of pixels(make(3, { size: 16 }))) assert.is(img.length, 16 * 16 * 3);
    assert.equal(plain(make(3)), plain(make(3)), make.name);
    assert.not.equal(plain(make(3)), plain(make(4)), make.name);
  }
  for (const img of pixels(mnistPair(mnistEntries('heldOut')[0], { size: 16 }))) assert.is(img.length, 16 * 16 * 3);
});

test('sample helpers: appendText merges plain text only; sampleText and imageCount', () => {
  const parts: SamplePart[] = [];
  appendText(parts, 'a');
  appendText(parts, '');
  appendText(parts, 'b');
  parts.push({ text: ' yes', answer: true });
  appendText(parts, 'c', '');
  parts.push({ text: EOS });
  appendText(parts, 'd');
  assert.equal(parts, [{ text: 'a b' }, { text: ' yes', answer: true }, { text: 'c' }, { text: EOS }, { text: 'd' }]);
  const s: Sample = { kind: 'document', parts: [{ text: 'x' }, { image: new Float32Array(3) }, { video: [new Float32Array(3), new Float32Array(3)] }, { text: EOS }], loss: 'all' };
  assert.is(imageCount(s), 3);
  assert.is(sampleText(s, '<img>'), 'x<img><img><img></s>');
  assert.is(sampleText(s), 'x</s>');
});

test('splits: seed ranges, subSeed stays in its split, bad arguments are ValueErrors', () => {
  assert.is(splitSeed('train', 0), 0);
  assert.is(splitSeed('train', SPLIT_SIZE - 1), 2 ** 31 - 1);
  assert.is(splitSeed('heldOut', 0), 2 ** 31);
  assert.is(splitSeed('heldOut', SPLIT_SIZE - 1), 2 ** 32 - 1);
  for (const seed of [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]) {
    for (let salt = 0; salt < 50; salt++) assert.is(splitOf(subSeed(seed, salt)), splitOf(seed));
  }
  let x = 12345;
  for (let k = 0; k < 20000; k++) {
    x = mix32(x, k);
    assert.is(splitOf(subSeed(x, k & 7)), splitOf(x));
  }
  assert.is.not(subSeed(7, 1), subSeed(7, 2));
  for (const bad of [-1, SPLIT_SIZE, 0.5]) assert.throws(() => splitSeed('train', bad), (e: unknown) => e instanceof ValueError);
  assert.throws(() => splitSeed('test' as never, 0), (e: unknown) => e instanceof ValueError);
  assert.throws(() => splitOf(2 ** 32), (e: unknown) => e instanceof ValueError);
});

test('held-out data never meets training data: seeds of sources, and the scenes samples derive', () => {
  const seen = { train: [] as number[], heldOut: [] as number[] };
  const record = (split: 'train' | 'heldOut') => (seed: number): Sample => { seen[split].push(seed); return shapesPair(seed); };
  const train = seededSource('t', record('train'), { split: 'train' });
  const held = seededSource('h', record('heldOut'), { split: 'heldOut' });
  for (const i of [0, 1, 2, 1000, 123456789, SPLIT_SIZE - 1]) { train.get(i); held.get(i); }
  assert.ok(seen.train.every((s) => s < 2 ** 31) && seen.heldOut.every((s) => s >= 2 ** 31));
  // A training document's scenes come from training seeds, a held-out one's from held-out seeds.
  for (let i = 0; i < 200; i++) {
    for (const split of ['train', 'heldOut'] as const) {
      const seed = splitSeed(split, i * 7919);
      interleavedDocument(seed).items.forEach((item, k) => {
        const derived = subSeed(seed, k + 1);
        assert.is(splitOf(derived), split);
        assert.equal(item.scene, scene(derived));
      });
    }
  }
  // The MNIST halves of the mixtures are disjoint too.
  const key = (s: Sample) => Array.from((s.parts.find((p) => 'image' in p) as { image: Float32Array }).image).join();
  const m = mnistSource('train'), h = mnistSource('heldOut');
  assert.is(m.size + h.size, 10000);
  const heldImages = new Set(Array.from({ length: 100 }, (_, i) => key(h.get(i))));
  for (let i = 0; i < 100; i++) assert.not.ok(heldImages.has(key(m.get(i * 37))));
  assert.equal(pretrainMixture('train').map((e) => e.ratio), [128, 128, 64, 16, 16]);
  assert.equal(pretrainMixture('heldOut').map((e) => e.source.name), ['shapes-pairs', 'mnist', 'documents', 'video-pairs', 'storyboards']);
});

test.run();
