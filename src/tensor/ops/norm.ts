// norm.ts: the fused row normalisation op (native/cpu/kernels/norm.cpp): LayerNorm, or RMSNorm
// (no mean), over the rows of x [N, D], with an optional weight and bias [D], forward and
// backward. F.layerNorm, F.rmsNorm and F.groupNorm fold their inputs into rows and call it; the
// op records 'normRows' with the row statistics (mean, rstd) for its backward rule
// (src/autograd/rules/norm.ts).
import { DTypeError, ShapeError } from '../errors.ts';
import { shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { launch, sameDevice } from './dispatch.ts';

export interface NormRowsOptions {
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
  /** RMSNorm: scale by 1 / sqrt(mean(x^2) + eps), no mean subtracted. */
  rms: boolean;
}

function check(x: Tensor, o: { weight: Tensor | null; bias: Tensor | null }): void {
  if (x.ndim !== 2) throw new ShapeError(`normRows: x must be 2-d [N, D], got ${shapeStr(x.shape)}`);
  if (x.dtype !== 'f32' && x.dtype !== 'f64') throw new DTypeError(`normRows: f32 or f64 only, got ${x.dtype}`);
  for (const [t, arg] of [[o.weight, 'weight'], [o.bias, 'bias']] as const) {
    if (!t) continue;
    if (t.ndim !== 1 || t.shape[0] !== x.shape[1]) throw new ShapeError(`normRows: ${arg} must have shape [${x.shape[1]}], got ${shapeStr(t.shape)}`);
    if (t.dtype !== x.dtype) throw new DTypeError(`normRows: ${arg} must be ${x.dtype} like x, got ${t.dtype}`);
  }
  sameDevice('normRows', ...[x, o.weight, o.bias].filter((t): t is Tensor => t !== null));
}

const h = (t: Tensor | null) => (t ? t.handle : null);
const d = (t: Tensor | null) => (t ? t.desc : null);

/** (x - mean) * rstd * weight + bias per row (RMSNorm: x * rstd * weight). */
export function normRows(x: Tensor, o: NormRowsOptions): Tensor {
  check(x, o);
  const [N, D] = x.shape;
  const y = Tensor.empty([N, D], x.dtype, x.device), rstd = Tensor.empty([N], x.dtype, x.device);
  const mean = o.rms ? null : Tensor.empty([N], x.dtype, x.device);
  try {
    launch(y, (n) => n.normForward(y.handle, y.desc, h(mean), d(mean), rstd.handle, rstd.desc, x.handle, x.desc,
      h(o.weight), d(o.weight), h(o.bias), d(o.bias), o.eps));
    return record('normRows', [x, o.weight, o.bias], y, { mean, rstd });
  } finally {
    mean?.dispose();
    rstd.dispose();
  }
}

/** The gradients of normRows for the output gradient g: [dx, dweight, dbias] (null where not wanted). */
export function normRowsBackward(g: Tensor, x: Tensor, weight: Tensor | null, mean: Tensor | null, rstd: Tensor,
  want: { weight: boolean; bias: boolean }): [Tensor, Tensor | null, Tensor | null] {
  check(x, { weight, bias: null });
  const D = x.shape[1];
  const dx = Tensor.empty(x.shape, x.dtype, x.device);
  const dw = want.weight ? Tensor.empty([D], x.dtype, x.device) : null, db = want.bias ? Tensor.empty([D], x.dtype, x.device) : null;
  try {
    launch(dx, (n) => n.normBackward(dx.handle, dx.desc, h(dw), d(dw), h(db), d(db), g.handle, g.desc, x.handle, x.desc,
      h(weight), d(weight), h(mean), d(mean), rstd.handle, rstd.desc));
  } catch (e) {
    dw?.dispose();
    db?.dispose();
    throw e;
  }
  return [dx, dw, db];
}
