// init.ts: parameter initialisers (torch.nn.init): each overwrites a tensor's values in place,
// unrecorded by autograd, from the seeded generator (the default one unless { generator } is
// given), and returns the tensor. On the meta device they do nothing (there are no values).
import { isFloat } from '../tensor/dtype.ts';
import { DTypeError, ShapeError, ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import { randn, randUniform, type Generator } from '../tensor/random.ts';
import { shapeStr } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { fromValues, full } from '../tensor/ops/creation.ts';
import { checkTensor } from '../tensor/ops/dispatch.ts';
import { copyInto } from '../tensor/ops/views.ts';
import { noGrad } from '../autograd/grad_mode.ts';

export interface InitOptions {
  generator?: Generator;
}

export type Nonlinearity = 'linear' | 'sigmoid' | 'tanh' | 'relu' | 'leakyRelu';
export type FanMode = 'fanIn' | 'fanOut';

/** Writes `make()` (any dtype) into t's storage, outside autograd. */
function fill(t: Tensor, op: string, make: () => Tensor): Tensor {
  checkTensor(t, op);
  if (!isFloat(t.dtype)) throw new DTypeError(`${op}: expected a float tensor, got ${t.dtype}`);
  if (t.device === 'meta' || t.numel === 0) return t;
  noGrad(() => tidy(() => {
    copyInto(t, make());
  }));
  return t;
}

/** Random values are drawn in f64 for f64 tensors and in f32 otherwise. */
const drawDType = (t: Tensor) => (t.dtype === 'f64' ? 'f64' : 'f32');

/** fanIn = shape[1] * receptive field, fanOut = shape[0] * receptive field (as torch). */
export function fans(t: Tensor, op = 'fans'): { fanIn: number; fanOut: number } {
  if (t.ndim < 2) throw new ShapeError(`${op}: fan in and fan out need at least 2 dims, got ${shapeStr(t.shape)}`);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: t.shape[1] * receptive, fanOut: t.shape[0] * receptive };
}

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leakyRelu': {
      const a = param ?? 0.01;
      return Math.sqrt(2 / (1 + a * a));
    }
    default: throw new ValueError(`calculateGain: unknown nonlinearity ${String(nonlinearity)}`);
  }
}

export function uniform_(t: Tensor, low = 0, high = 1, opts: InitOptions = {}): Tensor {
  return fill(t, 'uniform_', () => randUniform(t.shape as number[], low, high, { dtype: drawDType(t), device: t.device, generator: opts.generator }));
}

export function normal_(t: Tensor, mean = 0, std = 1, opts: InitOptions = {}): Tensor {
  return fill(t, 'normal_', () => randn(t.shape as number[], { mean, std, dtype: drawDType(t), device: t.device, generator: opts.generator }));
}

export function zeros_(t: Tensor): Tensor {
  return fill(t, 'zeros_', () => full([], 0, { dtype: t.dtype, device: t.device }));
}

export function ones_(t: Tensor): Tensor {
  return fill(t, 'ones_', () => full([], 1, { dtype: t.dtype, device: t.device }));
}

export interface TruncNormalOptions extends InitOptions {
  mean?: number;
  std?: number;
  /** Absolute bounds, as in torch.nn.init.trunc_normal_ (defaults -2 and 2: ±2 std when std = 1). */
  a?: number;
  b?: number;
}

/**
 * N(mean, std^2) restricted to [a, b], by rejection: normal draws outside the bounds are
 * dropped and more are drawn, in order, so the result depends only on the generator's state.
 */
export function truncNormal_(t: Tensor, opts: TruncNormalOptions = {}): Tensor {
  const mean = opts.mean ?? 0, std = opts.std ?? 1, a = opts.a ?? -2, b = opts.b ?? 2;
  if (!(a < b)) throw new ValueError(`truncNormal_: a (${a}) must be below b (${b})`);
  if (!(std > 0)) throw new ValueError(`truncNormal_: std must be positive, got ${std}`);
  return fill(t, 'truncNormal_', () => {
    const values = new Float64Array(t.numel);
    let n = 0;
    for (let tries = 0; n < values.length; tries++) {
      if (tries > 1000) throw new ValueError(`truncNormal_: [${a}, ${b}] holds too little of N(${mean}, ${std}^2) to sample`);
      const draw = randn([Math.ceil((values.length - n) * 1.25) + 16], { mean, std, dtype: 'f64', generator: opts.generator });
      for (const v of draw.data() as Float64Array) if (v >= a && v <= b && n < values.length) values[n++] = v;
      draw.dispose();
    }
    return fromValues(values, t.shape as number[], 'f64', t.device);
  });
}

export function xavierUniform_(t: Tensor, gain = 1, opts: InitOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(t, 'xavierUniform_');
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, opts);
}

export function xavierNormal_(t: Tensor, gain = 1, opts: InitOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(t, 'xavierNormal_');
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), opts);
}

export interface KaimingOptions extends InitOptions {
  /** The negative slope of leakyRelu (default 0). */
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, opts: KaimingOptions, op: string): number {
  const mode = opts.mode ?? 'fanIn';
  if (mode !== 'fanIn' && mode !== 'fanOut') throw new ValueError(`${op}: mode must be 'fanIn' or 'fanOut', got ${String(mode)}`);
  const fan = fans(t, op)[mode];
  return calculateGain(opts.nonlinearity ?? 'leakyRelu', opts.a ?? 0) / Math.sqrt(fan);
}

/** U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al.). Linear and Conv2d use a = sqrt(5). */
export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, opts, 'kaimingUniform_');
  return uniform_(t, -bound, bound, opts);
}

export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, opts, 'kaimingNormal_'), opts);
}
