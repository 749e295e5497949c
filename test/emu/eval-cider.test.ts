// eval-cider.test.ts: CIDEr-D (src/emu/eval/cider.ts) against values worked out by hand, with
// the arithmetic written out below, plus its defining properties (clipping, length penalty,
// identical captions score high, unrelated captions score 0) and its input checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ciderD, tokenizeCaption } from '../../src/emu/eval/cider.ts';
import { ValueError } from '../../src/tensor/errors.ts';

const close = (a: number, b: number, tol = 1e-12, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} != ${b}`);

test('tokenizeCaption lower-cases, drops punctuation and splits clitics like the PTB tokenizer', () => {
  assert.equal(tokenizeCaption('A Red, circle.'), ['a', 'red', 'circle']);
  assert.equal(tokenizeCaption('  The dog\'s ball -- isn\'t "round"!  '), ['the', 'dog', "'s", 'ball', 'is', "n't", 'round']);
  assert.equal(tokenizeCaption('black-and-white photo (1990)'), ['black-and-white', 'photo', '1990']);
  assert.equal(tokenizeCaption('...'), []);
});

test('three images, one reference each: hand-computed CIDEr-D', () => {
  // Corpus: N = 3 images, so idf(g) = log 3 - log df(g).
  //   A: "a red circle"   B: "a blue square"   C: "a red square"
  // Document frequencies (images whose references contain the n-gram):
  //   "a" 3 -> idf 0;  "red" 2 (A, C) -> log 1.5;  "square" 2 (B, C) -> log 1.5;
  //   "circle", "blue" 1 -> log 3;  "a red" 2 -> log 1.5;  every other bigram and trigram 1 -> log 3.
  const l15 = Math.log(1.5), l3 = Math.log(3);
  const refs = [['a red circle'], ['a blue square'], ['a red square']];
  const cands = ['a red square', 'a blue square', 'red square'];
  // Image A, candidate "a red square" vs "a red circle"; both have 3 words -> penalty 1.
  //   n=1: cand {a:0, red:l15, square:l15}, ref {a:0, red:l15, circle:l3}; clipped dot = l15*l15;
  //        |cand| = l15*sqrt2, |ref| = sqrt(l15^2 + l3^2)           -> l15 / (sqrt2 sqrt(l15^2 + l3^2))
  //   n=2: cand {"a red":l15, "red square":l3}, ref {"a red":l15, "red circle":l3}
  //        dot = l15^2, both norms sqrt(l15^2 + l3^2)              -> l15^2 / (l15^2 + l3^2)
  //   n=3: "a red square" vs "a red circle": dot 0; n=4: no 4-grams -> 0
  //   score = 10 * (v1 + v2 + 0 + 0) / 4
  const sA = Math.sqrt(l15 * l15 + l3 * l3);
  const scoreA = (10 * (l15 / (Math.SQRT2 * sA) + (l15 * l15) / (sA * sA))) / 4;
  // Image B, candidate identical to its reference: cosine 1 for n = 1, 2, 3 ("a" has weight 0 but
  //   "blue", "square" do not); no 4-grams -> 0.  score = 10 * 3 / 4 = 7.5
  const scoreB = 7.5;
  // Image C, candidate "red square" (2 words) vs "a red square" (3 words): penalty exp(-1/72).
  //   n=1: cand {red:l15, square:l15}, ref {a:0, red:l15, square:l15}          -> cosine 1
  //   n=2: cand {"red square":l3}, ref {"a red":l15, "red square":l3}         -> l3 / sqrt(l15^2 + l3^2)
  //   n=3, 4: the candidate has none -> 0
  const scoreC = (10 * Math.exp(-1 / 72) * (1 + l3 / sA)) / 4;
  const r = ciderD(cands, refs);
  close(r.perImage[0], scoreA, 1e-12, 'A');
  close(r.perImage[1], scoreB, 1e-12, 'B');
  close(r.perImage[2], scoreC, 1e-12, 'C');
  close(r.score, (scoreA + scoreB + scoreC) / 3, 1e-12, 'corpus');
  // The same numbers to 4 decimals, computed on paper: 0.9118, 7.5, 4.7785.
  close(r.perImage[0], 0.9118, 5e-5);
  close(r.perImage[2], 4.7785, 5e-5);
});

test('two images, two references, a repeated word: clipping, averaging over references, length penalty', () => {
  // Corpus: N = 2; every reference n-gram occurs in exactly one image, so every weight is l2 = log 2.
  //   X: "red circle", "blue circle"     Y: "green square"
  // Candidate X: "red red red circle" (4 words vs 2 in each reference -> penalty exp(-4/72)).
  //   vs "red circle":
  //     n=1: cand {red: 3 l2, circle: l2}, ref {red: l2, circle: l2}
  //          clipped dot = min(3,1) l2*l2 + l2*l2 = 2 l2^2  (4 l2^2 without clipping)
  //          |cand| = l2 sqrt10, |ref| = l2 sqrt2                -> 2 / sqrt20
  //     n=2: cand {"red red": 2 l2, "red circle": l2}, ref {"red circle": l2} -> 1 / sqrt5
  //     n=3, 4: the reference has none -> 0
  //   vs "blue circle":
  //     n=1: dot = l2^2 (circle), norms l2 sqrt10, l2 sqrt2        -> 1 / sqrt20
  //     n=2: no shared bigram -> 0
  //   score = 10 * p * (2/sqrt20 + 1/sqrt5 + 1/sqrt20) / 4 / 2 references = 10 p (sqrt5 / 2) / 8
  const p = Math.exp(-4 / 72);
  const scoreX = (10 * p * (Math.sqrt(5) / 2)) / 8;
  // Candidate Y shares no n-gram with "green square" -> 0.
  const r = ciderD(['red red red circle', 'purple triangle'], [['red circle', 'blue circle'], ['green square']]);
  close(r.perImage[0], scoreX, 1e-12, 'X');
  close(r.perImage[0], 1.32202, 5e-6, 'X on paper');
  assert.is(r.perImage[1], 0);
  close(r.score, scoreX / 2);
  // Without the repetition the candidate does better: clipping stops "red red red" from paying.
  assert.ok(ciderD(['red circle', 'purple triangle'], [['red circle', 'blue circle'], ['green square']]).perImage[0] > scoreX);
});

test('identical captions score high, unrelated ones 0, punctuation and case do not matter', () => {
  const refs = [
    ['a small red circle on a white background', 'a red circle'],
    ['two shapes: a blue square and a green triangle', 'a blue square to the left of a green triangle'],
    ['a large yellow circle above a purple square', 'two shapes: a yellow circle and a purple square'],
    ['a handwritten seven', 'the digit seven written by hand'],
  ];
  const exact = ciderD(refs.map((r) => r[0]), refs);
  const unrelated = ciderD(refs.map(() => 'zebra giraffe elephant'), refs);
  const shouted = ciderD(refs.map((r) => r[0].toUpperCase().replace(/ /g, ', ') + '!'), refs);
  for (const s of exact.perImage) assert.ok(s > 4, `identical caption scored ${s}`);
  assert.equal(unrelated.perImage, [0, 0, 0, 0]);
  assert.is(unrelated.score, 0);
  for (let i = 0; i < refs.length; i++) close(shouted.perImage[i], exact.perImage[i], 1e-12);
  // Order of images does not change any image's score.
  const rev = ciderD(refs.map((r) => r[0]).reverse(), [...refs].reverse());
  for (let i = 0; i < refs.length; i++) close(rev.perImage[refs.length - 1 - i], exact.perImage[i], 1e-12);
});

test('a single image scores 0 (idf is log 1 = 0), as in the toolkit', () => {
  assert.is(ciderD(['a red circle'], [['a red circle']]).score, 0);
});

test('ciderD rejects bad input with a ValueError naming the problem', () => {
  assert.throws(() => ciderD(['a'], [['a'], ['b']]), (e: Error) => e instanceof ValueError && /1 candidates but 2/.test(e.message));
  assert.throws(() => ciderD([], []), (e: Error) => e instanceof ValueError && /no images/.test(e.message));
  assert.throws(() => ciderD(['a', 'b'], [['a'], []]), (e: Error) => e instanceof ValueError && /image 1 has no reference/.test(e.message));
  assert.throws(() => ciderD(['a', 3 as unknown as string], [['a'], ['b']]), (e: Error) => e instanceof ValueError && /candidate 1/.test(e.message));
  assert.throws(() => ciderD(['a'], [['a']], { sigma: 0 }), (e: Error) => e instanceof ValueError && /sigma/.test(e.message));
  assert.throws(() => ciderD(['a'], [['a']], { n: 0 }), (e: Error) => e instanceof ValueError && /n must/.test(e.message));
});

test.run();
