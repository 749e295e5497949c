// nn.test.ts: src/nn's functional ops against plain references (JS loops over the same
// numbers), their gradients by finite differences (gradcheck, f64, small odd shapes), the
// Module contract (names, stateDict round trips and strict errors, train/eval, to, counts),
// the initialisers, and LoRA (only LoRA weights train, merge/unmerge keep the output).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  applyLoRA, CheckpointError, Conv2d, Dropout, Embedding, F, Generator, gradcheck, GroupNorm, init, LayerNorm, Linear, LoRALinear,
  manualSeed, memoryStats, Module, ModuleDict, ModuleList, randint, randn, ReLU, RMSNorm, Sequential, tensor, Tensor, tidy, zeros, type DType,
} from '../src/index.ts';

const f64 = (shape: number[], seed: number, grad = true): Tensor => {
  const t = randn(shape, { dtype: 'f64', generator: new Generator(seed) });
  return grad ? t.requiresGrad_() : t;
};
const arr = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);

function close(actual: Tensor | number[], expected: number[], tol = 1e-5, what = ''): void {
  const a = actual instanceof Tensor ? arr(actual) : actual;
  assert.is(a.length, expected.length, `${what} length`);
  a.forEach((v, i) => {
    const e = expected[i];
    const ok = Number.isNaN(e) ? Number.isNaN(v) : Math.abs(v - e) <= tol * (1 + Math.abs(e));
    if (!ok) assert.unreachable(`${what}[${i}]: got ${v}, expected ${e}`);
  });
}

/** Normalises consecutive groups of n values of xs: (x - mean) / sqrt(var + eps). */
function normGroups(xs: number[], n: number, eps: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < xs.length; s += n) {
    const g = xs.slice(s, s + n);
    const mu = g.reduce((a, b) => a + b, 0) / n;
    const v = g.reduce((a, b) => a + (b - mu) ** 2, 0) / n;
    for (const x of g) out.push((x - mu) / Math.sqrt(v + eps));
  }
  return out;
}

// ---- functional: values --------------------------------------------------------------------

test('linear is x W^T + b for any leading dims', () => tidy(() => {
  const x = f64([2, 3, 5], 1, false), w = f64([4, 5], 2, false), b = f64([4], 3, false);
  const X = arr(x), W = arr(w), B = arr(b);
  const ref: number[] = [];
  for (let r = 0; r < 6; r++) for (let o = 0; o < 4; o++) {
    let s = B[o];
    for (let i = 0; i < 5; i++) s += X[r * 5 + i] * W[o * 5 + i];
    ref.push(s);
  }
  const y = F.linear(x, w, b);
  assert.equal(y.shape, [2, 3, 4]);
  close(y, ref, 1e-12, 'linear');
  close(F.linear(x, w), ref.map((v, i) => v - B[i % 4]), 1e-12, 'linear without bias');
  assert.throws(() => F.linear(x, f64([4, 6], 2, false)), /linear: input \[2,3,5\] does not end in 6 features/);
}));

test('embedding looks up rows; the padding row gets no gradient', () => tidy(() => {
  const w = f64([5, 3], 4);
  const ids = tensor([[1, 0, 4], [0, 2, 0]], { dtype: 'i32' });
  const y = F.embedding(ids, w, { paddingIdx: 0 });
  assert.equal(y.shape, [2, 3, 3]);
  const W = arr(w);
  close(y, [1, 0, 4, 0, 2, 0].flatMap((i) => W.slice(i * 3, i * 3 + 3)), 0, 'embedding rows');
  y.sum().backward();
  close(w.grad!, [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1], 0, 'grad (row 0 is padding)');
  w.zeroGrad();
  const neg = F.embedding(ids, w, { paddingIdx: -1 });  // row 4
  neg.sum().backward();
  close(w.grad!.select(0, 4), [0, 0, 0], 0, 'paddingIdx -1');
  w.zeroGrad();
}));

test('layerNorm, rmsNorm and groupNorm match their formulas', () => tidy(() => {
  const x = f64([2, 3, 4], 5, false), X = arr(x);
  const w = f64([4], 6, false), b = f64([4], 7, false), W = arr(w), B = arr(b);
  close(F.layerNorm(x, 4, w, b), normGroups(X, 4, 1e-5).map((v, i) => v * W[i % 4] + B[i % 4]), 1e-10, 'layerNorm');
  close(F.layerNorm(x, [3, 4]), normGroups(X, 12, 1e-5), 1e-10, 'layerNorm over two dims');
  const rms: number[] = [];
  for (let s = 0; s < X.length; s += 4) {
    const g = X.slice(s, s + 4);
    const r = 1 / Math.sqrt(g.reduce((a, v) => a + v * v, 0) / 4 + 1e-6);
    g.forEach((v, j) => rms.push(v * r * W[j]));
  }
  close(F.rmsNorm(x, w), rms, 1e-10, 'rmsNorm');
  // bf16 in, bf16 out, normalised in f32.
  const yb = F.rmsNorm(x.to('bf16'), w.to('bf16'));
  assert.is(yb.dtype, 'bf16');
  close(yb, rms, 2e-2, 'rmsNorm bf16');
  // groupNorm: x [2, 6, 5] in 3 groups of 2 channels; per-channel affine.
  const g = f64([2, 6, 5], 8, false), G = arr(g);
  const gw = f64([6], 9, false), gb = f64([6], 10, false), GW = arr(gw), GB = arr(gb);
  const ref = normGroups(G, 10, 1e-5).map((v, i) => v * GW[Math.floor(i / 5) % 6] + GB[Math.floor(i / 5) % 6]);
  close(F.groupNorm(g, 3, gw, gb), ref, 1e-10, 'groupNorm');
  const g4 = f64([1, 4, 2, 3], 11, false);
  close(F.groupNorm(g4, 2), normGroups(arr(g4), 12, 1e-5), 1e-10, 'groupNorm 4-d');
  assert.throws(() => F.groupNorm(g, 4), /groupNorm: numGroups 4 must be a positive divisor of the 6 channels/);
}));

test('dropout: identity when off, reproducible from the seed, kept values scaled by 1/(1-p)', () => tidy(() => {
  const x = randn([64, 64], { generator: new Generator(3) });
  const X = arr(x);
  close(F.dropout(x, 0.5, false), X, 0, 'eval');
  close(F.dropout(x, 0, true), X, 0, 'p = 0');
  close(F.dropout(x, 1, true), X.map(() => 0), 0, 'p = 1');
  const a = F.dropout(x, 0.25, true, { generator: new Generator(9) });
  const b = F.dropout(x, 0.25, true, { generator: new Generator(9) });
  assert.equal(arr(a), arr(b));
  let kept = 0;
  arr(a).forEach((v, i) => {
    if (v === 0) return;
    kept++;
    assert.ok(Math.abs(v - X[i] / 0.75) <= 1e-6 * (1 + Math.abs(v)), `element ${i} scaled`);
  });
  assert.ok(Math.abs(kept / X.length - 0.75) < 0.03, `kept fraction ${kept / X.length}`);
  manualSeed(1);
  const c = F.dropout(x, 0.25);
  manualSeed(1);
  assert.equal(arr(F.dropout(x, 0.25)), arr(c), 'the default generator is seeded by manualSeed');
  const d = new Dropout(0.5);
  d.eval();
  close(d.forward(x), X, 0, 'Dropout module in eval mode');
}));

/** -log softmax(l)[t] per row, with label smoothing s. */
function ceRef(L: number[], T: number[], V: number, s = 0): number[] {
  return T.map((t, r) => {
    const row = L.slice(r * V, r * V + V);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const nll = lse - row[t];
    const smooth = row.reduce((a, v) => a + (lse - v), 0) / V;
    return (1 - s) * nll + s * smooth;
  });
}

test('crossEntropy: leading dims, ignoreIndex, reductions, label smoothing', () => tidy(() => {
  const V = 5;
  const logits = f64([2, 3, V], 12, false), L = arr(logits);
  const T = [1, -100, 4, 0, 2, -100];
  const targets = tensor([[1, -100, 4], [0, 2, -100]], { dtype: 'i32' });
  const per = ceRef(L, T.map((t) => (t < 0 ? 0 : t)), V).map((v, i) => (T[i] < 0 ? 0 : v));
  const none = F.crossEntropy(logits, targets, { reduction: 'none' });
  assert.equal(none.shape, [2, 3]);
  close(none, per, 1e-10, 'none');
  const total = per.reduce((a, b) => a + b, 0);
  close(F.crossEntropy(logits, targets, { reduction: 'sum' }), [total], 1e-10, 'sum');
  close(F.crossEntropy(logits, targets), [total / 4], 1e-10, 'mean over the 4 kept targets');
  const sm = ceRef(L, T.map((t) => (t < 0 ? 0 : t)), V, 0.1).map((v, i) => (T[i] < 0 ? 0 : v));
  close(F.crossEntropy(logits, targets, { labelSmoothing: 0.1 }), [sm.reduce((a, b) => a + b, 0) / 4], 1e-10, 'label smoothing');
  const t2 = tensor([[1, 7, 4], [0, 2, 7]], { dtype: 'i32' });
  close(F.crossEntropy(logits, t2, { ignoreIndex: 7 }), [total / 4], 1e-10, 'custom ignoreIndex');
  // Every target ignored: mean is 0/0 = NaN (as PyTorch), sum is 0.
  const allIgnored = tensor([[-100, -100, -100], [-100, -100, -100]], { dtype: 'i32' });
  close(F.crossEntropy(logits, allIgnored), [NaN], 0, 'all ignored, mean');
  close(F.crossEntropy(logits, allIgnored, { reduction: 'sum' }), [0], 0, 'all ignored, sum');
  assert.throws(() => F.crossEntropy(logits, tensor([[1, 5, 0], [0, 0, 0]], { dtype: 'i32' })), /crossEntropy: target 5 is out of range for 5 classes/);
  assert.throws(() => F.crossEntropy(logits, tensor([1, 2], { dtype: 'i32' })), /crossEntropy: targets \[2\] must be/);
  const lb = F.crossEntropy(logits.to('bf16'), targets);
  assert.is(lb.dtype, 'bf16');
  close(lb, [total / 4], 2e-2, 'bf16 logits');
}));

test('mseLoss reductions', () => tidy(() => {
  const a = f64([3, 4], 13, false), b = f64([3, 4], 14, false);
  const d = arr(a).map((v, i) => (v - arr(b)[i]) ** 2);
  close(F.mseLoss(a, b, { reduction: 'none' }), d, 1e-12, 'none');
  close(F.mseLoss(a, b, { reduction: 'sum' }), [d.reduce((x, y) => x + y, 0)], 1e-12, 'sum');
  close(F.mseLoss(a, b), [d.reduce((x, y) => x + y, 0) / 12], 1e-12, 'mean');
}));

interface AttnRef {
  causal?: boolean;
  bias?: number[];  // [H, Lq, Lk]
  pad?: boolean[][];  // [B][Lk], true = ignore
  scale?: number;
}
/** Attention for q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] with explicit loops. */
function attnRef(q: Tensor, k: Tensor, v: Tensor, o: AttnRef): number[] {
  const [B, H, Lq, D] = q.shape, Lk = k.shape[2], Dv = v.shape[3];
  const Q = arr(q), K = arr(k), Vv = arr(v);
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) {
    const s: number[] = [];
    for (let j = 0; j < Lk; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += Q[((b * H + h) * Lq + i) * D + d] * K[((b * H + h) * Lk + j) * D + d];
      let x = dot * scale + (o.bias ? o.bias[(h * Lq + i) * Lk + j] : 0);
      if ((o.causal && j > i) || o.pad?.[b][j]) x = -Infinity;
      s.push(x);
    }
    const m = Math.max(...s);
    const e = s.map((x) => (m === -Infinity ? 0 : Math.exp(x - m)));
    const z = e.reduce((a, c) => a + c, 0);
    for (let c = 0; c < Dv; c++) {
      let acc = 0;
      for (let j = 0; j < Lk; j++) acc += (z === 0 ? 0 : e[j] / z) * Vv[((b * H + h) * Lk + j) * Dv + c];
      out.push(acc);
    }
  }
  return out;
}

test('scaledDotProductAttention matches softmax(q k^T * scale + bias + mask) v', () => tidy(() => {
  const q = f64([2, 3, 4, 5], 20, false), k = f64([2, 3, 6, 5], 21, false), v = f64([2, 3, 6, 2], 22, false);
  const sdpa = F.scaledDotProductAttention;
  close(sdpa(q, k, v), attnRef(q, k, v, {}), 1e-10, 'plain, Lq != Lk');
  close(sdpa(q, k, v, { causal: true }), attnRef(q, k, v, { causal: true }), 1e-10, 'causal, top-left aligned');
  close(sdpa(q, k, v, { scale: 1 }), attnRef(q, k, v, { scale: 1 }), 1e-10, 'scale 1');
  const bias = f64([3, 4, 6], 23, false);
  close(sdpa(q, k, v, { bias }), attnRef(q, k, v, { bias: arr(bias) }), 1e-10, 'bias [H, Lq, Lk]');
  close(sdpa(q, k, v, { bias: bias.unsqueeze(0) }), attnRef(q, k, v, { bias: arr(bias) }), 1e-10, 'bias [1, H, Lq, Lk]');
  const pad = [[false, false, true, false, true, true], [true, true, true, true, true, true]];
  const kpm = tensor(pad);
  const y = sdpa(q, k, v, { keyPaddingMask: kpm, causal: true, bias });
  close(y, attnRef(q, k, v, { pad, causal: true, bias: arr(bias) }), 1e-10, 'key padding + causal + bias');
  close(y.select(0, 1), Array(3 * 4 * 2).fill(0), 0, 'fully masked rows are zeros');
  // A fully masked row from the causal mask alone: key padding hides key 0, query 0 sees only key 0.
  const pad0 = [[true, false, false, false, false, false], [false, false, false, false, false, false]];
  const y0 = sdpa(q, k, v, { keyPaddingMask: tensor(pad0), causal: true });
  close(y0, attnRef(q, k, v, { pad: pad0, causal: true }), 1e-10, 'causal row 0 fully masked');
  assert.ok(arr(y0).every(Number.isFinite));
  // 3-d inputs (no head dim) and dropout off in eval.
  const q3 = f64([2, 4, 5], 24, false), k3 = f64([2, 6, 5], 25, false), v3 = f64([2, 6, 2], 26, false);
  close(sdpa(q3, k3, v3, { dropoutP: 0.5, training: false }), attnRef(q3.unsqueeze(1), k3.unsqueeze(1), v3.unsqueeze(1), {}), 1e-10, '3-d');
}));

// ---- functional: gradients -----------------------------------------------------------------

test('gradcheck: linear, embedding, norms, dropout', () => {
  gradcheck((x, w, b) => F.linear(x, w, b), [f64([2, 3, 5], 30), f64([3, 5], 31), f64([3], 32)]);
  // With a padding id present the gradient is zero by design (not the derivative): checked above.
  gradcheck((w) => F.embedding(tensor([[2, 0], [0, 2]], { dtype: 'i32' }), w), [f64([3, 5], 33)]);
  gradcheck((w) => F.embedding(tensor([[2, 0], [0, 2]], { dtype: 'i32' }), w, { paddingIdx: 1 }), [f64([3, 5], 33)]);
  gradcheck((x, w, b) => F.layerNorm(x, 5, w, b), [f64([3, 5], 34), f64([5], 35), f64([5], 36)]);
  gradcheck((x) => F.layerNorm(x, [3, 5]), [f64([2, 3, 5], 37)]);
  gradcheck((x, w) => F.rmsNorm(x, w), [f64([3, 5], 38), f64([5], 39)]);
  gradcheck((x, w, b) => F.groupNorm(x, 3, w, b), [f64([2, 6, 3], 40), f64([6], 41), f64([6], 42)]);
  gradcheck((x) => F.dropout(x, 0, true), [f64([3, 5], 43)]);
  gradcheck((x) => F.dropout(x, 0.4, true, { generator: new Generator(7) }), [f64([3, 5], 44)]);
});

test('gradcheck: crossEntropy (ignoreIndex, smoothing, reductions), mseLoss', () => {
  const t = tensor([[1, -100, 3], [0, 2, 2]], { dtype: 'i32' });
  gradcheck((l) => F.crossEntropy(l, t), [f64([2, 3, 5], 50)]);
  gradcheck((l) => F.crossEntropy(l, t, { labelSmoothing: 0.2, reduction: 'sum' }), [f64([2, 3, 5], 51)]);
  gradcheck((l) => F.crossEntropy(l, t, { reduction: 'none' }), [f64([2, 3, 5], 52)]);
  gradcheck((a, b) => F.mseLoss(a, b), [f64([3, 5], 53), f64([3, 5], 54)]);
});

test('gradcheck: scaledDotProductAttention (causal, bias, key padding, fully masked rows)', () => {
  const kpm = tensor([[false, true, false, false, true], [true, true, true, true, true]]);
  gradcheck((q, k, v, bias) => F.scaledDotProductAttention(q, k, v, { causal: true, bias, keyPaddingMask: kpm }),
    [f64([2, 2, 3, 3], 60), f64([2, 2, 5, 3], 61), f64([2, 2, 5, 2], 62), f64([2, 3, 5], 63)]);
  gradcheck((q, k, v) => F.scaledDotProductAttention(q, k, v, { scale: 1 }), [f64([3, 4, 3], 64), f64([3, 2, 3], 65), f64([3, 2, 3], 66)]);
  gradcheck((q, k, v) => F.scaledDotProductAttention(q, k, v, { dropoutP: 0.3, training: true, generator: new Generator(4) }),
    [f64([1, 3, 3], 67), f64([1, 4, 3], 68), f64([1, 4, 2], 69)]);
});

// ---- Module ---------------------------------------------------------------------------------

class Block extends Module {
  attn: ModuleDict<Linear>;
  norm: LayerNorm;
  constructor() {
    super();
    this.attn = this.module('attn', new ModuleDict({ q: new Linear(4, 4), v: new Linear(4, 4, { bias: false }) }));
    this.norm = this.module('norm', new LayerNorm(4));
  }
  forward(x: Tensor): Tensor {
    return this.norm.forward(this.attn.get('q').forward(x).add(this.attn.get('v').forward(x)));
  }
}
class Net extends Module {
  embed: Embedding;
  layers: ModuleList<Block>;
  head: Linear;
  constructor() {
    super();
    this.embed = this.module('embed', new Embedding(7, 4));
    this.layers = this.module('layers', new ModuleList([new Block(), new Block()]));
    this.head = this.module('head', new Linear(4, 7));
    this.buffer('step', zeros([1], { dtype: 'i32' }));
    this.buffer('cache', zeros([2]), { persistent: false });
  }
  forward(ids: Tensor): Tensor {
    return tidy(() => {
      let h = this.embed.forward(ids);
      for (const b of this.layers) h = b.forward(h);
      return this.head.forward(h);
    });
  }
}

test('Module: dotted names, counts, train/eval, apply, zeroGrad', () => tidy(() => {
  manualSeed(0);
  const net = new Net();
  const names = net.namedParameters().map(([n]) => n);
  assert.equal(names, [
    'embed.weight', 'layers.0.attn.q.weight', 'layers.0.attn.q.bias', 'layers.0.attn.v.weight', 'layers.0.norm.weight', 'layers.0.norm.bias',
    'layers.1.attn.q.weight', 'layers.1.attn.q.bias', 'layers.1.attn.v.weight', 'layers.1.norm.weight', 'layers.1.norm.bias', 'head.weight', 'head.bias',
  ]);
  assert.equal(net.namedBuffers().map(([n]) => n), ['step', 'cache']);
  assert.equal(Object.keys(net.stateDict()), ['step', ...names], 'stateDict: own members first, then submodules in order');
  assert.ok(!('cache' in net.stateDict()), 'non-persistent buffers are not saved');
  assert.is(net.numParameters(), 7 * 4 + 2 * (20 + 16 + 8) + 4 * 7 + 7);
  assert.is(net.layers.get(1).attn.get('q').weight.requiresGrad, true);
  assert.is(net.getModule('head'), net.head);
  assert.equal(net.modules().length, 1 + 1 + 1 + 2 * 5 + 1);
  net.eval();
  assert.ok(net.modules().every((m) => !m.training));
  net.train();
  assert.ok(net.modules().every((m) => m.training));
  const seen: string[] = [];
  net.apply((m) => seen.push(m.constructor.name));
  assert.is(seen[seen.length - 1], 'Net');
  const loss = F.crossEntropy(net.forward(tensor([[1, 2, 3]], { dtype: 'i32' })), tensor([[2, 3, 4]], { dtype: 'i32' }));
  loss.backward();
  assert.ok(net.parameters().every((p) => p.grad !== null));
  net.zeroGrad();
  assert.ok(net.parameters().every((p) => p.grad === null));
  // Tied weights count once.
  const first = new Linear(3, 3), last = new Linear(3, 3);
  const tied = new Sequential(first, new ReLU(), last);
  last.param('weight', first.weight);
  assert.is(last.weight, first.weight, 'param() rebinds the field');
  assert.is(tied.numParameters(), 9 + 3 + 3);
  assert.throws(() => tied.get(5), /ModuleList: index 5 is out of range/);
}));

test('Module: stateDict / loadStateDict round trip and strict errors', () => tidy(() => {
  manualSeed(1);
  const a = new Net();
  manualSeed(2);
  const b = new Net();
  const ids = tensor([[0, 3, 6, 2]], { dtype: 'i32' });
  assert.not.equal(arr(a.forward(ids)), arr(b.forward(ids)));
  const res = b.loadStateDict(a.stateDict());
  assert.equal(res, { missingKeys: [], unexpectedKeys: [] });
  assert.equal(arr(a.forward(ids)), arr(b.forward(ids)));
  assert.ok(b.embed.weight.isLeaf && b.embed.weight.requiresGrad, 'parameters stay trainable leaves');

  const sd = { ...a.stateDict() };
  delete sd['head.bias'];
  sd['extra.weight'] = zeros([2]);
  sd['layers.0.norm.weight'] = zeros([5]);
  const err = (() => { try { b.loadStateDict(sd); } catch (e) { return e; } })();
  assert.instance(err, CheckpointError);
  const msg = (err as Error).message;
  assert.match(msg, 'missing keys: head.bias');
  assert.match(msg, 'unexpected keys: extra.weight');
  assert.match(msg, 'layers.0.norm.weight: checkpoint [5], model [4]');
  // Non-strict: missing and unexpected are reported, shape mismatches still throw.
  delete sd['layers.0.norm.weight'];
  const r = b.loadStateDict(sd, { strict: false });
  assert.equal(r, { missingKeys: ['layers.0.norm.weight', 'head.bias'], unexpectedKeys: ['extra.weight'] });
  // Values are cast on load.
  const c = new Net().to('f64');
  c.loadStateDict(a.stateDict());
  close(c.forward(ids), arr(a.forward(ids)), 1e-5, 'f64 copy of an f32 model');
}));

test('Module.to casts float parameters and buffers, keeps int buffers, rebinds fields', () => tidy(() => {
  const net = new Net();
  const before = net.head.weight;
  net.to('f64');
  assert.ok(net.parameters().every((p) => p.dtype === 'f64' && p.requiresGrad && p.isLeaf));
  assert.is(net.stateDict()['head.weight'], net.head.weight, 'the field points at the new tensor');
  assert.ok(before.isDisposed);
  assert.is(net.stateDict().step.dtype, 'i32');
  assert.is(net.namedBuffers()[1][1].dtype, 'f64');
  const y = net.forward(tensor([[1, 2]], { dtype: 'i32' }));
  assert.is(y.dtype, 'f64');
  const meta = new Net().to('meta');
  assert.ok(meta.parameters().every((p) => p.device === 'meta'));
  const big = new Linear(4096, 4096, { device: 'meta' });
  assert.is(big.numParameters(), 4096 * 4096 + 4096);
}));

test('layers: Conv2d, GroupNorm, RMSNorm, Embedding padding row, Sequential', () => tidy(() => {
  manualSeed(3);
  const conv = new Conv2d(4, 6, 3, { padding: 1, groups: 2 });
  assert.equal(conv.weight.shape, [6, 2, 3, 3]);
  const bound = 1 / Math.sqrt(2 * 9);
  assert.ok(arr(conv.weight).every((v) => Math.abs(v) <= bound) && arr(conv.bias!).every((v) => Math.abs(v) <= bound));
  const x = randn([2, 4, 5, 5]);
  const y = new Sequential(conv, new GroupNorm(3, 6)).forward(x);
  assert.equal(y.shape, [2, 6, 5, 5]);
  close(new RMSNorm(5).forward(x.reshape([-1, 5])), arr(F.rmsNorm(x.reshape([-1, 5]))), 0, 'RMSNorm starts at weight 1');
  const e = new Embedding(5, 3, { paddingIdx: 1 });
  close(e.weight.select(0, 1), [0, 0, 0], 0, 'padding row starts at zero');
  assert.ok(e.weight.isLeaf);
}));

test('init: bounds, statistics, reproducibility, in place without autograd', () => tidy(() => {
  const w = new Linear(50, 40).weight;
  init.kaimingUniform_(w, { a: Math.sqrt(5), generator: new Generator(1) });
  const v1 = arr(w);
  assert.ok(v1.every((v) => Math.abs(v) <= 1 / Math.sqrt(50)));
  init.kaimingUniform_(w, { a: Math.sqrt(5), generator: new Generator(1) });
  assert.equal(arr(w), v1, 'same generator, same values');
  assert.ok(w.isLeaf && w.requiresGrad && w.grad === null);
  const big = zeros([200, 100]);
  init.truncNormal_(big, { std: 1, generator: new Generator(2) });
  const t = arr(big);
  assert.ok(t.every((v) => v >= -2 && v <= 2));
  const mean = t.reduce((a, b) => a + b, 0) / t.length;
  assert.ok(Math.abs(mean) < 0.05, `truncNormal mean ${mean}`);
  init.truncNormal_(big, { mean: 1, std: 0.02, a: 0.99, b: 1.01 });
  assert.ok(arr(big).every((v) => Math.abs(v - 1) <= 0.0100001));
  init.xavierUniform_(big, 1, { generator: new Generator(3) });
  assert.ok(arr(big).every((v) => Math.abs(v) <= Math.sqrt(6 / 300) + 1e-7));
  init.kaimingNormal_(big, { nonlinearity: 'relu', generator: new Generator(4) });
  const k = arr(big), std = Math.sqrt(k.reduce((a, b) => a + b * b, 0) / k.length);
  assert.ok(Math.abs(std - Math.sqrt(2 / 100)) < 0.01, `kaimingNormal std ${std}`);
  init.xavierNormal_(big);
  init.normal_(big, 3, 0.5);
  assert.ok(Math.abs(arr(big).reduce((a, b) => a + b, 0) / big.numel - 3) < 0.05);
  init.zeros_(big);
  assert.ok(arr(big).every((v) => v === 0));
  init.ones_(big);
  assert.ok(arr(big).every((v) => v === 1));
  assert.throws(() => init.zeros_(zeros([2], { dtype: 'i32' })), /zeros_: expected a float tensor/);
}));

test('a model built in tidy survives it; training steps leave no tensors behind', () => {
  const net = tidy(() => new Net());
  assert.ok(net.parameters().every((p) => !p.isDisposed));
  const ids = tensor([[1, 2, 0, 4]], { dtype: 'i32' });
  const step = () => tidy(() => {
    F.crossEntropy(net.forward(ids), ids, { ignoreIndex: 0, labelSmoothing: 0.1 }).backward();
    net.zeroGrad();
  });
  step();
  const live = memoryStats().liveTensors;
  for (let i = 0; i < 5; i++) step();
  assert.is(memoryStats().liveTensors, live);
  ids.dispose();
});

// ---- LoRA ------------------------------------------------------------------------------------

test('LoRA: only LoRA weights train; starts equal to the base; merge/unmerge keep the output', () => tidy(() => {
  manualSeed(4);
  const net = new Net();
  const ids = tensor([[1, 5, 2, 0]], { dtype: 'i32' });
  const base = arr(net.forward(ids));
  const replaced = applyLoRA(net, { rank: 2, alpha: 4, targets: ['q', /layers\.1\.attn\.v$/] });
  assert.equal(replaced, ['layers.0.attn.q', 'layers.1.attn.q', 'layers.1.attn.v']);
  const q = net.layers.get(0).attn.get('q') as unknown as LoRALinear;
  assert.instance(q, LoRALinear);
  assert.is(q.scale, 2);
  const trainable = net.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.equal(trainable, replaced.flatMap((n) => [`${n}.loraA`, `${n}.loraB`]));
  close(net.forward(ids), base, 0, 'B = 0: the LoRA model equals the base model');
  assert.ok('layers.0.attn.q.weight' in net.stateDict(), 'base weights keep their names');

  // Train the LoRA weights a little (so B != 0), then merge and unmerge.
  const loss = F.crossEntropy(net.forward(ids), tensor([[2, 3, 4, 5]], { dtype: 'i32' }));
  loss.backward();
  assert.ok(net.parameters().every((p) => (p.requiresGrad ? p.grad !== null : p.grad === null)));
  for (const p of net.parameters()) if (p.grad) init.normal_(p, 0, 0.3, { generator: new Generator(p.numel) });
  net.zeroGrad();
  const unmerged = arr(net.forward(ids));
  assert.not.equal(unmerged, base);
  for (const m of net.modules()) if (m instanceof LoRALinear) m.merge();
  close(net.forward(ids), unmerged, 1e-5, 'merged');
  assert.throws(() => q.merge(), /already merged/);
  for (const m of net.modules()) if (m instanceof LoRALinear) m.unmerge();
  close(net.forward(ids), unmerged, 1e-5, 'unmerged again');
  assert.throws(() => applyLoRA(new Net(), { rank: 2, targets: 'nothing' }), /applyLoRA: no Linear submodule matches nothing/);
}));

test('LoRA dropout acts on the branch only while training', () => tidy(() => {
  const lin = new LoRALinear(new Linear(6, 3, { dtype: 'f64' as DType }), { rank: 2, dropout: 0.5, generator: new Generator(5) });
  init.normal_(lin.loraB, 0, 1);
  const x = randint(0, 3, [4, 6]).to('f64');
  const ref = arr(lin.eval().forward(x));
  assert.not.equal(arr(lin.train().forward(x)), ref);
  lin.eval();
  assert.equal(arr(lin.forward(x)), ref);
}));

test.run();
