// eval-fid.test.ts: the Jacobi eigendecomposition, PSD square root and singular values
// (src/emu/eval/spectral.ts) and the Frechet distance (src/emu/eval/fid.ts) against closed forms:
// diagonal covariances, the same covariances rotated, a non-commuting 2x2 pair, singular
// covariances, 1-d Gaussians, a scipy reference; plus symmetry, zero for identical statistics,
// sample statistics as numpy computes them, and input checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { singularValues, sqrtPsd, symmetricEigen, type SquareMatrix } from '../../src/emu/eval/spectral.ts';
import { featureStats, fid, frechetDistance, type GaussianStats } from '../../src/emu/eval/fid.ts';
import { mulberry32 } from '../../src/emu/data/shapes.ts';
import { tensor } from '../../src/index.ts';
import { ShapeError, ValueError } from '../../src/tensor/errors.ts';

const close = (a: number, b: number, tol: number, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} != ${b} (tol ${tol})`);

function matmul(a: SquareMatrix, b: SquareMatrix): SquareMatrix {
  const n = a.n, out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) out[i * n + j] += a.data[i * n + k] * b.data[k * n + j];
  return { n, data: out };
}
const transpose = (a: SquareMatrix): SquareMatrix => {
  const n = a.n, out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a.data[i * n + j];
  return { n, data: out };
};
const diag = (xs: number[]): SquareMatrix => {
  const n = xs.length, out = new Float64Array(n * n);
  xs.forEach((x, i) => (out[i * n + i] = x));
  return { n, data: out };
};
/** A random orthogonal matrix: Gram-Schmidt on seeded uniform columns. */
function randomRotation(n: number, seed: number): SquareMatrix {
  const rng = mulberry32(seed);
  const cols: number[][] = [];
  for (let j = 0; j < n; j++) {
    let v = Array.from({ length: n }, () => rng() - 0.5);
    for (const u of cols) {
      const d = u.reduce((s, x, i) => s + x * v[i], 0);
      v = v.map((x, i) => x - d * u[i]);
    }
    const norm = Math.hypot(...v);
    cols.push(v.map((x) => x / norm));
  }
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = cols[j][i];
  return { n, data: out };
}
const rotate = (q: SquareMatrix, d: SquareMatrix): SquareMatrix => matmul(matmul(q, d), transpose(q));
const stats = (mean: number[], cov: SquareMatrix): GaussianStats => ({ count: 100, mean: Float64Array.from(mean), cov });

test('symmetricEigen reconstructs a random symmetric matrix with orthonormal eigenvectors', () => {
  const n = 23, rng = mulberry32(5);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng() * 2 - 1;
  const { values, vectors } = symmetricEigen({ n, data: a });
  for (let i = 1; i < n; i++) assert.ok(values[i] >= values[i - 1], 'ascending');
  const back = matmul(matmul(vectors, diag([...values])), transpose(vectors));
  const vtv = matmul(transpose(vectors), vectors);
  for (let i = 0; i < n * n; i++) {
    close(back.data[i], a[i], 1e-12, `A[${i}]`);
    close(vtv.data[i], i % (n + 1) === 0 ? 1 : 0, 1e-12, `VtV[${i}]`);
  }
  // Trace and Frobenius norm are the eigenvalues' sum and root sum of squares.
  let tr = 0, fro = 0;
  for (let i = 0; i < n; i++) tr += a[i * n + i];
  for (const x of a) fro += x * x;
  close(values.reduce((s, x) => s + x, 0), tr, 1e-12);
  close(values.reduce((s, x) => s + x * x, 0), fro, 1e-11);
});

test('sqrtPsd: diagonal and rotated matrices have their closed-form roots, and R R = S', () => {
  const d = diag([4, 9, 0.25, 0]);
  const r = sqrtPsd(d);
  assert.equal([...r.data].map((x) => +x.toFixed(12)), [...diag([2, 3, 0.5, 0]).data]);
  const q = randomRotation(4, 11);
  const s = rotate(q, diag([4, 9, 0.25, 1e-3]));
  const rs = sqrtPsd(s);
  const want = rotate(q, diag([2, 3, 0.5, Math.sqrt(1e-3)]));
  const rr = matmul(rs, rs);
  for (let i = 0; i < 16; i++) {
    close(rs.data[i], want.data[i], 1e-12, `R[${i}]`);
    close(rr.data[i], s.data[i], 1e-12, `RR[${i}]`);
  }
  // Repeated eigenvalues (any basis of the eigenspace is right) and the zero matrix.
  const q5 = randomRotation(5, 21);
  const rep = sqrtPsd(rotate(q5, diag([4, 4, 4, 9, 9])));
  const wantRep = rotate(q5, diag([2, 2, 2, 3, 3]));
  for (let i = 0; i < 25; i++) close(rep.data[i], wantRep.data[i], 1e-12, `repeated R[${i}]`);
  assert.equal([...sqrtPsd(diag([0, 0, 0])).data], new Array(9).fill(0));
});

test('singularValues: U diag(s) V^T gives back s, including zeros and tiny values', () => {
  const u = randomRotation(7, 31), v = randomRotation(7, 32);
  const want = [50, 7, 3, 1, 1e-6, 0, 0];
  const a = matmul(matmul(u, diag(want)), transpose(v));
  const got = singularValues(a);
  want.forEach((w, i) => close(got[i], w, 1e-13 * 50, `s[${i}]`));
  // The tiny one keeps a good relative accuracy: no squaring into the rounding noise.
  close(got[4], 1e-6, 1e-14, 's[4] relative');
  assert.equal([...singularValues(diag([0, -3, 2]))], [3, 2, 0]);
});

test('frechetDistance: diagonal covariances have the closed form |dmu|^2 + sum (sqrt a - sqrt b)^2', () => {
  const a = [1, 4, 9, 0.5], b = [4, 1, 16, 0.5];
  const want = (1 + 4) + a.reduce((s, x, i) => s + (Math.sqrt(x) - Math.sqrt(b[i])) ** 2, 0);
  close(frechetDistance(stats([0, 0, 0, 0], diag(a)), stats([1, 2, 0, 0], diag(b))), want, 1e-12);
  // 1-d Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
  close(frechetDistance(stats([3], diag([4])), stats([-1], diag([25]))), 16 + 9, 1e-12);
});

test('frechetDistance: rotating both covariances by the same rotation gives the same distance', () => {
  const q = randomRotation(6, 3);
  const a = [1, 4, 9, 0.5, 2, 3], b = [4, 1, 16, 0.5, 0.1, 7];
  const want = 2 + a.reduce((s, x, i) => s + (Math.sqrt(x) - Math.sqrt(b[i])) ** 2, 0);
  const got = frechetDistance(stats([1, 1, 0, 0, 0, 0], rotate(q, diag(a))), stats([0, 0, 0, 0, 0, 0], rotate(q, diag(b))));
  close(got, want, 1e-11);
});

test('frechetDistance: a non-commuting 2x2 pair matches tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))', () => {
  // For a 2x2 matrix with non-negative real eigenvalues l1, l2: tr sqrt = sqrt(l1) + sqrt(l2)
  //   = sqrt(l1 + l2 + 2 sqrt(l1 l2)) = sqrt(tr M + 2 sqrt(det M)), and det(S1 S2) = det S1 det S2.
  const s1: SquareMatrix = { n: 2, data: Float64Array.from([2, 1, 1, 3]) };
  const s2: SquareMatrix = { n: 2, data: Float64Array.from([1, -0.5, -0.5, 4]) };
  const p = matmul(s1, s2);
  const det1 = 2 * 3 - 1, det2 = 4 - 0.25;
  const trSqrt = Math.sqrt(p.data[0] + p.data[3] + 2 * Math.sqrt(det1 * det2));
  const want = 0.25 + (2 + 3) + (1 + 4) - 2 * trSqrt;
  close(frechetDistance(stats([0.5, 0], s1), stats([0, 0], s2)), want, 1e-12);
  // The distance is symmetric in its arguments even though S1 S2 != S2 S1.
  close(frechetDistance(stats([0, 0], s2), stats([0.5, 0], s1)), want, 1e-12);
});

test('frechetDistance: singular covariances (fewer samples than dimensions) keep the closed form', () => {
  // diag(1, 0, 4) vs diag(0, 9, 1): sum (sqrt a - sqrt b)^2 = 1 + 9 + 1.
  close(frechetDistance(stats([0, 0, 0], diag([1, 0, 4])), stats([0, 0, 0], diag([0, 9, 1]))), 11, 1e-12);
  const q = randomRotation(3, 8);
  close(frechetDistance(stats([0, 0, 0], rotate(q, diag([1, 0, 4]))), stats([0, 0, 0], rotate(q, diag([0, 9, 1])))), 11, 1e-12);
});

test('frechetDistance agrees with scipy.linalg.sqrtm on a full-rank, non-commuting 6-d pair', () => {
  // Reference from numpy 2.4 / scipy 1.17, the pytorch-fid formula:
  //   B1[i][j] = sin(1 + 0.7 i + 1.3 j + 0.37 i j^2), B2[i][j] = cos(0.5 + 1.1 i^2 + 0.4 j^2 + 0.21 i j), i < 6, j < 9
  //   S = B B^T / 9;  mu1[i] = sin i, mu2[i] = cos i
  //   d = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr(sqrtm(S1 @ S2).real) = 7.14375294175363
  const d = 6, k = 9;
  const cov = (f: (i: number, j: number) => number): SquareMatrix => {
    const out = new Float64Array(d * d);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) for (let j = 0; j < k; j++) out[a * d + b] += (f(a, j) * f(b, j)) / k;
    return { n: d, data: out };
  };
  const s1 = cov((i, j) => Math.sin(1 + 0.7 * i + 1.3 * j + 0.37 * i * j * j));
  const s2 = cov((i, j) => Math.cos(0.5 + 1.1 * i * i + 0.4 * j * j + 0.21 * i * j));
  const mu1 = Array.from({ length: d }, (_, i) => Math.sin(i)), mu2 = Array.from({ length: d }, (_, i) => Math.cos(i));
  close(frechetDistance(stats(mu1, s1), stats(mu2, s2)), 7.14375294175363, 1e-11);
});

test('fid: identical features give 0, a shift by c gives |c|^2, and it is symmetric', () => {
  const rng = mulberry32(9);
  const rows = Array.from({ length: 200 }, () => Array.from({ length: 8 }, () => rng() * 2 - 1));
  close(fid(rows, rows), 0, 1e-10);
  const shift = [1, 0, -2, 0, 0, 0.5, 0, 0];
  const shifted = rows.map((r) => r.map((x, i) => x + shift[i]));
  close(fid(rows, shifted), 1 + 4 + 0.25, 1e-9);
  const other = Array.from({ length: 150 }, () => Array.from({ length: 8 }, () => rng() * rng()));
  close(fid(rows, other), fid(other, rows), 1e-9);
  assert.ok(fid(rows, other) > 0.1);
});

test('featureStats: mean and unbiased covariance as numpy.cov, from a tensor or from arrays', () => {
  // x = [1,2], [3,6], [5,7]: mean [3, 5]; centred [-2,-3], [0,1], [2,2];
  // cov = ([4,6;6,9] + [0,0;0,1] + [4,4;4,4]) / 2 = [4, 5; 5, 7]
  const fromArrays = featureStats([[1, 2], [3, 6], [5, 7]]);
  const t = tensor([[1, 2], [3, 6], [5, 7]]);
  const fromTensor = featureStats(t);
  t.dispose();
  for (const s of [fromArrays, fromTensor]) {
    assert.is(s.count, 3);
    assert.equal([...s.mean], [3, 5]);
    assert.equal([...s.cov.data], [4, 5, 5, 7]);
  }
});

test('bad input gives typed errors', () => {
  const isErr = (cls: typeof ValueError, re: RegExp) => (e: Error) => e instanceof cls && re.test(e.message);
  assert.throws(() => featureStats([[1, 2]]), isErr(ValueError, /at least 2/));
  assert.throws(() => featureStats([[1, 2], [3]]), isErr(ShapeError, /row 1 has 1/));
  assert.throws(() => featureStats([[1, NaN], [3, 4]]), isErr(ValueError, /non-finite/));
  const t = tensor([1, 2, 3]);
  assert.throws(() => featureStats(t), isErr(ShapeError, /\[N, D\]/));
  t.dispose();
  assert.throws(() => frechetDistance(stats([0], diag([1])), stats([0, 0], diag([1, 1]))), isErr(ShapeError, /different/));
  assert.throws(() => sqrtPsd(diag([1, -1])), isErr(ValueError, /not positive semi-definite/));
  assert.throws(() => symmetricEigen({ n: 2, data: Float64Array.from([1, 2, 3, 4]) }), isErr(ValueError, /not symmetric/));
  assert.throws(() => symmetricEigen({ n: 2, data: Float64Array.from([1, 2, 3]) }), isErr(ShapeError, /n \* n/));
  assert.throws(() => singularValues({ n: 2, data: Float64Array.from([1, Infinity, 3, 4]) }), isErr(ValueError, /singularValues: matrix has a non-finite/));
});

test.run();
