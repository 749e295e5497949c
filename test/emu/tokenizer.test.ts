// tokenizer.test.ts: the byte-level BPE of src/emu/tokenizer.ts: round trips (ASCII, accents,
// emoji), BOS, special tokens inside text and their ids, training determinism and size, the
// compact alphabet of small vocabularies, save/load and its errors, decode of arbitrary ids, and
// compression of a caption corpus like the tiny preset's.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CheckpointError, ValueError } from '../../src/tensor/errors.ts';
import { preset, SPECIAL_TOKENS, vocabSize } from '../../src/emu/config.ts';
import { Tokenizer, trainBPE } from '../../src/emu/tokenizer.ts';
import { mulberry32 as rng } from '../../src/emu/data/shapes.ts';

/** Asserts fn throws an instance of `cls` whose message matches `pattern` (uvu's throws calls classes). */
function throwsA(fn: () => unknown, cls: new (message: string) => Error, pattern = /./, note?: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof cls && pattern.test(err.message), `${note ?? ''} expected ${cls.name} matching ${pattern}, got ${String(err)}`);
}

/** `n` made-up words of 1..4 syllables, many of them rare (a corpus that never runs out of pairs). */
function prose(n: number, seed = 5): string[] {
  const r = rng(seed);
  const syl = ['ka', 'lo', 'mi', 'tre', 'sun', 'dor', 'vel', 'qu', 'ex', 'ith', 'ar', 'bo', 'zen', 'pha', 'ul', 'wy'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const words = Array.from({ length: 4 + Math.floor(r() * 8) }, () => Array.from({ length: 1 + Math.floor(r() * 4) }, () => syl[Math.floor(r() * syl.length)]).join(''));
    out.push(words.join(' ') + (r() < 0.5 ? '.' : ','));
  }
  return out;
}

const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'black', 'white', 'gray', 'pink'];
const SIZES = ['small', 'large', 'tiny', 'big', 'medium-sized'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'rectangle', 'hexagon', 'diamond'];
const RELATIONS = ['to the left of', 'to the right of', 'above', 'below', 'next to', 'inside', 'far from'];

/** `n` captions like "a small red circle to the left of a blue square". */
function captions(n: number, seed = 1): string[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const first = `${pick(['a', 'one', 'the'])} ${pick(SIZES)} ${pick(COLORS)} ${pick(SHAPES)}`;
    const second = `${pick(['a', 'the'])} ${pick(COLORS)} ${pick(SHAPES)}`;
    out.push(r() < 0.8 ? `${first} ${pick(RELATIONS)} ${second}` : `${pick(['There are', 'We see'])} ${1 + Math.floor(r() * 9)} ${pick(COLORS)} ${pick(SHAPES)}s.`);
  }
  return out;
}

const CORPUS = captions(5000);
// Captions alone run out of pairs near 410 ids (~40 distinct words, merges never cross words),
// so the 512 vocabulary also sees some made-up prose.
const tok512 = trainBPE([...CORPUS, ...prose(500)], { vocabSize: 512 });

const SAMPLES = [
  'a small red circle to the left of a blue square',
  'Hello, world!  Two spaces, a tab\tand\nnewlines.\n\n',
  'Café crème brûlée, naïve façade, Ångström, ß, Straße',
  'emoji: 🐶🐱 👍🏽 👨‍👩‍👧 flags 🇫🇷 and 😀!',
  '中文字符和日本語のテキスト, Ελληνικά, русский текст',
  '   leading and trailing spaces   ',
  '',
  'x',
  "it's 2023: costs $4.50 (approx.) -- ok?",
];

test('ids layout: bytes 0..255, <s> 256, </s> 257, merges, then the specials at baseVocab in the reference order', () => {
  assert.is(tok512.bos, 256);
  assert.is(tok512.eos, 257);
  assert.is(tok512.baseVocab, 512);
  assert.equal([tok512.pad, tok512.img, tok512.imgEnd, tok512.image, tok512.user, tok512.assistant], [512, 513, 514, 515, 516, 517]);
  SPECIAL_TOKENS.forEach((s, i) => {
    assert.is(tok512.tokenToId(s), 512 + i);
    assert.is(tok512.idToToken(512 + i), s);
  });
  assert.is(tok512.tokenToId('<s>'), 256);
  assert.is(tok512.tokenToId('</s>'), 257);
  assert.is(tok512.idToToken(65), 'A');
  assert.is(tok512.vocabSize(), 516);
  assert.is(tok512.vocabSize(true), 518);
  const llm = preset('tiny').llm;
  assert.is(tok512.vocabSize(), vocabSize(llm));
  assert.is(tok512.vocabSize(true), vocabSize(llm, true));
  throwsA(() => tok512.tokenToId('[FOO]'), ValueError, /not a special token/);
  throwsA(() => tok512.idToToken(9999), ValueError);
});

test('encode/decode round trip on ASCII and non-ASCII text; BOS prepended, EOS only on request', () => {
  for (const text of SAMPLES) {
    const ids = tok512.encode(text);
    assert.is(ids[0], tok512.bos, 'BOS first');
    assert.ok(!ids.slice(1).includes(tok512.bos));
    assert.ok(!ids.includes(tok512.eos), 'no EOS by default');
    assert.is(tok512.decode(ids, { skipSpecial: true }), text, JSON.stringify(text));
    assert.is(tok512.decode(ids), '<s>' + text);
    assert.equal(tok512.encode(text, { bos: false }), ids.slice(1));
    assert.equal(tok512.encode(text, { eos: true }), [...ids, tok512.eos]);
  }
  assert.equal(tok512.encode(''), [256]);
  assert.equal(tok512.encode('', { bos: false }), []);
});

test('special tokens inside text map to their ids and are never split into bytes', () => {
  const t = tok512;
  const ids = t.encode('a photo [IMG]<image><image>[/IMG] of a dog');
  const i = ids.indexOf(t.img);
  assert.ok(i > 1);
  assert.equal(ids.slice(i, i + 4), [513, 515, 515, 514]);
  assert.equal(ids.slice(1, i), t.encode('a photo ', { bos: false }));
  assert.equal(ids.slice(i + 4), t.encode(' of a dog', { bos: false }));
  assert.is(t.decode(ids), '<s>a photo [IMG]<image><image>[/IMG] of a dog');
  assert.is(t.decode(ids, { skipSpecial: true }), 'a photo  of a dog');

  // The reference image placeholder (N = 8 for tiny): [IMG] + N x <image> + [/IMG], no spaces.
  const placeholder = '[IMG]' + '<image>'.repeat(8) + '[/IMG]';
  assert.equal(t.encode(placeholder, { bos: false }), [t.img, ...Array(8).fill(t.image), t.imgEnd]);

  // Instruction template: [USER], [ASSISTANT] and literal </s> between turns.
  const chat = t.encode('[USER]: hi [ASSISTANT]: hello</s>[USER]: bye', { bos: false });
  assert.equal(chat.filter((id) => t.isSpecial(id)), [t.user, t.assistant, t.eos, t.user]);
  assert.is(t.decode(chat), '[USER]: hi [ASSISTANT]: hello</s>[USER]: bye');
  assert.equal(t.encode('[PAD][PAD]', { bos: false }), [t.pad, t.pad]);

  // Near misses are plain text.
  for (const text of ['[IMG', 'IMG]', '[ IMG]', '<image', '[img]', '[/IMG ]', '<Image>']) {
    const plain = t.encode(text, { bos: false });
    assert.ok(plain.every((id) => id < t.baseVocab && !t.isSpecial(id)), text);
    assert.is(t.decode(plain), text);
  }
});

test('no merge ever produces a special id: text without special strings stays below baseVocab', () => {
  // Train on text full of the special strings' characters and fragments.
  const noisy = Array.from({ length: 300 }, (_, i) => `[IM G] <imag e> [/IM G] IMG image USER ASSISTANT PAD ${i} [[]] <<>>`);
  const t = trainBPE([...noisy, '[IMG]<image>[/IMG]'.repeat(50)], { vocabSize: 300 });
  for (const text of [...noisy.slice(0, 5), ...SAMPLES]) {
    const ids = t.encode(text, { bos: false });
    assert.ok(ids.every((id) => id >= 0 && id < t.usedVocab && id !== t.bos && id !== t.eos), text);
  }
  // The special strings themselves were cut out before training: no merge spells "[IMG]".
  for (let id = 258; id < t.usedVocab; id++) {
    const s = Buffer.from(t.tokenBytes(id)).toString('latin1');
    assert.ok(!SPECIAL_TOKENS.some((sp) => s.includes(sp)), s);
  }
});

test('training is deterministic and reaches exactly the requested vocab size', () => {
  const a = trainBPE(CORPUS, { vocabSize: 400 });
  const b = trainBPE([...CORPUS], { vocabSize: 400 });
  assert.equal(a.toJSON(), b.toJSON());
  assert.is(a.usedVocab, 400);
  assert.is(a.merges.length, 400 - 258);
  assert.is(tok512.usedVocab, 512);
  // A larger vocabulary continues the same merge sequence.
  const c = trainBPE(CORPUS, { vocabSize: 300 });
  assert.equal(a.merges.slice(0, c.merges.length), c.merges);
  // The caption corpus alone runs out of pairs with count >= 2 before 512.
  const capped = trainBPE(CORPUS, { vocabSize: 512 });
  assert.ok(capped.usedVocab < 512 && capped.usedVocab > 400, String(capped.usedVocab));
  assert.is(trainBPE(CORPUS, { vocabSize: 512, minFrequency: 1 }).usedVocab, capped.usedVocab);
  // Ties break by the (left, right) byte strings: with minFrequency 1 the pairs (c, d) and (a, b)
  // both have count 1, and (a, b) < (c, d) is merged first.
  const tie = trainBPE(['cd', 'ab'], { vocabSize: 259, minFrequency: 1 });
  assert.equal(tie.merges, [[97, 98]]);
  // Stops early when pairs run out: the special ids still start at vocabSize.
  const small = trainBPE(['aaaa bbbb'], { vocabSize: 1000 });
  assert.ok(small.usedVocab < 1000);
  assert.is(small.pad, 1000);
  assert.is(small.decode(small.encode('aaaa bbbb abba')), '<s>aaaa bbbb abba');
  // First merges on the captions are the frequent ones (space + letter style pairs).
  assert.ok(/^ ?[a-z]+$/.test(tok512.idToToken(258)), tok512.idToToken(258));
});

/** Plain BPE training for checking: recount every pair of every word before each merge. */
function naiveMerges(corpus: string[], vocabSize: number, minFrequency: number): [number, number][] {
  const wordRe = / ?[\p{L}\p{M}]+| ?\p{N}+| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+/gu;
  const words = corpus.flatMap((d) => d.match(wordRe) ?? []).map((w) => [...Buffer.from(w, 'utf8')]);
  const str: string[] = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));
  str.push('', '');
  const merges: [number, number][] = [];
  for (let id = 258; id < vocabSize; id++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) counts.set(`${w[i]},${w[i + 1]}`, (counts.get(`${w[i]},${w[i + 1]}`) ?? 0) + 1);
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(',').map(Number);
      const better = c > bestCount || (c === bestCount && best !== undefined && (str[a] < str[best[0]] || (str[a] === str[best[0]] && str[b] < str[best[1]])));
      if (better) [best, bestCount] = [[a, b], c];
    }
    if (!best || bestCount < minFrequency) break;
    merges.push(best);
    str.push(str[best[0]] + str[best[1]]);
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) if (w[i] === best[0] && w[i + 1] === best[1]) w.splice(i, 2, id);
    }
  }
  return merges;
}

test('incremental training equals plain recounting (random small corpora, repeated letters, non-ASCII)', () => {
  const r = rng(11);
  const letters = ['a', 'a', 'b', 'c', ' ', ' ', 'é', '🐶', '1', '.', 'aa'];
  for (let trial = 0; trial < 25; trial++) {
    const corpus = Array.from({ length: 1 + Math.floor(r() * 6) }, () =>
      Array.from({ length: Math.floor(r() * 40) }, () => letters[Math.floor(r() * letters.length)]).join(''));
    const minFrequency = 1 + (trial % 3);
    const vocab = 258 + Math.floor(r() * 40);
    assert.equal(trainBPE(corpus, { vocabSize: vocab, minFrequency }).merges, naiveMerges(corpus, vocab, minFrequency), JSON.stringify(corpus));
  }
  assert.equal(trainBPE(CORPUS.slice(0, 300), { vocabSize: 330 }).merges, naiveMerges(CORPUS.slice(0, 300), 330, 2));
});

test('compact alphabet for vocabularies below 258 (e.g. baseVocab 64)', () => {
  const base = 64;
  const t = trainBPE(CORPUS, { vocabSize: base });
  const A = t.alphabet.length;
  assert.ok(A < 50);
  assert.is(t.bos, A);
  assert.is(t.eos, A + 1);
  assert.is(t.usedVocab, base);
  assert.is(t.pad, base);
  assert.is(t.vocabSize(), base + 4);
  const text = 'a small red circle [IMG]<image><image><image><image>[/IMG] to the left of a blue square';
  const ids = t.encode(text);
  assert.ok(ids.every((id) => id < t.vocabSize()));
  assert.is(t.decode(ids, { skipSpecial: false }), '<s>' + text);
  throwsA(() => t.encode('émoji 🐶'), ValueError, /compact alphabet/);
  throwsA(() => trainBPE(CORPUS, { vocabSize: 64, alphabet: 'bytes' }), ValueError);
  assert.equal(Tokenizer.fromJSON(JSON.parse(JSON.stringify(t))).toJSON(), t.toJSON());
});

test('save/load round trip (atomic write) and toJSON/fromJSON', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emu-tok-'));
  try {
    const path = join(dir, 'tokenizer.json');
    tok512.save(path);
    assert.equal(readdirSync(dir), ['tokenizer.json'], 'no temporary file left behind');
    const back = Tokenizer.load(path);
    assert.equal(back.toJSON(), tok512.toJSON());
    for (const text of [...SAMPLES, 'a photo [IMG]<image>[/IMG] of a dog']) assert.equal(back.encode(text), tok512.encode(text));
    tok512.save(path); // overwrite in place
    assert.equal(Tokenizer.load(path).toJSON(), tok512.toJSON());
    const json = JSON.parse(readFileSync(path, 'utf8'));
    assert.is(json.format, 'emu-bpe');
    assert.equal(json.specials, [...SPECIAL_TOKENS]);
    assert.ok(!existsSync(join(dir, 'missing')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt, truncated, missing or malformed files give CheckpointError; bad arguments ValueError', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emu-tok-'));
  try {
    const path = join(dir, 'tok.json');
    tok512.save(path);
    const good = readFileSync(path, 'utf8');
    writeFileSync(path, good.slice(0, good.length >> 1));
    throwsA(() => Tokenizer.load(path), CheckpointError, /not valid JSON/);
    writeFileSync(path, '\x00\x01garbage');
    throwsA(() => Tokenizer.load(path), CheckpointError, /not valid JSON/);
    throwsA(() => Tokenizer.load(join(dir, 'nope.json')), CheckpointError, /not found/);
    const obj = JSON.parse(good);
    const bad: [string, unknown][] = [
      ['format', 'gpt2'],
      ['version', 99],
      ['baseVocab', 10],
      ['baseVocab', 'x'],
      ['alphabet', [1, 1, 2]],
      ['alphabet', undefined],
      ['merges', [[0, 999999]]],
      ['merges', [[256, 1]]],
      ['merges', 'nope'],
      ['specials', ['[IMG]', '[PAD]']],
    ];
    for (const [field, value] of bad) {
      const o = { ...obj, [field]: value };
      writeFileSync(path, JSON.stringify(o));
      throwsA(() => Tokenizer.load(path), CheckpointError, /tokenizer/, `${field} = ${JSON.stringify(value)}`);
    }
    throwsA(() => Tokenizer.fromJSON(null), CheckpointError);
    throwsA(() => Tokenizer.fromJSON([1, 2]), CheckpointError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  throwsA(() => trainBPE(CORPUS, { vocabSize: 100, alphabet: 'bytes' }), ValueError);
  throwsA(() => trainBPE(CORPUS, { vocabSize: 1.5 }), ValueError);
  throwsA(() => trainBPE('text' as unknown as string[], { vocabSize: 300 }), ValueError);
  throwsA(() => trainBPE(CORPUS, { vocabSize: 300, minFrequency: 0 }), ValueError);
  throwsA(() => tok512.encode(42 as unknown as string), ValueError);
  throwsA(() => new Tokenizer({ baseVocab: 300, merges: [[0, 300]] }), ValueError);
  throwsA(() => tok512.save(''), ValueError);
});

test('decode of arbitrary id sequences never throws (invalid UTF-8 and unknown ids become U+FFFD)', () => {
  const r = rng(7);
  for (let n = 0; n < 500; n++) {
    const ids = Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 540) - 10);
    if (n % 10 === 0) ids.push(NaN, 1.5, Infinity, -0, 2 ** 40);
    const s = tok512.decode(ids);
    assert.type(s, 'string');
    tok512.decode(ids, { skipSpecial: true });
  }
  assert.is(tok512.decode([0xff, 0xfe]), '\uFFFD\uFFFD');
  assert.is(tok512.decode([0xe2, 0x82]), '\uFFFD'); // truncated 3-byte sequence
  assert.is(tok512.decode([0xe2, 0x82, 0xac]), '€');
  assert.is(tok512.decode([-1, 104, 105, 10_000]), '\uFFFDhi\uFFFD');
  const small = trainBPE(['aaaa'], { vocabSize: 300 });
  assert.is(small.decode([299]), '\uFFFD', 'unused id below baseVocab');
});

test('a 512-token vocabulary compresses the caption corpus; training 1 MB takes seconds', () => {
  let bytes = 0;
  let tokens = 0;
  for (const c of CORPUS) {
    bytes += Buffer.byteLength(c);
    tokens += tok512.encode(c, { bos: false }).length;
  }
  const meanBytes = bytes / CORPUS.length;
  const meanTokens = tokens / CORPUS.length;
  assert.ok(meanTokens < meanBytes / 3, `mean ${meanTokens.toFixed(2)} tokens vs ${meanBytes.toFixed(2)} bytes per caption`);

  // ~1 MB of captions plus some mixed prose.
  const big = [...captions(16_000, 3), ...prose(4000, 9)];
  big.push(...SAMPLES.flatMap((s) => Array(100).fill(s)));
  const mb = big.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0) / 1e6;
  const t0 = performance.now();
  const t = trainBPE(big, { vocabSize: 512 });
  const seconds = (performance.now() - t0) / 1000;
  assert.ok(mb > 0.9, `${mb} MB`);
  assert.is(t.usedVocab, 512);
  assert.ok(seconds < 20, `training 512 on ${mb.toFixed(2)} MB took ${seconds.toFixed(2)} s`);
  if (process.env.EMU_VERBOSE) console.log(`tokenizer: 512 on ${mb.toFixed(2)} MB in ${seconds.toFixed(2)} s; ${meanTokens.toFixed(2)} tokens vs ${meanBytes.toFixed(2)} bytes per caption`);
});

test.run();
