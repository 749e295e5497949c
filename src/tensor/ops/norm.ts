// norm.ts: the fused row normalisation op (native/cpu/kernels/norm.cpp): LayerNorm, or RMSNorm
// (no mean), over the rows of x [N, D], with an optional weight and bias [D], forward and
// backward. F.layerNorm, F.rmsNorm and F.groupNorm fold their inputs into rows and call it; the
// op records 'normRows' with the row statistics (mean, rstd) for its backward rule
// (src/autograd/rules/norm.ts). groupNormRows is its GroupNorm form, where a row holds a group's
// channels and the weight and bias are per channel (recorded as 'groupNormRows').
//
// dtypes: f32 and f64 everywhere; bf16 and f16 on devices whose kernels take them (fusedTakesHalf:
// sim and cuda), computed in f32 with mean and rstd saved in f32 (statDType).
import { fusedTakes, type Device } from '../device.ts';
import { statDType } from '../dtype.ts';
import { DTypeError, ShapeError, ValueError } from '../errors.ts';
import { shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { launch, sameDevice } from './dispatch.ts';
import { native } from '../native.ts';
import { DEVICE_CODE } from '../storage.ts';

export interface NormRowsOptions {
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
  /** RMSNorm: scale by 1 / sqrt(mean(x^2) + eps), no mean subtracted. */
  rms: boolean;
}

/** Checks x [N, D] and the optional weight and bias, which must have `length` elements (D when not given). */
function check(x: Tensor, o: { weight: Tensor | null; bias: Tensor | null }, op = 'normRows', length?: number): void {
  if (x.ndim !== 2) throw new ShapeError(`${op}: x must be 2-d [N, D], got ${shapeStr(x.shape)}`);
  if (!fusedTakes(x.device, x.dtype)) {
    throw new DTypeError(`${op}: f32 or f64 only on ${x.device}, got ${x.dtype}`);
  }
  const n = length ?? x.shape[1];
  for (const [t, arg] of [[o.weight, 'weight'], [o.bias, 'bias']] as const) {
    if (!t) continue;
    if (t.ndim !== 1 || t.shape[0] !== n) throw new ShapeError(`${op}: ${arg} must have shape [${n}], got ${shapeStr(t.shape)}`);
    if (t.dtype !== x.dtype) throw new DTypeError(`${op}: ${arg} must be ${x.dtype} like x, got ${t.dtype}`);
  }
  sameDevice(op, ...[x, o.weight, o.bias].filter((t): t is Tensor => t !== null));
}

/**
 * Forces LayerNorm / RMSNorm kernel `version` on `device` for every later normRows call
 * (native/cuda/norm.cu: 1 a thread per row, the naive one; 2 a block per row with 16-byte chunks,
 * the default); 0 restores the default. For tests and benchmarks; the CPU has one version (a
 * DeviceError), an unknown version is a ValueError.
 */
export function setNormVersion(device: Exclude<Device, 'meta'>, version: number): void {
  if (!Number.isInteger(version)) throw new ValueError(`setNormVersion: version must be an integer, got ${String(version)}`);
  native.normVersion(DEVICE_CODE[device], version);
}

const h = (t: Tensor | null) => (t ? t.handle : null);
const d = (t: Tensor | null) => (t ? t.desc : null);

/** (x - mean) * rstd * weight + bias per row (RMSNorm: x * rstd * weight). */
export function normRows(x: Tensor, o: NormRowsOptions): Tensor {
  check(x, o);
  const [N, D] = x.shape;
  const y = Tensor.empty([N, D], x.dtype, x.device), rstd = Tensor.empty([N], statDType(x.dtype), x.device);
  const mean = o.rms ? null : Tensor.empty([N], statDType(x.dtype), x.device);
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

export interface GroupNormRowsOptions {
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
  /** Groups: x's rows are N samples x groups, in that order. */
  groups: number;
  /** Elements per channel (H W): a row holds D / inner channels. */
  inner: number;
}

/** The channel count C = groups D / inner of GroupNorm rows x [N groups, D]; throws where the geometry does not fit. */
function groupChannels(x: Tensor, groups: number, inner: number, op: string): number {
  const [R, D] = x.shape;
  if (!Number.isInteger(inner) || inner < 1 || D % inner !== 0) throw new ValueError(`${op}: inner ${inner} must be a positive divisor of the row length ${D}`);
  if (!Number.isInteger(groups) || groups < 1 || R % groups !== 0) throw new ValueError(`${op}: groups ${groups} must be a positive divisor of the ${R} rows`);
  return groups * (D / inner);
}

/**
 * GroupNorm over x [N groups, D] (x [N, C, ...] folded so each row is one sample's group of C / groups
 * channels, inner elements each): (x - mean) * rstd per row, then * weight[c] + bias[c] per channel (both [C]).
 */
export function groupNormRows(x: Tensor, o: GroupNormRowsOptions): Tensor {
  if (x.ndim !== 2) throw new ShapeError(`groupNormRows: x must be 2-d [N, D], got ${shapeStr(x.shape)}`);
  check(x, o, 'groupNormRows', groupChannels(x, o.groups, o.inner, 'groupNormRows'));
  const [N, D] = x.shape;
  const y = Tensor.empty([N, D], x.dtype, x.device), rstd = Tensor.empty([N], statDType(x.dtype), x.device);
  const mean = Tensor.empty([N], statDType(x.dtype), x.device);
  try {
    launch(y, (n) => n.groupNormForward(y.handle, y.desc, mean.handle, mean.desc, rstd.handle, rstd.desc, x.handle, x.desc,
      h(o.weight), d(o.weight), h(o.bias), d(o.bias), o.eps, o.inner));
    return record('groupNormRows', [x, o.weight, o.bias], y, { mean, rstd, groups: o.groups, inner: o.inner });
  } finally {
    mean.dispose();
    rstd.dispose();
  }
}

/** The gradients of groupNormRows for the output gradient g: [dx, dweight, dbias] (null where not wanted). */
export function groupNormRowsBackward(g: Tensor, x: Tensor, weight: Tensor | null, mean: Tensor, rstd: Tensor,
  geo: { groups: number; inner: number }, want: { weight: boolean; bias: boolean }): [Tensor, Tensor | null, Tensor | null] {
  if (x.ndim !== 2) throw new ShapeError(`groupNormRowsBackward: x must be 2-d [N, D], got ${shapeStr(x.shape)}`);
  const C = groupChannels(x, geo.groups, geo.inner, 'groupNormRowsBackward');
  check(x, { weight, bias: null }, 'groupNormRowsBackward', C);
  const dx = Tensor.empty(x.shape, x.dtype, x.device);
  const dw = want.weight ? Tensor.empty([C], x.dtype, x.device) : null, db = want.bias ? Tensor.empty([C], x.dtype, x.device) : null;
  try {
    launch(dx, (n) => n.groupNormBackward(dx.handle, dx.desc, h(dw), d(dw), h(db), d(db), g.handle, g.desc, x.handle, x.desc,
      h(weight), d(weight), mean.handle, mean.desc, rstd.handle, rstd.desc, geo.inner));
  } catch (e) {
    dw?.dispose();
    db?.dispose();
    throw e;
  }
  return [dx, dw, db];
}
