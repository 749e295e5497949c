// parity.test.ts: the backend-parity table, in the style of ggml's test-backend-ops.
//
// One list of op cases (CASES below). Each case says how to make its inputs (odd sizes, size-1
// broadcast dims, 0-d tensors, empty dims), how to run the op on tensors, and how to compute the
// same thing in test/reference.ts, the plain f64 oracle. Every case runs:
//   - on every device present: cpu always; sim (the SIMT emulator) in each of its three thread
//     orders, so a kernel missing a barrier fails; cuda once this machine has it and it runs
//     kernels (RUNS); on meta only the output shapes and dtypes are compared with cpu's;
//   - in every dtype it supports (f32, f64, bf16, f16, and i32 / bool where the op takes them);
//   - in three layouts: contiguous inputs; non-contiguous ones (a transposed, step-2 sliced view
//     of a larger tensor whose other elements are junk: NaN, or an out-of-range integer); and
//     broadcast ones (some dims expanded from size 1, stride 0).
// One uvu test per (device, case, dtype, layout), named `parity cpu add f32 noncontig` (the sim
// ones `parity sim[reverse] add f32 noncontig`).
//
// Inputs are fresh random values on every run, from a seeded PRNG: the seed is EMU_TEST_SEED or
// the clock, and every failure prints it, so `EMU_TEST_SEED=<seed> npm test -- parity` replays
// the failing inputs exactly. Values are drawn per op to stay in its domain (positive inputs for
// log, denominators away from zero, integer-valued floats for comparisons so ties happen) and
// are rounded to the dtype under test before the reference sees them, so the reference computes
// exactly what the engine was given.
//
// Tolerances (check()): integer and bool results, and ops that only move or select values, must
// match exactly. Float results must satisfy |got - want| <= (REL[dt] * scale + STEP[dt] * growth)
// * (|want| + mag): REL is the output rounding allowance of the dtype, STEP the per-term error
// of the compute type times `growth` (sqrt of the reduction length), and `mag` the magnitude the
// error scales with where cancellation makes |want| the wrong yardstick (for a sum, the same
// sum over |x|).
//
// Later issues add ops (to CASES) here; a case that a new device cannot run yet fails there.
// A final test checks that the table disposed every tensor it made (all of it runs under tidy).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../src/index.ts';
import { Tensor, cudaAvailable, memoryStats, setSimOrder, simAvailable, tensor, tidy, type DType, type Device } from '../src/index.ts';
import * as R from './reference.ts';
import type { Ref } from './reference.ts';
import { siluGradMul } from '../src/tensor/ops/elementwise.ts';

// ---- seed and random values ----------------------------------------------------------------

const SEED = /^\d+$/.test(process.env.EMU_TEST_SEED ?? '') ? Number(process.env.EMU_TEST_SEED) : Date.now() % 2 ** 31;
const REPRO = `seed ${SEED}; rerun with EMU_TEST_SEED=${SEED} npm test -- parity`;

/** mulberry32: a small, fast, seeded 32-bit PRNG. */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
}

/** Each test's own stream: FNV-1a of the seed and the test name. */
function seedOf(name: string): number {
  let h = 0x811c9dc5 ^ (SEED >>> 0);
  for (const ch of `${SEED}:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h >>> 0;
}

/** How to draw an input's values. */
interface Spec {
  lo?: number;          // range (default [-2, 2]); i32 draws integers in it
  hi?: number;
  ints?: boolean;       // integer-valued floats
  quantum?: number;     // round to multiples of this (ties for max / round)
  away?: number;        // |x| >= away (denominators)
  zeros?: number;       // probability of an exact 0 (for bool: of false; default 0.5)
  specials?: number[];  // values mixed in with probability pSpecial
  pSpecial?: number;
}

class Gen {
  constructor(readonly rng: Rng) {}

  /** Random values of `shape`, already rounded to dtype. */
  values(shape: number[], dtype: DType, s: Spec = {}): Ref {
    const lo = s.lo ?? -2, hi = s.hi ?? 2, rng = this.rng;
    return R.makeRef(shape, () => {
      if (dtype === 'bool') return rng.next() < (s.zeros ?? 0.5) ? 0 : 1;
      if (s.specials && rng.next() < (s.pSpecial ?? 0.2)) return R.roundTo(rng.pick(s.specials), dtype);
      if (s.zeros && rng.next() < s.zeros) return 0;
      let v: number;
      do {
        v = s.ints || dtype === 'i32' ? rng.int(Math.ceil(lo), Math.floor(hi)) : rng.uniform(lo, hi);
        if (s.quantum) v = Math.round(v / s.quantum) * s.quantum;
      } while (s.away !== undefined && Math.abs(v) < s.away);
      return R.roundTo(v, dtype);
    });
  }

  /** An input of `shape` in dtype. */
  in(shape: number[], dtype: DType, s: Spec = {}): In {
    return { ref: this.values(shape, dtype, s), dtype };
  }

  /** An i32 index input with values in [0, size). */
  index(shape: number[], size: number): In {
    return { ref: R.makeRef(shape, () => this.rng.int(0, size - 1)), dtype: 'i32' };
  }
}

// ---- cases ---------------------------------------------------------------------------------

type Layout = 'contig' | 'noncontig' | 'broadcast';
const LAYOUTS: readonly Layout[] = ['contig', 'noncontig', 'broadcast'];

/** An input: its logical values (in dtype) and whether the broadcast layout may expand it. */
interface In {
  ref: Ref;
  dtype: DType;
  broadcast?: boolean;
}

interface Config<A> {
  inputs: In[];
  args: A;
  /** Ops whose output shape depends on the values (oneHot without numClasses) skip meta. */
  skipMeta?: boolean;
}

interface Tol {
  growth?: number;
  mag?: number | Ref | (number | Ref)[];
  scale?: number;
}

interface Case<A> {
  name: string;
  /** The dtypes it runs in (a label such as 'mixed' where the inputs pick their own). */
  dtypes: readonly string[];
  layouts?: readonly Layout[];
  configs: (g: Gen, dtype: string) => Config<A>[];
  run: (t: Tensor[], a: A, dtype: string) => Tensor | Tensor[];
  ref: (r: Ref[], a: A, dtype: string) => Ref | Ref[];
  /** Output dtype(s); the input dtype by default. */
  out?: (dtype: string, a: A) => DType | DType[];
  /** Values must match exactly (ops that only move, select or exactly round values). */
  exact?: boolean;
  tol?: (r: Ref[], a: A, dtype: string) => Tol;
}

const CASES: Case<unknown>[] = [];
function add<A>(c: Case<A>): void {
  CASES.push(c as unknown as Case<unknown>);
}

const FLOAT: DType[] = ['f32', 'f64', 'bf16', 'f16'];
const FLOAT_I: DType[] = [...FLOAT, 'i32'];
const ALL: DType[] = ['f32', 'f64', 'bf16', 'f16', 'i32', 'bool'];
const D = (d: string) => d as DType;
const floatD = (d: string): DType => (d === 'i32' || d === 'bool' ? 'f32' : D(d));
const sumD = (d: string): DType => (d === 'bool' ? 'i32' : D(d));
const abs = (x: Ref) => R.map(x, Math.abs);
const maxAbs = (x: Ref) => x.data.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 0);
/** Elements reduced into each output. */
const redLen = (x: Ref, out: Ref) => (out.data.length ? x.data.length / out.data.length : 1);

// ---- element-wise --------------------------------------------------------------------------

const UNARY_SHAPES = [[], [1], [7], [3, 13], [2, 1, 33], [0, 3], [5, 0], [1, 7, 1, 3], [33, 65]];
// Long rows are cut into chunks spread over the thread pool (native/cpu/kernels/strided.h); only
// in f32, to keep the table fast.
const BIG_UNARY = (dt: string) => (dt === 'f32' ? [[40001]] : []);

function unary(name: string, run: (x: Tensor) => Tensor, f: (v: number) => number, o: {
  spec?: Spec; intSpec?: Spec; dtypes?: DType[]; exact?: boolean; out?: (d: string) => DType; mag?: 'abs' | number;
} = {}): void {
  add<null>({
    name,
    dtypes: o.dtypes ?? FLOAT_I,
    configs: (g, dt) => [...UNARY_SHAPES, ...BIG_UNARY(dt)].map((s) => ({ inputs: [g.in(s, D(dt), dt === 'i32' ? (o.intSpec ?? o.spec) : o.spec)], args: null })),
    run: ([x]) => run(x),
    ref: ([x]) => R.map(x, f),
    out: o.out ?? floatD,
    exact: o.exact,
    tol: ([x]) => ({ mag: o.mag === 'abs' ? abs(x) : o.mag }),
  });
}

const same = (d: string) => D(d);
unary('neg', E.neg, (v) => -v, { spec: { lo: -5, hi: 5 }, exact: true, out: same });
unary('abs', E.abs, Math.abs, { spec: { lo: -5, hi: 5 }, exact: true, out: same });
unary('exp', E.exp, Math.exp, { spec: { lo: -6, hi: 6 } });
unary('log', E.log, Math.log, { spec: { lo: 0.05, hi: 10 }, intSpec: { lo: 1, hi: 10 } });
unary('log1p', E.log1p, Math.log1p, { spec: { lo: -0.9, hi: 10 }, intSpec: { lo: 0, hi: 10 } });
unary('sqrt', E.sqrt, Math.sqrt, { spec: { lo: 0, hi: 10 } });
unary('rsqrt', E.rsqrt, (v) => 1 / Math.sqrt(v), { spec: { lo: 0.05, hi: 10 }, intSpec: { lo: 1, hi: 10 } });
unary('sin', E.sin, Math.sin, { spec: { lo: -8, hi: 8 }, mag: 1 });
unary('cos', E.cos, Math.cos, { spec: { lo: -8, hi: 8 }, mag: 1 });
unary('tanh', E.tanh, Math.tanh, { spec: { lo: -5, hi: 5 } });
unary('sigmoid', E.sigmoid, R.sigmoid, { spec: { lo: -12, hi: 12 } });
unary('relu', E.relu, R.relu, { spec: { lo: -3, hi: 3 }, exact: true, out: same });
unary('gelu', (x) => E.gelu(x), R.geluErf, { spec: { lo: -5, hi: 5 }, mag: 'abs' });
unary('gelu(tanh)', (x) => E.gelu(x, { approximate: 'tanh' }), R.geluTanh, { spec: { lo: -5, hi: 5 }, mag: 'abs' });
unary('silu', E.silu, R.silu, { spec: { lo: -10, hi: 10 }, mag: 'abs' });
unary('softplus', E.softplus, R.softplus, { spec: { lo: -25, hi: 25 } });
unary('square', E.square, (v) => v * v, { spec: { lo: -5, hi: 5 }, out: same });
unary('reciprocal', E.reciprocal, (v) => 1 / v, { spec: { lo: -5, hi: 5, away: 0.2 } });
unary('sign', E.sign, R.sign, { spec: { lo: -3, hi: 3, zeros: 0.2 }, exact: true, out: same });
unary('floor', E.floor, Math.floor, { spec: { lo: -5, hi: 5, quantum: 0.25 }, exact: true, dtypes: FLOAT });
unary('ceil', E.ceil, Math.ceil, { spec: { lo: -5, hi: 5, quantum: 0.25 }, exact: true, dtypes: FLOAT });
unary('round', E.round, R.roundHalfEven, { spec: { lo: -5, hi: 5, quantum: 0.25 }, exact: true, dtypes: FLOAT });
unary('logicalNot', E.logicalNot, R.logicalNot, { spec: { zeros: 0.4 }, exact: true, dtypes: ALL, out: () => 'bool' });
const SPECIAL = { specials: [NaN, Infinity, -Infinity, 0], pSpecial: 0.4 };
unary('isFinite', E.isFinite, (v) => Number(Number.isFinite(v)), { spec: SPECIAL, exact: true, dtypes: ALL, out: () => 'bool' });
unary('isNaN', E.isNaN, (v) => Number(Number.isNaN(v)), { spec: SPECIAL, exact: true, dtypes: ALL, out: () => 'bool' });

add<{ p: number }>({
  name: 'powScalar',
  dtypes: FLOAT_I,
  configs: (g, dt) => [2, 0.5, 3, -1.5].flatMap((p) => [[3, 13], [], [2, 0]].map((s) => ({
    inputs: [g.in(s, D(dt), { lo: 0.5, hi: 3 })], args: { p },
  }))),
  run: ([x], a) => E.powScalar(x, a.p),
  ref: ([x], a) => R.map(x, (v) => v ** a.p),
  out: floatD,
});

add<{ lo: number | null; hi: number | null }>({
  name: 'clamp',
  dtypes: FLOAT_I,
  configs: (g, dt) => {
    const bounds: [number | null, number | null][] = dt === 'i32'
      ? [[-2, 3], [null, 1], [-1, null], [-0.5, 1.5]]
      : [[-0.5, 1.25], [null, 0.5], [-1, null], [2, 1]];
    return bounds.flatMap(([lo, hi]) => [[7, 13], [], [0, 4], [2, 1, 33]].map((s) => ({
      inputs: [g.in(s, D(dt), { lo: -3, hi: 3, quantum: dt === 'i32' ? undefined : 0.25 })], args: { lo, hi },
    })));
  },
  run: ([x], a) => E.clamp(x, a.lo, a.hi),
  ref: ([x], a) => R.map(x, (v) => R.clampValue(v, a.lo, a.hi)),
  out: (d, a) => (d === 'i32' && [a.lo, a.hi].every((b) => b === null || Number.isInteger(b)) ? 'i32' : floatD(d)),
  exact: true,
});

const BINARY_SHAPES: [number[], number[]][] = [
  [[7, 13], [7, 13]], [[3, 1, 33], [7, 1]], [[], [5, 3]], [[1], []], [[], []], [[13], [7, 13]], [[7, 1], [1, 13]],
  [[0, 3], [1, 3]], [[2, 0, 1], [5]], [[65, 33], [65, 33]], [[2, 3, 5, 7], [3, 1, 7]], [[2, 1, 2, 1, 2, 1, 2, 3], [1, 3]],
];
const BIG_BINARY = (dt: string): [number[], number[]][] => (dt === 'f32' ? [[[40001], [40001]], [[2, 20001], [2, 1]]] : []);

function binary(name: string, run: (a: Tensor, b: Tensor) => Tensor, f: (x: number, y: number) => number, o: {
  a?: Spec; b?: Spec; intA?: Spec; intB?: Spec; dtypes?: DType[]; exact?: boolean; out?: (d: string) => DType; mag?: number;
} = {}): void {
  add<null>({
    name,
    dtypes: o.dtypes ?? FLOAT_I,
    configs: (g, dt) => [...BINARY_SHAPES, ...BIG_BINARY(dt)].map(([sa, sb]) => ({
      inputs: [g.in(sa, D(dt), dt === 'i32' ? (o.intA ?? o.a) : o.a), g.in(sb, D(dt), dt === 'i32' ? (o.intB ?? o.b) : o.b)],
      args: null,
    })),
    run: ([a, b]) => run(a, b),
    ref: ([a, b]) => R.zip(a, b, f),
    out: o.out ?? same,
    exact: o.exact,
    tol: () => ({ mag: o.mag }),
  });
}

const arithOut = (d: string): DType => (d === 'bool' ? 'i32' : D(d));
binary('add', E.add, (x, y) => x + y, { a: { lo: -3, hi: 3 }, b: { lo: -3, hi: 3 }, dtypes: ALL, out: arithOut });
binary('sub', E.sub, (x, y) => x - y, { a: { lo: -3, hi: 3 }, b: { lo: -3, hi: 3 } });
binary('mul', E.mul, (x, y) => x * y, { a: { lo: -3, hi: 3 }, b: { lo: -3, hi: 3 }, dtypes: ALL, out: arithOut });
binary('div', E.div, (x, y) => x / y, { a: { lo: -3, hi: 3 }, b: { lo: -3, hi: 3, away: 0.5 }, intA: { lo: -9, hi: 9 }, intB: { lo: -5, hi: 5, away: 1 }, out: floatD });
binary('pow', E.pow, (x, y) => x ** y, { a: { lo: 0.5, hi: 3 }, b: { lo: -3, hi: 3 }, intA: { lo: -4, hi: 4 }, intB: { lo: 0, hi: 5 } });
// Ties, and a few NaNs (they propagate; an i32 draws 0 instead).
const EXTREME: Spec = { ints: true, lo: -3, hi: 3, specials: [NaN], pSpecial: 0.05 };
binary('maximum', E.maximum, R.maximum, { a: EXTREME, b: EXTREME, dtypes: ALL, exact: true, out: arithOut });
binary('minimum', E.minimum, R.minimum, { a: EXTREME, b: EXTREME, dtypes: ALL, exact: true, out: arithOut });
binary('remainder', E.remainder, R.remainder, { a: { ints: true, lo: -20, hi: 20 }, b: { ints: true, lo: -7, hi: 7, away: 1 }, exact: true });
binary('floorDivide', E.floorDivide, (x, y) => Math.floor(x / y), { a: { ints: true, lo: -20, hi: 20 }, b: { ints: true, lo: -7, hi: 7, away: 1 }, exact: true });
binary('atan2', E.atan2, Math.atan2, { a: { lo: -3, hi: 3 }, b: { lo: -3, hi: 3 }, out: floatD, mag: 1 });
binary('siluGradMul', siluGradMul, (x, y) => {
  const s = 1 / (1 + Math.exp(-x));
  return y * s * (1 + x * (1 - s));
}, { a: { lo: -10, hi: 10 }, b: { lo: -3, hi: 3 }, out: floatD, mag: 4 });
const TIES: Spec = { ints: true, lo: -2, hi: 2 };
const cmp: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => boolean][] = [
  ['eq', E.eq, (x, y) => x === y], ['ne', E.ne, (x, y) => x !== y], ['lt', E.lt, (x, y) => x < y],
  ['le', E.le, (x, y) => x <= y], ['gt', E.gt, (x, y) => x > y], ['ge', E.ge, (x, y) => x >= y],
];
for (const [name, run, f] of cmp) binary(name, run, (x, y) => Number(f(x, y)), { a: TIES, b: TIES, dtypes: ALL, exact: true, out: () => 'bool' });
const LOGIC: Spec = { lo: -2, hi: 2, zeros: 0.4 };
binary('logicalAnd', E.logicalAnd, R.logicalAnd, { a: LOGIC, b: LOGIC, dtypes: ALL, exact: true, out: () => 'bool' });
binary('logicalOr', E.logicalOr, R.logicalOr, { a: LOGIC, b: LOGIC, dtypes: ALL, exact: true, out: () => 'bool' });
binary('logicalXor', E.logicalXor, R.logicalXor, { a: LOGIC, b: LOGIC, dtypes: ALL, exact: true, out: () => 'bool' });

// A JS number operand: a 0-d tensor of the other operand's dtype (an i32 tensor with a
// fractional number gives f32).
const SCALAR_OPS: [string, (a: Tensor | number, b: Tensor | number) => Tensor, (x: number, y: number) => number][] = [
  ['add', E.add, (x, y) => x + y], ['sub', E.sub, (x, y) => x - y], ['mul', E.mul, (x, y) => x * y],
  ['div', E.div, (x, y) => x / y], ['maximum', E.maximum, R.maximum],
];
for (const [name, run, f] of SCALAR_OPS) {
  add<{ s: number; left: boolean }>({
    name: `${name} scalar`,
    dtypes: FLOAT_I,
    configs: (g, dt) => [2, -3, 0.5, 1.5].flatMap((s) => [true, false].flatMap((left) => [[7, 13], [], [0, 2]].map((shape) => ({
      inputs: [g.in(shape, D(dt), { lo: -3, hi: 3, away: name === 'div' && left ? 0.5 : undefined })], args: { s, left },
    })))),
    run: ([x], a) => (a.left ? run(a.s, x) : run(x, a.s)),
    ref: ([x], a) => R.map(x, (v) => (a.left ? f(a.s, v) : f(v, a.s))),
    out: (d, a) => (name === 'div' || (d === 'i32' && !Number.isInteger(a.s)) ? floatD(d) : D(d)),
  });
}

// Operands of different dtypes are promoted (bool < i32 < {bf16, f16} < f32 < f64; bf16 with f16 is f32).
const PROMOTE: [DType, DType, DType][] = [
  ['f32', 'f64', 'f64'], ['bf16', 'f32', 'f32'], ['i32', 'f32', 'f32'], ['bool', 'bf16', 'bf16'], ['i32', 'f64', 'f64'],
  ['bool', 'i32', 'i32'], ['f64', 'bf16', 'f64'], ['i32', 'bf16', 'bf16'], ['bf16', 'f16', 'f32'], ['f16', 'f32', 'f32'],
  ['i32', 'f16', 'f16'], ['bool', 'f16', 'f16'], ['f16', 'f64', 'f64'],
];
const PROMOTE_OPS: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number, boolean][] = [
  ['add', E.add, (x, y) => x + y, false], ['mul', E.mul, (x, y) => x * y, false], ['lt', E.lt, (x, y) => Number(x < y), true],
];
for (const [name, run, f, pred] of PROMOTE_OPS) {
  add<{ out: DType }>({
    name: `${name} promote`,
    dtypes: ['mixed'],
    configs: (g) => PROMOTE.flatMap(([da, db, out]) => [[[7, 13], [13]], [[], [3, 5]], [[2, 1, 5], [3, 1]]].map(([sa, sb]) => ({
      inputs: [g.in(sa, da, TIES), g.in(sb, db, TIES)], args: { out },
    }))),
    run: ([a, b]) => run(a, b),
    ref: ([a, b]) => R.zip(a, b, f),
    out: (_, a) => (pred ? 'bool' : a.out),
  });
}

const WHERE_SHAPES: number[][][] = [
  [[7, 13], [7, 13], [7, 13]], [[7, 1], [13], []], [[], [3, 5], [3, 5]], [[2, 1, 5], [3, 1], [1, 5]], [[0, 5], [5], [1]], [[], [], []],
];
add<null>({
  name: 'where',
  dtypes: ALL,
  configs: (g, dt) => WHERE_SHAPES.map(([sc, sa, sb]) => ({
    inputs: [g.in(sc, 'bool'), g.in(sa, D(dt), { lo: -3, hi: 3 }), g.in(sb, D(dt), { lo: -3, hi: 3 })], args: null,
  })),
  run: ([c, a, b]) => E.where(c, a, b),
  ref: ([c, a, b]) => R.zip3(c, a, b, (x, y, z) => (x ? y : z)),
  exact: true,
});
// Rotary embedding: x [.., D] against cos and sin tables that broadcast to it (LLaMA's
// [B|1, 1, L, D] against [B, heads, L, D]), D even; inputs may be strided (the layouts).
const ROPE_SHAPES: number[][][] = [[[2, 3, 5, 8], [1, 1, 5, 8]], [[7, 6], [7, 6]], [[3, 1, 4, 2], [3, 1, 4, 2]], [[2, 0, 4], [1, 1, 4]]];
add<null>({
  name: 'rope',
  dtypes: FLOAT,
  configs: (g, dt) => ROPE_SHAPES.map(([sx, st]) => ({
    inputs: [g.in(sx, D(dt), { lo: -3, hi: 3 }), g.in(st, D(dt), { lo: -1, hi: 1 }), g.in(st, D(dt), { lo: -1, hi: 1 })], args: null,
  })),
  run: ([x, c, s]) => E.rope(x, c, s),
  ref: ([x, c, s]) => R.build(x.shape, (idx) => {
    const last = idx.length - 1, h = x.shape[last] / 2, j = idx[last];
    const partner = [...idx];
    partner[last] = j < h ? j + h : j - h;
    const rotated = (j < h ? -1 : 1) * R.at(x, partner);
    return R.at(x, idx) * R.atBroadcast(c, idx) + rotated * R.atBroadcast(s, idx);
  }),
  // Two products of magnitude up to 3 each: their sum may cancel, so the error is measured
  // against the terms' scale, not the result's.
  tol: () => ({ mag: 6 }),
});
add<{ out: DType }>({
  name: 'where promote',
  dtypes: ['mixed'],
  configs: (g) => PROMOTE.map(([da, db, out]) => ({ inputs: [g.in([3, 1, 5], 'bool'), g.in([5], da, TIES), g.in([4, 1], db, TIES)], args: { out } })),
  run: ([c, a, b]) => E.where(c, a, b),
  ref: ([c, a, b]) => R.zip3(c, a, b, (x, y, z) => (x ? y : z)),
  out: (_, a) => a.out,
  exact: true,
});

// ---- reductions ----------------------------------------------------------------------------

type Dims = number | number[] | undefined;
interface RedArgs {
  dim: Dims;
  keepdim: boolean;
  correction?: number;
}
/** Reduces over no elements (valid only for sum, mean, prod, all, any, var, logsumexp). */
const EMPTY_REDUCE = Symbol('emptyReduce');
type RedCfg = { shape: number[]; dim: Dims; keepdim: boolean; [EMPTY_REDUCE]?: boolean; big?: boolean };
const RED_CFGS: RedCfg[] = [
  { shape: [7, 13], dim: undefined, keepdim: false },
  { shape: [7, 13], dim: 1, keepdim: false },
  { shape: [7, 13], dim: 0, keepdim: true },
  { shape: [7, 13], dim: [], keepdim: false },
  { shape: [7, 13], dim: [-1, 0], keepdim: true },
  { shape: [3, 5, 7], dim: [0, 2], keepdim: false },
  { shape: [3, 5, 7], dim: 1, keepdim: true },
  { shape: [2, 3, 5, 7], dim: [1, 3], keepdim: false },
  { shape: [4, 1, 33], dim: 1, keepdim: false },
  { shape: [65, 33], dim: -1, keepdim: false },
  { shape: [5, 3, 9], dim: 1, keepdim: false },           // neighbouring outputs are neighbours in memory
  { shape: [4, 5, 3, 9], dim: [0, 2], keepdim: true },
  { shape: [2, 1, 2, 1, 2, 1, 2, 3], dim: [0, 4, 7], keepdim: false },  // the most dims a tensor may have
  { shape: [], dim: undefined, keepdim: false },
  { shape: [], dim: 0, keepdim: true },
  { shape: [1], dim: 0, keepdim: false },
  { shape: [0, 3], dim: 1, keepdim: true },
  { shape: [0, 3], dim: 0, keepdim: false, [EMPTY_REDUCE]: true },
  { shape: [3, 0], dim: undefined, keepdim: true, [EMPTY_REDUCE]: true },
  { shape: [2, 66001], dim: 1, keepdim: false, big: true },  // few outputs, long rows: the split driver
  { shape: [301, 67], dim: 0, keepdim: false, big: true },   // reducing a leading dim: the column driver
];

function reduction(name: string, dtypes: DType[], run: (x: Tensor, a: RedArgs) => Tensor, ref: (x: Ref, a: RedArgs, dtype: string) => Ref, o: {
  spec?: Spec; intSpec?: Spec; out?: (d: string) => DType; exact?: boolean; empty?: boolean; big?: boolean; corrections?: number[];
  tol?: (x: Ref, out: Ref, a: RedArgs) => Tol;
}): void {
  add<RedArgs>({
    name,
    dtypes,
    configs: (g, dt) => RED_CFGS
      .filter((c) => (o.empty !== false || !c[EMPTY_REDUCE]) && (!c.big || (o.big !== false && dt === 'f32')))
      .flatMap((c) => (o.corrections ?? [0]).map((correction, k) => ({
        inputs: [g.in(c.shape, D(dt), dt === 'i32' ? (o.intSpec ?? o.spec) : o.spec)],
        args: { dim: c.dim, keepdim: k % 2 === 1 ? !c.keepdim : c.keepdim, correction },
      }))),
    run: ([x], a) => run(x, a),
    ref: ([x], a, dt) => ref(x, a, dt),
    out: o.out ?? same,
    exact: o.exact,
    tol: ([x], a, dt) => (o.tol ? o.tol(x, ref(x, a, dt), a) : {}),
  });
}

const sumTol = (f: (x: Ref, a: RedArgs) => Ref) => (x: Ref, out: Ref, a: RedArgs): Tol => ({ growth: Math.sqrt(redLen(x, out)), mag: f(abs(x), a) });
reduction('sum', ALL, (x, a) => E.sum(x, a.dim, a.keepdim), (x, a) => R.sum(x, a.dim, a.keepdim), {
  out: sumD, tol: sumTol((x, a) => R.sum(x, a.dim, a.keepdim)),
});
reduction('mean', FLOAT_I, (x, a) => E.mean(x, a.dim, a.keepdim), (x, a) => R.mean(x, a.dim, a.keepdim), {
  out: floatD, tol: sumTol((x, a) => R.mean(x, a.dim, a.keepdim)),
});
// i32 products wrap modulo 2^32 (a broadcast line of 2s overflows).
reduction('prod', FLOAT_I, (x, a) => E.prod(x, a.dim, a.keepdim), (x, a, dt) => R.prod(x, a.dim, a.keepdim, dt === 'i32'), {
  spec: { lo: 0.5, hi: 1.6 }, intSpec: { specials: [-1, 2, 1, 1, 1, 1, 1, 1], pSpecial: 1 }, big: false,
  tol: (x, out) => ({ growth: redLen(x, out) }),
});
reduction('max', ALL, (x, a) => E.max(x, a.dim, a.keepdim), (x, a) => R.max(x, a.dim, a.keepdim), { spec: EXTREME, exact: true, empty: false });
reduction('min', ALL, (x, a) => E.min(x, a.dim, a.keepdim), (x, a) => R.min(x, a.dim, a.keepdim), { spec: EXTREME, exact: true, empty: false });
const ANY: Spec = { lo: -2, hi: 2, zeros: 0.1 };
reduction('all', ALL, (x, a) => E.all(x, a.dim, a.keepdim), (x, a) => R.all(x, a.dim, a.keepdim), { spec: ANY, exact: true, out: () => 'bool' });
reduction('any', ALL, (x, a) => E.any(x, a.dim, a.keepdim), (x, a) => R.any(x, a.dim, a.keepdim), { spec: { lo: -2, hi: 2, zeros: 0.9 }, exact: true, out: () => 'bool' });
const varTol = (sq: boolean) => (x: Ref, out: Ref, a: RedArgs): Tol => {
  const meanSq = R.mean(R.map(x, (v) => v * v), a.dim, a.keepdim);
  return { growth: Math.sqrt(redLen(x, out)), mag: sq ? R.map(meanSq, Math.sqrt) : meanSq };
};
reduction('var', FLOAT_I, (x, a) => E.variance(x, a.dim, { correction: a.correction, keepdim: a.keepdim }),
  (x, a) => R.variance(x, a.dim, a.correction!, a.keepdim), { corrections: [1, 0, 2], out: floatD, tol: varTol(false) });
reduction('std', FLOAT_I, (x, a) => E.std(x, a.dim, { correction: a.correction, keepdim: a.keepdim }),
  (x, a) => R.std(x, a.dim, a.correction!, a.keepdim), { corrections: [1, 0], out: floatD, tol: varTol(true) });
// -inf is how attention masks; a line of only -inf has logsumexp -inf and softmax NaN.
const MASKED: Spec = { lo: -8, hi: 8, specials: [-Infinity], pSpecial: 0.1 };
reduction('logsumexp', FLOAT_I, (x, a) => E.logsumexp(x, a.dim, a.keepdim), (x, a) => R.logsumexp(x, a.dim, a.keepdim), {
  spec: MASKED, intSpec: { lo: -6, hi: 6 }, out: floatD, tol: (x, out) => ({ growth: Math.sqrt(redLen(x, out)), mag: 1 }),
});

interface ArgArgs {
  dim: number | undefined;
  keepdim: boolean;
}
const ARG_CFGS: { shape: number[]; dim: number | undefined; big?: boolean }[] = [
  { shape: [7, 13], dim: undefined }, { shape: [7, 13], dim: 1 }, { shape: [7, 13], dim: 0 }, { shape: [3, 5, 7], dim: -2 },
  { shape: [2, 3, 5, 7], dim: 3 }, { shape: [], dim: undefined }, { shape: [], dim: 0 }, { shape: [1], dim: 0 }, { shape: [0, 3], dim: 1 },
  { shape: [2, 66001], dim: 1, big: true }, { shape: [301, 67], dim: 0, big: true },
];
for (const [name, run, ref] of [['argmax', E.argmax, R.argmax], ['argmin', E.argmin, R.argmin]] as const) {
  add<ArgArgs>({
    name,
    dtypes: FLOAT_I,
    configs: (g, dt) => ARG_CFGS.filter((c) => !c.big || dt === 'f32').flatMap((c) => [false, true].map((keepdim) => ({
      inputs: [g.in(c.shape, D(dt), EXTREME)], args: { dim: c.dim, keepdim },
    }))),
    run: ([x], a) => run(x, a.dim, a.keepdim),
    ref: ([x], a) => ref(x, a.dim, a.keepdim),
    out: () => 'i32',
    exact: true,
  });
}

const LINE_CFGS: { shape: number[]; dim: number }[] = [
  { shape: [7, 13], dim: 1 }, { shape: [7, 13], dim: 0 }, { shape: [3, 5, 7], dim: 1 }, { shape: [3, 5, 7], dim: -1 },
  { shape: [], dim: 0 }, { shape: [1], dim: 0 }, { shape: [0, 5], dim: 1 }, { shape: [5, 0], dim: 1 }, { shape: [3, 2049], dim: 1 },
];
function lineOp(name: string, dtypes: DType[], run: (x: Tensor, dim: number) => Tensor, ref: (x: Ref, dim: number) => Ref,
  o: { spec?: Spec; intSpec?: Spec; out: (d: string) => DType; tol: (x: Ref, dim: number) => Tol }): void {
  add<{ dim: number }>({
    name,
    dtypes,
    configs: (g, dt) => LINE_CFGS.map((c) => ({ inputs: [g.in(c.shape, D(dt), dt === 'i32' ? (o.intSpec ?? o.spec) : o.spec)], args: { dim: c.dim } })),
    run: ([x], a) => run(x, a.dim),
    ref: ([x], a) => ref(x, a.dim),
    out: o.out,
    tol: ([x], a) => o.tol(x, a.dim),
  });
}
const lineLen = (x: Ref, dim: number) => (x.shape.length ? x.shape[dim < 0 ? dim + x.shape.length : dim] : 1);
lineOp('softmax', FLOAT_I, E.softmax, R.softmax, { spec: MASKED, intSpec: { lo: -8, hi: 8 }, out: floatD, tol: (x, d) => ({ growth: Math.sqrt(lineLen(x, d)) }) });
lineOp('logSoftmax', FLOAT_I, E.logSoftmax, R.logSoftmax, {
  spec: MASKED, intSpec: { lo: -8, hi: 8 }, out: floatD, tol: (x, d) => ({ growth: Math.sqrt(lineLen(x, d)), mag: maxAbs(x) + Math.log(lineLen(x, d) + 1) + 1 }),
});
lineOp('cumsum', ALL, E.cumsum, R.cumsum, {
  spec: { lo: -3, hi: 3 }, out: sumD, tol: (x, d) => ({ growth: Math.sqrt(lineLen(x, d)), mag: R.cumsum(abs(x), d) }),
});

// ---- linear algebra and indexing -----------------------------------------------------------

interface MatArgs {
  ta?: boolean;  // the stored operand is transposed before the product
  tb?: boolean;
}
const tr = (t: Tensor, yes?: boolean) => (yes && t.ndim >= 2 ? t.transpose(-1, -2) : t);
const trRef = (r: Ref, yes?: boolean) => (yes && r.shape.length >= 2 ? R.transpose(r, -1, -2) : r);
const MATMUL_CFGS: [number[], number[], MatArgs][] = [
  [[7, 13], [13, 5], {}], [[13, 7], [13, 5], { ta: true }], [[7, 13], [5, 13], { tb: true }], [[13, 7], [5, 13], { ta: true, tb: true }],
  [[13], [13, 5], {}], [[7, 13], [13], {}], [[13], [13], {}], [[13], [3, 13, 5], {}], [[2, 3, 7, 13], [13], {}],
  [[3, 7, 13], [13, 5], {}], [[2, 1, 7, 13], [3, 13, 5], {}], [[2, 3, 13, 7], [3, 5, 13], { ta: true, tb: true }],
  [[0, 13], [13, 5], {}], [[7, 0], [0, 5], {}], [[7, 13], [13, 0], {}], [[0, 7, 13], [13, 5], {}], [[1, 1], [1, 1], {}],
  // Across the GEMM's blocks (gemm/gemm.h): rows past kMC (112 with AVX-512, 96 otherwise) and a
  // partial 14-row tile, columns split between threads when rows are few. Depth past kKC (1024 or
  // 512) is test/gemm.test.ts's: here the broadcast variants' equal terms would make a 1000-deep
  // sum's rounding errors grow like K, past this table's sqrt(K) allowance.
  [[65, 129], [129, 67], {}], [[300, 17], [19, 300], { ta: true, tb: true }], [[100, 260], [260, 40], {}], [[7, 13], [13, 530], {}],
  [[345, 390], [390, 37], {}], [[390, 345], [37, 390], { ta: true, tb: true }], [[3, 400], [70, 400], { tb: true }],
];
const matTol = ([a, b]: Ref[], m: MatArgs): Tol => {
  const A = trRef(a, m.ta), B = trRef(b, m.tb);
  return { growth: Math.sqrt(A.shape[A.shape.length - 1]), mag: R.matmul(abs(A), abs(B)) };
};
add<MatArgs>({
  name: 'matmul',
  dtypes: FLOAT,
  configs: (g, dt) => MATMUL_CFGS.map(([sa, sb, args]) => ({ inputs: [g.in(sa, D(dt)), g.in(sb, D(dt))], args })),
  run: ([a, b], m) => E.matmul(tr(a, m.ta), tr(b, m.tb)),
  ref: ([a, b], m) => R.matmul(trRef(a, m.ta), trRef(b, m.tb)),
  tol: matTol,
});
const BMM_CFGS: [number[], number[], MatArgs][] = [
  [[3, 7, 13], [3, 13, 5], {}], [[3, 13, 7], [3, 13, 5], { ta: true }], [[3, 7, 13], [3, 5, 13], { tb: true }],
  [[1, 1, 13], [1, 13, 1], {}], [[0, 7, 13], [0, 13, 5], {}], [[2, 33, 65], [2, 17, 65], { tb: true }],
];
add<MatArgs>({
  name: 'bmm',
  dtypes: FLOAT,
  configs: (g, dt) => BMM_CFGS.map(([sa, sb, args]) => ({ inputs: [g.in(sa, D(dt)), g.in(sb, D(dt))], args })),
  run: ([a, b], m) => E.bmm(tr(a, m.ta), tr(b, m.tb)),
  ref: ([a, b], m) => R.matmul(trRef(a, m.ta), trRef(b, m.tb)),
  tol: matTol,
});

add<{ dim: number }>({
  name: 'gather',
  dtypes: ALL,
  configs: (g, dt) => ([[[7, 13], 1, [7, 5]], [[7, 13], 0, [4, 13]], [[7, 13], 1, [3, 20]], [[3, 5, 7], -2, [3, 9, 7]], [[7, 13], 1, [7, 0]], [[5], 0, [9]],
    [[64, 300], 0, [64, 300]]] as [number[], number, number[]][])
    .map(([sx, dim, si]) => ({ inputs: [g.in(sx, D(dt)), g.index(si, sx.at(dim)!)], args: { dim } })),
  run: ([x, i], a) => E.gather(x, a.dim, i),
  ref: ([x, i], a) => R.gather(x, a.dim, i),
  exact: true,
});
add<{ dim: number }>({
  name: 'scatterAdd',
  dtypes: FLOAT_I,
  configs: (g, dt) => ([[[7, 13], 1, [7, 5], [7, 5]], [[7, 13], 0, [9, 13], [9, 13]], [[7, 13], 1, [4, 6], [5, 8]], [[3, 5, 7], 2, [3, 5, 11], [3, 5, 11]],
    [[7, 13], 1, [7, 0], [7, 0]], [[5], 0, [12], [12]], [[64, 300], 1, [64, 300], [64, 300]]] as [number[], number, number[], number[]][])
    .map(([sx, dim, si, ss]) => ({ inputs: [g.in(sx, D(dt)), g.index(si, sx.at(dim)!), g.in(ss, D(dt))], args: { dim } })),
  run: ([x, i, s], a) => E.scatterAdd(x, a.dim, i, s),
  ref: ([x, i, s], a) => R.scatterAdd(x, a.dim, i, s),
  // Each add rounds to the dtype (bf16 too): the error grows with the terms per element.
  tol: ([x, i, s], a) => ({ growth: i.shape[a.dim] + 1, scale: Math.max(1, i.shape[a.dim] / 2), mag: R.scatterAdd(abs(x), a.dim, i, abs(s)) }),
});
add<{ dim: number }>({
  name: 'indexSelect',
  dtypes: ALL,
  configs: (g, dt) => ([[[7, 13], 0, [5]], [[7, 13], 1, [20]], [[7, 13], -1, []], [[7, 13], 0, [0]], [[13], 0, [4]], [[3, 5, 7], 1, [9]]] as [number[], number, number[]][])
    .map(([sx, dim, si]) => ({ inputs: [g.in(sx, D(dt)), g.index(si, sx.at(dim)!)], args: { dim } })),
  run: ([x, i], a) => E.indexSelect(x, a.dim, i),
  ref: ([x, i], a) => R.indexSelect(x, a.dim, i),
  exact: true,
});
add<null>({
  name: 'embedding',
  dtypes: ALL,
  configs: (g, dt) => ([[[3, 5], [11, 7]], [[], [11, 7]], [[0], [4, 3]], [[2, 3, 4], [5, 1]], [[13], [2, 33]]] as [number[], number[]][])
    .map(([si, sw]) => ({ inputs: [g.index(si, sw[0]), g.in(sw, D(dt))], args: null })),
  run: ([i, w]) => E.embedding(i, w),
  ref: ([i, w]) => R.embedding(i, w),
  exact: true,
});
const fillValue = (dt: string) => (dt === 'i32' ? 7 : dt === 'bool' ? 1 : -2.5);
add<null>({
  name: 'maskedFill',
  dtypes: ALL,
  configs: (g, dt) => ([[[7, 13], [7, 13]], [[7, 13], [13]], [[7, 13], [7, 1]], [[7, 13], []], [[], []], [[0, 5], [5]], [[2, 3, 5], [3, 1]]] as number[][][])
    .map(([sx, sm]) => ({ inputs: [g.in(sx, D(dt)), g.in(sm, 'bool')], args: null })),
  run: ([x, m], _, dt) => E.maskedFill(x, m, dt === 'bool' ? true : fillValue(dt)),
  ref: ([x, m], _, dt) => R.maskedFill(x, m, fillValue(dt)),
  exact: true,
});
for (const [name, run, ref] of [['tril', E.tril, R.tril], ['triu', E.triu, R.triu]] as const) {
  add<{ k: number }>({
    name,
    dtypes: ALL,
    configs: (g, dt) => ([[[7, 13], 0], [[7, 13], 2], [[7, 13], -3], [[13, 7], -1], [[3, 5, 7], 1], [[2, 3, 4, 5], 0], [[0, 4], 0], [[5, 5], 20], [[5, 5], -20]] as [number[], number][])
      .map(([s, k]) => ({ inputs: [g.in(s, D(dt))], args: { k } })),
    run: ([x], a) => run(x, a.k),
    ref: ([x], a) => ref(x, a.k),
    exact: true,
  });
}
add<{ classes?: number }>({
  name: 'oneHot',
  dtypes: ['i32'],
  configs: (g) => ([[[3, 5], 7, 7], [[3, 5], 7, undefined], [[], 4, 4], [[0], 3, 3], [[13], 5, 9]] as [number[], number, number | undefined][])
    .map(([s, hi, classes]) => ({ inputs: [g.index(s, hi)], args: { classes }, skipMeta: classes === undefined })),
  run: ([i], a) => E.oneHot(i, a.classes),
  ref: ([i], a) => R.oneHot(i, a.classes),
  out: () => 'i32',
  exact: true,
});

// ---- images --------------------------------------------------------------------------------

interface ConvCfg {
  x: number[];
  w: number[];
  bias: boolean;
  o: R.ConvArgs;
}
const CONV_CFGS: ConvCfg[] = [
  { x: [2, 3, 13, 11], w: [5, 3, 3, 3], bias: true, o: {} },
  { x: [2, 3, 13, 11], w: [5, 3, 3, 3], bias: false, o: { stride: 2, padding: 1 } },
  { x: [1, 4, 11, 13], w: [6, 4, 3, 2], bias: true, o: { stride: [2, 1], padding: [1, 2], dilation: [2, 1] } },
  { x: [1, 6, 9, 9], w: [9, 2, 3, 3], bias: true, o: { groups: 3, padding: 1 } },
  { x: [2, 4, 7, 7], w: [4, 1, 3, 3], bias: false, o: { groups: 4, padding: 1, dilation: 2 } },
  { x: [1, 5, 7, 7], w: [3, 5, 1, 1], bias: true, o: {} },
  { x: [3, 7, 9], w: [4, 3, 2, 2], bias: true, o: { stride: 2 } },
  { x: [1, 1, 5, 5], w: [1, 1, 5, 5], bias: false, o: { padding: 2 } },
  { x: [0, 3, 5, 5], w: [2, 3, 3, 3], bias: true, o: {} },
  { x: [1, 8, 17, 19], w: [16, 8, 3, 3], bias: true, o: { padding: 1 } },
  { x: [1, 3, 5, 5], w: [20, 3, 3, 3], bias: true, o: {} },  // few pixels, many channels: the channels are split
  // On the GEMM driver (gemm/gemm.h): depth 432 with a partial 14-row tile, and the 1x1 path
  // that packs the image itself (depth past kKC: conv_unfold.test.ts and gemm.test.ts).
  { x: [2, 48, 6, 7], w: [17, 48, 3, 3], bias: true, o: { padding: 1 } },
  { x: [2, 20, 5, 9], w: [30, 20, 1, 1], bias: false, o: {} },
];
add<ConvCfg>({
  name: 'conv2d',
  dtypes: FLOAT,
  configs: (g, dt) => CONV_CFGS.map((c) => ({
    inputs: [g.in(c.x, D(dt), { lo: -1, hi: 1 }), g.in(c.w, D(dt), { lo: -1, hi: 1 }), ...(c.bias ? [g.in([c.w[0]], D(dt))] : [])], args: c,
  })),
  run: ([x, w, b], c) => E.conv2d(x, w, b ?? null, c.o),
  ref: ([x, w, b], c) => R.conv2d(x, w, b ?? null, c.o),
  tol: ([x, w, b], c) => ({ growth: Math.sqrt(c.w[1] * c.w[2] * c.w[3]), mag: R.conv2d(abs(x), abs(w), b ? abs(b) : null, c.o) }),
});

interface PoolCfg {
  x: number[];
  k: number | [number, number];
  o: R.PoolArgs & { countIncludePad?: boolean };
  indices?: boolean;
}
const MAXPOOL_CFGS: PoolCfg[] = [
  { x: [2, 3, 13, 11], k: 3, o: { stride: 2, padding: 1 }, indices: true },
  { x: [2, 3, 13, 11], k: 2, o: {} },
  { x: [1, 2, 9, 12], k: [2, 3], o: { stride: [1, 2], padding: [1, 1], dilation: [1, 2] }, indices: true },
  { x: [3, 9, 9], k: 3, o: { stride: 1 }, indices: true },
  { x: [1, 1, 1, 1], k: 1, o: {}, indices: true },
  { x: [0, 2, 5, 5], k: 2, o: {}, indices: true },
];
add<PoolCfg>({
  name: 'maxPool2d',
  dtypes: FLOAT,
  configs: (g, dt) => MAXPOOL_CFGS.map((c) => ({ inputs: [g.in(c.x, D(dt), { lo: -3, hi: 3, quantum: 0.5, specials: [NaN], pSpecial: 0.02 })], args: c })),
  run: ([x], c) => (c.indices ? E.maxPool2d(x, c.k, { ...c.o, returnIndices: true }) : E.maxPool2d(x, c.k, c.o)),
  ref: ([x], c) => {
    const [v, i] = R.maxPool2d(x, c.k, c.o);
    return c.indices ? [v, i] : v;
  },
  out: (d, c) => (c.indices ? [D(d), 'i32'] : D(d)),
  exact: true,
});
const AVGPOOL_CFGS: PoolCfg[] = [
  { x: [2, 3, 13, 11], k: 3, o: { stride: 2, padding: 1, countIncludePad: true } },
  { x: [2, 3, 13, 11], k: 3, o: { stride: 2, padding: 1, countIncludePad: false } },
  { x: [1, 2, 9, 12], k: [2, 3], o: { stride: [1, 2], padding: [1, 0], countIncludePad: true } },
  { x: [1, 2, 9, 12], k: [2, 3], o: { stride: [1, 2], padding: [1, 1], countIncludePad: false } },
  { x: [3, 9, 9], k: 2, o: {} },
  { x: [0, 2, 5, 5], k: 2, o: {} },
];
add<PoolCfg>({
  name: 'avgPool2d',
  dtypes: FLOAT,
  configs: (g, dt) => AVGPOOL_CFGS.map((c) => ({ inputs: [g.in(c.x, D(dt))], args: c })),
  run: ([x], c) => E.avgPool2d(x, c.k, c.o),
  ref: ([x], c) => R.avgPool2d(x, c.k, c.o),
  tol: ([x], c) => ({ growth: typeof c.k === 'number' ? c.k : c.k[0] * c.k[1], mag: R.avgPool2d(abs(x), c.k, c.o) }),
});

interface UpCfg {
  x: number[];
  scaleFactor?: number | [number, number];
  size?: [number, number];
}
add<UpCfg>({
  name: 'upsampleNearest2d',
  dtypes: FLOAT,
  configs: (g, dt) => ([
    { x: [2, 3, 5, 7], scaleFactor: 2 }, { x: [1, 2, 4, 3], scaleFactor: [3, 2] }, { x: [2, 3, 5, 7], size: [11, 13] },
    { x: [1, 2, 9, 8], size: [4, 5] }, { x: [1, 1, 5, 7], size: [5, 7] }, { x: [3, 5, 7], scaleFactor: 2 }, { x: [0, 1, 3, 3], size: [7, 5] },
  ] as UpCfg[]).map((c) => ({ inputs: [g.in(c.x, D(dt))], args: c })),
  run: ([x], c) => E.upsampleNearest2d(x, c.size ? { size: c.size } : { scaleFactor: c.scaleFactor }),
  ref: ([x], c) => {
    const [H, W] = x.shape.slice(-2);
    const f = typeof c.scaleFactor === 'number' ? [c.scaleFactor, c.scaleFactor] : c.scaleFactor ?? [0, 0];
    const [OH, OW] = c.size ?? [H * f[0], W * f[1]];
    return R.upsampleNearest2d(x, OH, OW);
  },
  exact: true,
});

const padValue = (dt: string) => (dt === 'i32' ? -2 : dt === 'bool' ? 1 : -1.5);
add<{ padding: number[] }>({
  name: 'pad',
  dtypes: ALL,
  configs: (g, dt) => ([
    [[3, 5, 7], [1, 2]], [[3, 5, 7], [2, 1, 0, 3]], [[3, 5, 7], [-1, 2, 1, -2]], [[3, 5, 7], [1, 1, 1, 1, 1, 1]],
    [[3, 5], [-2, -3]], [[0, 3], [1, 1]], [[0, 3], [0, 0, 2, 1]], [[], []], [[7], [0, 0]], [[2, 3, 4, 5], [-1, -1, 2, 0]],
  ] as [number[], number[]][]).map(([s, padding]) => ({ inputs: [g.in(s, D(dt))], args: { padding } })),
  run: ([x], a, dt) => E.pad(x, a.padding, padValue(dt)),
  ref: ([x], a, dt) => R.pad(x, a.padding, padValue(dt)),
  exact: true,
});

// ---- copies --------------------------------------------------------------------------------

add<null>({
  name: 'contiguous',
  dtypes: ALL,
  configs: (g, dt) => UNARY_SHAPES.map((s) => ({ inputs: [g.in(s, D(dt))], args: null })),
  run: ([x]) => x.contiguous(),
  ref: ([x]) => x,
  exact: true,
});
add<null>({
  name: 'clone',
  dtypes: ALL,
  configs: (g, dt) => UNARY_SHAPES.map((s) => ({ inputs: [g.in(s, D(dt))], args: null })),
  run: ([x]) => x.clone(),
  ref: ([x]) => x,
  exact: true,
});
// Rounding ties to even (bf16, f16, f32; f16 also into its subnormals and past 65504 to inf),
// truncation toward zero (i32), and x != 0 (bool). NaN casts to i32 0 and bool true; out-of-range
// floats saturate in i32.
const CAST_SPECIAL = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -24, 2.5, -2.5, 0.5, -0.75, -0, 0, 1e-3, 65504.5, NaN, Infinity, -Infinity, 3e9, -3e9,
  1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, -65519, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -25, 1e-6];
for (const target of ALL) {
  add<null>({
    name: `to(${target})`,
    dtypes: ALL,
    configs: (g, dt) => UNARY_SHAPES.map((s) => ({
      inputs: [g.in(s, D(dt), dt === 'i32' ? { lo: -1000, hi: 1000, zeros: 0.1 } : { lo: -100, hi: 100, specials: CAST_SPECIAL, pSpecial: 0.3 })], args: null,
    })),
    run: ([x]) => x.to(target),
    ref: ([x]) => R.cast(x, target),
    out: () => target,
    exact: true,
  });
}
const CAT_CFGS: [number[][], number][] = [
  [[[3, 5], [2, 5], [0, 5]], 0], [[[3, 5], [3, 1], [3, 7]], 1], [[[3, 5], [3, 1], [3, 7]], -1], [[[2, 3, 4], [2, 1, 4]], 1],
  [[[4], [0], [3]], 0], [[[3, 4], [0]], 0], [[[7]], 0], [[[2, 0], [2, 0]], 1],
];
add<{ dim: number }>({
  name: 'cat',
  dtypes: ALL,
  configs: (g, dt) => CAT_CFGS.map(([shapes, dim]) => ({ inputs: shapes.map((s) => g.in(s, D(dt))), args: { dim } })),
  run: (ts, a) => E.cat(ts, a.dim),
  ref: (rs, a) => R.cat(rs, a.dim),
  exact: true,
});
add<{ out: DType }>({
  name: 'cat promote',
  dtypes: ['mixed'],
  configs: (g) => PROMOTE.map(([da, db, out]) => ({ inputs: [g.in([3, 5], da, TIES), g.in([2, 5], db, TIES)], args: { out } })),
  run: (ts) => E.cat(ts, 0),
  ref: (rs) => R.cat(rs, 0),
  out: (_, a) => a.out,
  exact: true,
});
add<{ dim: number }>({
  name: 'stack',
  dtypes: ALL,
  configs: (g, dt) => ([[[3, 5], 3, 0], [[3, 5], 2, 1], [[3, 5], 3, 2], [[3, 5], 4, -1], [[], 4, 0], [[0, 3], 2, 1], [[7], 1, 0]] as [number[], number, number][])
    .map(([s, n, dim]) => ({ inputs: Array.from({ length: n }, () => g.in(s, D(dt))), args: { dim } })),
  run: (ts, a) => E.stack(ts, a.dim),
  ref: (rs, a) => R.stack(rs, a.dim),
  exact: true,
});

// ---- views (values checked through a contiguous copy) --------------------------------------

function viewOp<A>(name: string, cfgs: [number[], A][], run: (x: Tensor, a: A) => Tensor | Tensor[], ref: (x: Ref, a: A) => Ref | Ref[]): void {
  add<A>({
    name,
    dtypes: ALL,
    configs: (g, dt) => cfgs.map(([s, a]) => ({ inputs: [g.in(s, D(dt))], args: a })),
    run: ([x], a) => {
      const v = run(x, a);
      return Array.isArray(v) ? v.map((t) => t.contiguous()) : v.contiguous();
    },
    ref: ([x], a) => ref(x, a),
    exact: true,
  });
}
viewOp<number[]>('reshape', [[[3, 5, 7], [5, 21]], [[3, 5, 7], [-1, 7]], [[3, 5, 7], [105]], [[3, 5, 7], [3, 35]], [[0, 3], [3, 0]], [[], [1, 1]], [[7], [7, 1, 1]]],
  (x, s) => x.reshape(s), (x, s) => R.reshape(x, s));
viewOp<number[]>('permute', [[[3, 5, 7], [2, 0, 1]], [[3, 5, 7], [-1, 1, 0]], [[], []], [[2, 3, 5, 7], [3, 1, 2, 0]], [[0, 4], [1, 0]]],
  (x, p) => x.permute(p), (x, p) => R.permute(x, p));
viewOp<[number, number]>('transpose', [[[3, 5, 7], [0, 2]], [[7, 13], [-1, -2]], [[7], [0, 0]], [[2, 3, 5, 7], [1, 3]]],
  (x, [a, b]) => x.transpose(a, b), (x, [a, b]) => R.transpose(x, a, b));
viewOp<number[]>('expand', [[[3, 1, 7], [2, 3, 5, 7]], [[1], [4]], [[], [3, 2]], [[3, 1], [-1, 4]], [[1, 5], [0, 5]], [[3, 1, 7], [3, 1, 7]]],
  (x, s) => x.expand(s), (x, s) => R.expand(x, s));
viewOp<number | number[] | undefined>('squeeze', [[[3, 1, 7, 1], undefined], [[3, 1, 7, 1], 1], [[3, 1, 7, 1], [1, 3]], [[3, 1, 7, 1], 0], [[], undefined], [[1], 0]],
  (x, d) => x.squeeze(d), (x, d) => R.squeeze(x, d));
viewOp<number>('unsqueeze', [[[3, 7], 0], [[3, 7], -1], [[3, 7], 1], [[], 0], [[0, 2], 2]],
  (x, d) => x.unsqueeze(d), (x, d) => R.unsqueeze(x, d));
viewOp<[number, number]>('flatten', [[[3, 5, 7], [0, -1]], [[3, 5, 7], [1, 2]], [[3, 5, 7], [0, 1]], [[], [0, -1]], [[3, 0, 2], [0, 1]]],
  (x, [s, e]) => x.flatten(s, e), (x, [s, e]) => R.flatten(x, s, e));
viewOp<[number, number, number]>('narrow', [[[7, 13], [1, 2, 5]], [[7, 13], [0, -3, 2]], [[7, 13], [1, 4, 0]], [[3, 5, 7], [2, 6, 1]]],
  (x, [d, s, l]) => x.narrow(d, s, l), (x, [d, s, l]) => R.narrow(x, d, s, l));
type SliceArgs = [number, number | undefined, number | undefined, number];
viewOp<SliceArgs>('slice', [[[7, 13], [1, 1, 12, 2]], [[7, 13], [0, undefined, undefined, 3]], [[7, 13], [1, -5, undefined, 1]], [[7, 13], [1, 10, 3, 1]],
  [[3, 5, 7], [2, 0, 7, 4]], [[33], [0, 2, 100, 5]]],
(x, [d, s, e, st]) => x.slice(d, s, e, st), (x, [d, s, e, st]) => R.slice(x, d, s, e, st));
viewOp<[number, number]>('select', [[[7, 13], [1, -1]], [[3, 5, 7], [0, 2]], [[7], [0, 3]], [[3, 5, 7], [2, 6]]],
  (x, [d, i]) => x.select(d, i), (x, [d, i]) => R.select(x, d, i));
viewOp<[number, number]>('chunk', [[[7, 13], [3, 1]], [[7, 13], [2, 0]], [[13], [5, 0]], [[0, 3], [2, 0]]],
  (x, [n, d]) => x.chunk(n, d), (x, [n, d]) => R.chunk(x, n, d));
viewOp<[number | number[], number]>('split', [[[7, 13], [4, 1]], [[7, 13], [[1, 4, 2], 0]], [[7, 13], [[13], 1]], [[7], [[0, 7], 0]]],
  (x, [s, d]) => x.split(s, d), (x, [s, d]) => R.split(x, s, d));
viewOp<number>('unbind', [[[3, 5, 7], 0], [[3, 5, 7], 2], [[7], 0], [[2, 3], -1]],
  (x, d) => x.unbind(d), (x, d) => R.unbind(x, d));

// ---- fused nn kernels ----------------------------------------------------------------------

// Attention against softmax(scale q k^T + bias, causal mask) v composed in the reference; every
// dtype takes the fused kernel (native/cpu/kernels/attention.cpp; bf16 and f16 computed in f32). Sizes
// cross the kernel's 64-row and 64-key blocks and are not multiples of any vector width.
interface AttnArgs { causal: boolean; scale: number }
function attnRef([q, k, v, bias]: Ref[], a: AttnArgs): Ref {
  let s = R.zip(R.map(R.matmul(q, R.transpose(k, -1, -2)), (x) => x * a.scale), bias, (x, y) => x + y);
  const n = s.shape.length;
  if (a.causal) s = R.build(s.shape, (idx) => (idx[n - 1] > idx[n - 2] ? -Infinity : R.at(s, idx)));
  return R.matmul(R.softmax(s, -1), v);
}
const ATTN_CFGS: [number[], number[], number, AttnArgs][] = [  // q, k, Dv, args; bias is [H, Lq, Lk]
  [[2, 3, 5, 7], [2, 3, 9, 7], 4, { causal: false, scale: 0.4 }],
  [[1, 2, 70, 13], [1, 2, 67, 13], 5, { causal: true, scale: 0.3 }],
  [[2, 1, 9, 33], [2, 1, 130, 33], 17, { causal: true, scale: 0.2 }],
  [[1, 1, 1, 1], [1, 1, 1, 1], 1, { causal: false, scale: 1 }],
];
add<AttnArgs>({
  name: 'scaledDotProductAttention',
  dtypes: FLOAT,
  configs: (g, dt) => ATTN_CFGS.map(([sq, sk, dv, args]) => ({
    inputs: [g.in(sq, D(dt)), g.in(sk, D(dt)), g.in([...sk.slice(0, -1), dv], D(dt)), g.in([sq[1], sq[2], sk[2]], D(dt))], args,
  })),
  run: ([q, k, v, bias], a) => E.F.scaledDotProductAttention(q, k, v, { bias, causal: a.causal, scale: a.scale }),
  ref: (r, a) => attnRef(r, a),
  tol: ([q, k, v, bias], a) => ({ growth: Math.sqrt(q.shape[3] + k.shape[2]), mag: attnRef([q, k, R.map(v, Math.abs), bias], a) }),
});

// The fused row kernels behind F.layerNorm and F.rmsNorm (bf16 and f16 computed in f32), rows past the
// vector width and a block of 32 rows.
/** LayerNorm (RMSNorm without the mean) in f64, and the magnitude its rounding error scales with:
 * (|x| + |mean|) * rstd * |w| + |b|, large where a nearly constant row makes rstd large. */
function layerNormRef(x: Ref, w: Ref, b: Ref, rms: boolean): { y: Ref; mag: Ref } {
  const D = x.shape[x.shape.length - 1];
  const mu = rms ? R.makeRef([...x.shape.slice(0, -1), 1], () => 0) : R.reduce(x, -1, true, (v) => R.fsum(v) / D);
  const c = R.zip(x, mu, (a, m) => a - m);
  const rstd = R.reduce(c, -1, true, (v) => 1 / Math.sqrt(R.fsum(v.map((e) => e * e)) / D + 1e-5));
  const y = R.zip3(R.zip(c, rstd, (a, r) => a * r), w, b, (v, wi, bi) => v * wi + bi);
  const scaleMag = R.zip3(R.zip(x, mu, (a, m) => Math.abs(a) + Math.abs(m)), rstd, w, (a, r, wi) => a * r * Math.abs(wi));
  return { y, mag: R.zip(scaleMag, b, (m, bi) => m + Math.abs(bi)) };
}
for (const rms of [false, true]) {
  add<{ rms: boolean }>({
    name: rms ? 'rmsNorm' : 'layerNorm',
    dtypes: FLOAT,
    configs: (g, dt) => [[3, 7], [37, 33], [1, 1], [2, 3, 130]].map((sx) => ({
      inputs: [g.in(sx, D(dt)), g.in(sx.slice(-1), D(dt)), g.in(sx.slice(-1), D(dt))], args: { rms },
    })),
    run: ([x, w, b], a) => (a.rms ? E.F.rmsNorm(x, w, 1e-5).add(b) : E.F.layerNorm(x, x.shape[x.ndim - 1], w, b)),
    ref: ([x, w, b], a) => layerNormRef(x, w, b, a.rms).y,
    tol: ([x, w, b], a) => ({ growth: Math.sqrt(x.shape[x.shape.length - 1]), mag: layerNormRef(x, w, b, a.rms).mag }),
  });
}

// GroupNorm with its per-channel affine (fused into the norm kernel on cpu: native/cpu/kernels/norm.cpp's
// group_norm_*; composed elsewhere): groups of several channels, H W not a multiple of the vector width,
// one-element groups.
/** GroupNorm in f64: layerNormRef over each sample's groups, then the channel's weight and bias. */
function groupNormRef(x: Ref, w: Ref, b: Ref, groups: number): { y: Ref; mag: Ref } {
  const [N, C] = x.shape;
  const M = x.data.length / (N * groups), inner = (M * groups) / C;
  const unit = (v: number) => R.makeRef([M], () => v);
  const rows = layerNormRef(R.makeRef([N * groups, M], x.data), unit(1), unit(0), false);
  const channel = (i: number) => Math.floor(i / inner) % C;
  return {
    y: R.makeRef(x.shape, (i) => rows.y.data[i] * w.data[channel(i)] + b.data[channel(i)]),
    mag: R.makeRef(x.shape, (i) => rows.mag.data[i] * Math.abs(w.data[channel(i)]) + Math.abs(b.data[channel(i)])),
  };
}
add<{ groups: number }>({
  name: 'groupNorm',
  dtypes: FLOAT,
  configs: (g, dt) => ([[[2, 6, 5, 7], 3], [[3, 4, 9], 2], [[2, 6, 1, 1], 6], [[1, 8, 3, 11], 1]] as const).map(([sx, groups]) => ({
    inputs: [g.in([...sx], D(dt)), g.in([sx[1]], D(dt)), g.in([sx[1]], D(dt))], args: { groups },
  })),
  run: ([x, w, b], a) => E.F.groupNorm(x, a.groups, w, b),
  ref: ([x, w, b], a) => groupNormRef(x, w, b, a.groups).y,
  tol: ([x, w, b], a) => ({ growth: Math.sqrt(x.data.length / (x.shape[0] * a.groups)), mag: groupNormRef(x, w, b, a.groups).mag }),
});

// ---- running a case ------------------------------------------------------------------------

/**
 * Whether a device present in this build runs kernels yet: only the engine's own "has no kernel
 * on <device>" error leaves it out; any other failure keeps it in, so its tests fail loudly.
 */
function hasKernels(device: Device): boolean {
  try {
    tidy(() => E.add(tensor([1, 2], { device }), 1).data());
    return true;
  } catch (e) {
    return !(e instanceof E.DeviceError && /has no kernel on/.test(e.message));
  }
}

/** Where a test runs: a device, and for sim the emulator's thread order. */
interface Run {
  device: Device;
  label: string;
  simOrder?: string;
}
const SIM_ORDERS = ['sequential', 'reverse', `random:${SEED}`];

/** cpu always; sim in three thread orders when built; cuda when this machine has it and it runs kernels. */
const RUNS: Run[] = [
  { device: 'cpu', label: 'cpu' },
  ...(simAvailable() ? SIM_ORDERS.map((o) => ({ device: 'sim' as const, label: `sim[${o.replace(/:.*/, '')}]`, simOrder: o })) : []),
  ...(cudaAvailable() && hasKernels('cuda') ? [{ device: 'cuda' as const, label: 'cuda' }] : []),
];


/** An input as the layout presents it: its logical values and, when broadcast, the stored part. */
interface Prepared {
  full: Ref;
  small: Ref | null;
  dtype: DType;
}

/** In the broadcast layout, makes some dims of size > 1 repeat one slice (stored with size 1). */
function prepare(inp: In, layout: Layout, rng: Rng): Prepared {
  const shape = inp.ref.shape;
  const cand = shape.map((s, d) => (s > 1 ? d : -1)).filter((d) => d >= 0);
  if (layout !== 'broadcast' || inp.broadcast === false || cand.length === 0) return { full: inp.ref, small: null, dtype: inp.dtype };
  let dims = cand.filter(() => rng.next() < 0.5);
  if (dims.length === 0) dims = [rng.pick(cand)];
  const smallShape = shape.map((s, d) => (dims.includes(d) ? 1 : s));
  const small = R.build(smallShape, (idx) => R.at(inp.ref, idx));
  return { full: R.expand(small, shape), small, dtype: inp.dtype };
}

/** Values that must never be read: junk around a non-contiguous view. */
const JUNK: Record<DType, number> = { f32: NaN, f64: NaN, bf16: NaN, f16: NaN, i32: -1000003, bool: 1 };

function upload(r: Ref, dtype: DType, device: Device): Tensor {
  return tensor(r.data, { dtype, device }).reshape(r.shape);
}

/**
 * The same logical values as a non-contiguous view: the dims are stored in reverse order, each
 * 2n long, with the values at odd positions; permuting back and slicing 1::2 reads them.
 */
function strided(r: Ref, dtype: DType, device: Device): Tensor {
  const nd = r.shape.length;
  if (nd === 0) return upload(R.makeRef([3], [JUNK[dtype], r.data[0], JUNK[dtype]]), dtype, device).select(0, 1);
  const baseShape = [...r.shape].reverse().map((s) => 2 * s);
  const base = R.makeRef(baseShape, () => JUNK[dtype]);
  const bst = R.stridesOf(baseShape);
  R.forEachIndex(r.shape, (idx, flat) => {
    let off = 0;
    for (let d = 0; d < nd; d++) off += (1 + 2 * idx[d]) * bst[nd - 1 - d];
    base.data[off] = r.data[flat];
  });
  let v = upload(base, dtype, device).permute([...Array(nd).keys()].reverse());
  for (let d = 0; d < nd; d++) v = v.slice(d, 1, undefined, 2);
  return v;
}

function materialize(p: Prepared, layout: Layout, device: Device): Tensor {
  let t: Tensor;
  if (p.small) t = upload(p.small, p.dtype, device).expand(p.full.shape);
  else if (layout === 'noncontig') t = strided(p.full, p.dtype, device);
  else t = upload(p.full, p.dtype, device);
  // The layouts must be what they claim (a size-1 or empty tensor is contiguous whatever its strides).
  if (layout !== 'contig' && t.numel > 1 && (t.isContiguous || (p.small !== null) !== t.strides.includes(0))) {
    throw new Error(`parity: a ${layout} input came out with strides [${t.strides.join(',')}]`);
  }
  return t;
}

// bf16 and f16 allow ~2.5 units of their last place (2^-8, 2^-11), and compute in f32. f16's
// range is narrow: below 2^-14 only its subnormals' absolute step 2^-24 is left (ABS), and a result
// past 65504 must come out as inf (its rounding overflows), as PyTorch's half does.
const REL: Record<string, number> = { f64: 1e-12, f32: 2e-6, bf16: 1e-2, f16: 1.25e-3 };
const STEP: Record<string, number> = { f64: 1e-15, f32: 2e-7, bf16: 2e-7, f16: 2e-7 };
const ABS: Record<string, number> = { f64: 0, f32: 0, bf16: 0, f16: 2 ** -24 };
const F16_OVERFLOW = 65520;
const shapeStr = (s: readonly number[]) => `[${s.join(',')}]`;
const fmt = (v: number) => (Number.isInteger(v) || !Number.isFinite(v) ? String(v) : v.toPrecision(9));

/** Checks one output against the reference; throws a message naming the first mismatches. */
function check(where: string, got: Tensor, want: Ref, wantDType: DType, exact: boolean, tol: Tol, mag: number | Ref | undefined): void {
  if (got.shape.length !== want.shape.length || got.shape.some((s, i) => s !== want.shape[i])) {
    assert.unreachable(`${where}: shape ${shapeStr(got.shape)}, expected ${shapeStr(want.shape)}`);
  }
  assert.is(got.dtype, wantDType, `${where}: dtype ${got.dtype}, expected ${wantDType}`);
  if (want.data.length === 0) return;
  const values = got.data();
  const isExact = exact || wantDType === 'i32' || wantDType === 'bool';
  const rel = REL[wantDType] * (tol.scale ?? 1) + STEP[wantDType] * (tol.growth ?? 1);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < want.data.length; i++) {
    const g = Number(values[i]), w = wantDType === 'f16' && Math.abs(want.data[i]) >= F16_OVERFLOW ? Math.sign(want.data[i]) * Infinity : want.data[i];
    let ok: boolean, bound = 0;
    if (Number.isNaN(w)) ok = Number.isNaN(g);
    else if (isExact || !Number.isFinite(w)) ok = g === w;
    else {
      const m = mag === undefined ? 0 : typeof mag === 'number' ? mag : Math.abs(mag.data[i]);
      bound = rel * (Math.abs(w) + m) + ABS[wantDType];
      ok = Math.abs(g - w) <= bound;
    }
    if (!ok && count++ < 3) {
      const idx: number[] = [];
      let rest = i;
      for (let d = want.shape.length - 1; d >= 0; d--) {
        idx.unshift(rest % want.shape[d]);
        rest = Math.floor(rest / want.shape[d]);
      }
      bad.push(`at ${shapeStr(idx)} got ${fmt(g)}, expected ${fmt(w)}${bound ? ` (|diff| ${Math.abs(g - w).toExponential(2)} > ${bound.toExponential(2)})` : ''}`);
    }
  }
  if (count) assert.unreachable(`${where}: ${count} of ${want.data.length} elements differ: ${bad.join('; ')}`);
}

const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

function describe(c: Case<unknown>, cfg: Config<unknown>, prepared: Prepared[], layout: Layout): string {
  const ins = prepared.map((p) => `${p.dtype}${shapeStr(p.full.shape)}${p.small ? ` from ${shapeStr(p.small.shape)}` : ''}`);
  const args = cfg.args === null ? '' : ` args ${JSON.stringify(cfg.args, (_, v) => (v === undefined ? 'undefined' : v))}`;
  return `${c.name} (${layout}) on ${ins.join(', ')}${args}`;
}

function register(c: Case<unknown>, run: Run, dtype: string, layout: Layout): void {
  const device = run.device;
  const name = `parity ${run.label} ${c.name} ${dtype} ${layout}`;
  test(name, () => {
    if (run.simOrder) setSimOrder(run.simOrder);
    const rng = new Rng(seedOf(name));
    const configs = c.configs(new Gen(rng), dtype);
    configs.forEach((cfg, k) => {
      // meta checks shape inference only: large inputs add nothing there.
      if (device === 'meta' && (cfg.skipMeta || cfg.inputs.some((i) => i.ref.data.length > 20000))) return;
      const prepared = cfg.inputs.map((inp) => prepare(inp, layout, rng));
      const where = `${name}, config ${k}: ${describe(c, cfg, prepared, layout)} (${REPRO})`;
      tidy(() => {
        const runOn = (dev: Device): Tensor[] => {
          try {
            return asList(c.run(prepared.map((p) => materialize(p, layout, dev)), cfg.args, dtype));
          } catch (e) {
            assert.unreachable(`${where}: ${dev} threw ${(e as Error).stack ?? e}`);
            throw e;
          }
        };
        const outs = runOn(device);
        const dtypes = asList(c.out ? c.out(dtype, cfg.args) : D(dtype));
        if (device === 'meta') {
          const cpu = runOn('cpu');
          assert.is(outs.length, cpu.length, `${where}: ${outs.length} outputs on meta, ${cpu.length} on cpu`);
          outs.forEach((t, i) => {
            assert.is(t.device, 'meta', `${where}: output ${i} is on ${t.device}`);
            assert.equal([...t.shape], [...cpu[i].shape], `${where}: output ${i} shape on meta differs from cpu`);
            assert.is(t.dtype, cpu[i].dtype, `${where}: output ${i} dtype on meta differs from cpu`);
          });
          return;
        }
        const refs = prepared.map((p) => p.full);
        const wants = asList(c.ref(refs, cfg.args, dtype));
        assert.is(outs.length, wants.length, `${where}: ${outs.length} outputs, expected ${wants.length}`);
        const tol = c.tol ? c.tol(refs, cfg.args, dtype) : {};
        const mags = Array.isArray(tol.mag) ? tol.mag : wants.map(() => tol.mag as number | Ref | undefined);
        outs.forEach((t, i) => {
          assert.is(t.device, device, `${where}: output ${i} is on ${t.device}`);
          check(outs.length > 1 ? `${where}, output ${i}` : where, t, wants[i], dtypes[i] ?? dtypes[0], !!c.exact, tol, mags[i]);
        });
      });
    });
  });
}

const TRACKED: Device[] = ['cpu', 'meta', 'sim'];
let baseline: Record<string, number> = {};
test('parity: record live tensors', () => {
  baseline = Object.fromEntries(TRACKED.map((d) => [d, memoryStats(d).liveTensors]));
});

for (const run of [...RUNS, { device: 'meta' as const, label: 'meta' }]) {
  for (const c of CASES) {
    for (const dtype of c.dtypes) {
      for (const layout of c.layouts ?? LAYOUTS) register(c, run, dtype, layout);
    }
  }
}

test('parity: every tensor made by the table was disposed', () => {
  setSimOrder('sequential');
  for (const d of TRACKED) {
    assert.ok(memoryStats(d).liveTensors <= baseline[d], `${d} live tensors ${memoryStats(d).liveTensors} > ${baseline[d]} before the table`);
  }
});

test.run();
