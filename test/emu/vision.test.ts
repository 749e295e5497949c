// vision.test.ts: Emu's EVA-CLIP vision encoder (src/emu/vision.ts) and the CLIP pretraining
// pieces (src/emu/clip.ts): shapes, no final norm, EVA state-dict names, the parameter count of
// the released tower on 'meta', gradients, preprocessing, and a short contrastive training run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdamW, add, Generator, gradcheck, memoryStats, Module, mul, noGrad, pad, randn, stack, tensor, Tensor, tidy, zeros } from '../../src/index.ts';
import { preset, type VisionConfig } from '../../src/emu/config.ts';
import {
  CLIP_MEAN, CLIP_STD, createLnVisual, preprocess, VisionEncoder, visionParamCount, visionTokens,
} from '../../src/emu/vision.ts';
import { ClipModel, clipLoss, clipTextConfigFor } from '../../src/emu/clip.ts';

const arr = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);

/** What the Emu wrapper does: the tower as `visual`, the LayerNorm as `ln_visual`. */
class Wrapper extends Module {
  visual: VisionEncoder;
  ln_visual: Module;
  constructor(cfg: VisionConfig, opts: ConstructorParameters<typeof VisionEncoder>[1] = {}) {
    super();
    this.visual = this.module('visual', new VisionEncoder(cfg, opts));
    this.ln_visual = this.module('ln_visual', createLnVisual(cfg, opts));
  }
}

test('vision encoder: output [B, (S/p)^2 + 1, W] for the micro and tiny presets', () => tidy(() => {
  for (const name of ['micro', 'tiny']) {
    const cfg = preset(name).vision;
    const enc = new VisionEncoder(cfg, { generator: new Generator(1) });
    const x = randn([2, 3, cfg.imageSize, cfg.imageSize], { generator: new Generator(2) });
    const y = noGrad(() => enc.forward(x));
    const T = (cfg.imageSize / cfg.patchSize) ** 2 + 1;
    assert.equal(y.shape, [2, T, cfg.width], name);
    assert.is(visionTokens(cfg), T);
    assert.ok(arr(y).every(Number.isFinite), `${name}: finite`);
    // Batch items are independent.
    const y1 = noGrad(() => enc.forward(x.narrow(0, 1, 1)));
    const a = arr(y1), b = arr(y.narrow(0, 1, 1));
    assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-4), `${name}: batch independence`);
    assert.throws(() => enc.forward(randn([1, 3, cfg.imageSize + 1, cfg.imageSize])), /expected pixels/);
  }
}));

test('vision encoder and CLIP: a training step inside tidy leaves no live tensors behind', () => {
  const cfg = preset('micro').vision;
  const model = new ClipModel(cfg, clipTextConfigFor(cfg), { generator: new Generator(41) });
  const x = randn([2, 3, 16, 16], { generator: new Generator(42) });
  const ids = tensor([[1, 2, 127, 0], [3, 127, 0, 0]], { dtype: 'i32' });
  const step = () => tidy(() => {
    model.zeroGrad();
    model.forward(x, ids).backward();
    model.visual.forward(x).sum().backward();
  });
  step();
  model.zeroGrad();
  const live = memoryStats().liveTensors;
  step();
  model.zeroGrad();
  assert.is(memoryStats().liveTensors, live);
  x.dispose();
  ids.dispose();
});

test('vision encoder: output is the last block with no final norm (visual.norm does not affect it)', () => tidy(() => {
  const cfg = preset('micro').vision;
  const enc = new VisionEncoder(cfg, { generator: new Generator(3), clipHead: { embedDim: 16 } });
  const x = randn([1, 3, 16, 16], { generator: new Generator(4) });
  const before = arr(noGrad(() => enc.forward(x)));
  noGrad(() => {
    enc.loadStateDict({ 'norm.weight': randn([cfg.width], { generator: new Generator(5) }), 'norm.bias': randn([cfg.width]) }, { strict: false });
  });
  const after = noGrad(() => enc.forward(x));
  assert.equal(arr(after), before);
  // ... and it is the raw residual stream: not normalised per token.
  const tok = arr(after).slice(0, cfg.width);
  const mu = tok.reduce((s, v) => s + v, 0) / cfg.width;
  const sd = Math.sqrt(tok.reduce((s, v) => s + (v - mu) ** 2, 0) / cfg.width);
  assert.ok(Math.abs(mu) > 1e-3 || Math.abs(sd - 1) > 1e-2, 'output looks layer-normed');
  // The encoder Emu uses has neither norm nor head.
  const plain = new VisionEncoder(cfg);
  assert.ok(!Object.keys(plain.stateDict()).some((k) => k.startsWith('norm.') || k.startsWith('head.')));
  // The manual block computation equals forward (the output is the last block's output).
  const manual = noGrad(() => {
    const p = enc.patch_embed.forward(x);
    let h = tidy(() => enc.pos_embed.add(stack([enc.cls_token.reshape([1, cfg.width]).squeeze(0), ...p.squeeze(0).unbind(0)], 0).unsqueeze(0)));
    for (const b of enc.blocks) h = b.forward(h);
    return h;
  });
  const m = arr(manual);
  assert.ok(m.every((v, i) => Math.abs(v - before[i]) < 1e-5), 'manual recomputation');
}));

test('vision encoder: EVA state-dict names and shapes, with ln_visual at the top level', () => tidy(() => {
  const cfg = preset('micro').vision, W = cfg.width, M = cfg.mlpDim, P = cfg.patchSize, T = visionTokens(cfg);
  const sd = new Wrapper(cfg).stateDict();
  const expected: Record<string, number[]> = {
    'visual.patch_embed.proj.weight': [W, 3, P, P],
    'visual.patch_embed.proj.bias': [W],
    'visual.cls_token': [1, 1, W],
    'visual.pos_embed': [1, T, W],
    'ln_visual.weight': [W],
    'ln_visual.bias': [W],
  };
  for (let i = 0; i < cfg.layers; i++) {
    const b = `visual.blocks.${i}`;
    Object.assign(expected, {
      [`${b}.norm1.weight`]: [W], [`${b}.norm1.bias`]: [W],
      [`${b}.attn.qkv.weight`]: [3 * W, W], [`${b}.attn.q_bias`]: [W], [`${b}.attn.v_bias`]: [W],
      [`${b}.attn.proj.weight`]: [W, W], [`${b}.attn.proj.bias`]: [W],
      [`${b}.norm2.weight`]: [W], [`${b}.norm2.bias`]: [W],
      [`${b}.mlp.fc1.weight`]: [M, W], [`${b}.mlp.fc1.bias`]: [M],
      [`${b}.mlp.fc2.weight`]: [W, M], [`${b}.mlp.fc2.bias`]: [W],
    });
  }
  assert.equal(Object.keys(sd).sort(), Object.keys(expected).sort());
  for (const [k, s] of Object.entries(expected)) assert.equal(sd[k].shape, s, k);
  // With the CLIP head, EVA-CLIP's norm and head appear too.
  const withHead = Object.keys(new VisionEncoder(cfg, { clipHead: { embedDim: 16 } }).stateDict());
  for (const k of ['norm.weight', 'norm.bias', 'head.weight', 'head.bias']) assert.ok(withHead.includes(k), k);
}));

test('vision encoder: EVA random init (trunc-normal 0.02, zero biases, proj/fc2 / sqrt(2 l), ln_visual 1/0)', () => tidy(() => {
  const cfg: VisionConfig = { imageSize: 16, patchSize: 8, width: 64, layers: 3, heads: 4, mlpDim: 256, eps: 1e-6 };
  const w = new Wrapper(cfg, { generator: new Generator(7) });
  const sd = w.stateDict();
  const std = (t: Tensor) => { const a = arr(t), m = a.reduce((s, v) => s + v, 0) / a.length; return Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / a.length); };
  const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 0.1 * b, `${what}: ${a} vs ${b}`);
  near(std(sd['visual.blocks.0.attn.qkv.weight']), 0.02, 'qkv');
  near(std(sd['visual.blocks.2.mlp.fc1.weight']), 0.02, 'fc1');
  near(std(sd['visual.pos_embed']), 0.02, 'pos_embed');
  near(std(sd['visual.blocks.0.attn.proj.weight']), 0.02 / Math.sqrt(2), 'proj l=1');
  near(std(sd['visual.blocks.2.attn.proj.weight']), 0.02 / Math.sqrt(6), 'proj l=3');
  near(std(sd['visual.blocks.1.mlp.fc2.weight']), 0.02 / Math.sqrt(4), 'fc2 l=2');
  for (const k of ['visual.blocks.1.attn.q_bias', 'visual.blocks.1.attn.v_bias', 'visual.blocks.1.mlp.fc1.bias', 'visual.blocks.1.attn.proj.bias', 'ln_visual.bias']) {
    assert.ok(arr(sd[k]).every((v) => v === 0), k);
  }
  assert.ok(arr(sd['ln_visual.weight']).every((v) => v === 1));
  assert.is((w.ln_visual as unknown as { eps: number }).eps, 1e-6);
}));

test('vision encoder: parameter count of the Emu-14B tower on meta (spec: EVA-g ~1.01B)', () => {
  const cfg = preset('emu-14b').vision;
  const t0 = Date.now();
  const enc = new VisionEncoder(cfg, { device: 'meta' });
  const n = enc.numParameters();
  assert.is(n, visionParamCount(cfg));
  assert.is(n, 1_011_143_296);
  const withHead = new VisionEncoder(cfg, { device: 'meta', clipHead: { embedDim: 1024 } }).numParameters();
  assert.is(withHead, n + 2 * 1408 + 1408 * 1024 + 1024);
  const ln = createLnVisual(cfg, { device: 'meta' }).numParameters();
  console.log(`  EVA-g tower: ${n} params (${(n / 1e9).toFixed(4)}B; +norm+head ${withHead}; ln_visual ${ln}); built on meta in ${Date.now() - t0} ms`);
  assert.ok(Math.abs(n / 1e9 - 1.01) < 0.005, 'spec figure ~1.01B');
  assert.is(enc.pos_embed.shape.join(','), '1,257,1408');
  assert.is(enc.pos_embed.device, 'meta');
});

test('vision encoder: gradcheck w.r.t. pixels (micro, f64), and every parameter gets a finite non-zero grad', () => tidy(() => {
  const cfg = preset('micro').vision;
  const enc = new VisionEncoder(cfg, { dtype: 'f64', generator: new Generator(11) });
  // Non-zero q/v biases so their path is exercised.
  noGrad(() => enc.loadStateDict({
    'blocks.0.attn.q_bias': randn([cfg.width], { dtype: 'f64', std: 0.1, generator: new Generator(12) }),
    'blocks.0.attn.v_bias': randn([cfg.width], { dtype: 'f64', std: 0.1, generator: new Generator(13) }),
  }, { strict: false }));
  // The checked input is a 3x4x4 block at rows/cols 6..9, straddling all four 8x8 patches, pasted
  // into a fixed random image: every patch token and every block is on the path, and the finite
  // differences stay cheap (96 forwards instead of 1536 for the whole image).
  const base = randn([1, 3, 16, 16], { dtype: 'f64', generator: new Generator(14) });
  const v = randn([1, 3, 4, 4], { dtype: 'f64', generator: new Generator(16) }).requiresGrad_();
  const paste = (p: Tensor) => add(mul(base, pad(zeros([1, 3, 4, 4], { dtype: 'f64' }), [6, 6, 6, 6], 1)), pad(p, [6, 6, 6, 6]));
  assert.ok(gradcheck((p) => enc.forward(paste(p)), [v], { atol: 1e-5, rtol: 1e-3 }));
  enc.zeroGrad();
  tidy(() => enc.forward(randn([2, 3, 16, 16], { dtype: 'f64', generator: new Generator(15) })).square().mean().backward());
  for (const [name, p] of enc.namedParameters()) {
    assert.ok(p.grad, `${name} has a grad`);
    const g = arr(p.grad!);
    assert.ok(g.every(Number.isFinite), `${name} grad finite`);
    assert.ok(g.some((v) => v !== 0), `${name} grad non-zero`);
  }
  // The k bias is fixed at zero: it is not a parameter.
  assert.ok(!enc.namedParameters().some(([n]) => n.includes('k_bias')));
}));

test('preprocess: constant image -> per-channel CLIP constants; [0,255] and [0,1] inputs agree', () => tidy(() => {
  const H = 20, W = 30, rgb = new Uint8Array(H * W * 3);
  const c = [200, 100, 30];
  for (let i = 0; i < H * W; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = c[k];
  const t = preprocess(rgb, H, W, 16);
  assert.equal(t.shape, [3, 16, 16]);
  const a = arr(t);
  for (let k = 0; k < 3; k++) {
    const want = (c[k] / 255 - CLIP_MEAN[k]) / CLIP_STD[k];
    for (let i = 0; i < 256; i++) if (Math.abs(a[k * 256 + i] - want) > 1e-5) assert.unreachable(`channel ${k}: ${a[k * 256 + i]} vs ${want}`);
  }
  const f = Float32Array.from(rgb, (v) => v / 255);
  const b = arr(preprocess(f, H, W, 16));
  assert.ok(a.every((v, i) => Math.abs(v - b[i]) < 1e-5), '[0,1] floats');
  assert.throws(() => preprocess(rgb, H, W + 1, 16), /expected H\*W\*3/);
}));

test('preprocess: bicubic resize of a checkerboard keeps the mean (down and up), PIL-style', () => tidy(() => {
  const chan = (t: Tensor, k: number, n: number) => arr(t).slice(k * n * n, (k + 1) * n * n).map((v) => v * CLIP_STD[k] + CLIP_MEAN[k]);
  const board = (N: number, cell: number) => {
    const rgb = new Uint8Array(N * N * 3);
    for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) {
      const on = (Math.floor(x / cell) + Math.floor(y / cell)) % 2 === 0;
      for (let k = 0; k < 3; k++) rgb[(y * N + x) * 3 + k] = on ? 255 : 0;
    }
    return rgb;
  };
  for (const [N, cell, size] of [[64, 1, 16], [48, 3, 32], [16, 2, 40]]) {
    const out = chan(preprocess(board(N, cell), N, N, size), 0, size);
    const m = out.reduce((s, v) => s + v, 0) / out.length;
    assert.ok(Math.abs(m - 0.5) < 0.02, `${N}->${size} cell ${cell}: mean ${m}`);
    assert.ok(out.every((v) => v >= -1e-6 && v <= 1 + 1e-6), 'clamped to [0,1]');
  }
  // A 1-pixel checkerboard shrunk 4x is (antialiased) flat grey, as PIL gives.
  const grey = chan(preprocess(board(64, 1), 64, 64, 16), 1, 16);
  assert.ok(grey.slice(17, 30).every((v) => Math.abs(v - 0.5) < 0.01), `antialiased: ${grey.slice(17, 20)}`);
  // Identity size keeps the pixels.
  const same = chan(preprocess(board(16, 2), 16, 16, 16), 2, 16);
  const src = board(16, 2);
  assert.ok(same.every((v, i) => Math.abs(v - src[i * 3 + 2] / 255) < 1e-5), 'same size is the identity');
}));

test('preprocess: a uint8 image resizes exactly as PIL Image.resize(BICUBIC) (Pillow 12.3 values)', () => tidy(() => {
  // Input pixel values (i * 37 + 11) % 256 over the HxWx3 bytes; expected bytes from Pillow.
  const cases: [number, number, number, number[]][] = [
    [6, 9, 4, [125,89,119,152,141,107,112,150,148,119,116,159,161,162,76,105,154,121,92,105,156,163,87,113,112,159,121,111,109,148,155,120,112,116,149,117,154,119,162,166,76,109,128,166,86,80,118,163]],
    [5, 4, 7, [0,27,80,34,81,129,117,162,199,199,84,120,234,4,41,140,85,122,80,139,176,125,160,24,101,148,73,70,127,157,143,126,172,196,122,159,91,89,138,24,70,126,207,249,56,166,178,67,99,68,95,120,129,183,144,201,235,89,136,124,56,91,53,122,180,217,170,120,157,241,26,63,170,63,116,98,142,168,169,216,74,217,254,14,53,116,161,112,138,180,199,169,206,116,113,164,31,70,122,119,159,154,178,215,175,138,55,92,142,106,147,140,189,229,124,178,150,107,143,70,105,141,152,105,142,207,255,19,56,209,56,104,105,131,175,165,219,104,225,255,32,121,158,103,55,92,151]],
  ];
  for (const [h, w, s, want] of cases) {
    const rgb = Uint8Array.from({ length: h * w * 3 }, (_, i) => (i * 37 + 11) % 256);
    const a = arr(preprocess(rgb, h, w, s));
    for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) for (let c = 0; c < 3; c++) {
      const got = (a[(c * s + y) * s + x] * CLIP_STD[c] + CLIP_MEAN[c]) * 255;
      if (Math.abs(got - want[(y * s + x) * 3 + c]) > 1e-3) assert.unreachable(`${h}x${w}->${s} (${y},${x},${c}): ${got} vs ${want[(y * s + x) * 3 + c]}`);
    }
  }
}));

test('clipLoss: symmetric CE over the similarity matrix', () => tidy(() => {
  const img = randn([4, 8], { dtype: 'f64', generator: new Generator(21) }), txt = randn([4, 8], { dtype: 'f64', generator: new Generator(22) });
  const s = 10;
  const norm = (t: Tensor) => { const a = arr(t); const out: number[][] = []; for (let i = 0; i < 4; i++) { const r = a.slice(i * 8, i * 8 + 8); const n = Math.hypot(...r); out.push(r.map((v) => v / n)); } return out; };
  const I = norm(img), Tt = norm(txt);
  const L = I.map((r) => Tt.map((c) => s * r.reduce((acc, v, k) => acc + v * c[k], 0)));
  const ce = (rows: number[][]) => rows.reduce((acc, r, i) => acc - r[i] + Math.log(r.reduce((q, v) => q + Math.exp(v), 0)), 0) / rows.length;
  const want = (ce(L) + ce(L[0].map((_, j) => L.map((r) => r[j])))) / 2;
  const got = clipLoss(img, txt, s).item() as number;
  assert.ok(Math.abs(got - want) < 1e-9, `${got} vs ${want}`);
  assert.ok(Math.abs((clipLoss(img, txt, tensor(s, { dtype: 'f64' })).item() as number) - want) < 1e-9);
}));

test('CLIP: text tower names and a smoke training run (loss halves in a few dozen AdamW steps)', () => {
  const vcfg = preset('micro').vision;
  const tcfg = clipTextConfigFor(vcfg);
  const model = new ClipModel(vcfg, tcfg, { generator: new Generator(31) });
  const keys = Object.keys(model.stateDict());
  for (const k of ['logit_scale', 'visual.head.weight', 'visual.norm.weight', 'visual.blocks.0.attn.q_bias', 'text.token_embedding.weight',
    'text.positional_embedding', 'text.transformer.resblocks.0.attn.in_proj_weight', 'text.transformer.resblocks.0.attn.out_proj.weight',
    'text.transformer.resblocks.1.mlp.c_fc.weight', 'text.transformer.resblocks.1.ln_2.bias', 'text.ln_final.weight', 'text.text_projection']) {
    assert.ok(keys.includes(k), k);
  }
  assert.ok(Math.abs((model.logit_scale.item() as number) - Math.log(1 / 0.07)) < 1e-6);
  assert.equal(model.text.text_projection.shape, [tcfg.width, tcfg.embedDim]);
  const big = clipTextConfigFor(preset('emu-14b').vision);
  assert.equal([big.vocabSize, big.contextLength, big.width, big.layers, big.heads, big.embedDim], [49408, 77, 768, 12, 12, 1024]);

  // 16 solid colours with their names; a char-level tokenizer (a-z -> 1..26, pad 0, EOS = vocab - 1).
  const colours: [string, number[]][] = [
    ['red', [230, 20, 20]], ['green', [20, 200, 30]], ['blue', [20, 30, 220]], ['yellow', [240, 230, 20]],
    ['cyan', [20, 220, 230]], ['magenta', [220, 20, 220]], ['white', [250, 250, 250]], ['black', [5, 5, 5]],
    ['orange', [250, 140, 10]], ['purple', [120, 20, 160]], ['pink', [250, 160, 190]], ['gray', [128, 128, 128]],
    ['brown', [120, 70, 20]], ['navy', [10, 10, 110]], ['olive', [120, 120, 10]], ['teal', [10, 120, 120]],
  ];
  const EOS = tcfg.vocabSize - 1, L = 10;
  const tokenize = (s: string) => {
    const ids = [...s].map((ch) => ch.charCodeAt(0) - 96);
    return [...ids, EOS, ...Array(L - ids.length - 1).fill(0)];
  };
  const ids = tensor(colours.map(([n]) => tokenize(n)), { dtype: 'i32' });
  const src = 24;
  const pixels = stack(colours.map(([, c]) => {
    const rgb = new Uint8Array(src * src * 3);
    for (let i = 0; i < src * src; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = c[k];
    return preprocess(rgb, src, src, vcfg.imageSize);
  }), 0);
  const opt = new AdamW(model.parameters(), { lr: 2e-3, weightDecay: 0.05, betas: [0.9, 0.98], eps: 1e-6 });
  const t0 = Date.now();
  const losses: number[] = [];
  for (let step = 0; step < 40; step++) {
    losses.push(tidy(() => {
      const loss = model.forward(pixels, ids);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item() as number;
    }));
  }
  const ms = Date.now() - t0;
  console.log(`  CLIP smoke: loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)} in ${losses.length} steps, ${ms} ms`);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  // Retrieval: each image's nearest caption is its own.
  const correct = noGrad(() => tidy(() => {
    const im = model.encodeImage(pixels), tx = model.encodeText(ids);
    const sim = im.matmul(tx.transpose(0, 1)).argmax(1);
    return arr(sim).filter((j, i) => j === i).length;
  }));
  console.log(`  CLIP smoke: image->text retrieval ${correct}/16`);
  assert.ok(correct >= 12, `retrieval ${correct}/16`);
});

test.run();
