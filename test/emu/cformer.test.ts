// cformer.test.ts: Emu's Causal Transformer (src/emu/cformer.ts): the T5 bucket function against
// hand values, shapes, causality among the queries (by autograd and by perturbation), the
// shared position bias, T5's unscaled attention against a plain-loop reference, dropout
// (eval deterministic, train reproducible from the generator), T5 initialisation, state-dict
// names, the emu-14b parameter count on meta, and gradients reaching every parameter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, memoryStats, noGrad, randn, select, sum, mul, tensor, Tensor, tidy } from '../../src/index.ts';
import { CausalTransformer, t5RelativeBucket } from '../../src/emu/cformer.ts';
import { preset, type CformerConfig } from '../../src/emu/config.ts';

const arr = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);
const visionTokens = (imageSize: number, patch: number) => (imageSize / patch) ** 2 + 1;

function close(a: number[], b: number[], tol: number, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  a.forEach((v, i) => {
    if (!(Math.abs(v - b[i]) <= tol * (1 + Math.abs(b[i])))) assert.unreachable(`${what}[${i}]: got ${v}, expected ${b[i]}`);
  });
}
const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

function micro(over: Partial<CformerConfig> = {}, dtype: 'f32' | 'f64' = 'f64', seed = 1) {
  const c = preset('micro');
  const cfg = { ...c.cformer, ...over };
  const m = new CausalTransformer(cfg, c.vision.width, c.llm.hidden, { dtype, generator: new Generator(seed) });
  const T = visionTokens(c.vision.imageSize, c.vision.patchSize);
  const x = randn([2, T, c.vision.width], { dtype, generator: new Generator(seed + 100) });
  return { m, x, cfg, c };
}

// ---- bucket function ------------------------------------------------------------------------

test('t5RelativeBucket (unidirectional): hand values for 32 buckets / 128 and 8 / 16', () => {
  for (let n = 0; n < 16; n++) assert.is(t5RelativeBucket(-n, 32, 128), n, `distance ${n}`);
  // log-spaced: 16 + floor(log(n / 16) / log(8) * 16)
  const hand: [number, number][] = [[16, 16], [17, 16], [20, 17], [23, 18], [32, 21], [45, 23], [64, 26], [100, 30], [127, 31], [128, 31], [129, 31], [1000, 31]];
  for (const [n, b] of hand) assert.is(t5RelativeBucket(-n, 32, 128), b, `distance ${n}`);
  for (const rp of [1, 2, 5, 200]) assert.is(t5RelativeBucket(rp, 32, 128), 0, `future position +${rp} -> bucket 0`);
  // micro/tiny: 8 buckets, max distance 16: 0..3 exact, 4 + floor(log(n / 4) / log(4) * 4)
  const small: [number, number][] = [[0, 0], [1, 1], [3, 3], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [11, 6], [12, 7], [15, 7], [16, 7], [40, 7]];
  for (const [n, b] of small) assert.is(t5RelativeBucket(-n, 8, 16), b, `8/16 distance ${n}`);
  // monotone in the distance and within range
  let prev = 0;
  for (let n = 0; n < 300; n++) {
    const b = t5RelativeBucket(-n, 32, 128);
    assert.ok(b >= prev && b <= 31);
    prev = b;
  }
  assert.throws(() => t5RelativeBucket(0.5, 32, 128), /relPos must be an integer/);
  assert.throws(() => t5RelativeBucket(0, 32, 8), /maxDistance must exceed/);
});

// ---- shapes ---------------------------------------------------------------------------------

test('forward: [B, T, visionWidth] -> [B, N, llmWidth] for micro and tiny; frees its temporaries', () => {
  for (const name of ['micro', 'tiny']) {
    const c = preset(name);
    const m = new CausalTransformer(c.cformer, c.vision.width, c.llm.hidden, { generator: new Generator(3) });
    const T = visionTokens(c.vision.imageSize, c.vision.patchSize);
    tidy(() => {
      for (const B of [1, 3]) {
        const y = m.forward(randn([B, T, c.vision.width], { generator: new Generator(4) }));
        assert.equal(y.shape, [B, c.cformer.numQueries, c.llm.hidden], name);
        assert.is(y.dtype, 'f32');
        assert.ok(arr(y).every(Number.isFinite), `${name}: finite`);
      }
    });
    // any number of vision tokens works (cross-attention has no positions)
    tidy(() => assert.equal(m.forward(randn([2, 3, c.vision.width])).shape, [2, c.cformer.numQueries, c.llm.hidden]));
    const x = randn([2, T, c.vision.width]);
    const before = memoryStats().liveTensors;
    noGrad(() => tidy(() => {
      m.forward(x);
    }));
    assert.is(memoryStats().liveTensors, before, `${name}: no leaked tensors (no grad)`);
    // with autograd: forward + backward + zeroGrad leaves the counts flat after a warm-up step
    const step = () => {
      tidy(() => sum(m.forward(x)).backward());
      m.zeroGrad();
    };
    step();
    const warm = memoryStats().liveTensors;
    step();
    step();
    assert.is(memoryStats().liveTensors, warm, `${name}: no leaked tensors (training step)`);
    x.dispose();
    assert.throws(() => m.forward(randn([2, T, c.vision.width + 1])), /expected vision tokens \[B, T, \d+\]/);
    assert.throws(() => m.forward(randn([T, c.vision.width])), /expected vision tokens/);
  }
});

// ---- causality ------------------------------------------------------------------------------

test('causality by autograd: d out[:, k] / d causal_tokens[:, j] is zero exactly for j > k, non-zero for j <= k', () => {
  const { m, x, cfg } = micro();
  m.eval();
  const N = cfg.numQueries, d = cfg.dModel;
  for (let k = 0; k < N; k++) {
    m.zeroGrad();
    tidy(() => {
      sum(select(m.forward(x), 1, k)).backward();
    });
    const g = arr(m.causal_tokens.grad!);
    for (let j = 0; j < N; j++) {
      const row = g.slice(j * d, (j + 1) * d);
      if (j > k) assert.ok(row.every((v) => v === 0), `out ${k} must not depend on query ${j}`);
      else assert.ok(row.some((v) => v !== 0), `out ${k} should depend on query ${j}`);
    }
  }
  m.zeroGrad();
});

test('causality by perturbation: query j changes outputs >= j only; the vision tokens change every output', () => {
  const { m, x, cfg } = micro();
  m.eval();
  const N = cfg.numQueries, W = m.llmWidth;
  const base = noGrad(() => arr(m.forward(x)));
  const rows = (v: number[], b: number) => Array.from({ length: N }, (_, k) => v.slice((b * N + k) * W, (b * N + k + 1) * W));
  const baseRows = [0, 1].map((b) => rows(base, b));
  const original = arr(m.causal_tokens);
  for (let j = 0; j < N; j++) {
    const changed = original.slice();
    for (let c = 0; c < cfg.dModel; c++) changed[j * cfg.dModel + c] += 0.05 * Math.cos(c + j);
    m.loadStateDict({ causal_tokens: tensor(changed, { dtype: 'f64' }).reshape(1, N, cfg.dModel) }, { strict: false });
    const y = noGrad(() => arr(m.forward(x)));
    for (const b of [0, 1]) {
      rows(y, b).forEach((r, k) => {
        const diff = maxAbsDiff(r, baseRows[b][k]);
        if (k < j) assert.is(diff, 0, `query ${j} changed output ${k}`);
        else assert.ok(diff > 1e-9, `query ${j} should change output ${k}`);
      });
    }
  }
  m.loadStateDict({ causal_tokens: tensor(original, { dtype: 'f64' }).reshape(1, N, cfg.dModel) }, { strict: false });
  // one vision token of sample 1 changes every output of sample 1 and nothing of sample 0
  const xs = arr(x);
  xs[xs.length - 1] += 0.5;
  const y = noGrad(() => arr(m.forward(tensor(xs, { dtype: 'f64' }).reshape(...x.shape))));
  rows(y, 0).forEach((r, k) => assert.is(maxAbsDiff(r, baseRows[0][k]), 0, `sample 0 output ${k}`));
  rows(y, 1).forEach((r, k) => assert.ok(maxAbsDiff(r, baseRows[1][k]) > 1e-9, `sample 1 output ${k} should change`));
});

// ---- shared position bias and the unscaled attention ----------------------------------------

test('shared bias: only block 0 has relative_attention_bias [buckets, heads]; the stack is blocks over one bias', () => {
  const { m, x, cfg } = micro({ layers: 3 });
  m.eval();
  const names = Object.keys(m.stateDict()).filter((n) => n.includes('relative_attention_bias'));
  assert.equal(names, ['decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight']);
  assert.equal(m.stateDict()[names[0]].shape, [cfg.relBuckets, cfg.heads]);
  for (let i = 1; i < 3; i++) assert.is(m.decoder.block.get(i).selfAttn.SelfAttention.relative_attention_bias, null);
  assert.throws(() => m.decoder.block.get(1).selfAttn.SelfAttention.computeBias(4, 4), /only block 0/);
  noGrad(() => tidy(() => {
    const N = cfg.numQueries;
    const bias = m.decoder.positionBias(N);
    assert.equal(bias.shape, [1, cfg.heads, N, N]);
    const table = arr(m.stateDict()[names[0]]), B = arr(bias);
    for (let h = 0; h < cfg.heads; h++) for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) {
      assert.is(B[(h * N + i) * N + j], table[t5RelativeBucket(j - i, cfg.relBuckets, cfg.relMaxDistance) * cfg.heads + h]);
    }
    // the forward is exactly: blocks over the one bias, final norm, projection
    let h = m.causal_tokens.expand(2, N, cfg.dModel);
    for (const b of m.decoder.block) h = b.forward(h, x, bias);
    const manual = m.projection.forward(m.decoder.final_layer_norm.forward(h));
    close(arr(m.forward(x)), arr(manual), 1e-12, 'stack');
  }));
  // block 1 reads the shared bias: giving block 1 a zero bias instead changes the output
  const two = micro({ layers: 2 }).m.eval();
  noGrad(() => tidy(() => {
    const N = cfg.numQueries, bias = two.decoder.positionBias(N);
    let a = two.causal_tokens.expand(2, N, cfg.dModel), b = a;
    a = two.decoder.block.get(0).forward(a, x, bias);
    b = a;
    a = two.decoder.block.get(1).forward(a, x, bias);
    b = two.decoder.block.get(1).forward(b, x, mul(bias, 0));
    const outA = two.projection.forward(two.decoder.final_layer_norm.forward(a));
    const outB = two.projection.forward(two.decoder.final_layer_norm.forward(b));
    close(arr(two.forward(x)), arr(outA), 1e-12, 'block 1 reads the shared bias');
    assert.ok(maxAbsDiff(arr(outA), arr(outB)) > 1e-9, 'block 1 result depends on the bias');
  }));
});

/** Reference multi-head attention by loops: x [L, d] query rows, kv [S, w]; weights as row-major [out, in]. */
function refAttention(xq: number[][], kv: number[][], W: { q: number[]; k: number[]; v: number[]; o: number[] }, H: number, dk: number,
  bias: ((h: number, i: number, j: number) => number) | null, causal: boolean, scale: number): number[][] {
  const lin = (rows: number[][], w: number[], outF: number) => rows.map((r) => Array.from({ length: outF }, (_, o) => r.reduce((s, v, c) => s + v * w[o * r.length + c], 0)));
  const inner = H * dk;
  const q = lin(xq, W.q, inner), k = lin(kv, W.k, inner), v = lin(kv, W.v, inner);
  const ctx = xq.map(() => new Array(inner).fill(0));
  for (let h = 0; h < H; h++) for (let i = 0; i < xq.length; i++) {
    const logits = kv.map((_, j) => {
      if (causal && j > i) return -Infinity;
      let s = 0;
      for (let c = 0; c < dk; c++) s += q[i][h * dk + c] * k[j][h * dk + c];
      return s * scale + (bias ? bias(h, i, j) : 0);
    });
    const mx = Math.max(...logits), e = logits.map((l) => Math.exp(l - mx)), z = e.reduce((a, b) => a + b, 0);
    for (let j = 0; j < kv.length; j++) for (let c = 0; c < dk; c++) ctx[i][h * dk + c] += (e[j] / z) * v[j][h * dk + c];
  }
  return lin(ctx, W.o, W.o.length / inner);
}

test('no 1/sqrt(d) scaling: block 1 self- and cross-attention sub-layers equal a loop reference with scale 1', () => {
  const { m, x, cfg, c } = micro({ layers: 2 });
  m.eval();
  const N = cfg.numQueries, d = cfg.dModel, H = cfg.heads, dk = cfg.dKv, eps = cfg.eps;
  const blk = m.decoder.block.get(1);
  const hIn = randn([2, N, d], { dtype: 'f64', generator: new Generator(9) });
  const rms = (r: number[], w: number[]) => {
    const s = 1 / Math.sqrt(r.reduce((a, v) => a + v * v, 0) / r.length + eps);
    return r.map((v, i) => v * s * w[i]);
  };
  const weights = (a: typeof blk.selfAttn.SelfAttention) => ({ q: arr(a.q.weight), k: arr(a.k.weight), v: arr(a.v.weight), o: arr(a.o.weight) });
  noGrad(() => tidy(() => {
    const bias = m.decoder.positionBias(N), B = arr(bias);
    const biasAt = (h: number, i: number, j: number) => B[(h * N + i) * N + j];
    const xs = arr(hIn), vs = arr(x), T = x.shape[1], w = c.vision.width;
    const selfOut = arr(blk.selfAttn.forward(hIn, bias));
    const crossOut = arr(blk.crossAttn.forward(hIn, x));
    const lnS = arr(blk.selfAttn.layer_norm.weight!), lnC = arr(blk.crossAttn.layer_norm.weight!);
    for (let b = 0; b < 2; b++) {
      const rows = Array.from({ length: N }, (_, i) => xs.slice((b * N + i) * d, (b * N + i + 1) * d));
      const vis = Array.from({ length: T }, (_, t) => vs.slice((b * T + t) * w, (b * T + t + 1) * w));
      const normed = rows.map((r) => rms(r, lnS));
      const refSelf = refAttention(normed, normed, weights(blk.selfAttn.SelfAttention), H, dk, biasAt, true, 1).map((r, i) => r.map((v, k) => v + rows[i][k]));
      const got = selfOut.slice(b * N * d, (b + 1) * N * d);
      close(got, refSelf.flat(), 1e-10, `self-attention sample ${b}`);
      const scaled = refAttention(normed, normed, weights(blk.selfAttn.SelfAttention), H, dk, biasAt, true, dk ** -0.5).map((r, i) => r.map((v, k) => v + rows[i][k]));
      assert.ok(maxAbsDiff(got, scaled.flat()) > 1e-6, 'a 1/sqrt(d_kv) scaled reference must differ');
      const refCross = refAttention(rows.map((r) => rms(r, lnC)), vis, weights(blk.crossAttn.EncDecAttention), H, dk, null, false, 1).map((r, i) => r.map((v, k) => v + rows[i][k]));
      close(crossOut.slice(b * N * d, (b + 1) * N * d), refCross.flat(), 1e-10, `cross-attention sample ${b}`);
    }
    // the FFN sub-layer: x + wo(relu(wi(rms(x))))
    const ff = blk.ff, wi = arr(ff.DenseReluDense.wi.weight), wo = arr(ff.DenseReluDense.wo.weight), lnF = arr(ff.layer_norm.weight!);
    const refFF = Array.from({ length: 2 * N }, (_, r) => {
      const row = xs.slice(r * d, (r + 1) * d), n = rms(row, lnF);
      const hid = Array.from({ length: cfg.dFF }, (_, o) => Math.max(0, n.reduce((s, v, i) => s + v * wi[o * d + i], 0)));
      return row.map((v, o) => v + hid.reduce((s, hv, i) => s + hv * wo[o * cfg.dFF + i], 0));
    });
    close(arr(ff.forward(hIn)), refFF.flat(), 1e-10, 'feed-forward');
  }));
});

// ---- dropout --------------------------------------------------------------------------------

test('dropout: eval is deterministic and drop-free; train is random but reproducible from the generator', () => {
  const a = micro({ dropout: 0.1 }, 'f32', 5), b = micro({ dropout: 0.1 }, 'f32', 5);
  const x = a.x;
  noGrad(() => tidy(() => {
    a.m.eval();
    b.m.eval();
    const e1 = arr(a.m.forward(x)), e2 = arr(a.m.forward(x)), e3 = arr(b.m.forward(x));
    assert.equal(e1, e2, 'eval twice');
    assert.equal(e1, e3, 'eval, same seed');
    // eval with dropout 0.1 equals the same weights with dropout 0
    const z = micro({ dropout: 0 }, 'f32', 5).m.eval();
    assert.equal(arr(z.forward(x)), e1, 'eval ignores p');
    a.m.train();
    b.m.train();
    const t1 = arr(a.m.forward(x)), u1 = arr(b.m.forward(x));
    const t2 = arr(a.m.forward(x)), u2 = arr(b.m.forward(x));
    assert.equal(t1, u1, 'train, same generator seed: same masks');
    assert.equal(t2, u2, 'train, second step: same masks');
    assert.ok(maxAbsDiff(t1, e1) > 1e-4, 'train differs from eval');
    assert.ok(maxAbsDiff(t1, t2) > 1e-4, 'the generator advances between steps');
    // dropout p = 1 zeroes everything before the projection: the output is the projection bias
    const all = micro({ dropout: 1 }, 'f32', 5).m.train();
    const y = arr(all.forward(x)), pb = arr(all.projection.bias!);
    close(y, y.map((_, i) => pb[i % pb.length]), 0, 'p = 1');
  }));
});

// ---- initialisation, names, counts ----------------------------------------------------------

test('T5 initialisation: std of q, k, v, o, wi, wo, rel-bias, queries; norms at 1', () => {
  const cfg: CformerConfig = { numQueries: 32, layers: 1, dModel: 128, heads: 8, dKv: 16, dFF: 512, relBuckets: 32, relMaxDistance: 128, dropout: 0.1, eps: 1e-6 };
  const m = new CausalTransformer(cfg, 96, 80, { generator: new Generator(11) });
  const sd = m.stateDict();
  const std = (t: Tensor) => {
    const v = arr(t), mu = v.reduce((a, b) => a + b, 0) / v.length;
    return { mu, sd: Math.sqrt(v.reduce((a, b) => a + (b - mu) ** 2, 0) / v.length) };
  };
  const d = cfg.dModel, inner = cfg.heads * cfg.dKv;
  const expect: [string, number, number][] = [
    ['causal_tokens', 0.02, 0.05],
    ['decoder.block.0.layer.0.SelfAttention.q.weight', (d * cfg.dKv) ** -0.5, 0.05],
    ['decoder.block.0.layer.0.SelfAttention.k.weight', d ** -0.5, 0.05],
    ['decoder.block.0.layer.0.SelfAttention.v.weight', d ** -0.5, 0.05],
    ['decoder.block.0.layer.0.SelfAttention.o.weight', inner ** -0.5, 0.05],
    ['decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', d ** -0.5, 0.2],
    ['decoder.block.0.layer.1.EncDecAttention.q.weight', (d * cfg.dKv) ** -0.5, 0.05],
    ['decoder.block.0.layer.1.EncDecAttention.k.weight', d ** -0.5, 0.05],
    ['decoder.block.0.layer.1.EncDecAttention.v.weight', d ** -0.5, 0.05],
    ['decoder.block.0.layer.1.EncDecAttention.o.weight', inner ** -0.5, 0.05],
    ['decoder.block.0.layer.2.DenseReluDense.wi.weight', d ** -0.5, 0.05],
    ['decoder.block.0.layer.2.DenseReluDense.wo.weight', cfg.dFF ** -0.5, 0.05],
    ['projection.weight', 1 / Math.sqrt(3 * d), 0.05], // kaiming-uniform(a = sqrt 5): U(+-1/sqrt(fanIn))
  ];
  for (const [n, s, tol] of expect) {
    const got = std(sd[n]);
    assert.ok(Math.abs(got.sd / s - 1) < tol, `${n}: std ${got.sd}, expected ${s}`);
    assert.ok(Math.abs(got.mu) < 4 * s / Math.sqrt(sd[n].numel) + 1e-9, `${n}: mean ${got.mu}`);
  }
  assert.equal(sd['decoder.block.0.layer.1.EncDecAttention.k.weight'].shape, [inner, 96]);
  for (const n of Object.keys(sd).filter((k) => k.endsWith('layer_norm.weight'))) assert.ok(arr(sd[n]).every((v) => v === 1), n);
  assert.ok(arr(sd['projection.bias']).every((v) => Math.abs(v) <= 1 / Math.sqrt(d)));
  // same generator seed, same weights
  const again = new CausalTransformer(cfg, 96, 80, { generator: new Generator(11) }).stateDict();
  for (const n of Object.keys(sd)) assert.equal(arr(again[n]), arr(sd[n]), n);
});

test('state-dict names follow HF T5 decoder naming under cformer.', () => {
  const { m, cfg } = micro();
  const sd = m.stateDict();
  const names: string[] = ['causal_tokens'];
  for (let i = 0; i < cfg.layers; i++) {
    const p = `decoder.block.${i}.layer`;
    for (const w of ['q', 'k', 'v', 'o']) names.push(`${p}.0.SelfAttention.${w}.weight`);
    if (i === 0) names.push(`${p}.0.SelfAttention.relative_attention_bias.weight`);
    names.push(`${p}.0.layer_norm.weight`);
    for (const w of ['q', 'k', 'v', 'o']) names.push(`${p}.1.EncDecAttention.${w}.weight`);
    names.push(`${p}.1.layer_norm.weight`, `${p}.2.DenseReluDense.wi.weight`, `${p}.2.DenseReluDense.wo.weight`, `${p}.2.layer_norm.weight`);
  }
  names.push('decoder.final_layer_norm.weight', 'projection.weight', 'projection.bias');
  assert.equal(Object.keys(sd).sort(), names.sort());
  const c = preset('micro'), inner = cfg.heads * cfg.dKv;
  assert.equal(sd.causal_tokens.shape, [1, cfg.numQueries, cfg.dModel]);
  assert.equal(sd['decoder.block.1.layer.1.EncDecAttention.k.weight'].shape, [inner, c.vision.width]);
  assert.equal(sd['decoder.block.1.layer.1.EncDecAttention.o.weight'].shape, [cfg.dModel, inner]);
  assert.equal(sd['decoder.block.0.layer.2.DenseReluDense.wi.weight'].shape, [cfg.dFF, cfg.dModel]);
  assert.equal(sd['projection.weight'].shape, [c.llm.hidden, cfg.dModel]);
  assert.equal(m.namedBuffers(), []);
  // a state dict round-trips into a fresh model (strict)
  const other = micro({}, 'f64', 77).m;
  other.loadStateDict(sd);
  m.eval();
  other.eval();
  const x = randn([1, 5, c.vision.width], { dtype: 'f64' });
  noGrad(() => tidy(() => assert.equal(arr(other.forward(x)), arr(m.forward(x)))));
});

test('emu-14b on meta: ~0.13B parameters (125.1M stack + 3.9M projection)', () => {
  const c = preset('emu-14b');
  const m = new CausalTransformer(c.cformer, c.vision.width, c.llm.hidden, { device: 'meta' });
  const total = m.numParameters(), proj = m.projection.numParameters(), stack = m.decoder.numParameters();
  const perBlock = m.decoder.block.get(1).numParameters();
  console.log(`  cformer emu-14b: ${total} params (${(total / 1e9).toFixed(4)}B): decoder ${stack}, per block ${perBlock}, projection ${proj}, queries ${m.causal_tokens.numel}`);
  // per block: 4*768^2 self + 2*768^2 + 2*1408*768 cross + 2*768*3072 FFN + 3*768 norms
  assert.is(perBlock, 4 * 768 * 768 + 2 * 768 * 768 + 2 * 1408 * 768 + 2 * 768 * 3072 + 3 * 768);
  assert.is(perBlock, 10_422_528);
  assert.is(stack, 12 * perBlock + 32 * 12 + 768);
  assert.is(proj, 768 * 5120 + 5120);
  assert.is(total, 129_033_344);
  assert.ok(total > 0.125e9 && total < 0.135e9);
});

test('bf16 parameters (as Emu casts them): output bf16, close to f32; attention softmax runs in f32', () => {
  const c = preset('tiny');
  const m = new CausalTransformer(c.cformer, c.vision.width, c.llm.hidden, { generator: new Generator(31) }).eval();
  const x = randn([2, visionTokens(c.vision.imageSize, c.vision.patchSize), c.vision.width], { generator: new Generator(32) });
  const y32 = noGrad(() => arr(m.forward(x)));
  m.to('bf16');
  noGrad(() => tidy(() => {
    const y = m.forward(x.to('bf16'));
    assert.is(y.dtype, 'bf16');
    const y16 = arr(y.to('f32')), scale = Math.max(...y32.map(Math.abs));
    assert.ok(maxAbsDiff(y16, y32) < 0.03 * scale, `bf16 vs f32: ${maxAbsDiff(y16, y32)} (scale ${scale})`);
  }));
  tidy(() => sum(m.forward(x.to('bf16'))).backward());
  assert.ok(m.parameters().every((p) => p.grad && p.grad.dtype === 'bf16'));
  m.zeroGrad();
});

// ---- gradients ------------------------------------------------------------------------------

test('gradients reach every parameter and the vision tokens (finite, non-zero)', () => {
  for (const dropout of [0, 0.1]) {
    const { m, x } = micro({ dropout }, 'f32', 21);
    m.train();
    const xv = x.clone().requiresGrad_();
    tidy(() => {
      const y = m.forward(xv);
      const w = randn(y.shape as number[], { generator: new Generator(22) });
      sum(mul(y, w)).backward();
    });
    for (const [n, p] of m.namedParameters()) {
      assert.ok(p.grad, `${n} has a grad (dropout ${dropout})`);
      const g = arr(p.grad!);
      assert.ok(g.every(Number.isFinite), `${n} grad finite`);
      assert.ok(g.some((v) => v !== 0), `${n} grad non-zero (dropout ${dropout})`);
    }
    const gx = arr(xv.grad!);
    assert.equal(xv.grad!.shape, x.shape);
    assert.ok(gx.every(Number.isFinite) && gx.some((v) => v !== 0), 'vision tokens grad');
    m.zeroGrad();
  }
});

test.run();
