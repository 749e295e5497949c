// llama.test.ts: Emu's LLaMA decoder (src/emu/llama.ts) and decoding (src/emu/generate.ts):
// shapes and HF state-dict names, RoPE against the direct formula, causal and padding masks,
// the KV cache against full recomputation (forward, greedy, visual regression), sampling,
// beam search against exhaustive enumeration, parameter counts of emu-14b on meta, gradients.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { F, Generator, memoryStats, noGrad, randn, tensor, Tensor, tidy, cat, narrow, reshape, ones } from '../../src/index.ts';
import { preset, vocabSize, type LlmConfig } from '../../src/emu/config.ts';
import { LlamaForReg, ropeTables } from '../../src/emu/llama.ts';
import { rope as applyRope } from '../../src/tensor/ops/elementwise.ts';
import { generateText, regressVisual, regressVisualFullRecompute, warpLogits } from '../../src/emu/generate.ts';

const micro = (): LlmConfig => preset('micro').llm;
const arr = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);
const maxDiff = (a: Tensor, b: Tensor): number => {
  assert.equal(a.shape, b.shape, 'shapes');
  const x = arr(a), y = arr(b);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};
const model = (seed = 1, opts: { vocabSize?: number; padId?: number | null; initStd?: number } = {}, cfg = micro()) =>
  new LlamaForReg(cfg, { generator: new Generator(seed), initStd: 0.2, ...opts }).eval();
const embeds = (shape: number[], seed: number) => randn(shape, { generator: new Generator(seed) });

/** The slow reference: greedy with the whole sequence recomputed each step, no cache. */
function slowGreedy(lm: LlamaForReg, prefix: Tensor, maxNew: number, eos: number | null): number[] {
  const out: number[] = [];
  noGrad(() => {
    for (let s = 0; s < maxNew; s++) {
      const tok = tidy(() => {
        const parts = [prefix];
        if (out.length) parts.push(lm.embed(tensor([out], { dtype: 'i32' })));
        const { logits } = lm.forward(cat(parts, 1));
        const last = arr(narrow(logits!, 1, logits!.shape[1] - 1, 1));
        return last.indexOf(Math.max(...last));
      });
      out.push(tok);
      if (tok === eos) break;
    }
  });
  return out;
}

/** log-softmax of the next-token logits after prefix + tokens (full recompute). */
function nextLogprobs(lm: LlamaForReg, prefix: Tensor, toks: number[]): number[] {
  return noGrad(() => tidy(() => {
    const parts = [prefix];
    if (toks.length) parts.push(lm.embed(tensor([toks], { dtype: 'i32' })));
    const { logits } = lm.forward(cat(parts, 1));
    return arr(narrow(logits!, 1, logits!.shape[1] - 1, 1).logSoftmax(-1));
  }));
}

test('shapes: hidden, logits, regress; logits can be skipped', () => tidy(() => {
  const lm = model();
  const V = vocabSize(micro());
  const out = lm.forward(embeds([2, 5, 64], 2), { regress: true });
  assert.equal(out.hidden.shape, [2, 5, 64]);
  assert.equal(out.logits!.shape, [2, 5, V]);
  assert.equal(out.regress!.shape, [2, 5, 64]);
  const o2 = lm.forward(embeds([1, 3, 64], 3), { logits: false });
  assert.is(o2.logits, undefined);
  assert.is(o2.regress, undefined);
  assert.equal(lm.embed(tensor([[1, 2, 3]], { dtype: 'i32' })).shape, [1, 3, 64]);
  // The [PAD] row is zero.
  const pad = lm.model.padId!;
  assert.is(pad, micro().baseVocab);  // [PAD] is the first special token
  assert.ok(arr(lm.embed(tensor([pad], { dtype: 'i32' }))).every((v) => v === 0));
}));

test('state-dict names are HF LLaMA\'s, no biases, untied head', () => {
  const lm = model();
  const sd = lm.stateDict();
  const want = ['model.embed_tokens.weight'];
  for (let i = 0; i < 2; i++) {
    for (const p of ['q', 'k', 'v', 'o']) want.push(`model.layers.${i}.self_attn.${p}_proj.weight`);
    for (const p of ['gate', 'up', 'down']) want.push(`model.layers.${i}.mlp.${p}_proj.weight`);
    want.push(`model.layers.${i}.input_layernorm.weight`, `model.layers.${i}.post_attention_layernorm.weight`);
  }
  want.push('model.norm.weight', 'lm_head.weight', 'stu_regress_head.weight');
  assert.equal(Object.keys(sd).sort(), want.sort());
  assert.equal(sd['model.layers.0.mlp.gate_proj.weight'].shape, [176, 64]);
  assert.equal(sd['model.layers.0.mlp.down_proj.weight'].shape, [64, 176]);
  assert.equal(sd['lm_head.weight'].shape, [vocabSize(micro()), 64]);
  assert.equal(sd['model.embed_tokens.weight'].shape, [vocabSize(micro()), 64]);
  assert.equal(sd['stu_regress_head.weight'].shape, [64, 64]);
  assert.ok(sd['lm_head.weight'] !== sd['model.embed_tokens.weight']);
});

test('RoPE rotate-half matches the direct formula', () => tidy(() => {
  const D = 8, L = 5, base = 10000, h = D / 2;
  const x = embeds([1, 2, L, D], 4);
  const pos = [[0, 1, 2, 7, 100]];
  const [cos, sin] = ropeTables(pos, D, base, 'f32', 'cpu');
  const y = arr(applyRope(x, cos, sin)), X = arr(x);
  for (let hd = 0; hd < 2; hd++) for (let l = 0; l < L; l++) for (let i = 0; i < h; i++) {
    const th = pos[0][l] * base ** (-(2 * i) / D), at = (hd * L + l) * D;
    const a = X[at + i], b = X[at + i + h];
    const e1 = a * Math.cos(th) - b * Math.sin(th), e2 = b * Math.cos(th) + a * Math.sin(th);
    assert.ok(Math.abs(y[at + i] - e1) < 1e-4 && Math.abs(y[at + i + h] - e2) < 1e-4, `rope at ${hd},${l},${i}`);
  }
  // Attention scores depend only on the relative position: <R(p)q, R(p+d)k> is the same for p = 0 and p = 9.
  const q = embeds([1, 1, 1, D], 5), k = embeds([1, 1, 1, D], 6);
  const score = (p: number, d: number) => {
    const [c1, s1] = ropeTables([[p]], D, base, 'f32', 'cpu'), [c2, s2] = ropeTables([[p + d]], D, base, 'f32', 'cpu');
    return arr(applyRope(q, c1, s1).mul(applyRope(k, c2, s2)).sum())[0];
  };
  assert.ok(Math.abs(score(0, 3) - score(9, 3)) < 1e-4);
}));

test('causal: changing a later position leaves earlier logits unchanged', () => noGrad(() => tidy(() => {
  const lm = model();
  const a = embeds([1, 6, 64], 7);
  const b = cat([narrow(a, 1, 0, 3), embeds([1, 3, 64], 8)], 1);
  const la = lm.forward(a).logits!, lb = lm.forward(b).logits!;
  assert.ok(maxDiff(narrow(la, 1, 0, 3), narrow(lb, 1, 0, 3)) < 1e-6);
  assert.ok(maxDiff(narrow(la, 1, 3, 1), narrow(lb, 1, 3, 1)) > 1e-3);
})));

test('padding mask: left-padded rows with position ids equal the unpadded sequence (also through the cache)', () => noGrad(() => tidy(() => {
  const lm = model();
  const seq = embeds([1, 4, 64], 9);
  const ref = lm.forward(seq).logits!;
  const padded = cat([embeds([1, 2, 64], 10), seq], 1);
  const mask = tensor([[false, false, true, true, true, true]]);
  const pos = tensor([[0, 0, 0, 1, 2, 3]], { dtype: 'i32' });
  const got = lm.forward(padded, { attentionMask: mask, positionIds: pos }).logits!;
  assert.ok(maxDiff(narrow(got, 1, 2, 4), ref) < 1e-5, 'left padding');
  // Without the mask the pads leak in.
  assert.ok(maxDiff(narrow(lm.forward(padded, { positionIds: pos }).logits!, 1, 2, 4), ref) > 1e-3);
  // Batched with right padding: a short row gives the same logits as alone.
  const short = embeds([1, 3, 64], 11);
  const both = cat([seq, cat([short, embeds([1, 1, 64], 12)], 1)], 0);
  const bm = tensor([[true, true, true, true], [true, true, true, false]]);
  const out = lm.forward(both, { attentionMask: bm }).logits!;
  assert.ok(maxDiff(narrow(narrow(out, 0, 1, 1), 1, 0, 3), lm.forward(short).logits!) < 1e-5, 'right padding');
  // Cache: prefill the left-padded prompt, then decode one step; equals the unpadded full forward.
  const next = embeds([1, 1, 64], 13);
  const cache = lm.newCache();
  lm.forward(padded, { attentionMask: mask, positionIds: pos, cache });
  const step = lm.forward(next, { positionIds: [4], cache }).logits!;
  const full = lm.forward(cat([seq, next], 1)).logits!;
  assert.ok(maxDiff(step, narrow(full, 1, 4, 1)) < 1e-5, 'cache with padding');
  cache.dispose();
})));

test('KV cache: prefill then steps equals full recomputation (hidden and logits, 1e-5)', () => noGrad(() => tidy(() => {
  const lm = model();
  const x = embeds([2, 8, 64], 14);
  const full = lm.forward(x, { regress: true });
  const cache = lm.newCache();
  const chunks: [number, number][] = [[0, 3], [3, 1], [4, 2], [6, 1], [7, 1]];  // includes a 2-token chunk after the prefix
  for (const [s, n] of chunks) {
    const o = lm.forward(narrow(x, 1, s, n), { cache, regress: true });
    assert.ok(maxDiff(o.hidden, narrow(full.hidden, 1, s, n)) < 1e-5, `hidden ${s}`);
    assert.ok(maxDiff(o.logits!, narrow(full.logits!, 1, s, n)) < 1e-5, `logits ${s}`);
    assert.ok(maxDiff(o.regress!, narrow(full.regress!, 1, s, n)) < 1e-5, `regress ${s}`);
  }
  assert.is(cache.length, 8);
  assert.equal(cache.keys[0]!.shape, [2, 4, 8, 16]);
  cache.dispose();
})));

test('greedy with the KV cache equals greedy with full recomputation', () => tidy(() => {
  const lm = model(3);
  const prefix = embeds([1, 5, 64], 15);
  const fast = generateText(lm, prefix, { maxNewTokens: 10, eos: null });
  assert.equal(fast.tokens, slowGreedy(lm, prefix, 10, null));
  assert.is(fast.tokens.length, 10);
  // With an eos that the model emits: stops there (eos included).
  const eos = fast.tokens[3];
  const withEos = generateText(lm, prefix, { maxNewTokens: 10, eos });
  assert.equal(withEos.tokens, slowGreedy(lm, prefix, 10, eos));
  assert.is(withEos.tokens[withEos.tokens.length - 1], eos);
  // minNewTokens forbids eos before it.
  const minTok = generateText(lm, prefix, { maxNewTokens: 10, minNewTokens: 10, eos });
  assert.is(minTok.tokens.length, 10);
}));

test('sampling: seeded reproducible; temperature -> 0 and topK = 1 give greedy; top-p', () => tidy(() => {
  const lm = model(3);
  const prefix = embeds([1, 5, 64], 15);
  const greedy = generateText(lm, prefix, { maxNewTokens: 8, eos: null }).tokens;
  const s1 = generateText(lm, prefix, { strategy: 'sample', maxNewTokens: 8, eos: null, generator: new Generator(42) }).tokens;
  const s2 = generateText(lm, prefix, { strategy: 'sample', maxNewTokens: 8, eos: null, generator: new Generator(42) }).tokens;
  assert.equal(s1, s2);
  const seeds = [1, 2, 3, 4, 5].map((s) => generateText(lm, prefix, { strategy: 'sample', maxNewTokens: 8, eos: null, generator: new Generator(s) }).tokens.join());
  assert.ok(new Set(seeds).size > 1, 'different seeds differ');
  const cold = generateText(lm, prefix, { strategy: 'sample', temperature: 1e-4, maxNewTokens: 8, eos: null, generator: new Generator(7) }).tokens;
  assert.equal(cold, greedy);
  const k1 = generateText(lm, prefix, { strategy: 'sample', topK: 1, maxNewTokens: 8, eos: null, generator: new Generator(8) }).tokens;
  assert.equal(k1, greedy);
  const p0 = generateText(lm, prefix, { strategy: 'sample', topP: 1e-6, maxNewTokens: 8, eos: null, generator: new Generator(9) }).tokens;
  assert.equal(p0, greedy);
  // warpLogits: probs 0.5, 0.3, 0.15, 0.05 -> top-p 0.79 keeps the first two, 0.85 three, top-k 3 drops the last.
  const l = Float64Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
  assert.equal(Array.from(warpLogits(l, { topP: 0.79 })).map((v) => v > -Infinity), [true, true, false, false]);
  assert.equal(Array.from(warpLogits(l, { topP: 0.85 })).map((v) => v > -Infinity), [true, true, true, false]);
  assert.equal(Array.from(warpLogits(l, { topK: 3 })).map((v) => v > -Infinity), [true, true, true, false]);
}));

/** Every sequence of at most maxNew tokens (ending at eos or at maxNew) with its HF beam score. */
function enumerate(lm: LlamaForReg, prefix: Tensor, V: number, eos: number, maxNew: number, lp: number): { tokens: number[]; score: number } {
  let best = { tokens: [] as number[], score: -Infinity };
  const walk = (toks: number[], sum: number) => {
    const lps = nextLogprobs(lm, prefix, toks);
    for (let t = 0; t < V; t++) {
      const s = sum + lps[t], seq = [...toks, t];
      if (t === eos || seq.length === maxNew) {
        const len = t === eos ? toks.length : seq.length;
        const score = s / Math.max(1, len) ** lp;
        if (score > best.score) best = { tokens: seq, score };
      } else walk(seq, s);
    }
  };
  walk([], 0);
  return best;
}

test('beam search: numBeams = 1 equals greedy; returns the best sequence found by enumeration', () => tidy(() => {
  const V = 6, eos = 2;
  const lm = model(6, { vocabSize: V, padId: null, initStd: 0.3 });
  const prefix = embeds([1, 4, 64], 16);
  const greedy = generateText(lm, prefix, { maxNewTokens: 6, eos }).tokens;
  assert.equal(generateText(lm, prefix, { strategy: 'beam', numBeams: 1, lengthPenalty: 0, maxNewTokens: 6, eos }).tokens, greedy);
  const greedyNoEos = generateText(lm, prefix, { maxNewTokens: 6, eos: null }).tokens;
  assert.equal(generateText(lm, prefix, { strategy: 'beam', numBeams: 1, maxNewTokens: 6, eos: null }).tokens, greedyNoEos);
  let differsFromGreedy = 0;
  // Prompts (seed) chosen so that the best sequence is not the greedy one.
  const cases = [[16, 0], [16, 1], [16, -1], [17, 0], [17, -1], [21, 1], [25, 1], [30, 0]] as [number, number][];
  for (const [seed, lp] of cases) {
    const p = embeds([1, 4, 64], seed);
    const want = enumerate(lm, p, V, eos, 3, lp);
    // Wide enough to be exhaustive: every candidate survives every step.
    const wide = generateText(lm, p, { strategy: 'beam', numBeams: 150, lengthPenalty: lp, maxNewTokens: 3, eos });
    assert.equal(wide.tokens, want.tokens, `wide beam, lengthPenalty ${lp}`);
    assert.ok(Math.abs(wide.score - want.score) < 1e-4);
    if (lp === 0) {
      // Under lengthPenalty 0, V^2 beams are provably enough (pruned candidates are dominated).
      const narrowBeam = generateText(lm, p, { strategy: 'beam', numBeams: 36, lengthPenalty: 0, maxNewTokens: 3, eos });
      assert.equal(narrowBeam.tokens, want.tokens, 'numBeams 36');
    }
    const g = generateText(lm, p, { maxNewTokens: 3, eos }).tokens;
    if (g.join() !== want.tokens.join()) differsFromGreedy++;
  }
  assert.ok(differsFromGreedy >= cases.length / 2, `best differs from greedy in only ${differsFromGreedy}/${cases.length} cases`);
  // Min/max length in beam search.
  const b = generateText(lm, prefix, { strategy: 'beam', numBeams: 4, minNewTokens: 5, maxNewTokens: 5, eos });
  assert.is(b.tokens.length, 5);
  assert.ok(!b.tokens.includes(eos));
}));

test('regressVisual with the KV cache equals the full-recompute procedure (1e-5)', () => tidy(() => {
  const lm = model(6);
  const img = lm.embed(tensor([micro().baseVocab + 1], { dtype: 'i32' }));  // [IMG] = baseVocab + 1
  for (const B of [1, 2]) {
    const prefix = embeds([B, 5, 64], 17 + B);
    const fast = regressVisual(lm, prefix, img, 4);
    const slow = regressVisualFullRecompute(lm, prefix, img, 4);
    assert.equal(fast.shape, [B, 4, 64]);
    const d = maxDiff(fast, slow);
    assert.ok(d < 1e-5, `B=${B}: max diff ${d}`);
    // z1 is the regression head at [IMG] after the prefix.
    const z1 = noGrad(() => narrow(lm.forward(cat([prefix, cat(Array(B).fill(reshape(img, [1, 1, 64])), 0)], 1), { regress: true }).regress!, 1, 5, 1));
    assert.ok(maxDiff(narrow(fast, 1, 0, 1), z1) < 1e-5);
  }
}));

test('emu-14b LLaMA on meta: ~13.02B parameters, regression head 26.2M', () => {
  const cfg = preset('emu-14b').llm;
  const lm = new LlamaForReg(cfg, { device: 'meta' });
  const total = lm.numParameters(), head = lm.stu_regress_head.numParameters();
  const llama = total - head;
  console.log(`    emu-14b LLaMA (V=${vocabSize(cfg)}): ${(llama / 1e9).toFixed(4)}B (spec 1.7: ~13.02B), regression head ${(head / 1e6).toFixed(2)}M (spec: 26.2M), total ${(total / 1e9).toFixed(4)}B`);
  const H = 5120, I = 13824, V = 32004;
  assert.is(llama, 2 * V * H + 40 * (4 * H * H + 3 * H * I + 2 * H) + H);
  assert.ok(Math.abs(llama / 1e9 - 13.02) < 0.01);
  assert.is(head, H * H);
  assert.ok(Math.abs(head / 1e6 - 26.2) < 0.05);
});

test('generation and the cache leave no live tensors behind; bf16 runs', () => {
  const lm = model(8);
  const prefix = embeds([1, 4, 64], 31);
  const img = lm.embed(tensor([micro().baseVocab + 1], { dtype: 'i32' }));
  const before = memoryStats().liveTensors;
  generateText(lm, prefix, { maxNewTokens: 4, eos: null });
  generateText(lm, prefix, { strategy: 'sample', maxNewTokens: 4, eos: null, generator: new Generator(1) });
  generateText(lm, prefix, { strategy: 'beam', numBeams: 3, maxNewTokens: 4, eos: 5 });
  regressVisualFullRecompute(lm, prefix, img, 3).dispose();
  regressVisual(lm, prefix, img, 3).dispose();
  const cache = lm.newCache();
  noGrad(() => tidy(() => { lm.forward(prefix, { cache, attentionMask: ones([1, 4], { dtype: 'bool' }) }); lm.forward(narrow(prefix, 1, 0, 2), { cache }); }));
  cache.dispose();
  assert.is(memoryStats().liveTensors, before, 'live tensors');
  // bf16 weights and inputs: same structure, close to f32.
  const ref = noGrad(() => lm.forward(prefix, { logits: false }).hidden);
  lm.to('bf16');
  const xb = prefix.to('bf16');
  const hb = noGrad(() => lm.forward(xb, { logits: false }).hidden);
  assert.is(hb.dtype, 'bf16');
  assert.ok(maxDiff(hb.to('f32'), ref) < 0.25, 'bf16 close to f32');
  assert.is(generateText(lm, xb, { maxNewTokens: 3, eos: null }).tokens.length, 3);
  assert.equal(regressVisual(lm, xb, img, 2).shape, [1, 2, 64]);
});

test('gradients reach every parameter', () => tidy(() => {
  const lm = model(7).train();
  const IMG = micro().baseVocab + 1;
  const ids = tensor([[1, 5, 9, IMG, 3, 7]], { dtype: 'i32' });
  const out = lm.forward(lm.embed(ids), { regress: true, attentionMask: ones([1, 6], { dtype: 'bool' }) });
  const ce = F.crossEntropy(reshape(narrow(out.logits!, 1, 0, 5), [5, -1]), tensor([5, 9, IMG, 3, 7], { dtype: 'i32' }));
  const mse = F.mseLoss(narrow(out.regress!, 1, 0, 5), embeds([1, 5, 64], 30));
  ce.add(mse).backward();
  for (const [name, p] of lm.namedParameters()) {
    assert.ok(p.grad, `${name} has a gradient`);
    const g = arr(p.grad!);
    assert.ok(g.some((v) => v !== 0) && g.every(Number.isFinite), `${name} gradient is non-zero and finite`);
  }
  lm.zeroGrad();
}));

test.run();
