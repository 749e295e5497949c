// random.ts: seeded random tensors from one counter-based generator (Philox 4x32-10).
//
// A Generator is just (seed, offset). Each random op reads Philox blocks offset, offset + 1, ...
// and advances the offset by the blocks it used; the layout (which block and word feed which
// element, and how words become floats) is specified once, in native/cpu/philox.h, and every
// device follows it, so manualSeed(s) gives the same tensors on cpu, sim and cuda. Because the
// state is two integers, it is saved in checkpoints and a resumed run continues the stream.
import { type DType } from './dtype.ts';
import { DTypeError, ValueError } from './errors.ts';
import { checkNumber, checkShape, checkSize } from './shape.ts';
import { Tensor } from './tensor.ts';
import { checkTensor, launch } from './ops/dispatch.ts';
import { options, type TensorOptions } from './ops/creation.ts';
import { lt } from './ops/elementwise.ts';
import { to } from './ops/views.ts';

export interface GeneratorState {
  seed: number;
  offset: number;
}

export class Generator {
  seed = 0;
  offset = 0;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
      throw new ValueError(`manualSeed: seed must be an integer in [0, 2^53), got ${String(seed)}`);
    }
    this.seed = seed;
    this.offset = 0;
    return this;
  }

  /** Reserves `blocks` Philox blocks and returns the first one's counter. */
  take(blocks: number): number {
    const at = this.offset;
    this.offset += blocks;
    return at;
  }

  getState(): GeneratorState {
    return { seed: this.seed, offset: this.offset };
  }

  setState(s: GeneratorState): void {
    this.manualSeed(s.seed);
    if (!Number.isInteger(s.offset) || s.offset < 0) throw new ValueError('Generator.setState: bad offset');
    this.offset = s.offset;
  }
}

/** The generator used when an op is not given one. */
export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

function gen(opts: RandomOptions | undefined): Generator {
  const g = opts?.generator ?? defaultGenerator;
  if (!(g instanceof Generator)) throw new ValueError('random: generator must be a Generator');
  return g;
}

function shapeOf(shape: number[] | number, op: string): number[] {
  return checkShape(typeof shape === 'number' ? [shape] : shape, op);
}

/** Uniform on [0, 1) (or [low, high) via randUniform). */
export function rand(shape: number[] | number, opts?: RandomOptions): Tensor {
  return randUniform(shape, 0, 1, opts);
}

export function randUniform(shape: number[] | number, low: number, high: number, opts?: RandomOptions): Tensor {
  const s = shapeOf(shape, 'rand');
  checkNumber(low, 'rand', 'low');
  checkNumber(high, 'rand', 'high');
  const { dtype, device } = options(opts, 'rand');
  if (dtype === 'i32' || dtype === 'bool') throw new DTypeError(`rand: dtype must be a float dtype, got ${dtype}`);
  const out = Tensor.empty(s, dtype, device);
  const blocks = Math.ceil(out.numel / (dtype === 'f64' ? 2 : 4));
  const offset = gen(opts).take(blocks);
  if (out.numel === 0) return out;
  return launch(out, (k) => k.randUniform(out.handle, out.desc, gen(opts).seed, offset, low, high));
}

/** Standard normal (Box-Muller), scaled to mean and std when given. */
export function randn(shape: number[] | number, opts?: RandomOptions & { mean?: number; std?: number }): Tensor {
  const s = shapeOf(shape, 'randn');
  const { dtype, device } = options(opts, 'randn');
  if (dtype === 'i32' || dtype === 'bool') throw new DTypeError(`randn: dtype must be a float dtype, got ${dtype}`);
  const mean = checkNumber(opts?.mean ?? 0, 'randn', 'mean'), std = checkNumber(opts?.std ?? 1, 'randn', 'std');
  const out = Tensor.empty(s, dtype, device);
  const offset = gen(opts).take(Math.ceil(out.numel / 2));
  if (out.numel === 0) return out;
  return launch(out, (k) => k.randNormal(out.handle, out.desc, gen(opts).seed, offset, mean, std));
}

/** Integers uniform in [low, high) as i32 (torch.randint(low, high, size)). */
export function randint(low: number, high: number, shape: number[] | number, opts?: RandomOptions): Tensor {
  const s = shapeOf(shape, 'randint');
  if (!Number.isInteger(low) || !Number.isInteger(high)) throw new ValueError('randint: low and high must be integers');
  if (high <= low) throw new ValueError(`randint: high (${high}) must be greater than low (${low})`);
  if (high - low > 2 ** 32 || low < -(2 ** 31) || high > 2 ** 31) throw new ValueError('randint: range must fit in i32');
  const { dtype, device } = options(opts, 'randint', 'i32');
  const out = Tensor.empty(s, dtype, device);
  const offset = gen(opts).take(Math.ceil(out.numel / 4));
  if (out.numel === 0) return out;
  return launch(out, (k) => k.randInt(out.handle, out.desc, gen(opts).seed, offset, low, high));
}

/** A random permutation of 0..n-1 (i32). */
export function randperm(n: number, opts?: RandomOptions): Tensor {
  checkSize(n, 'randperm', 'n');
  if (n > 2 ** 31 - 1) throw new ValueError('randperm: n must fit in i32');
  const { device } = options(opts, 'randperm', 'i32');
  const out = Tensor.empty([n], 'i32', device);
  const offset = gen(opts).take(Math.ceil(n / 4));
  if (n === 0) return out;
  return launch(out, (k) => k.randperm(out.handle, out.desc, gen(opts).seed, offset));
}

/** 1 with probability p (a tensor of probabilities, or a number with a shape), else 0; p's dtype. */
export function bernoulli(p: Tensor | number, shapeOrOpts?: number[] | RandomOptions, maybeOpts?: RandomOptions): Tensor {
  if (typeof p === 'number') {
    if (!(p >= 0 && p <= 1)) throw new ValueError(`bernoulli: p must be in [0, 1], got ${p}`);
    const shape = Array.isArray(shapeOrOpts) ? shapeOrOpts : [];
    const opts = Array.isArray(shapeOrOpts) ? maybeOpts : shapeOrOpts;
    const u = rand(shape, { ...opts, dtype: opts?.dtype === 'f64' ? 'f64' : 'f32' });
    const m = lt(u, p);
    u.dispose();
    const out = to(m, options(opts, 'bernoulli').dtype);
    m.dispose();
    return out;
  }
  checkTensor(p, 'bernoulli', 'p');
  const opts = Array.isArray(shapeOrOpts) ? maybeOpts : shapeOrOpts;
  const dtype: DType = p.dtype === 'f64' ? 'f64' : 'f32';
  const u = rand(p.shape as number[], { generator: opts?.generator, dtype, device: p.device });
  const m = lt(u, p);
  u.dispose();
  const out = to(m, p.dtype === 'i32' || p.dtype === 'bool' ? 'f32' : p.dtype);
  m.dispose();
  return out;
}

export function randLike(x: Tensor, opts?: RandomOptions): Tensor {
  checkTensor(x, 'randLike');
  return rand(x.shape as number[], { dtype: x.dtype, device: x.device, ...opts });
}

export function randnLike(x: Tensor, opts?: RandomOptions): Tensor {
  checkTensor(x, 'randnLike');
  return randn(x.shape as number[], { dtype: x.dtype, device: x.device, ...opts });
}
