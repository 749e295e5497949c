// fused.ts: the fused CPU kernels' cases (native/cpu/kernels/attention.cpp, norm.cpp,
// cross_entropy.cpp, adamw.cpp), each timed forward + backward through the public API, at the
// issue's reference sizes. Attention also runs its composed path (F.composedAttention: matmul,
// softmax, matmul) in the same run, the version it replaced, so the table shows what fusing buys.
//
//   attention   B 4, H 4, L 256, D 64, causal and not        GFLOP/s (fwd 4BHL^2D, bwd 2.5x; causal half)
//   rmsNorm, layerNorm (8192, 512)                          GB/s: x, dy read, y, dx written
//   groupNorm (8,32,32,32), (16,64,16,16) in 8 groups, silu (8,32,32,32): the same bytes
//   crossEntropy (4096 rows, vocab 8192)                    GB/s: logits read twice, dlogits written
//   AdamW over 10M parameters (10 tensors of 1M)            GB/s: p, g, m, v read, p, m, v written
import { AdamW, F, randint, randn, tidy, type Tensor } from '../src/index.ts';
import { f32Bytes, type Case, type Setup } from './harness.ts';

/** Forward + backward of f on leaves xs with output gradient g; clears the leaves' grads. */
function fwdBwd(xs: Tensor[], g: Tensor | null, f: () => Tensor): Setup {
  return {
    fn: () => {
      tidy(() => {
        const y = f();
        if (g) y.backward(g);
        else y.backward();
      });
      for (const x of xs) x.zeroGrad();
    },
    dispose: () => [...xs, ...(g ? [g] : [])].forEach((t) => t.dispose()),
  };
}

function attentionCases(quick: boolean): Case[] {
  const [B, H, L, D] = quick ? [2, 4, 128, 64] : [4, 4, 256, 64];
  const cases: Case[] = [];
  for (const causal of [false, true]) {
    const flops = 3.5 * 4 * B * H * L * L * D * (causal ? 0.5 : 1);
    for (const path of ['fused', 'composed'] as const) {
      cases.push({
        suite: 'fused', op: `attention ${path}${causal ? ' causal' : ''} f+b`, size: `${B}x${H}x${L}x${D}`, metric: 'GFLOP/s', work: flops,
        spec: { op: 'sdpa_fwd_bwd', inputs: [[B, H, L, D], [B, H, L, D], [B, H, L, D]], params: { causal } },
        setup: () => {
          const [q, k, v] = [0, 1, 2].map(() => randn([B, H, L, D]).requiresGrad_());
          const g = randn([B, H, L, D]);
          const scale = 1 / Math.sqrt(D);
          return fwdBwd([q, k, v], g, () => (path === 'fused' ? F.scaledDotProductAttention(q, k, v, { causal })
            : F.composedAttention(q, k, v, null, null, scale, { causal })));
        },
      });
    }
  }
  return cases;
}

function normCases(quick: boolean): Case[] {
  const [N, D] = quick ? [2048, 512] : [8192, 512];
  return (['rmsNorm', 'layerNorm'] as const).map((op) => ({
    suite: 'fused', op: `${op} f+b`, size: `${N}x${D}`, metric: 'GB/s', work: f32Bytes(N * D, N * D, N * D, N * D),
    spec: { op: `${op}_fwd_bwd`, inputs: [[N, D], [D]] },
    setup: () => {
      const x = randn([N, D]).requiresGrad_(), w = randn([D]).requiresGrad_(), b = randn([D]).requiresGrad_();
      const g = randn([N, D]);
      return fwdBwd([x, w, b], g, () => (op === 'rmsNorm' ? F.rmsNorm(x, w) : F.layerNorm(x, D, w, b)));
    },
  }));
}

// GroupNorm with its affine and silu, forward + backward, at the Emu VAE's and UNet's sizes
// (src/emu/vae.ts: small images, where these passes rather than the convolutions bound a step).
function convNetCases(): Case[] {
  const group = ([N, C, H, W]: number[]): Case => ({
    suite: 'fused', op: 'groupNorm f+b', size: `${N}x${C}x${H}x${W}/8`, metric: 'GB/s', work: f32Bytes(...Array(4).fill(N * C * H * W)),
    spec: { op: 'group_norm_fwd_bwd', inputs: [[N, C, H, W], [C], [C]], params: { groups: 8 } },
    setup: () => {
      const x = randn([N, C, H, W]).requiresGrad_(), w = randn([C]).requiresGrad_(), b = randn([C]).requiresGrad_();
      return fwdBwd([x, w, b], randn([N, C, H, W]), () => F.groupNorm(x, 8, w, b));
    },
  });
  const n = 8 * 32 * 32 * 32;
  return [group([8, 32, 32, 32]), group([16, 64, 16, 16]), {
    suite: 'fused', op: 'silu f+b', size: '8x32x32x32', metric: 'GB/s', work: f32Bytes(n, n, n, n),
    spec: { op: 'silu_fwd_bwd', inputs: [[8, 32, 32, 32]] },
    setup: () => {
      const x = randn([8, 32, 32, 32]).requiresGrad_();
      return fwdBwd([x], randn([8, 32, 32, 32]), () => F.silu(x));
    },
  }];
}

function crossEntropyCases(quick: boolean): Case[] {
  const [N, V] = quick ? [1024, 8192] : [4096, 8192];
  return [{
    suite: 'fused', op: 'crossEntropy f+b', size: `${N}x${V}`, metric: 'GB/s', work: f32Bytes(N * V, N * V, N * V),
    spec: { op: 'cross_entropy_fwd_bwd', inputs: [[N, V], [N]] },
    setup: () => {
      const x = randn([N, V]).requiresGrad_(), t = randint(0, V, [N]);
      const s = fwdBwd([x], null, () => F.crossEntropy(x, t));
      return { fn: s.fn, dispose: () => { s.dispose(); t.dispose(); } };
    },
  }];
}

function adamwCases(quick: boolean): Case[] {
  const [count, size] = quick ? [10, 1 << 18] : [10, 1 << 20];
  const n = count * size;
  return [{
    suite: 'fused', op: 'AdamW step', size: `${count}x${size >> 10}K`, metric: 'GB/s', work: f32Bytes(n, n, n, n, n, n, n),
    spec: { op: 'adamw', inputs: Array(count).fill([size]), params: { lr: 1e-3, weight_decay: 0.1 } },
    setup: () => {
      const params = Array.from({ length: count }, () => randn([size]).requiresGrad_());
      for (const p of params) p.grad = randn([size]);
      const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.1 });
      return { fn: () => opt.step(), dispose: () => params.forEach((p) => { p.zeroGrad(); p.dispose(); }) };
    },
  }];
}

/** Every fused case, in table order. */
export function fusedCases(quick: boolean): Case[] {
  return [...attentionCases(quick), ...normCases(quick), ...convNetCases(), ...crossEntropyCases(quick), ...adamwCases(quick)];
}
