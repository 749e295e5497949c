// ops.ts: the benchmark cases, grouped in suites, at full or --quick sizes.
//
// Compute-bound ops (matmul, conv2d) report GFLOP/s against the peak FMA rate; memory-bound ops
// (elementwise, broadcast, reductions, softmax, copies) report GB/s of compulsory traffic (each
// input read once, each output written once) against the triad bandwidth; the per-op overhead
// case reports microseconds per call. Inputs are random normals, never zeros; every timed call
// runs in tidy and returns nothing, so its output is freed before the next call.
import {
  AdamW, add, conv2d, contiguous, exp, F, matmul, randint, randn, runtimeInfo, softmax, sum, Tensor, tidy, transpose,
} from '../src/index.ts';
import { native } from '../src/tensor/native.ts';
import { conv2dFlops, f32Bytes, matmulFlops, type Case, type Setup } from './harness.ts';
import { modelCases } from './models.ts';

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

/** out = a @ b through matmul kernel version v (native/cpu/kernels/matmul.cpp), for 3-d a and b. */
function matmulVersion(v: number, a: Tensor, b: Tensor): void {
  tidy(() => {
    const out = Tensor.empty([a.shape[0], a.shape[1], b.shape[2]], a.dtype, 'cpu');
    native.matmulVersion(v, out.handle, out.desc, a.handle, a.desc, b.handle, b.desc);
  });
}

/** A [rows, cols] operand, stored transposed (as [cols, rows]) and viewed back when asked. */
function operand(rows: number, cols: number, transposed: boolean): Tensor[] {
  if (!transposed) return [randn([rows, cols])];
  const stored = randn([cols, rows]);
  return [transpose(stored, 0, 1), stored];
}

function matmulCases(quick: boolean): Case[] {
  const sizes = quick ? [64, 128, 256] : [128, 256, 512, 1024, 2048];
  const square = (n: number, ta: boolean, tb: boolean): Case => {
    const tag = ta && tb ? ' A^T B^T' : ta ? ' A^T' : tb ? ' B^T' : '';
    return {
      suite: 'matmul', op: `matmul f32${tag}`, size: `${n}x${n}x${n}`, metric: 'GFLOP/s', work: matmulFlops(n, n, n),
      spec: { op: 'matmul', inputs: [[n, n], [n, n]], params: { ta, tb } },
      setup: () => {
        const [a, ...aKeep] = operand(n, n, ta), [b, ...bKeep] = operand(n, n, tb);
        return withInputs([a, b, ...aKeep, ...bKeep], () => matmul(a, b));
      },
    };
  };
  const cases: Case[] = sizes.map((n) => square(n, false, false));
  // bf16 operands, f32 accumulation (v4 widens them while packing; v5, avx512_bf16 dot products,
  // with EMU_CPU_BF16_DOT=1); "% of peak" is against the f32 FMA peak, which dot products can pass.
  for (const n of quick ? [256] : [1024, 2048]) {
    cases.push({
      suite: 'matmul', op: 'matmul bf16', size: `${n}x${n}x${n}`, metric: 'GFLOP/s', work: matmulFlops(n, n, n),
      spec: { op: 'matmul', inputs: [[n, n], [n, n]], params: { dtype: 'bf16' } },
      setup: () => {
        const a = randn([n, n], { dtype: 'bf16' }), b = randn([n, n], { dtype: 'bf16' });
        return withInputs([a, b], () => matmul(a, b));
      },
    });
  }
  // All four transpose combinations at one size, none materialised.
  const nt = quick ? 256 : 1024;
  cases.push(square(nt, true, false), square(nt, false, true), square(nt, true, true));
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

/**
 * The kernel versions kept side by side (gemm/v1_naive, v2_packed, v3_microkernel: v3 and v4), same
 * run; and for bf16, v4 (widened to f32 while packing) against v5 (avx512_bf16 dot products).
 */
function matmulVersionCases(quick: boolean): Case[] {
  const names = ['v1 naive', 'v2 packed', 'v3 micro-kernel', 'v4 tiles'];
  const cases: Case[] = [];
  const bf16Versions: [number, string][] = [[4, 'v4 widened to f32'], ...(runtimeInfo().cpuBf16Dot !== 'absent' ? [[5, 'v5 avx512_bf16 dot'] as [number, string]] : [])];
  for (const [v, name] of bf16Versions) {
    const n = quick ? 128 : 1024;
    cases.push({
      suite: 'gemm versions', op: `matmul bf16 ${name}`, size: `${n}x${n}x${n}`, metric: 'GFLOP/s', work: matmulFlops(n, n, n),
      spec: { op: 'matmul_version', inputs: [[1, n, n], [1, n, n]], params: { version: v, dtype: 'bf16' } },
      setup: () => {
        const a = randn([1, n, n], { dtype: 'bf16' }), b = randn([1, n, n], { dtype: 'bf16' });
        return { fn: () => matmulVersion(v, a, b), dispose: () => { a.dispose(); b.dispose(); } };
      },
    });
  }
  for (const n of quick ? [128] : [256, 1024]) {
    for (const v of [1, 2, 3, 4]) {
      if (v === 1 && n > 256) continue;  // seconds per call
      cases.push({
        suite: 'gemm versions', op: `matmul ${names[v - 1]}`, size: `${n}x${n}x${n}`, metric: 'GFLOP/s', work: matmulFlops(n, n, n),
        spec: { op: 'matmul_version', inputs: [[1, n, n], [1, n, n]], params: { version: v } },
        setup: () => {
          const a = randn([1, n, n]), b = randn([1, n, n]);
          return { fn: () => matmulVersion(v, a, b), dispose: () => { a.dispose(); b.dispose(); } };
        },
      });
    }
  }
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
  }, {
    // Forward, then the input, weight and bias gradients: three GEMMs of the forward's size.
    suite: 'conv', op: `conv2d ${k}x${k} pad 1 fwd+bwd`, size: `${n}x${c}x${h}x${h} -> ${o}`, metric: 'GFLOP/s',
    work: 3 * conv2dFlops(n, c, o, h, h, k, k),
    spec: { op: 'conv2d', inputs: [[n, c, h, h], [o, c, k, k], [o]], params: { stride: 1, padding: 1, backward: true } },
    setup: () => {
      const x = randn([n, c, h, h]).requiresGrad_(), w = randn([o, c, k, k]).requiresGrad_(), b = randn([o]).requiresGrad_();
      const g = randn([n, o, h, h]);
      return withInputs([x, w, b, g], () => {
        for (const t of [x, w, b]) t.zeroGrad();
        conv2d(x, w, b, { padding: 1 }).backward(g);
      });
    },
  }];
}

/** The fused-kernel targets of issue 4 (attention, RMSNorm, cross-entropy, AdamW), measured
 *  through the public API at the sizes, forward+backward, beside PyTorch. */
function trainingOpCases(quick: boolean): Case[] {
  const [B, H, L, D] = quick ? [1, 2, 64, 64] : [4, 4, 256, 64];
  const attention = (causal: boolean): Case => ({
    suite: 'training ops', op: `attention fwd+bwd${causal ? ' causal' : ''}`, size: `${B}x${H}x${L}x${D}`, metric: 'GFLOP/s',
    work: 3 * 4 * B * H * L * L * D,  // q k^T and p v, forward and twice that backward; causal counted dense
    spec: { op: 'attention', inputs: [[B, H, L, D], [B, H, L, D], [B, H, L, D]], params: { causal, backward: true } },
    setup: () => {
      const [q, k, v] = [0, 1, 2].map(() => randn([B, H, L, D]).requiresGrad_());
      const g = randn([B, H, L, D]);
      return withInputs([q, k, v, g], () => {
        for (const t of [q, k, v]) t.zeroGrad();
        F.scaledDotProductAttention(q, k, v, { causal }).backward(g);
      });
    },
  });
  const [R, C] = quick ? [1024, 512] : [8192, 512];
  const [N, V] = quick ? [512, 1024] : [4096, 8192];
  const P = quick ? 1 << 20 : 10_000_000;
  return [
    attention(false),
    attention(true),
    {
      suite: 'training ops', op: 'rmsNorm fwd+bwd', size: dims([R, C]), metric: 'GB/s',
      work: f32Bytes(R * C, R * C, R * C, R * C),  // read x and dy, write y and dx
      spec: { op: 'rms_norm', inputs: [[R, C], [C]], params: { backward: true } },
      setup: () => {
        const x = randn([R, C]).requiresGrad_(), w = randn([C]).requiresGrad_(), g = randn([R, C]);
        return withInputs([x, w, g], () => {
          x.zeroGrad();
          w.zeroGrad();
          F.rmsNorm(x, w, 1e-6).backward(g);
        });
      },
    },
    {
      suite: 'training ops', op: 'crossEntropy fwd+bwd', size: dims([N, V]), metric: 'GB/s',
      work: f32Bytes(N * V, N * V),  // read the logits, write their gradient
      spec: { op: 'cross_entropy', inputs: [[N, V]], params: { backward: true } },
      setup: () => {
        const logits = randn([N, V]).requiresGrad_(), targets = randint(0, V, [N], { dtype: 'i32' });
        return withInputs([logits, targets], () => {
          logits.zeroGrad();
          F.crossEntropy(logits, targets).backward();
        });
      },
    },
    {
      suite: 'training ops', op: 'AdamW step', size: count(P), metric: 'GB/s',
      work: f32Bytes(P, P, P, P, P, P, P),  // read p, g, m, v; write p, m, v
      spec: { op: 'adamw', inputs: [[P]] },
      setup: () => {
        const p = randn([P]).requiresGrad_();
        p.grad = randn([P]);
        const opt = new AdamW([p], { lr: 1e-3 });
        return { fn: () => opt.step(), dispose: () => { p.grad?.dispose(); p.dispose(); } };
      },
    },
  ];
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
    ...matmulVersionCases(quick),
    ...convCases(quick),
    ...trainingOpCases(quick),
    ...modelCases(quick),
    ...elementwiseCases(quick),
    ...reduceCases(quick),
    ...copyCases(quick),
    ...overheadCases(),
  ];
}
