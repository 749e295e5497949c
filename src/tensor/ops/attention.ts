// attention.ts: the fused attention op over 4-d views, forward and backward
// (native/cpu/kernels/attention.cpp: flash-style tiling, online softmax, no Lq x Lk matrix).
//
// attention(q, k, v, ...) takes q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] (any strides; broadcast
// operands with stride 0) and returns out [B,H,Lq,Dv]. It records the op 'attention' with the
// row log-sum-exp as an attribute, so the backward rule (src/autograd/rules/attention.ts)
// recomputes the probabilities instead of storing them. F.scaledDotProductAttention is the
// public entry: it checks the arguments, brings any rank to 4-d and falls back to the composed
// path where this op does not apply (see there).
//
// dtypes: f32 and f64 everywhere; bf16 and f16 natively on sim and cuda (native/cuda/attention/:
// tensor cores, f32 accumulation), with the row log-sum-exp saved in f32. The CPU kernel takes f32
// and f64 only, so the functional layer computes bf16 and f16 there in f32 (fusedTakesHalf).
import { DTypeError, ShapeError, ValueError } from '../errors.ts';
import { shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { launch, sameDevice } from './dispatch.ts';
import { native } from '../native.ts';
import { DEVICE_CODE } from '../storage.ts';
import { statDType } from '../dtype.ts';
import { fusedTakes, type Device } from '../device.ts';

export interface FusedAttentionOptions {
  /** [B,H,Lq,Lk], any strides; added to the logits. */
  bias: Tensor | null;
  /** bool [B,Lk], true = key hidden. */
  keyPaddingMask: Tensor | null;
  scale: number;
  causal: boolean;
}

function check(q: Tensor, k: Tensor, v: Tensor, o: FusedAttentionOptions): void {
  const [B, H, Lq, D] = q.shape, Lk = k.shape[2], Dv = v.shape[3];
  const want = (t: Tensor, s: number[], arg: string) => {
    if (shapeStr(t.shape) !== shapeStr(s)) throw new ShapeError(`attention: ${arg} must have shape ${shapeStr(s)}, got ${shapeStr(t.shape)}`);
  };
  if (q.ndim !== 4) throw new ShapeError(`attention: q must be 4-d [B,H,Lq,D], got ${shapeStr(q.shape)}`);
  want(k, [B, H, Lk, D], 'k');
  want(v, [B, H, Lk, Dv], 'v');
  for (const t of [k, v, o.bias]) {
    if (t && t.dtype !== q.dtype) throw new DTypeError(`attention: q, k, v and bias must share a dtype, got ${q.dtype} and ${t.dtype}`);
  }
  if (!fusedTakes(q.device, q.dtype)) {
    throw new DTypeError(`attention: f32 or f64 only on ${q.device}, got ${q.dtype}`);
  }
  if (o.bias) want(o.bias, [B, H, Lq, Lk], 'bias');
  if (o.keyPaddingMask) {
    want(o.keyPaddingMask, [B, Lk], 'keyPaddingMask');
    if (o.keyPaddingMask.dtype !== 'bool') throw new DTypeError(`attention: keyPaddingMask must be bool, got ${o.keyPaddingMask.dtype}`);
  }
  sameDevice('attention', ...[q, k, v, o.bias, o.keyPaddingMask].filter((t): t is Tensor => t !== null));
}


/**
 * Forces attention kernel `version` on `device` for every later call (native/cuda/attention/:
 * 1 CUDA cores, 2 bf16/f16 tensor cores, 3 the same with a pipelined forward); 0 restores the
 * dispatcher's choice. For tests and
 * benchmarks; a version that cannot take a call then fails it rather than switching silently.
 */
export function setAttentionVersion(device: Exclude<Device, 'meta'>, version: number): void {
  if (!Number.isInteger(version)) throw new ValueError(`setAttentionVersion: version must be an integer, got ${String(version)}`);
  native.attentionVersion(DEVICE_CODE[device], version);
}

const handleOf = (t: Tensor | null) => (t ? t.handle : null);
const descOf = (t: Tensor | null) => (t ? t.desc : null);

/** softmax(scale * q k^T + bias + masks) v, fused; fully hidden rows give zeros. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: FusedAttentionOptions): Tensor {
  check(q, k, v, o);
  const [B, H, Lq] = q.shape;
  const out = Tensor.empty([B, H, Lq, v.shape[3]], q.dtype, q.device);
  const lse = Tensor.empty([B, H, Lq], statDType(q.dtype), q.device);
  const { bias, keyPaddingMask: kpm } = o;
  try {
    launch(out, (n) => n.attention(out.handle, out.desc, lse.handle, lse.desc, q.handle, q.desc, k.handle, k.desc, v.handle, v.desc,
      handleOf(bias), descOf(bias), handleOf(kpm), descOf(kpm), o.scale, o.causal));
    return record('attention', [q, k, v, bias], out, { lse, keyPaddingMask: kpm, scale: o.scale, causal: o.causal });
  } finally {
    lse.dispose();
  }
}

/**
 * The gradients of attention for the output gradient g: [dq, dk, dv, dbias] (dbias only when
 * wantBias; it is [B,H,Lq,Lk]). `out` and `lse` are the forward's output and log-sum-exp.
 */
export function attentionBackward(g: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor,
  o: FusedAttentionOptions, wantBias: boolean): [Tensor, Tensor, Tensor, Tensor | null] {
  check(q, k, v, o);
  const [B, H, Lq] = q.shape, Lk = k.shape[2];
  const dq = Tensor.empty(q.shape, q.dtype, q.device), dk = Tensor.empty(k.shape, q.dtype, q.device);
  const dv = Tensor.empty(v.shape, q.dtype, q.device);
  const db = wantBias ? Tensor.empty([B, H, Lq, Lk], q.dtype, q.device) : null;
  const { bias, keyPaddingMask: kpm } = o;
  try {
    launch(dq, (n) => n.attentionBackward(dq.handle, dq.desc, dk.handle, dk.desc, dv.handle, dv.desc, handleOf(db), descOf(db),
      g.handle, g.desc, out.handle, out.desc, lse.handle, lse.desc, q.handle, q.desc, k.handle, k.desc, v.handle, v.desc,
      handleOf(bias), descOf(bias), handleOf(kpm), descOf(kpm), o.scale, o.causal));
  } catch (e) {
    for (const t of [dk, dv, db]) t?.dispose();
    throw e;
  }
  return [dq, dk, dv, db];
}
