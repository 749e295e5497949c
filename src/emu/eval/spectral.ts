// spectral.ts: eigenvalues, square roots and singular values of small dense matrices, in f64 on
// the host, by Jacobi rotations. FID (fid.ts) needs tr((S1 S2)^(1/2)) for covariances of a few
// hundred dimensions at most, where Jacobi methods are short, accurate and fast enough.
//
// symmetricEigen, the cyclic Jacobi method: repeatedly pick an off-diagonal pair (p, q) and apply
// the plane rotation J(p, q, phi) that zeroes a_pq, A <- J^T A J, accumulating V <- V J. With
// theta = (a_qq - a_pp) / (2 a_pq) the rotation's tangent is t = sign(theta) / (|theta| +
// sqrt(theta^2 + 1)) (the smaller root: the angle stays <= pi/4, which keeps it stable),
// c = 1 / sqrt(t^2 + 1), s = t c. Sweeps over all pairs converge quadratically; we stop when the
// off-diagonal mass is below 1e-30 of the total (each entry then ~1e-15 relative).
//
// singularValues, the one-sided Jacobi method (Hestenes): rotate pairs of columns of A until all
// columns are orthogonal; the singular values are then the column norms. It works on A itself,
// never on A^T A, so small singular values keep their relative accuracy instead of being
// squared into the rounding noise.
import { InternalError, ShapeError, ValueError } from '../../tensor/errors.ts';

/** A square matrix of n x n f64 values, row-major. */
export interface SquareMatrix {
  n: number;
  data: Float64Array;
}

export interface Eigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as the columns of an n x n row-major matrix, in the order of `values`. */
  vectors: SquareMatrix;
}

const MAX_SWEEPS = 100;

/** Checks the layout and finiteness of m; returns its largest magnitude. */
function checkSquare(op: string, m: SquareMatrix): number {
  if (!m || !Number.isInteger(m.n) || m.n < 1 || !(m.data instanceof Float64Array) || m.data.length !== m.n * m.n) {
    throw new ShapeError(`${op}: expected { n, data: Float64Array(n * n) }`);
  }
  let scale = 0;
  for (const x of m.data) {
    if (!Number.isFinite(x)) throw new ValueError(`${op}: matrix has a non-finite entry`);
    scale = Math.max(scale, Math.abs(x));
  }
  return scale;
}

function checkSymmetric(op: string, m: SquareMatrix): void {
  const scale = checkSquare(op, m);
  const { n, data } = m;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (Math.abs(data[i * n + j] - data[j * n + i]) > 1e-9 * scale) {
        throw new ValueError(`${op}: matrix is not symmetric (entry [${i},${j}] = ${data[i * n + j]} but [${j},${i}] = ${data[j * n + i]})`);
      }
    }
  }
}

/** Columns p and q of the n x n row-major m become c col_p - s col_q and s col_p + c col_q (m J). */
function rotateColumns(m: Float64Array, n: number, p: number, q: number, c: number, s: number): void {
  for (let k = 0; k < n; k++) {
    const mp = m[k * n + p], mq = m[k * n + q];
    m[k * n + p] = c * mp - s * mq;
    m[k * n + q] = s * mp + c * mq;
  }
}

/** Eigenvalues and orthonormal eigenvectors of the symmetric matrix m (m is not modified). */
export function symmetricEigen(m: SquareMatrix): Eigen {
  checkSymmetric('symmetricEigen', m);
  const { n } = m;
  const a = Float64Array.from(m.data);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (const x of a) total += x * x;
  let converged = false;
  for (let sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += 2 * a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * total) {
      converged = true;
      break;
    }
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        // A <- A J (columns p, q), then A <- J^T A (rows p, q); V <- V J.
        rotateColumns(a, n, p, q, c, s);
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        rotateColumns(v, n, p, q, c, s);
      }
    }
  }
  if (!converged) throw new InternalError(`symmetricEigen: Jacobi did not converge in ${MAX_SWEEPS} sweeps (n = ${n})`);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[i * n + i] - a[j * n + j]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors: { n, data: vectors } };
}

/**
 * Eigenvalues of a positive semi-definite matrix for taking square roots. Those within rounding of
 * zero (|x| <= n eps |largest|) are set to exactly 0: Jacobi leaves ~eps |largest| noise there, and
 * a square root would blow that up to ~sqrt(eps), an error of 1e-8 instead of 1e-16 on singular
 * covariances (fewer samples than dimensions). A clearly negative one (below -1e-10 |largest|)
 * means the input is not PSD.
 */
function psdEigenvalues(op: string, e: Eigen): Float64Array {
  const largest = e.values.reduce((mx, x) => Math.max(mx, Math.abs(x)), 0);
  const noise = e.values.length * Number.EPSILON * largest;
  return e.values.map((x) => {
    if (x < -1e-10 * largest) throw new ValueError(`${op}: matrix is not positive semi-definite (eigenvalue ${x})`);
    return x <= noise ? 0 : x;
  });
}

/** The symmetric PSD square root: V sqrt(Lambda) V^T, the unique PSD R with R R = m. */
export function sqrtPsd(m: SquareMatrix): SquareMatrix {
  const e = symmetricEigen(m);
  const roots = psdEigenvalues('sqrtPsd', e).map(Math.sqrt);
  const { n } = m;
  const v = e.vectors.data;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += v[i * n + k] * roots[k] * v[j * n + k];
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return { n, data: out };
}

/** The singular values of a square matrix, descending (m is not modified). */
export function singularValues(m: SquareMatrix): Float64Array {
  checkSquare('singularValues', m);
  const { n } = m;
  const u = Float64Array.from(m.data);
  // Columns below rounding level of the whole matrix are left alone: they are noise, and rotating
  // noise against noise need not converge.
  let frobenius2 = 0;
  for (const x of u) frobenius2 += x * x;
  const negligible = (n * Number.EPSILON) ** 2 * frobenius2;
  let converged = false;
  for (let sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
    converged = true;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        // The 2x2 Gram matrix of columns p and q: [alpha gamma; gamma beta].
        let alpha = 0, beta = 0, gamma = 0;
        for (let k = 0; k < n; k++) {
          const up = u[k * n + p], uq = u[k * n + q];
          alpha += up * up;
          beta += uq * uq;
          gamma += up * uq;
        }
        if (alpha <= negligible || beta <= negligible || Math.abs(gamma) <= n * Number.EPSILON * Math.sqrt(alpha * beta)) continue;
        converged = false;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(zeta * zeta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        rotateColumns(u, n, p, q, c, t * c);
      }
    }
  }
  if (!converged) throw new InternalError(`singularValues: one-sided Jacobi did not converge in ${MAX_SWEEPS} sweeps (n = ${n})`);
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += u[k * n + j] * u[k * n + j];
    norms[j] = Math.sqrt(s);
  }
  return norms.sort().reverse();
}
