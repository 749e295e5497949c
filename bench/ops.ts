// ops.ts: the benchmark cases, grouped in suites, at full or --quick sizes.
//
// Compute-bound ops (matmul, conv2d) report GFLOP/s against the peak FMA rate; memory-bound ops
// (elementwise, broadcast, reductions, softmax, copies) report GB/s of compulsory traffic (each
// input read once, each output written once) against the triad bandwidth; the per-op overhead
// case reports microseconds per call. Inputs are random normals, never zeros; every timed call
// runs in tidy and returns nothing, so its output is freed before the next call.
import {
  add, conv2d, contiguous, exp, matmul, randn, softmax, sum, tidy, transpose, type Tensor,
} from '../src/index.ts';
import { conv2dFlops, f32Bytes, matmulFlops, type Case, type Setup } from './harness.ts';

/** The timed call: f's outputs are freed when it returns (tidy keeps nothing that is not returned). */
function timed(f: () => unknown): () => void {
  return () => {
    tidy(() => {
      f();
    });
  };
}

/** A Setup over freshly made random inputs, freed by dispose(). */
function withInputs(inputs: Tensor[], f: () => unknown): Setup {
  return { fn: timed(f), dispose: () => inputs.forEach((t) => t.dispose()) };
}

function count(n: number): string {
  if (n % (1 << 20) === 0) return `${n >> 20}M`;
  if (n % (1 << 10) === 0) return `${n >> 10}K`;
  return String(n);
}

const dims = (shape: number[]) => shape.join('x');

function matmulCases(quick: boolean): Case[] {
  const sizes = quick ? [64, 128, 256] : [128, 256, 512, 1024];
  const cases: Case[] = sizes.map((n) => ({
    suite: 'matmul', op: 'matmul f32', size: `${n}x${n}x${n}`, metric: 'GFLOP/s', work: matmulFlops(n, n, n),
    spec: { op: 'matmul', inputs: [[n, n], [n, n]] },
    setup: () => {
      const a = randn([n, n]), b = randn([n, n]);
      return withInputs([a, b], () => matmul(a, b));
    },
  }));
  // Batched, attention-shaped (q @ k^T per head): [B, S, D] x [B, D, S].
  const [B, S, D] = quick ? [8, 128, 64] : [32, 256, 64];
  cases.push({
    suite: 'matmul', op: 'bmm f32', size: `${B}x${S}x${S}x${D}`, metric: 'GFLOP/s', work: matmulFlops(S, S, D, B),
    spec: { op: 'bmm', inputs: [[B, S, D], [B, D, S]] },
    setup: () => {
      const a = randn([B, S, D]), b = randn([B, D, S]);
      return withInputs([a, b], () => matmul(a, b));
    },
  });
  return cases;
}

function elementwiseCases(quick: boolean): Case[] {
  const sizes = quick ? [1 << 16, 1 << 20] : [1 << 20, 1 << 24];
  const cases: Case[] = [];
  for (const n of sizes) {
    cases.push({
      suite: 'elementwise', op: 'add', size: count(n), metric: 'GB/s', work: f32Bytes(n, n, n),
      spec: { op: 'add', inputs: [[n], [n]] },
      setup: () => {
        const a = randn([n]), b = randn([n]);
        return withInputs([a, b], () => add(a, b));
      },
    });
  }
  for (const n of sizes) {
    cases.push({
      suite: 'elementwise', op: 'exp', size: count(n), metric: 'GB/s', work: f32Bytes(n, n),
      spec: { op: 'exp', inputs: [[n]] },
      setup: () => {
        const a = randn([n]);
        return withInputs([a], () => exp(a));
      },
    });
  }
  const [M, N] = quick ? [1024, 256] : [4096, 1024];
  cases.push({
    suite: 'elementwise', op: 'add row-broadcast', size: `${dims([M, N])} + ${N}`, metric: 'GB/s',
    work: f32Bytes(M * N, N, M * N),
    spec: { op: 'add', inputs: [[M, N], [N]] },
    setup: () => {
      const a = randn([M, N]), row = randn([N]);
      return withInputs([a, row], () => add(a, row));
    },
  });
  return cases;
}

function reduceCases(quick: boolean): Case[] {
  const [M, N] = quick ? [1024, 256] : [4096, 1024];
  const size = dims([M, N]);
  const sumCase = (dim: number, outNumel: number): Case => ({
    suite: 'reduce', op: `sum dim=${dim}`, size, metric: 'GB/s', work: f32Bytes(M * N, outNumel),
    spec: { op: 'sum', inputs: [[M, N]], params: { dim } },
    setup: () => {
      const x = randn([M, N]);
      return withInputs([x], () => sum(x, dim));
    },
  });
  return [
    sumCase(-1, M),
    sumCase(0, N),
    {
      suite: 'reduce', op: 'softmax dim=-1', size, metric: 'GB/s', work: f32Bytes(M * N, M * N),
      spec: { op: 'softmax', inputs: [[M, N]], params: { dim: -1 } },
      setup: () => {
        const x = randn([M, N]);
        return withInputs([x], () => softmax(x, -1));
      },
    },
  ];
}

function convCases(quick: boolean): Case[] {
  const [n, c, o, h, k] = quick ? [2, 16, 16, 16, 3] : [8, 64, 64, 32, 3];
  return [{
    suite: 'conv', op: `conv2d ${k}x${k} pad 1`, size: `${n}x${c}x${h}x${h} -> ${o}`, metric: 'GFLOP/s',
    work: conv2dFlops(n, c, o, h, h, k, k),
    spec: { op: 'conv2d', inputs: [[n, c, h, h], [o, c, k, k], [o]], params: { stride: 1, padding: 1 } },
    setup: () => {
      const x = randn([n, c, h, h]), w = randn([o, c, k, k]), b = randn([o]);
      return withInputs([x, w, b], () => conv2d(x, w, b, { padding: 1 }));
    },
  }];
}

function copyCases(quick: boolean): Case[] {
  const [M, N] = quick ? [1024, 256] : [4096, 1024];
  return [{
    suite: 'copy', op: 'contiguous of transpose', size: dims([M, N]), metric: 'GB/s', work: f32Bytes(M * N, M * N),
    spec: { op: 'contiguous', inputs: [[M, N]], params: { permute: [1, 0] } },
    setup: () => {
      const x = randn([M, N]);
      const xt = transpose(x, 0, 1);
      return withInputs([xt, x], () => contiguous(xt));
    },
  }];
}

/** Per-op overhead: the whole JS -> native -> JS path of an op with nothing to compute. */
function overheadCases(): Case[] {
  return [
    {
      suite: 'overhead', op: 'add 1-elem (tidy)', size: '1', metric: 'us', work: 0,
      spec: { op: 'add', inputs: [[1], [1]] },
      setup: () => {
        const a = randn([1]), b = randn([1]);
        return withInputs([a, b], () => add(a, b));
      },
    },
    {
      suite: 'overhead', op: 'add 1-elem (dispose)', size: '1', metric: 'us', work: 0,
      spec: { op: 'add', inputs: [[1], [1]] },
      setup: () => {
        const a = randn([1]), b = randn([1]);
        return { fn: () => add(a, b).dispose(), dispose: () => { a.dispose(); b.dispose(); } };
      },
    },
  ];
}

/** Every case, in table order. */
export function allCases(quick: boolean): Case[] {
  return [
    ...matmulCases(quick),
    ...convCases(quick),
    ...elementwiseCases(quick),
    ...reduceCases(quick),
    ...copyCases(quick),
    ...overheadCases(),
  ];
}
