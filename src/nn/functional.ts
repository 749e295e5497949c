// functional.ts: the stateless nn functions (torch.nn.functional): linear, embedding, the norms,
// dropout, the losses and scaled dot-product attention.
//
// Most are composed from tensor ops, so autograd differentiates them with no rule of their own;
// where a fused kernel exists (attention), the function takes it whenever it applies and keeps
// the composed body as the general path and the tests' reference. Every body runs in tidy, so its
// temporaries are freed at once (the backward graph keeps what it needs). bf16 and f16 inputs of the
// norms and the loss are computed in f32 and cast back, as PyTorch's kernels accumulate.
import { autocastOperands } from '../tensor/autocast.ts';
import { fusedTakes, fusedTakesHalf, hasFusedKernel } from '../tensor/device.ts';
import { isFloat, isHalf, promoteTypes } from '../tensor/dtype.ts';
import { DTypeError, IndexError, ShapeError, ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import { bernoulli, type Generator } from '../tensor/random.ts';
import { broadcastShapes, sameShape, shapeStr } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { arange } from '../tensor/ops/creation.ts';
import { checkTensor } from '../tensor/ops/dispatch.ts';
import { add, eq, ge, gelu, logicalAnd, logicalNot, mul, ne, neg, relu, rsqrt, silu, square, sub, where } from '../tensor/ops/elementwise.ts';
import { embedding as lookup, gather, matmul } from '../tensor/ops/linalg.ts';
import { logSoftmax, max, mean, softmax, sum, variance } from '../tensor/ops/reduce.ts';
import { expand, reshape, to, transpose, unsqueeze } from '../tensor/ops/views.ts';
import { attention } from '../tensor/ops/attention.ts';
import { groupNormRows, normRows } from '../tensor/ops/norm.ts';
import { crossEntropyRows } from '../tensor/ops/cross_entropy.ts';
import { swiglu as fusedSwiglu } from '../tensor/ops/swiglu.ts';
import { isGradEnabled, noGrad } from '../autograd/grad_mode.ts';
import { checkActivation, fusedLinear, type Activation } from '../tensor/ops/linear.ts';

export { relu, gelu, silu, rope, type GeluOptions } from '../tensor/ops/elementwise.ts';
export { conv2d, upsampleNearest2d, type Conv2dOptions } from '../tensor/ops/image.ts';

export type Reduction = 'mean' | 'sum' | 'none';

function checkFloat(x: unknown, op: string, arg = 'input'): Tensor {
  const t = checkTensor(x, op, arg);
  if (!isFloat(t.dtype)) throw new DTypeError(`${op}: ${arg} must be a float tensor, got ${t.dtype}`);
  return t;
}

/**
 * The SwiGLU gate of a LLaMA MLP, silu(gate) * up: one fused native pass each way
 * (src/tensor/ops/swiglu.ts) where the device has the kernels and both operands share one shape
 * and a dtype they take (f32 or f64; bf16 and f16 too on sim and cuda); silu then mul
 * (broadcasting, bf16 and f16 on the CPU) elsewhere.
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  checkFloat(gate, 'swiglu', 'gate');
  checkFloat(up, 'swiglu', 'up');
  const fused = hasFusedKernel(gate.device, 'swiglu') && hasFusedKernel(gate.device, 'swigluBackward') &&
    up.device === gate.device && up.dtype === gate.dtype && sameShape(gate.shape, up.shape) && fusedTakes(gate.device, gate.dtype);
  return fused ? fusedSwiglu(gate, up) : tidy(() => mul(silu(gate), up));
}

function checkOptional(x: Tensor | null | undefined, op: string, arg: string): Tensor | null {
  return x == null ? null : checkFloat(x, op, arg);
}

function checkReduction(r: unknown, op: string): Reduction {
  if (r !== 'mean' && r !== 'sum' && r !== 'none') throw new ValueError(`${op}: reduction must be 'mean', 'sum' or 'none', got ${String(r)}`);
  return r;
}

/** Runs f on x cast to f32 when x is bf16 or f16, and casts the result back. */
function inF32(x: Tensor, f: (xf: Tensor) => Tensor): Tensor {
  if (!isHalf(x.dtype)) return f(x);
  return to(f(to(x, 'f32')), x.dtype);
}

/**
 * inF32 for a fused row kernel: where the device's kernels take bf16 and f16 (fusedTakesHalf),
 * x goes to f as it is (the kernel widens on load and rounds once on store: no cast passes), and
 * a result in f32 (cross-entropy's losses) is cast to x's dtype as inF32 would leave it.
 */
function forKernel(x: Tensor, f: (xk: Tensor) => Tensor): Tensor {
  if (!isHalf(x.dtype) || !fusedTakesHalf(x.device)) return inF32(x, f);
  const y = f(x);
  return y.dtype === x.dtype ? y : to(y, x.dtype);
}

function reduceLoss(loss: Tensor, reduction: Reduction): Tensor {
  return reduction === 'none' ? loss : reduction === 'sum' ? sum(loss) : mean(loss);
}

const ACTIVATIONS: Record<Activation, (x: Tensor) => Tensor> = {
  relu, silu, gelu: (x) => gelu(x), geluTanh: (x) => gelu(x, { approximate: 'tanh' }),
};

export interface LinearOptions {
  /** Applied to x W^T + b: relu, gelu (erf), geluTanh or silu (default none). */
  activation?: Activation | null;
  /** Added last, after the activation: a tensor of the output's shape (a transformer block's skip path). */
  residual?: Tensor | null;
}

/**
 * y = act(x W^T + b) + residual, with x [..., in], weight [out, in], bias [out] and residual of
 * y's shape; act and residual optional (plain x W^T + b by default). Where the device has the
 * fused kernel (sim, cuda: src/tensor/ops/linear.ts) and the operands share a dtype, it is one
 * GEMM whose epilogue adds the bias, applies the activation and adds the residual; elsewhere
 * (the CPU) matmul, add and the activation compose, giving the same values up to rounding (the
 * fused epilogue rounds once). Under autocast the bias is cast with x and W, as torch does.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: LinearOptions = {}): Tensor {
  checkFloat(x, 'linear');
  checkFloat(weight, 'linear', 'weight');
  const b0 = checkOptional(bias, 'linear', 'bias');
  const residual = checkOptional(opts.residual, 'linear', 'residual');
  const activation = checkActivation(opts.activation, 'linear');
  if (weight.ndim !== 2) throw new ShapeError(`linear: weight must be 2-d [out, in], got ${shapeStr(weight.shape)}`);
  const [out, inF] = weight.shape;
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError(`linear: input ${shapeStr(x.shape)} does not end in ${inF} features (weight ${shapeStr(weight.shape)})`);
  }
  if (b0 && (b0.ndim !== 1 || b0.shape[0] !== out)) throw new ShapeError(`linear: bias must have shape [${out}], got ${shapeStr(b0.shape)}`);
  const shape = [...x.shape.slice(0, -1), out];
  if (residual && !sameShape(residual.shape, shape)) {
    throw new ShapeError(`linear: residual must have the output's shape ${shapeStr(shape)}, got ${shapeStr(residual.shape)}`);
  }
  return tidy(() => {
    const [cx, cw, b] = autocastOperands(x, weight, b0);
    // Leading dims are folded into one so the weight's gradient is one matmul, not a batch of them.
    const x2 = cx.ndim > 2 ? reshape(cx, [-1, inF]) : cx;
    const operands = [x2, cw, b, residual].filter((t): t is Tensor => t != null);
    const fused = (b || activation || residual) && hasFusedKernel(x2.device, 'linear') &&
      operands.every((t) => t.device === x2.device && t.dtype === x2.dtype);
    if (fused) {
      const rows = (t: Tensor) => (t.ndim === 2 ? t : reshape(t, [-1, t.shape[t.ndim - 1]]));
      const savePre = activation !== null && isGradEnabled() && operands.some((t) => t.requiresGrad);
      const y = fusedLinear(rows(x2), cw, { bias: b, residual: residual && rows(residual), activation, savePre });
      return y.ndim === shape.length ? y : reshape(y, shape);
    }
    let y = matmul(x2, transpose(cw, 0, 1));
    if (b) y = add(y, b);
    if (activation) y = ACTIVATIONS[activation](y);
    if (x.ndim > 2) y = reshape(y, shape);
    return residual ? add(residual, y) : y;
  });
}

export interface EmbeddingOptions {
  /** Rows looked up at this id get no gradient (negative counts from the end, as in PyTorch). */
  paddingIdx?: number | null;
}

/** Rows of weight [num, dim] for ids (i32, any shape): result [...ids.shape, dim]. */
export function embedding(ids: Tensor, weight: Tensor, opts: EmbeddingOptions = {}): Tensor {
  checkTensor(ids, 'embedding', 'ids');
  checkTensor(weight, 'embedding', 'weight');
  const pad = opts.paddingIdx;
  if (pad == null) return lookup(ids, weight);
  if (weight.ndim !== 2) throw new ShapeError(`embedding: weight must be 2-d [num, dim], got ${shapeStr(weight.shape)}`);
  const num = weight.shape[0];
  if (!Number.isInteger(pad) || pad < -num || pad >= num) throw new ValueError(`embedding: paddingIdx ${pad} is out of range for ${num} rows`);
  const p = pad < 0 ? pad + num : pad;
  return tidy(() => {
    const rows = lookup(ids, weight);
    // Same values everywhere; at padding positions they come from a detached copy, so no gradient.
    return where(unsqueeze(ne(ids, p), -1), rows, rows.detach());
  });
}

/**
 * Whether the fused row normalisation (src/tensor/ops/norm.ts) applies: on a device with the kernels, with
 * elements, and no weight or bias whose dtype would widen the result (the composed path keeps
 * PyTorch's type promotion there).
 */
function fusedNormApplies(x: Tensor, ...params: (Tensor | null)[]): boolean {
  return hasFusedKernel(x.device, 'normForward') && hasFusedKernel(x.device, 'normBackward') && x.numel > 0 &&
    params.every((t) => !t || promoteTypes(x.dtype, t.dtype) === x.dtype);
}

/** normRows over x folded into rows of D (x as forKernel leaves it); weight and bias [D] in x's dtype. */
function fusedRows(x: Tensor, D: number, w: Tensor | null, b: Tensor | null, eps: number, rms: boolean): Tensor {
  const cast = (t: Tensor | null) => t && reshape(t.dtype === x.dtype ? t : to(t, x.dtype), [D]);
  return reshape(normRows(reshape(x, [x.numel / D, D]), { weight: cast(w), bias: cast(b), eps, rms }), x.shape as number[]);
}

function normalize(x: Tensor, dims: number[], eps: number): Tensor {
  const mu = mean(x, dims, true);
  const v = variance(x, dims, { correction: 0, keepdim: true });
  return mul(sub(x, mu), rsqrt(add(v, eps)));
}

/** Layer normalisation over the trailing dims `normalizedShape`, then * weight + bias. */
export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkFloat(x, 'layerNorm');
  const w = checkOptional(weight, 'layerNorm', 'weight'), b = checkOptional(bias, 'layerNorm', 'bias');
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  if (!Array.isArray(ns) || ns.length === 0 || ns.length > x.ndim || ns.some((s, i) => s !== x.shape[x.ndim - ns.length + i])) {
    throw new ShapeError(`layerNorm: normalizedShape ${String(ns)} is not the trailing shape of input ${shapeStr(x.shape)}`);
  }
  for (const [t, arg] of [[w, 'weight'], [b, 'bias']] as const) {
    if (t && shapeStr(t.shape) !== shapeStr(ns)) throw new ShapeError(`layerNorm: ${arg} must have shape ${shapeStr(ns)}, got ${shapeStr(t.shape)}`);
  }
  const dims = ns.map((_, i) => x.ndim - ns.length + i);
  const D = ns.reduce((a, c) => a * c, 1);
  return tidy(() => {
    if (fusedNormApplies(x, w, b)) return forKernel(x, (xk) => fusedRows(xk, D, w, b, eps, false));
    return inF32(x, (xf) => {
      let y = normalize(xf, dims, eps);
      if (w) y = mul(y, w);
      return b ? add(y, b) : y;
    });
  });
}

/** RMSNorm (T5, LLaMA): x * rsqrt(mean(x^2, -1) + eps) * weight, normalised in f32 for bf16 and f16. */
export function rmsNorm(x: Tensor, weight?: Tensor | null, eps = 1e-6): Tensor {
  checkFloat(x, 'rmsNorm');
  const w = checkOptional(weight, 'rmsNorm', 'weight');
  if (x.ndim === 0) throw new ShapeError('rmsNorm: input must have at least 1 dim');
  const D = x.shape[x.ndim - 1];
  if (w && (w.ndim !== 1 || w.shape[0] !== D)) throw new ShapeError(`rmsNorm: weight must have shape [${D}], got ${shapeStr(w.shape)}`);
  return tidy(() => {
    if (fusedNormApplies(x, w)) return forKernel(x, (xk) => fusedRows(xk, D, w, null, eps, true));
    const y = inF32(x, (xf) => mul(xf, rsqrt(add(mean(square(xf), -1, true), eps))));
    return w ? mul(y, w) : y;
  });
}

/** Group normalisation of x [N, C, ...]: statistics per sample over each group of C / numGroups channels. */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkFloat(x, 'groupNorm');
  const w = checkOptional(weight, 'groupNorm', 'weight'), b = checkOptional(bias, 'groupNorm', 'bias');
  if (x.ndim < 2) throw new ShapeError(`groupNorm: expected input [N, C, ...], got ${shapeStr(x.shape)}`);
  const [N, C] = x.shape;
  if (!Number.isInteger(numGroups) || numGroups <= 0 || C % numGroups !== 0) {
    throw new ValueError(`groupNorm: numGroups ${numGroups} must be a positive divisor of the ${C} channels`);
  }
  for (const [t, arg] of [[w, 'weight'], [b, 'bias']] as const) {
    if (t && (t.ndim !== 1 || t.shape[0] !== C)) throw new ShapeError(`groupNorm: ${arg} must have shape [${C}], got ${shapeStr(t.shape)}`);
  }
  const perChannel = [C, ...x.shape.slice(2).map(() => 1)];
  const D = x.numel / (N * numGroups);
  return tidy(() => {
    // The affine in the normalising pass where the device has GroupNorm's kernel, else after it.
    if (fusedNormApplies(x, w, b) && hasFusedKernel(x.device, 'groupNormForward') && hasFusedKernel(x.device, 'groupNormBackward')) {
      return forKernel(x, (xk) => {
        const cast = (t: Tensor | null) => t && (t.dtype === xk.dtype ? t : to(t, xk.dtype));
        const rows = groupNormRows(reshape(xk, [N * numGroups, D]), { weight: cast(w), bias: cast(b), eps, groups: numGroups, inner: D / (C / numGroups) });
        return reshape(rows, x.shape as number[]);
      });
    }
    return inF32(x, (xf) => {
      let y = fusedNormApplies(x) ? fusedRows(xf, D, null, null, eps, false)
        : reshape(normalize(reshape(xf, [N, numGroups, -1]), [2], eps), x.shape as number[]);
      if (w) y = mul(y, reshape(w, perChannel));
      return b ? add(y, reshape(b, perChannel)) : y;
    });
  });
}

export interface DropoutOptions {
  generator?: Generator;
}

/**
 * Zeroes each element with probability p and scales the rest by 1 / (1 - p); the mask comes
 * from the (seeded) generator, so a run is reproducible. When not training, or p = 0, it is the
 * identity (a view of x that autograd passes through).
 */
export function dropout(x: Tensor, p = 0.5, training = true, opts: DropoutOptions = {}): Tensor {
  checkFloat(x, 'dropout');
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ValueError(`dropout: p must be in [0, 1], got ${String(p)}`);
  if (!training || p === 0) return to(x, x.dtype);
  if (p === 1) return mul(x, 0);
  return tidy(() => {
    const keep = bernoulli(1 - p, x.shape as number[], { generator: opts.generator, dtype: x.dtype, device: x.device });
    return mul(x, mul(keep, 1 / (1 - p)));
  });
}

export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing, and do not count in the mean (default -100). */
  ignoreIndex?: number;
  reduction?: Reduction;
  /** Mixes the one-hot target with the uniform distribution: (1 - s) * nll + s * mean(-log p). */
  labelSmoothing?: number;
}

/**
 * Cross-entropy of logits [..., V] against class ids (i32) [...]. 'mean' averages over the
 * targets that are not ignoreIndex; when every target is ignored that is 0 / 0 = NaN, as in
 * PyTorch. With 'none', ignored positions hold 0.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkFloat(logits, 'crossEntropy', 'logits');
  checkTensor(targets, 'crossEntropy', 'targets');
  if (targets.dtype !== 'i32') throw new DTypeError(`crossEntropy: targets must be i32 class ids, got ${targets.dtype}`);
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = checkReduction(opts.reduction ?? 'mean', 'crossEntropy');
  const s = opts.labelSmoothing ?? 0;
  if (!Number.isInteger(ignore)) throw new ValueError(`crossEntropy: ignoreIndex must be an integer, got ${String(ignore)}`);
  if (typeof s !== 'number' || !(s >= 0 && s <= 1)) throw new ValueError(`crossEntropy: labelSmoothing must be in [0, 1], got ${String(s)}`);
  if (logits.ndim === 0 || shapeStr(logits.shape.slice(0, -1)) !== shapeStr(targets.shape)) {
    throw new ShapeError(`crossEntropy: targets ${shapeStr(targets.shape)} must be the logits' ${shapeStr(logits.shape)} shape without its last dim`);
  }
  const V = logits.shape[logits.ndim - 1];
  if (hasFusedKernel(logits.device, 'crossEntropy') && hasFusedKernel(logits.device, 'crossEntropyBackward') && V > 0) {
    return tidy(() => forKernel(logits, (lk) => {
      // The fused kernel (src/tensor/ops/cross_entropy.ts): per-row losses, never the probabilities.
      const t = reshape(targets, [-1]);
      const rows = crossEntropyRows(reshape(lk, [-1, V]), t, { ignoreIndex: ignore, labelSmoothing: s });
      if (reduction === 'none') return reshape(rows, targets.shape as number[]);
      return reduction === 'sum' ? sum(rows) : sum(rows).div(sum(ne(t, ignore)));
    }));
  }
  return tidy(() => inF32(logits, (lf) => {
    const t = reshape(targets, [-1]);
    const logp = logSoftmax(reshape(lf, [-1, V]), 1);
    const valid = ne(t, ignore);
    // Ignored positions would index out of range: gather row 0 there and mask the result.
    const safe = where(valid, t, 0);
    let l = neg(reshape(pick(logp, unsqueeze(safe, 1)), [-1]));
    if (s > 0) l = add(mul(l, 1 - s), mul(mean(logp, 1), -s));
    l = where(valid, l, 0);
    if (reduction === 'none') return reshape(l, targets.shape as number[]);
    if (reduction === 'sum') return sum(l);
    return sum(l).div(sum(valid));
  }));
}

/** gather(logp, 1, ids), with the kernel's range error restated in crossEntropy's terms. */
function pick(logp: Tensor, ids: Tensor): Tensor {
  try {
    return gather(logp, 1, ids);
  } catch (e) {
    if (!(e instanceof IndexError)) throw e;
    const m = /index (-?\d+) is out of range/.exec(e.message);
    throw new IndexError(`crossEntropy: target ${m ? m[1] : '?'} is out of range for ${logp.shape[1]} classes`);
  }
}

export interface LossOptions {
  reduction?: Reduction;
}

/** Mean (or summed, or element-wise) squared error; a and b broadcast. */
export function mseLoss(a: Tensor, b: Tensor, opts: LossOptions = {}): Tensor {
  checkFloat(a, 'mseLoss', 'input');
  checkFloat(b, 'mseLoss', 'target');
  const reduction = checkReduction(opts.reduction ?? 'mean', 'mseLoss');
  return tidy(() => reduceLoss(square(sub(a, b)), reduction));
}

export interface AttentionOptions {
  /** Query i sees keys j <= i (top-left aligned, as PyTorch's is_causal, also when Lq != Lk). */
  causal?: boolean;
  /** Added to the logits before softmax; broadcasts against [..., Lq, Lk] (e.g. [1, H, Lq, Lk] or [H, Lq, Lk]). */
  bias?: Tensor | null;
  /** bool [B, Lk], true = padding to ignore (nn.MultiheadAttention's key_padding_mask); B is q's first dim. */
  keyPaddingMask?: Tensor | null;
  /** Multiplies q k^T; default 1 / sqrt(D). T5 uses 1. */
  scale?: number;
  /** Dropout on the attention probabilities, applied only when training. */
  dropoutP?: number;
  training?: boolean;
  generator?: Generator;
}

/**
 * softmax(q k^T * scale + bias + mask) v for q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv]
 * (leading dims broadcast). A query row whose keys are all masked out gives zeros, not NaN.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkFloat(q, 'scaledDotProductAttention', 'q');
  checkFloat(k, 'scaledDotProductAttention', 'k');
  checkFloat(v, 'scaledDotProductAttention', 'v');
  const bias = checkOptional(opts.bias, 'scaledDotProductAttention', 'bias');
  const [cq, ck, cv, cbias] = autocastOperands(q, k, v, bias);
  if (cq !== q || ck !== k || cv !== v || cbias !== bias) return scaledDotProductAttention(cq, ck, cv, { ...opts, bias: cbias });
  if (q.ndim < 2 || k.ndim < 2 || v.ndim < 2) throw new ShapeError('scaledDotProductAttention: q, k and v need at least 2 dims');
  const [Lq, D] = q.shape.slice(-2), [Lk, Dk] = k.shape.slice(-2);
  if (Dk !== D) throw new ShapeError(`scaledDotProductAttention: q ${shapeStr(q.shape)} and k ${shapeStr(k.shape)} differ in the last dim`);
  if (v.shape[v.ndim - 2] !== Lk) throw new ShapeError(`scaledDotProductAttention: v ${shapeStr(v.shape)} must have ${Lk} keys like k ${shapeStr(k.shape)}`);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ValueError(`scaledDotProductAttention: scale must be a finite number, got ${String(scale)}`);
  const kpm = opts.keyPaddingMask == null ? null : checkTensor(opts.keyPaddingMask, 'scaledDotProductAttention', 'keyPaddingMask');
  if (kpm) {
    if (kpm.dtype !== 'bool') throw new DTypeError(`scaledDotProductAttention: keyPaddingMask must be bool, got ${kpm.dtype}`);
    if (q.ndim < 3 || kpm.ndim !== 2 || kpm.shape[0] !== q.shape[0] || kpm.shape[1] !== Lk) {
      throw new ShapeError(`scaledDotProductAttention: keyPaddingMask must be [${q.shape[0]}, ${Lk}] for q ${shapeStr(q.shape)}, got ${shapeStr(kpm.shape)}`);
    }
  }
  const p = opts.dropoutP ?? 0;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ValueError(`scaledDotProductAttention: dropoutP must be in [0, 1], got ${String(p)}`);
  if (!(opts.training && p > 0)) {
    const fused = fusedAttention(q, k, v, bias, kpm, scale, opts.causal ?? false);
    if (fused) return fused;
  }
  // bf16 and f16 are computed in f32 on the composed path too (devices without the fused kernel),
  // with one rounding at the end as the fused kernel does, rather than a rounding after every op.
  const dt = q.dtype;
  if (isHalf(dt) && k.dtype === dt && v.dtype === dt && (!bias || bias.dtype === dt)) {
    return tidy(() => to(composedAttention(to(q, 'f32'), to(k, 'f32'), to(v, 'f32'), bias && to(bias, 'f32'), kpm, scale, opts), dt));
  }
  return composedAttention(q, k, v, bias, kpm, scale, opts);
}

/**
 * The fused kernel (src/tensor/ops/attention.ts) on 4-d views of q, k, v: leading dims
 * broadcast, then fold into [B, H] (B = the first, which the key-padding mask indexes). Null
 * where it does not apply: a device without the fused kernels (hasFusedKernel), operands of different dtypes, or a bias that would
 * widen the output's leading dims. Exported for the tests, which compare the two paths.
 */
export function fusedAttention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | null, kpm: Tensor | null, scale: number,
  causal: boolean): Tensor | null {
  const op = 'scaledDotProductAttention', dt = q.dtype;
  if (!hasFusedKernel(q.device, 'attention') || !hasFusedKernel(q.device, 'attentionBackward') || !isFloat(dt) || k.dtype !== dt || v.dtype !== dt || (bias && bias.dtype !== dt)) return null;
  const lead = broadcastShapes(broadcastShapes(q.shape.slice(0, -2), k.shape.slice(0, -2), op), v.shape.slice(0, -2), op);
  const [Lq, D] = q.shape.slice(-2), Lk = k.shape[k.ndim - 2], Dv = v.shape[v.ndim - 1];
  const scores = [...lead, Lq, Lk];
  if (bias && (bias.ndim > scores.length || shapeStr(broadcastShapes(bias.shape, scores, op)) !== shapeStr(scores))) return null;
  const B = lead.length ? lead[0] : 1, H = lead.slice(1).reduce((a, b) => a * b, 1);
  if (kpm && kpm.shape[0] !== B && kpm.shape[0] !== 1) return null;
  // bf16 and f16 go to the kernel as they are where it takes them (fusedTakesHalf), else they
  // are computed in f32 (one rounding at the end, as PyTorch's kernels accumulate).
  const widen = isHalf(dt) && !fusedTakesHalf(q.device);
  const to4 = (x: Tensor, tail: number[]) => reshape(expand(widen ? to(x, 'f32') : x, [...lead, ...tail]), [B, H, ...tail]);
  return tidy(() => {
    const out = attention(to4(q, [Lq, D]), to4(k, [Lk, D]), to4(v, [Lk, Dv]), {
      bias: bias && to4(bias, [Lq, Lk]), keyPaddingMask: kpm && expand(kpm, [B, Lk]), scale, causal,
    });
    const y = reshape(out, [...lead, Lq, Dv]);
    return widen ? to(y, dt) : y;
  });
}

/** The composed path: matmul, masks, softmax, dropout, matmul (autograd differentiates it). */
export function composedAttention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | null, kpm: Tensor | null, scale: number,
  opts: AttentionOptions): Tensor {
  const [Lq, Lk] = [q.shape[q.ndim - 2], k.shape[k.ndim - 2]];
  const p = opts.dropoutP ?? 0;
  return tidy(() => {
    let scores = mul(matmul(q, transpose(k, -2, -1)), scale);
    if (bias) scores = add(scores, bias);
    let keep: Tensor | null = null;
    if (opts.causal) keep = ge(unsqueeze(arange(Lq, { device: q.device }), 1), unsqueeze(arange(Lk, { device: q.device }), 0));
    if (kpm) {
      const shape = [kpm.shape[0], ...Array(scores.ndim - 2).fill(1), Lk];
      const k2 = reshape(logicalNot(kpm), shape);
      keep = keep ? logicalAnd(keep, k2) : k2;
    }
    if (keep) scores = where(keep, scores, -Infinity);
    let dead: Tensor | null = null;
    if (keep || bias) {
      // Rows with every logit at -inf would softmax to NaN: give them 0 logits, then 0 weights.
      dead = noGrad(() => eq(max(scores.detach(), -1, true), -Infinity));
      scores = where(dead, 0, scores);
    }
    let probs = softmax(scores, -1);
    if (dead) probs = where(dead, 0, probs);
    if (opts.training && p > 0) probs = dropout(probs, p, true, { generator: opts.generator });
    return matmul(probs, v);
  });
}
