// data-loader.test.ts: the data loader of src/emu/data/loader.ts and the sources it reads: exact
// per-source ratios, a fresh seeded permutation per epoch, resume equality (the batches after
// restore(JSON of state()) equal the uninterrupted run's, with real generated data too), skipping
// of unloadable and too-long samples (counted, warned, never truncated), the file-backed image
// folder source, and argument errors.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/tensor/errors.ts';
import { shapesPair, videoPair } from '../../src/emu/data/layouts.ts';
import { DataLoader, type Batch, type DataLoaderOptions } from '../../src/emu/data/loader.ts';
import { EOS, sampleText, type Sample } from '../../src/emu/data/sample.ts';
import { shuffledIndex } from '../../src/emu/data/shuffle.ts';
import { imageFolderSource, mnistSource, seededSource, type DataSource } from '../../src/emu/data/sources.ts';

/** Text-only items "name:i"; `bad(i)` items throw on load, `long(i)` items are 100 characters longer. */
function fakeSource(name: string, size: number, opts: { bad?: (i: number) => boolean; long?: (i: number) => boolean } = {}): DataSource {
  return {
    name, size,
    get(i) {
      if (opts.bad?.(i)) throw new Error(`cannot read item ${i}`);
      return { kind: 'image-text', parts: [{ text: `${name}:${i}${opts.long?.(i) ? 'x'.repeat(100) : ''}` }, { text: EOS }], loss: 'all' };
    },
  };
}

const measure = (s: Sample) => sampleText(s, '#'.repeat(10)).length;

function loader(sources: DataLoaderOptions['sources'], batchSize: number, extra: Partial<DataLoaderOptions> = {}): DataLoader {
  return new DataLoader({ sources, batchSize, seed: 1, maxLen: 50, measure, warn: () => {}, ...extra });
}

function names(b: Batch): string[] {
  return b.origins.map((o) => o.source);
}

test('ratios: every sum(ratios) draws hold exactly `ratio` samples of each source', () => {
  const l = loader([{ source: fakeSource('a', 100), ratio: 3 }, { source: fakeSource('b', 100), ratio: 1 }], 4);
  for (let k = 0; k < 25; k++) {
    const b = names(l.next());
    assert.is(b.filter((n) => n === 'a').length, 3);
    assert.is(b.filter((n) => n === 'b').length, 1);
  }
  const paper = [128, 128, 64, 16, 16];
  const p = loader(paper.map((ratio, j) => ({ source: fakeSource(`s${j}`, 1000), ratio })), 352);
  for (let k = 0; k < 3; k++) {
    const b = names(p.next());
    paper.forEach((ratio, j) => assert.is(b.filter((n) => n === `s${j}`).length, ratio));
  }
  // A batch size that does not divide: exact over 352 draws (16 batches of 22), small sources never starve.
  const q = loader(paper.map((ratio, j) => ({ source: fakeSource(`s${j}`, 1000), ratio })), 22);
  const all = Array.from({ length: 16 }, () => names(q.next())).flat();
  paper.forEach((ratio, j) => assert.is(all.filter((n) => n === `s${j}`).length, ratio));
  const firstSmall = all.indexOf('s3');
  assert.ok(firstSmall >= 0 && firstSmall < 44, `source s3 first drawn at ${firstSmall}`);
});

test('each epoch reads a source in a fresh seeded permutation', () => {
  const orders = (seed: number) => {
    const l = loader([{ source: fakeSource('a', 10), ratio: 1 }], 10, { seed });
    return Array.from({ length: 3 }, () => l.next()).map((b) => {
      assert.ok(b.origins.every((o, _, os) => o.epoch === os[0].epoch));
      return b.origins.map((o) => o.index);
    });
  };
  const [e0, e1, e2] = orders(1);
  for (const e of [e0, e1, e2]) assert.equal([...e].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.not.equal(e0, e1);
  assert.not.equal(e1, e2);
  assert.not.equal(orders(2)[0], e0);
  assert.equal(orders(1)[0], e0);
});

test('shuffledIndex is a permutation of [0, size) for every size and key', () => {
  for (let size = 1; size <= 70; size++) {
    for (const key of [0, 1, 0xdeadbeef]) {
      const seen = new Set(Array.from({ length: size }, (_, i) => shuffledIndex(i, size, key)));
      assert.is(seen.size, size);
      assert.ok([...seen].every((x) => Number.isInteger(x) && x >= 0 && x < size));
    }
  }
  const big = Array.from({ length: 1000 }, (_, i) => shuffledIndex(i, 2 ** 31, 5));
  assert.is(new Set(big).size, 1000);
  assert.ok(big.every((x) => x >= 0 && x < 2 ** 31));
  const identity = Array.from({ length: 100 }, (_, i) => shuffledIndex(i, 100, 9)).filter((x, i) => x === i).length;
  assert.ok(identity < 10, `${identity} fixed points of 100`);
  assert.throws(() => shuffledIndex(5, 5, 0), (e: unknown) => e instanceof ValueError);
  assert.throws(() => shuffledIndex(0, 2 ** 31 + 1, 0), (e: unknown) => e instanceof ValueError);
});

/** The batches' origins and texts, comparable with assert.equal. */
function summary(batches: Batch[]): unknown {
  return batches.map((b) => ({ origins: b.origins, texts: b.samples.map((s) => sampleText(s, '#')) }));
}

test('resume: restore(JSON(state())) continues with exactly the batches of the uninterrupted run', () => {
  const sources = () => [
    { source: fakeSource('a', 13, { bad: (i) => i % 5 === 2 }), ratio: 3 },
    { source: fakeSource('b', 7, { long: (i) => i % 3 === 0 }), ratio: 2 },
    { source: fakeSource('c', 5), ratio: 1 },
  ];
  const full = loader(sources(), 5);
  const uninterrupted = Array.from({ length: 30 }, () => full.next());
  for (const cut of [0, 1, 7, 29]) {
    const first = loader(sources(), 5);
    for (let k = 0; k < cut; k++) first.next();
    const saved = JSON.parse(JSON.stringify(first.state()));
    const resumed = loader(sources(), 5);
    resumed.restore(saved);
    assert.is(resumed.batches, cut);
    const rest = Array.from({ length: 30 - cut }, () => resumed.next());
    assert.equal(summary(rest), summary(uninterrupted.slice(cut)), `cut at ${cut}`);
    assert.equal(resumed.skipped, full.skipped, `skip counts after resuming at ${cut}`);
    assert.equal(resumed.state(), full.state());
  }
});

test('resume with generated images, videos and MNIST digits: identical pixels', () => {
  const sources = () => [
    { source: seededSource('pairs', (s) => shapesPair(s)), ratio: 2 },
    { source: seededSource('videos', (s) => videoPair(s, { frames: 4 })), ratio: 1 },
    { source: mnistSource('train'), ratio: 1 },
  ];
  const opts = { maxLen: 10_000, seed: 77 };
  const full = loader(sources(), 4, opts);
  const uninterrupted = Array.from({ length: 6 }, () => full.next());
  const first = loader(sources(), 4, opts);
  first.next(); first.next();
  const resumed = loader(sources(), 4, opts);
  resumed.restore(JSON.parse(JSON.stringify(first.state())));
  const pixels = (bs: Batch[]) => bs.map((b) => b.samples.map((s) => s.parts.map((p) => ('image' in p ? Array.from(p.image) : 'video' in p ? p.video.map((f) => Array.from(f)) : p.text))));
  assert.equal(pixels(Array.from({ length: 4 }, () => resumed.next())), pixels(uninterrupted.slice(2)));
});

test('bad samples are skipped, counted by reason and warned about, never truncated', () => {
  const warnings: string[] = [];
  const l = loader([{ source: fakeSource('a', 20, { bad: (i) => i % 4 === 1, long: (i) => i % 4 === 2 }), ratio: 1 }], 1,
    { warn: (m) => warnings.push(m) });
  const delivered = Array.from({ length: 25 }, () => l.next().samples[0]);
  for (const s of delivered) {
    const i = Number(/^a:(\d+)$/.exec((s.parts[0] as { text: string }).text)![1]);
    assert.ok(i % 4 === 0 || i % 4 === 3, `item ${i} should have been skipped`);
    assert.ok(measure(s) <= 50);
  }
  // Everything consumed is either delivered or skipped: 25 good items span more than two epochs.
  const st = l.state();
  const consumed = st.cursors[0].epoch * 20 + st.cursors[0].offset;
  assert.is(consumed, 25 + l.skipped['too-long'] + l.skipped['load-error']);
  assert.ok(l.skipped['load-error'] >= 10 && l.skipped['too-long'] >= 10, JSON.stringify(l.skipped));
  assert.is(warnings.length, l.skipped['too-long'] + l.skipped['load-error']);
  assert.is(warnings.filter((w) => /load-error/.test(w) && /cannot read item \d+/.test(w)).length, l.skipped['load-error']);
  assert.is(warnings.filter((w) => /too-long/.test(w) && /more than maxLen 50/.test(w)).length, l.skipped['too-long']);
  for (const w of warnings) {
    const i = Number(/a\[(\d+)\]/.exec(w)![1]);
    assert.is(i % 4, /load-error/.test(w) ? 1 : 2, w);
  }
  // A source with nothing usable is an error after maxConsecutiveSkips tries, not an endless loop.
  const hopeless = loader([{ source: fakeSource('z', 100, { long: () => true }), ratio: 1 }], 1, { maxConsecutiveSkips: 5 });
  assert.throws(() => hopeless.next(), (e: unknown) => e instanceof ValueError && /5 samples in a row of source 'z'/.test((e as Error).message));
  assert.is(hopeless.skipped['too-long'], 5);
});

test('image folder source: decodes PNGs with their captions; bad files are skipped by the loader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emu-data-'));
  try {
    const put = (name: string, body: string) => writeFileSync(join(dir, name), body);
    put('a.png', 'GOOD'); put('a.txt', 'a red circle\n');
    put('b.png', 'garbage'); put('b.txt', 'unreadable image');
    put('c.png', 'GOOD'); // no caption
    put('d.png', 'SHORT'); put('d.txt', 'wrong size');
    put('e.PNG', 'GOOD'); put('e.txt', 'a blue square');
    put('notes.md', 'not an image');
    const decode = (bytes: Uint8Array, path: string): Float32Array => {
      const body = Buffer.from(bytes).toString();
      if (body === 'GOOD') return new Float32Array(32 * 32 * 3).fill(0.5);
      if (body === 'SHORT') return new Float32Array(10);
      throw new Error(`${path}: not a PNG`);
    };
    const src = imageFolderSource('folder', dir, decode);
    assert.is(src.size, 5);
    assert.throws(() => src.get(1), /not a PNG/);
    assert.throws(() => src.get(2), /ENOENT/);
    assert.throws(() => src.get(3), (e: unknown) => e instanceof ValueError && /decoded to 10 values/.test((e as Error).message));
    assert.throws(() => src.get(5), (e: unknown) => e instanceof ValueError && /index 5 is outside \[0, 5\)/.test((e as Error).message));
    assert.throws(() => mnistSource('heldOut').get(-1), (e: unknown) => e instanceof ValueError && /mnist: index -1/.test((e as Error).message));
    assert.throws(() => seededSource('few', (s) => shapesPair(s), { size: 3 }).get(3), (e: unknown) => e instanceof ValueError && /few: index 3/.test((e as Error).message));
    const good = src.get(0);
    assert.ok(sampleText(good) === 'a red circle</s>');
    const l = loader([{ source: src, ratio: 1 }], 2, { maxLen: 1000 });
    const texts = Array.from({ length: 6 }, () => l.next()).flatMap((b) => b.samples.map((s) => sampleText(s)));
    assert.equal([...new Set(texts)].sort(), ['a blue square</s>', 'a red circle</s>']);
    assert.ok(l.skipped['load-error'] >= 9, `${l.skipped['load-error']} skipped`);
    mkdirSync(join(dir, 'empty'));
    assert.throws(() => imageFolderSource('x', join(dir, 'empty'), decode), (e: unknown) => e instanceof ValueError && /no .png files/.test((e as Error).message));
    assert.throws(() => imageFolderSource('x', join(dir, 'missing'), decode), (e: unknown) => e instanceof ValueError && /not a directory/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad options and mismatched states are ValueErrors', () => {
  const a = { source: fakeSource('a', 4), ratio: 1 };
  const bad: [Partial<DataLoaderOptions>, RegExp][] = [
    [{ sources: [] }, /at least one source/],
    [{ sources: [a, a] }, /two sources are named 'a'/],
    [{ sources: [{ source: fakeSource('a', 4), ratio: 1.5 }] }, /ratio of 'a'/],
    [{ sources: [{ source: fakeSource('a', 0), ratio: 1 }] }, /size 0/],
    [{ batchSize: 0 }, /batchSize/],
    [{ seed: -1 }, /seed/],
    [{ maxLen: 0 }, /maxLen/],
  ];
  for (const [opts, re] of bad) {
    assert.throws(() => new DataLoader({ sources: [a], batchSize: 2, seed: 1, maxLen: 10, measure, ...opts }),
      (e: unknown) => e instanceof ValueError && re.test((e as Error).message), String(re));
  }
  const l = loader([a], 2);
  l.next();
  const st = l.state();
  assert.throws(() => loader([a], 3).restore(st), (e: unknown) => e instanceof ValueError && /batchSize/.test((e as Error).message));
  assert.throws(() => loader([a], 2, { seed: 2 }).restore(st), (e: unknown) => e instanceof ValueError && /seed/.test((e as Error).message));
  assert.throws(() => loader([{ source: fakeSource('b', 4), ratio: 1 }], 2).restore(st), (e: unknown) => e instanceof ValueError && /sources/.test((e as Error).message));
  assert.throws(() => loader([a], 2).restore({ ...st, version: 2 as 1 }), (e: unknown) => e instanceof ValueError && /version/.test((e as Error).message));
  assert.throws(() => loader([a], 2).restore({ ...st, cursors: [{ source: 'a', epoch: 0, offset: 9 }] }), (e: unknown) => e instanceof ValueError && /cursor/.test((e as Error).message));
  const nan = loader([a], 1, { measure: () => NaN });
  assert.throws(() => nan.next(), (e: unknown) => e instanceof ValueError && /measure returned NaN/.test((e as Error).message));
});

test.run();
