// swiglu.ts: the fused SwiGLU gate op (native/cpu/kernels/swiglu.cpp, native/cuda/swiglu.cu):
// silu(a) * b for a and b of one shape and dtype (f32 or f64; bf16 and f16 computed in f32 on the
// devices whose kernels take them, fusedTakesHalf), one native pass forward and one
// backward. F.swiglu calls it where the device has the kernels and composes silu and mul
// elsewhere; the op records 'swiglu' for its backward rule (src/autograd/rules/norm.ts).
import { fusedTakes } from '../device.ts';
import { DTypeError, ShapeError } from '../errors.ts';
import { sameShape, shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { launch, sameDevice } from './dispatch.ts';

function check(a: Tensor, b: Tensor): void {
  if (!fusedTakes(a.device, a.dtype)) {
    throw new DTypeError(`swiglu: f32 or f64 only on ${a.device}, got ${a.dtype}`);
  }
  if (b.dtype !== a.dtype) throw new DTypeError(`swiglu: b must be ${a.dtype} like a, got ${b.dtype}`);
  if (!sameShape(a.shape, b.shape)) throw new ShapeError(`swiglu: a ${shapeStr(a.shape)} and b ${shapeStr(b.shape)} must have one shape`);
  sameDevice('swiglu', a, b);
}

/** silu(a) * b = a / (1 + exp(-a)) * b, element-wise. */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  check(a, b);
  const out = Tensor.empty(a.shape, a.dtype, a.device);
  launch(out, (n) => n.swiglu(out.handle, out.desc, a.handle, a.desc, b.handle, b.desc));
  return record('swiglu', [a, b], out);
}

/** The gradients of swiglu for the output gradient g: [da, db]. */
export function swigluBackward(g: Tensor, a: Tensor, b: Tensor): [Tensor, Tensor] {
  check(a, b);
  const da = Tensor.empty(a.shape, a.dtype, a.device), db = Tensor.empty(a.shape, a.dtype, a.device);
  try {
    launch(da, (n) => n.swigluBackward(da.handle, da.desc, db.handle, db.desc, g.handle, g.desc, a.handle, a.desc, b.handle, b.desc));
  } catch (e) {
    db.dispose();
    throw e;
  }
  return [da, db];
}
