// linear.ts: the fused linear op, act(x w^T + bias) + residual in one GEMM launch whose epilogue
// adds the bias, applies the activation and adds the residual as each output tile is stored
// (native/cuda/gemm/gemm.cuh; the `linear` entry of native/cpu/fused.h). On a GPU that saves the
// passes the separate ops would make over the output: the bias add, the activation and the
// residual add each read and write it once more. F.linear calls this op on devices that have the
// kernel (sim, cuda) and composes matmul, add and the activation on the others (the CPU, whose
// passes stay in cache). The op records 'linear' with the pre-activation x w^T + bias, which the
// kernel writes on the side when the backward will need it (src/autograd/rules/linalg.ts).
import { DTypeError, ShapeError, ValueError } from '../errors.ts';
import { isFloat } from '../dtype.ts';
import { shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { launch, sameDevice } from './dispatch.ts';
import { UNARY } from './elementwise.ts';

/** The activations a linear layer can fuse: relu, gelu (erf), gelu's tanh approximation, silu. */
export type Activation = 'relu' | 'gelu' | 'geluTanh' | 'silu';

/** Each activation's element-wise op (tensor/ops/elementwise.ts): the composed path and the backward use it. */
export const ACTIVATION_OP = { relu: 'relu', gelu: 'geluErf', geluTanh: 'geluTanh', silu: 'silu' } as const;

export function checkActivation(a: unknown, op: string): Activation | null {
  if (a == null) return null;
  if (typeof a !== 'string' || !Object.hasOwn(ACTIVATION_OP, a)) {
    throw new ValueError(`${op}: activation must be one of ${Object.keys(ACTIVATION_OP).join(', ')}, got ${String(a)}`);
  }
  return a as Activation;
}

export interface FusedLinearOptions {
  bias: Tensor | null;
  /** Added after the activation; the output's shape [R, N]. */
  residual: Tensor | null;
  activation: Activation | null;
  /** Write the pre-activation for the backward (only with an activation). */
  savePre: boolean;
  /** GEMM version (native/cuda/matmul.cu: 1-5); 0, the default, is the dispatcher's choice. */
  version?: number;
}

const h = (t: Tensor | null) => (t ? t.handle : null);
const d = (t: Tensor | null) => (t ? t.desc : null);

/** act(x w^T + bias) + residual for x [R, K] and weight [N, K], in one launch. */
export function fusedLinear(x: Tensor, weight: Tensor, o: FusedLinearOptions): Tensor {
  const { bias, residual } = o;
  const activation = checkActivation(o.activation, 'fusedLinear');
  const version = o.version ?? 0;
  if (!Number.isInteger(version) || version < 0) throw new ValueError(`fusedLinear: version must be a non-negative integer, got ${String(version)}`);
  if (x.ndim !== 2 || weight.ndim !== 2 || x.shape[1] !== weight.shape[1]) {
    throw new ShapeError(`fusedLinear: x ${shapeStr(x.shape)} and weight ${shapeStr(weight.shape)} must be [R, K] and [N, K]`);
  }
  const [R] = x.shape, [N] = weight.shape;
  if (!isFloat(x.dtype)) throw new DTypeError(`fusedLinear: expected float tensors, got ${x.dtype}`);
  for (const [t, arg] of [[weight, 'weight'], [bias, 'bias'], [residual, 'residual']] as const) {
    if (t && t.dtype !== x.dtype) throw new DTypeError(`fusedLinear: ${arg} must be ${x.dtype} like x, got ${t.dtype}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== N)) throw new ShapeError(`fusedLinear: bias must have shape [${N}], got ${shapeStr(bias.shape)}`);
  if (residual && (residual.ndim !== 2 || residual.shape[0] !== R || residual.shape[1] !== N)) {
    throw new ShapeError(`fusedLinear: residual must have shape [${R}, ${N}], got ${shapeStr(residual.shape)}`);
  }
  sameDevice('fusedLinear', ...[x, weight, bias, residual].filter((t): t is Tensor => t !== null));
  const out = Tensor.empty([R, N], x.dtype, x.device);
  const pre = activation && o.savePre ? Tensor.empty([R, N], x.dtype, x.device) : null;
  const act = activation ? UNARY[ACTIVATION_OP[activation]] : -1;
  try {
    launch(out, (n) => n.linear(out.handle, out.desc, h(pre), d(pre), x.handle, x.desc, weight.handle, weight.desc,
      h(bias), d(bias), h(residual), d(residual), act, version));
    return record('linear', [x, weight, bias, residual], out, { pre, activation });
  } finally {
    pre?.dispose();
  }
}
