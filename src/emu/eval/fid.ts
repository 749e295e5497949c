// fid.ts: the Frechet distance between two sets of image features, each summarised by a
// Gaussian (FID, Heusel et al. 2017; the Emu paper's zero-shot COCO text-to-image number). Here the
// features are the digit classifier's penultimate layer (digits.ts) instead of Inception's pool3.
//
//   d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )
//
// S1 S2 is not symmetric, so its square root is not taken directly. With the PSD square roots
// R1 = S1^(1/2) and R2 = S2^(1/2), S1 S2 = R1 (R1 S2 R1) R1^-1 has the eigenvalues of
// R1 S2 R1 = (R1 R2)(R1 R2)^T (also when S1 is singular: AB and BA share their non-zero
// eigenvalues), all real and >= 0, so tr((S1 S2)^(1/2)) is the sum of the singular values of
// R1 R2, its nuclear norm. spectral.ts computes R1 and R2 by symmetric Jacobi and the singular
// values by one-sided Jacobi, which never squares the matrix: identical statistics give 0 to
// ~1e-14 and singular covariances (fewer samples than dimensions) keep full accuracy. This is the
// real square root that scipy.linalg.sqrtm approximates (pytorch-fid then drops its spurious
// imaginary part); no iteration count or regularising epsilon is involved.
// Means and covariances are f64; the covariance is the unbiased one (divide by N - 1), as np.cov.
import { ShapeError, ValueError } from '../../tensor/errors.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { singularValues, sqrtPsd, type SquareMatrix } from './spectral.ts';

export interface GaussianStats {
  /** Number of feature vectors summarised. */
  count: number;
  mean: Float64Array;
  /** D x D covariance, row-major. */
  cov: SquareMatrix;
}

/** Mean and covariance (f64) of N feature vectors: a [N, D] tensor or N arrays of D numbers, N >= 2. */
export function featureStats(features: Tensor | ArrayLike<number>[]): GaussianStats {
  let rows: number, dim: number, values: ArrayLike<number>;
  if (features instanceof Tensor) {
    if (features.shape.length !== 2) throw new ShapeError(`featureStats: expected features of shape [N, D], got [${features.shape}]`);
    [rows, dim] = features.shape;
    values = features.data() as ArrayLike<number>;
  } else if (Array.isArray(features)) {
    rows = features.length;
    dim = rows ? features[0].length : 0;
    const flat = new Float64Array(rows * dim);
    features.forEach((row, i) => {
      if (!row || row.length !== dim) throw new ShapeError(`featureStats: row ${i} has ${row?.length} values, row 0 has ${dim}`);
      flat.set(row, i * dim);
    });
    values = flat;
  } else {
    throw new ValueError('featureStats: expected a [N, D] tensor or an array of feature vectors');
  }
  if (rows < 2) throw new ValueError(`featureStats: need at least 2 feature vectors for a covariance, got ${rows}`);
  if (dim < 1) throw new ShapeError('featureStats: feature vectors are empty');
  const mean = new Float64Array(dim);
  for (let i = 0; i < rows; i++) for (let d = 0; d < dim; d++) mean[d] += values[i * dim + d];
  for (let d = 0; d < dim; d++) {
    mean[d] /= rows;
    if (!Number.isFinite(mean[d])) throw new ValueError(`featureStats: feature ${d} has a non-finite value`);
  }
  const cov = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let i = 0; i < rows; i++) {
    for (let d = 0; d < dim; d++) centred[d] = values[i * dim + d] - mean[d];
    for (let a = 0; a < dim; a++) {
      const ca = centred[a];
      for (let b = a; b < dim; b++) cov[a * dim + b] += ca * centred[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const c = cov[a * dim + b] / (rows - 1);
      cov[a * dim + b] = c;
      cov[b * dim + a] = c;
    }
  }
  return { count: rows, mean, cov: { n: dim, data: cov } };
}

/** The Frechet distance between the Gaussians N(mean1, cov1) and N(mean2, cov2) (never negative). */
export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  const dim = a?.mean?.length;
  if (!dim || b?.mean?.length !== dim || a.cov?.n !== dim || b.cov?.n !== dim) {
    throw new ShapeError(`frechetDistance: statistics of different or missing dimensions (${a?.mean?.length} and ${b?.mean?.length})`);
  }
  let meanTerm = 0, traces = 0;
  for (let d = 0; d < dim; d++) {
    meanTerm += (a.mean[d] - b.mean[d]) ** 2;
    traces += a.cov.data[d * dim + d] + b.cov.data[d * dim + d];
  }
  const r1 = sqrtPsd(a.cov).data, r2 = sqrtPsd(b.cov).data;
  const product = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let k = 0; k < dim; k++) {
      const r1ik = r1[i * dim + k];
      if (r1ik === 0) continue;
      for (let j = 0; j < dim; j++) product[i * dim + j] += r1ik * r2[k * dim + j];
    }
  }
  const traceSqrt = singularValues({ n: dim, data: product }).reduce((s, x) => s + x, 0);
  // Identical statistics cancel to rounding level; a distance is never negative.
  return Math.max(0, meanTerm + traces - 2 * traceSqrt);
}

/** FID between two feature sets: frechetDistance(featureStats(a), featureStats(b)). */
export function fid(a: Tensor | ArrayLike<number>[], b: Tensor | ArrayLike<number>[]): number {
  return frechetDistance(featureStats(a), featureStats(b));
}
