// eval-probe.test.ts: the ridge classifier behind emu eval's visual-embedding probes (probe.ts):
// the closed form against a hand-solved case, separable data classified perfectly on held-out
// rows, labels unrelated to the features left near chance, and bad input refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/index.ts';
import { ridgeClassifier, ridgeClassifiers } from '../../src/emu/eval/probe.ts';
import { mulberry32 } from '../../src/emu/data/shapes.ts';

test('one feature, two classes: the decision point is where the hand-solved ridge scores cross', () => {
  // x = 0 (class 0) and x = 2 (class 1), lambda = 1. Rows [x, 1]: A = X^T X + I = [[5, 2], [2, 3]];
  // class 0 column b0 = [0, 1] -> w0 = A^-1 b0 = [-2, 5] / 11; class 1 b1 = [2, 1] -> w1 = [4, 1] / 11.
  // Scores: s0 = (-2x + 5) / 11, s1 = (4x + 1) / 11, equal at x = 2/3.
  const predict = ridgeClassifier([Float64Array.of(0), Float64Array.of(2)], [0, 1], 2, 1);
  assert.is(predict(Float64Array.of(0.66)), 0);
  assert.is(predict(Float64Array.of(0.67)), 1);
  assert.is(predict(Float64Array.of(-5)), 0);
  assert.is(predict(Float64Array.of(5)), 1);
});

/** n rows of d Gaussian features (Box-Muller) from a seeded stream. */
function gaussianRows(n: number, d: number, seed: number): Float64Array[] {
  const rng = mulberry32(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return Array.from({ length: n }, () => Float64Array.from({ length: d }, g));
}

test('three well-separated clusters are all recovered on held-out rows', () => {
  // Class c is centred at 3 e_c in 12 dimensions with unit noise: one-hot least squares separates them.
  const rows = (n: number, seed: number) => {
    const noise = gaussianRows(n, 12, seed);
    return noise.map((x, i) => { const c = i % 3; x[c] += 3; return { x, c }; });
  };
  const train = rows(300, 5), held = rows(300, 6);
  const predict = ridgeClassifier(train.map((r) => r.x), train.map((r) => r.c), 3, 1);
  const acc = held.filter((r) => predict(r.x) === r.c).length / held.length;
  assert.ok(acc > 0.9, String(acc));
});

test('classifiers sharing one factorisation predict as separate fits do', () => {
  const rng = mulberry32(11);
  const x = gaussianRows(120, 6, 8);
  const a = x.map((r) => (r[1] > 0 ? 1 : 0)), b = x.map(() => Math.floor(rng() * 4));
  const [pa, pb] = ridgeClassifiers(x, [{ labels: a, classes: 2 }, { labels: b, classes: 4 }], 0.5);
  const qa = ridgeClassifier(x, a, 2, 0.5), qb = ridgeClassifier(x, b, 4, 0.5);
  for (const r of gaussianRows(50, 6, 9)) {
    assert.is(pa(r), qa(r));
    assert.is(pb(r), qb(r));
  }
});

test('labels unrelated to the features stay near chance on held-out rows', () => {
  const rng = mulberry32(7);
  const train = gaussianRows(900, 20, 3), test_ = gaussianRows(900, 20, 4);
  const predict = ridgeClassifier(train, train.map(() => Math.floor(rng() * 3)), 3, 1);
  const truth = test_.map(() => Math.floor(rng() * 3));
  const acc = test_.filter((x, i) => predict(x) === truth[i]).length / test_.length;
  assert.ok(acc > 0.25 && acc < 0.42, String(acc));
});

test('bad input is a ValueError naming the problem', () => {
  const x = [Float64Array.of(1, 2), Float64Array.of(3, 4)];
  const fails = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof ValueError && re.test((e as Error).message));
  fails(() => ridgeClassifier(x, [0], 2), /as many labels as rows/);
  fails(() => ridgeClassifier(x, [0, 2], 2), /label 2 is not in \[0, 2\)/);
  fails(() => ridgeClassifier([Float64Array.of(1, 2), Float64Array.of(3)], [0, 1], 2), /row 1 has 1 features/);
  fails(() => ridgeClassifier(x, [0, 1], 2, 0), /lambda must be positive/);
  fails(() => ridgeClassifier([], [], 2), /no rows/);
});

test.run();
