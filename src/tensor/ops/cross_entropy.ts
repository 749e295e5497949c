// cross_entropy.ts: the fused softmax cross-entropy op (native/cpu/kernels/cross_entropy.cpp):
// per-row losses of logits [N, V] against i32 targets [N], 0 where the target is ignoreIndex,
// without storing the probabilities. F.crossEntropy reduces them; the op records
// 'crossEntropyRows' with the rows' log-sum-exp for its backward rule (src/autograd/rules/norm.ts).
// bf16 and f16 logits go to the kernel as they are on devices that take them (fusedTakesHalf),
// computed in f32, with the losses and lse in f32 (statDType); the gradient has the logits' dtype.
import { fusedTakes } from '../device.ts';
import { statDType } from '../dtype.ts';
import { DTypeError, ShapeError } from '../errors.ts';
import { shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { launch, sameDevice } from './dispatch.ts';

export interface CrossEntropyRowsOptions {
  ignoreIndex: number;
  labelSmoothing: number;
}

function check(logits: Tensor, targets: Tensor): void {
  if (logits.ndim !== 2) throw new ShapeError(`crossEntropyRows: logits must be 2-d [N, V], got ${shapeStr(logits.shape)}`);
  if (!fusedTakes(logits.device, logits.dtype)) {
    throw new DTypeError(`crossEntropyRows: f32 or f64 logits only on ${logits.device}, got ${logits.dtype}`);
  }
  if (targets.dtype !== 'i32') throw new DTypeError(`crossEntropyRows: targets must be i32, got ${targets.dtype}`);
  if (targets.ndim !== 1 || targets.shape[0] !== logits.shape[0]) {
    throw new ShapeError(`crossEntropyRows: targets must have shape [${logits.shape[0]}], got ${shapeStr(targets.shape)}`);
  }
  sameDevice('crossEntropyRows', logits, targets);
}

/** loss[i] = (1 - s) (lse_i - x[i, t_i]) + s (lse_i - mean_j x[i, j]), 0 where t_i is ignored (f32 for bf16 and f16 logits). */
export function crossEntropyRows(logits: Tensor, targets: Tensor, o: CrossEntropyRowsOptions): Tensor {
  check(logits, targets);
  const N = logits.shape[0];
  const loss = Tensor.empty([N], statDType(logits.dtype), logits.device), lse = Tensor.empty([N], statDType(logits.dtype), logits.device);
  try {
    launch(loss, (n) => n.crossEntropy(loss.handle, loss.desc, lse.handle, lse.desc, logits.handle, logits.desc,
      targets.handle, targets.desc, o.ignoreIndex, o.labelSmoothing));
    return record('crossEntropyRows', [logits], loss, { targets, lse, ...o });
  } finally {
    lse.dispose();
  }
}

/** d(loss)/d(logits) for the per-row loss gradient g [N]. */
export function crossEntropyRowsBackward(g: Tensor, logits: Tensor, targets: Tensor, lse: Tensor, o: CrossEntropyRowsOptions): Tensor {
  check(logits, targets);
  const dx = Tensor.empty(logits.shape, logits.dtype, logits.device);
  return launch(dx, (n) => n.crossEntropyBackward(dx.handle, dx.desc, g.handle, g.desc, logits.handle, logits.desc,
    lse.handle, lse.desc, targets.handle, targets.desc, o.ignoreIndex, o.labelSmoothing));
}
