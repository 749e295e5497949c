// image.ts: NCHW image ops used by the vision encoder and the diffusion decoder: conv2d,
// maxPool2d, avgPool2d, upsampleNearest2d, and pad (constant, F.pad's argument order).
import { autocastOperands } from '../autocast.ts';
import { isFloat } from '../dtype.ts';
import { DTypeError, ShapeError, ValueError } from '../errors.ts';
import { checkInt, checkSize, shapeStr } from '../shape.ts';
import { Tensor } from '../tensor.ts';
import { record } from '../tape.ts';
import { checkTensor, launch, sameDevice } from './dispatch.ts';
import { full } from './creation.ts';
import { copyInto, narrow, unsqueeze } from './views.ts';

type Pair = number | [number, number];

function pair(v: unknown, op: string, arg: string, min: number): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2) throw new ValueError(`${op}: ${arg} must be a number or a pair of numbers`);
  const out = p.map((x) => checkInt(x, op, arg)) as [number, number];
  if (out[0] < min || out[1] < min) throw new ValueError(`${op}: ${arg} must be >= ${min}, got ${shapeStr(out)}`);
  return out;
}

function check4d(x: Tensor, op: string): void {
  checkTensor(x, op);
  if (x.ndim !== 4) throw new ShapeError(`${op}: expected a 4-d NCHW input, got shape ${shapeStr(x.shape)}`);
  if (!isFloat(x.dtype)) throw new DTypeError(`${op}: expected a float tensor, got ${x.dtype}`);
}

/** Runs a 4-d op on a 3-d (unbatched CHW) input by adding and removing the batch dim. */
function unbatched(x: Tensor, f: (x4: Tensor) => Tensor): Tensor {
  if (x instanceof Tensor && x.ndim === 3) {
    const x4 = unsqueeze(x, 0);
    try {
      const y = f(x4);
      const out = y.squeeze(0);
      y.dispose();
      return out;
    } finally {
      x4.dispose();
    }
  }
  return f(x);
}

function outSize(inp: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((inp + 2 * p - d * (k - 1) - 1) / s) + 1;
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** 2-d convolution (cross-correlation, as torch): input [N,C,H,W], weight [O,C/groups,KH,KW], bias [O]. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  if (x instanceof Tensor && weight instanceof Tensor) {
    const [cx, cw, cb] = autocastOperands(x, weight, bias);
    if (cx !== x || cw !== weight || cb !== bias) return conv2d(cx, cw, cb, opts);
  }
  return unbatched(x, (x4) => {
    check4d(x4, 'conv2d');
    checkTensor(weight, 'conv2d', 'weight');
    if (bias != null) checkTensor(bias, 'conv2d', 'bias');
    const device = sameDevice('conv2d', x4, weight, ...(bias ? [bias] : []));
    const [sh, sw] = pair(opts.stride ?? 1, 'conv2d', 'stride', 1);
    const [ph, pw] = pair(opts.padding ?? 0, 'conv2d', 'padding', 0);
    const [dh, dw] = pair(opts.dilation ?? 1, 'conv2d', 'dilation', 1);
    const groups = checkSize(opts.groups ?? 1, 'conv2d', 'groups');
    const [N, C, H, W] = x4.shape;
    if (weight.ndim !== 4) throw new ShapeError(`conv2d: weight must be 4-d [O,C/groups,KH,KW], got ${shapeStr(weight.shape)}`);
    const [O, Cg, KH, KW] = weight.shape;
    if (groups < 1 || C % groups !== 0 || O % groups !== 0) {
      throw new ShapeError(`conv2d: groups ${groups} must divide input channels ${C} and output channels ${O}`);
    }
    if (Cg * groups !== C) throw new ShapeError(`conv2d: weight ${shapeStr(weight.shape)} expects ${Cg * groups} input channels, input has ${C}`);
    if (weight.dtype !== x4.dtype || (bias && bias.dtype !== x4.dtype)) throw new DTypeError('conv2d: input, weight and bias must share a dtype');
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== O)) throw new ShapeError(`conv2d: bias must have shape [${O}], got ${shapeStr(bias.shape)}`);
    const OH = outSize(H, KH, sh, ph, dh), OW = outSize(W, KW, sw, pw, dw);
    if (OH <= 0 || OW <= 0) throw new ShapeError(`conv2d: input ${H}x${W} is too small for kernel ${KH}x${KW} with padding ${ph},${pw} and dilation ${dh},${dw}`);
    const out = Tensor.empty([N, O, OH, OW], x4.dtype, device);
    if (out.numel > 0) {
      launch(out, (k) =>
        k.conv2d(out.handle, out.desc, x4.handle, x4.desc, weight.handle, weight.desc, bias ? bias.handle : null, bias ? bias.desc : null,
          sh, sw, ph, pw, dh, dw, groups));
    }
    return record('conv2d', [x4, weight, bias ?? null], out, { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups });
  });
}

type Geometry = { stride: number[]; padding: number[]; dilation: number[]; groups: number };

/** Internal (autograd): the gradient of conv2d's input, a transposed convolution of g. */
export function conv2dBackwardInput(g: Tensor, weight: Tensor, inputShape: readonly number[], a: Geometry): Tensor {
  const gi = Tensor.empty(inputShape, g.dtype, g.device);
  if (gi.numel === 0) return gi;
  return launch(gi, (k) => k.conv2dBackwardInput(gi.handle, gi.desc, g.handle, g.desc, weight.handle, weight.desc,
    a.stride[0], a.stride[1], a.padding[0], a.padding[1], a.dilation[0], a.dilation[1], a.groups));
}

/** Internal (autograd): the gradients of conv2d's weight and (when withBias) bias. */
export function conv2dBackwardWeight(g: Tensor, input: Tensor, weightShape: readonly number[], withBias: boolean, a: Geometry): [Tensor, Tensor | null] {
  const gw = Tensor.empty(weightShape, g.dtype, g.device);
  const gb = withBias ? Tensor.empty([weightShape[0]], g.dtype, g.device) : null;
  if (gw.device !== 'meta') {
    try {
      launch(gw, (k) => k.conv2dBackwardWeight(gw.handle, gw.desc, gb ? gb.handle : null, gb ? gb.desc : null, g.handle, g.desc,
        input.handle, input.desc, a.stride[0], a.stride[1], a.padding[0], a.padding[1], a.dilation[0], a.dilation[1], a.groups));
    } catch (e) {
      gb?.dispose();
      throw e;
    }
  }
  return [gw, gb];
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

function poolGeometry(x4: Tensor, kernel: Pair, opts: PoolOptions, op: string) {
  const [kh, kw] = pair(kernel, op, 'kernelSize', 1);
  const [sh, sw] = pair(opts.stride ?? [kh, kw], op, 'stride', 1);
  const [ph, pw] = pair(opts.padding ?? 0, op, 'padding', 0);
  const [dh, dw] = pair(opts.dilation ?? 1, op, 'dilation', 1);
  if (ph > kh / 2 || pw > kw / 2) throw new ValueError(`${op}: padding must be at most half the kernel size`);
  const [N, C, H, W] = x4.shape;
  const OH = outSize(H, kh, sh, ph, dh), OW = outSize(W, kw, sw, pw, dw);
  if (OH <= 0 || OW <= 0) throw new ShapeError(`${op}: input ${H}x${W} is too small for kernel ${kh}x${kw}`);
  return { kh, kw, sh, sw, ph, pw, dh, dw, shape: [N, C, OH, OW] };
}

/** Max over windows; with returnIndices also the flat h*W+w index of each maximum (i32). */
export function maxPool2d(x: Tensor, kernelSize: Pair, opts: PoolOptions & { returnIndices: true }): [Tensor, Tensor];
export function maxPool2d(x: Tensor, kernelSize: Pair, opts?: PoolOptions & { returnIndices?: false }): Tensor;
export function maxPool2d(x: Tensor, kernelSize: Pair, opts: PoolOptions & { returnIndices?: boolean } = {}): Tensor | [Tensor, Tensor] {
  let indices: Tensor | null = null;
  const out = unbatched(x, (x4) => {
    check4d(x4, 'maxPool2d');
    const g = poolGeometry(x4, kernelSize, opts, 'maxPool2d');
    const o = Tensor.empty(g.shape, x4.dtype, x4.device);
    // The indices are always made: backward routes each gradient to its window's maximum.
    const idx = Tensor.empty(g.shape, 'i32', x4.device);
    if (o.numel > 0) {
      try {
        launch(o, (k) => k.maxPool2d(o.handle, o.desc, idx.handle, idx.desc, x4.handle, x4.desc,
          g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw));
      } catch (e) {
        idx.dispose();
        throw e;
      }
    }
    indices = idx;
    return record('maxPool2d', [x4], o, { indices: idx });
  });
  if (!opts.returnIndices) {
    (indices as unknown as Tensor).dispose();
    return out;
  }
  const idx = indices as unknown as Tensor;
  if (x.ndim === 3) {
    const squeezed = idx.squeeze(0);
    idx.dispose();
    return [out, squeezed];
  }
  return [out, idx];
}

/** Mean over windows (countIncludePad: padded zeros count in the divisor, the default as in torch). */
export function avgPool2d(x: Tensor, kernelSize: Pair, opts: Omit<PoolOptions, 'dilation'> & { countIncludePad?: boolean } = {}): Tensor {
  return unbatched(x, (x4) => {
    check4d(x4, 'avgPool2d');
    const g = poolGeometry(x4, kernelSize, opts, 'avgPool2d');
    const out = Tensor.empty(g.shape, x4.dtype, x4.device);
    const cip = opts.countIncludePad ?? true;
    if (out.numel > 0) launch(out, (k) => k.avgPool2d(out.handle, out.desc, x4.handle, x4.desc, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, cip));
    return record('avgPool2d', [x4], out, { kernel: [g.kh, g.kw], stride: [g.sh, g.sw], padding: [g.ph, g.pw], countIncludePad: cip });
  });
}

/** Internal (autograd): the adjoint of avgPool2d. */
export function avgPool2dBackward(g: Tensor, inputShape: readonly number[], a: { kernel: number[]; stride: number[]; padding: number[]; countIncludePad: boolean }): Tensor {
  const gi = Tensor.empty(inputShape, g.dtype, g.device);
  if (gi.numel === 0) return gi;
  return launch(gi, (k) => k.avgPool2dBackward(gi.handle, gi.desc, g.handle, g.desc, a.kernel[0], a.kernel[1], a.stride[0], a.stride[1],
    a.padding[0], a.padding[1], a.countIncludePad));
}

/** Nearest-neighbour upsampling by an integer scale factor or to a size (torch's 'nearest'). */
export function upsampleNearest2d(x: Tensor, opts: { scaleFactor?: Pair; size?: [number, number] }): Tensor {
  return unbatched(x, (x4) => {
    check4d(x4, 'upsampleNearest2d');
    const [N, C, H, W] = x4.shape;
    let OH: number, OW: number;
    if (opts?.size !== undefined) {
      [OH, OW] = pair(opts.size, 'upsampleNearest2d', 'size', 1);
    } else if (opts?.scaleFactor !== undefined) {
      const [fh, fw] = pair(opts.scaleFactor, 'upsampleNearest2d', 'scaleFactor', 1);
      OH = H * fh;
      OW = W * fw;
    } else {
      throw new ValueError('upsampleNearest2d: give scaleFactor or size');
    }
    const out = Tensor.empty([N, C, OH, OW], x4.dtype, x4.device);
    if (out.numel > 0) launch(out, (k) => k.upsampleNearest2d(out.handle, out.desc, x4.handle, x4.desc));
    return record('upsampleNearest2d', [x4], out);
  });
}

/** Internal (autograd): the adjoint of upsampleNearest2d. */
export function upsampleNearest2dBackward(g: Tensor, inputShape: readonly number[]): Tensor {
  const gi = Tensor.empty(inputShape, g.dtype, g.device);
  if (gi.numel === 0) return gi;
  return launch(gi, (k) => k.upsampleNearest2dBackward(gi.handle, gi.desc, g.handle, g.desc));
}

/**
 * Constant padding in F.pad's order: [left, right] for the last dim, then [top, bottom] for the
 * one before, and so on. Negative amounts crop.
 */
export function pad(x: Tensor, padding: number[], value = 0): Tensor {
  checkTensor(x, 'pad');
  if (!Array.isArray(padding) || padding.length % 2 !== 0 || padding.length / 2 > x.ndim) {
    throw new ValueError(`pad: padding must have an even length of at most ${2 * x.ndim}, got ${String(padding)}`);
  }
  padding.forEach((p, i) => checkInt(p, 'pad', `padding[${i}]`));
  if (typeof value !== 'number') throw new ValueError('pad: value must be a number');
  const shape = [...x.shape];
  for (let i = 0; i < padding.length / 2; i++) {
    const d = x.ndim - 1 - i;
    shape[d] += padding[2 * i] + padding[2 * i + 1];
    if (shape[d] < 0) throw new ShapeError(`pad: padding ${shapeStr(padding)} leaves dim ${d} with negative size`);
  }
  const out = full(shape, value, { dtype: x.dtype, device: x.device });
  let src = x, dst = out;
  const views: Tensor[] = [];
  for (let i = 0; i < padding.length / 2; i++) {
    const d = x.ndim - 1 - i, lo = padding[2 * i], hi = padding[2 * i + 1];
    const srcStart = Math.max(0, -lo), dstStart = Math.max(0, lo);
    const len = Math.max(0, x.shape[d] - srcStart - Math.max(0, -hi));
    src = narrow(src, d, srcStart, len);
    dst = narrow(dst, d, dstStart, len);
    views.push(src, dst);
  }
  try {
    if (src.numel > 0) copyInto(dst, src);
  } finally {
    for (const v of views) v.dispose();
  }
  return record('pad', [x], out, { padding });
}
