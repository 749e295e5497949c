// eval-vqa.test.ts: the official VQA answer normalisation and accuracy formula
// (src/emu/eval/vqa.ts), checked case by case against what vqaEval.py does, and Emu's
// post-processing of generated answers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emuShortAnswer, normalizeVqaAnswer, vqaAccuracy, vqaCorpusAccuracy } from '../../src/emu/eval/vqa.ts';
import { ValueError } from '../../src/tensor/errors.ts';

/** Checks fn(input) === want for each [input, want]. */
function expectEach(fn: (s: string) => string, cases: [string, string][]): void {
  for (const [input, want] of cases) assert.is(fn(input), want, JSON.stringify(input));
}

test('normalizeVqaAnswer: punctuation, number words, articles, contractions as vqaEval.py', () => {
  expectEach(normalizeVqaAnswer, [
    ['Two.', '2'],
    ['\tnone\n', '0'],
    ['The Dog', 'dog'],
    ['an apple a day', 'apple day'],
    ['dont know', "don't know"],
    ['yes, sir', 'yes sir'],            // ", " has a space next to it: the comma is deleted
    ['black/white', 'black white'],     // no space next to "/": replaced by a space
    ['1,000', '1000'],                  // comma between digits: every punctuation mark is deleted
    ['3.5', '3.5'],                     // a period followed by a digit stays
    ['end.', 'end'],
    ['Red!', 'red'],
    ['ten', '10'],
    ['Im here', 'im here'],             // the official table's capitalised keys never match
    ['', ''],
  ]);
});

test('vqaAccuracy: 10 human answers use the leave-one-out min(#matches/3, 1) mean', () => {
  const humans = (m: number) => [...Array(m).fill('two'), ...Array(10 - m).fill('three')];
  // m of the 10 answers match. Leaving out a matching one leaves m-1 matches, leaving out another leaves m:
  //   acc = (m * min(1, (m-1)/3) + (10-m) * min(1, m/3)) / 10
  //   m=0: 0;  m=1: (0 + 9/3)/10 = 0.3;  m=2: (2/3 + 16/3)/10 = 0.6;  m=3: (3*2/3 + 7)/10 = 0.9;  m>=4: 1
  const want = [0, 0.3, 0.6, 0.9, 1, 1, 1, 1, 1, 1, 1];
  for (let m = 0; m <= 10; m++) {
    const acc = vqaAccuracy('Two', humans(m));
    assert.ok(Math.abs(acc - want[m]) < 1e-12, `m=${m}: ${acc}`);
  }
  // Normalisation applies to both sides: "2" matches "two" and "Two.".
  assert.ok(Math.abs(vqaAccuracy('2', ['two', 'Two.', 'TWO', 'four', 'four', 'four', 'four', 'four', 'four', 'four']) - 0.9) < 1e-12);
});

test('vqaAccuracy: one ground-truth answer is an exact match after normalisation (video QA)', () => {
  assert.is(vqaAccuracy('Three', ['3']), 1);
  assert.is(vqaAccuracy('the circle.', ['circle']), 1);
  assert.is(vqaAccuracy('square', ['circle']), 0);
  assert.is(vqaAccuracy('red circle', ['circle']), 0);
});

test('vqaCorpusAccuracy averages the questions', () => {
  const r = vqaCorpusAccuracy([
    { prediction: 'yes', answers: ['yes'] },
    { prediction: 'no', answers: ['yes'] },
    { prediction: 'two', answers: [...Array(3).fill('2'), ...Array(7).fill('3')] },
    { prediction: 'blue', answers: ['Blue'] },
  ]);
  assert.equal(r.perQuestion.map((x) => +x.toFixed(12)), [1, 0, 0.9, 1]);
  assert.ok(Math.abs(r.accuracy - 2.9 / 4) < 1e-12);
});

test('emuShortAnswer: first clause, lower-case, no leading "it is" or article', () => {
  expectEach(emuShortAnswer, [
    ['It is a red circle, on the left.', 'red circle'],
    [' Yes. The circle is red', 'yes'],
    ["it's the blue one; maybe", 'blue one'],
    ['3.5 meters', '3.5 meters'],
    ['An orange triangle\nand more', 'orange triangle'],
    ['Two', 'two'],
    ['', ''],
  ]);
  // Post-processed then scored: a verbose generation earns the answer.
  assert.is(vqaAccuracy(emuShortAnswer('It is a triangle, I think.'), ['triangle']), 1);
});

test('bad input gives a ValueError naming the function', () => {
  const isValue = (re: RegExp) => (e: Error) => e instanceof ValueError && re.test(e.message);
  assert.throws(() => vqaAccuracy('a', []), isValue(/vqaAccuracy: need at least one/));
  assert.throws(() => vqaAccuracy(3 as unknown as string, ['a']), isValue(/vqaAccuracy: prediction/));
  assert.throws(() => vqaAccuracy('a', ['a', 4 as unknown as string]), isValue(/vqaAccuracy: every/));
  assert.throws(() => vqaCorpusAccuracy([]), isValue(/vqaCorpusAccuracy: no questions/));
  assert.throws(() => vqaCorpusAccuracy([null as unknown as { prediction: string; answers: string[] }]), isValue(/item 0/));
  assert.throws(() => normalizeVqaAnswer(undefined as unknown as string), isValue(/normalizeVqaAnswer/));
  assert.throws(() => emuShortAnswer(null as unknown as string), isValue(/emuShortAnswer/));
});

test.run();
