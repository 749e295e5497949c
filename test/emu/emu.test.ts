// emu.test.ts: the Emu wrapper: sequence layout, <image> slot filling, the unified loss and its
// mask/slot/pair sanity checks (spec section 5), gradient flow, and the full-size parameter count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdamW, Generator, applyLoRA, memoryStats, randn, tidy, noGrad } from '../../src/index.ts';
import { preset } from '../../src/emu/config.ts';
import { Emu, emuGenerate, emuVisualEmbeddings } from '../../src/emu/emu.ts';
import { regressVisualFullRecompute } from '../../src/emu/generate.ts';
import { generateImage } from '../../src/emu/pipeline.ts';
import { UNet2DConditionModel } from '../../src/emu/unet.ts';
import { AutoencoderKL } from '../../src/emu/vae.ts';
import { trainBPE } from '../../src/emu/tokenizer.ts';

const cfg = preset('micro');
const corpus = ['a red circle', 'a blue square', 'two green triangles', 'the red circle is left of the blue square'];
const tok = trainBPE(corpus, { vocabSize: cfg.llm.baseVocab });
const image = (seed: number) => randn([3, cfg.vision.imageSize, cfg.vision.imageSize], { generator: new Generator(seed) });

test('sequence layout: BOS, [IMG] + N <image> + [/IMG] per image, frames as consecutive blocks, EOS', () => {
  const model = new Emu(cfg, { generator: new Generator(1) });
  const N = cfg.cformer.numQueries;
  const s = model.tokenize(tok, [{ image: image(1) }, { text: 'a red circle' }], { eos: true });
  assert.is(s.ids[0], tok.bos);
  assert.is(s.ids[1], model.ids.img);
  assert.equal(s.ids.slice(2, 2 + N), new Array(N).fill(model.ids.image));
  assert.is(s.ids[2 + N], model.ids.imgEnd);
  assert.is(s.ids[s.ids.length - 1], tok.eos);
  const v = model.tokenize(tok, [{ video: [image(2), image(3)] }, { text: 'moves' }]);
  assert.is(v.images.length, 2);
  assert.is(v.ids.filter((id) => id === model.ids.image).length, 2 * N);
  assert.is(v.ids[2 + N + 1], model.ids.img, 'the second frame block follows the first directly');
});

test('the unified loss: CE on text only, one regression pair per <image> plus one per [IMG]', () => {
  const model = new Emu(cfg, { generator: new Generator(2) });
  const N = cfg.cformer.numQueries;
  const a = model.tokenize(tok, [{ image: image(4) }, { text: 'a red circle' }], { eos: true });
  const b = model.tokenize(tok, [{ text: 'two green triangles' }, { image: image(5) }], { eos: true });
  const batch = model.collate([a, b]);
  const textTargets = (ids: number[]) => ids.slice(1).filter((id) => id < cfg.llm.baseVocab).length;
  tidy(() => {
    const r = model.loss(batch);
    assert.is(r.counts.imageSlots, 2 * N);
    assert.is(r.counts.regressPairs, 2 * (N + 1));
    assert.is(r.counts.ceTargets, textTargets(a.ids) + textTargets(b.ids));
    const loss = r.loss.item() as number;
    assert.ok(Math.abs(loss - ((r.ce.item() as number) + (r.mse.item() as number))) < 1e-5);
    r.loss.backward();
  });
  for (const [name, p] of model.namedParameters()) {
    assert.ok(p.grad, `${name} gets a gradient`);
  }
  model.zeroGrad();
});

test('visual embeddings land in the <image> slots in order', () => {
  const model = new Emu(cfg, { generator: new Generator(3) });
  noGrad(() => tidy(() => {
    const s = model.tokenize(tok, [{ image: image(6) }, { text: 'a' }, { image: image(7) }]);
    const z = model.encodeImages(randn([2, 3, cfg.vision.imageSize, cfg.vision.imageSize]));
    const e = model.embedWithImages([s.ids], z);
    const first = s.ids.indexOf(model.ids.image);
    assert.equal([...e.select(0, 0).select(0, first).data()], [...z.select(0, 0).select(0, 0).data()]);
    const last = s.ids.lastIndexOf(model.ids.image);
    assert.equal([...e.select(0, 0).select(0, last).data()], [...z.select(0, 1).select(0, cfg.cformer.numQueries - 1).data()]);
  }));
});

test('a few steps of training lower the unified loss on a fixed batch', () => {
  const model = new Emu(cfg, { generator: new Generator(4) });
  const batch = model.collate([
    model.tokenize(tok, [{ image: image(8) }, { text: 'a red circle' }], { eos: true }),
    model.tokenize(tok, [{ text: 'a blue square' }, { image: image(9) }], { eos: true }),
  ]);
  const opt = new AdamW(model.parameters(), { lr: 3e-3, betas: [0.9, 0.98], eps: 1e-6, weightDecay: 0.05 });
  const losses: number[] = [];
  for (let i = 0; i < 12; i++) {
    losses.push(tidy(() => {
      const r = model.loss(batch);
      opt.zeroGrad();
      r.loss.backward();
      opt.step();
      return r.loss.item() as number;
    }));
  }
  assert.ok(losses[losses.length - 1] < 0.7 * losses[0], `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
});

test('emu-14b instantiates on meta with the reference parameter counts (~14.2B)', () => {
  const model = new Emu(preset('emu-14b'), { device: 'meta' });
  const count = (prefix: string) => model.namedParameters().filter(([n]) => n.startsWith(prefix)).reduce((s, [, p]) => s + p.numel, 0);
  const total = model.numParameters();
  console.log(`    emu-14b: visual ${(count('visual.') / 1e9).toFixed(3)}B, cformer ${(count('cformer.') / 1e9).toFixed(3)}B, ` +
    `llama ${((count('decoder.lm.') - count('decoder.lm.stu_regress_head.')) / 1e9).toFixed(3)}B, ` +
    `regress head ${(count('decoder.lm.stu_regress_head.') / 1e6).toFixed(1)}M, total ${(total / 1e9).toFixed(3)}B`);
  assert.ok(Math.abs(count('visual.') / 1e9 - 1.01) < 0.01);
  assert.ok(Math.abs(count('cformer.') / 1e9 - 0.13) < 0.005);
  assert.ok(Math.abs((count('decoder.lm.') - count('decoder.lm.stu_regress_head.')) / 1e9 - 13.02) < 0.01);
  assert.is(count('decoder.lm.stu_regress_head.'), 5120 * 5120);
  assert.ok(Math.abs(total / 1e9 - 14.2) < 0.05);
  assert.ok(model.namedParameters().some(([n]) => n === 'ln_visual.weight'));
  assert.ok(model.namedParameters().some(([n]) => n === 'decoder.lm.model.embed_tokens.weight'));
});

test('generation from an interleaved prompt: text with the KV cache, visual embeddings equal to the full-recompute loop', () => {
  const model = new Emu(cfg, { generator: new Generator(5) });
  model.eval();
  const live = memoryStats().liveTensors;
  const img = image(10);
  const r = emuGenerate(model, tok, [{ image: img }, { text: 'a' }], { maxNewTokens: 5, eos: null });
  assert.is(r.tokens.length, 5);
  assert.type(r.text, 'string');
  const z = emuVisualEmbeddings(model, tok, [{ text: 'a red circle' }]);
  assert.equal(z.shape, [1, cfg.cformer.numQueries, cfg.llm.hidden]);
  noGrad(() => tidy(() => {
    const { ids } = model.tokenize(tok, [{ text: 'a red circle' }]);
    const prefix = model.embedWithImages([ids], null);
    const imgEmb = model.lm.embed(model.lm.model.embed_tokens.weight.narrow(0, 0, 1).sum(1).mul(0).add(model.ids.img).to('i32'));
    const slow = regressVisualFullRecompute(model.lm, prefix, imgEmb, cfg.cformer.numQueries);
    const a = z.data(), b = slow.data();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst < 1e-4, `cached vs full recompute: ${worst}`);
  }));
  z.dispose();
  img.dispose();
  assert.is(memoryStats().liveTensors, live);
});

test('text-to-image: Emu regression conditions the UNet, the empty prompt is the unconditional branch, the VAE decodes', () => {
  const model = new Emu(cfg, { generator: new Generator(8) });
  const unet = new UNet2DConditionModel(cfg.unet, { generator: new Generator(9) });
  const vae = new AutoencoderKL(cfg.vae, { generator: new Generator(10) });
  const live = memoryStats().liveTensors;
  const run = () => generateImage(model, tok, unet, vae, [{ text: 'a red circle' }], { latentSize: 4, steps: 3, generator: new Generator(11) });
  const a = run(), b = run();
  assert.equal(a.shape, [1, 3, 4 * vae.factor, 4 * vae.factor]);
  assert.equal([...a.data()], [...b.data()], 'seeded generation is reproducible');
  assert.ok([...a.data()].every(Number.isFinite));
  a.dispose();
  b.dispose();
  assert.is(memoryStats().liveTensors, live);
});

test('instruction tuning: LoRA on the LLM q, k, v, o trains only the LoRA weights', () => {
  const model = new Emu(cfg, { generator: new Generator(6), instruct: true });
  const replaced = applyLoRA(model, { rank: 4, alpha: 4, dropout: 0.05, targets: [/^decoder\.lm\.model\.layers\.\d+\.self_attn\.[qkvo]_proj$/] });
  assert.is(replaced.length, 4 * cfg.llm.layers);
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.ok(trainable.length > 0 && trainable.every((n) => /lora/.test(n)), trainable.join(', '));
  const batch = model.collate([model.tokenize(tok, [{ image: image(11) }, { text: 'a red circle' }], { eos: true })]);
  tidy(() => model.loss(batch).loss.backward());
  for (const [n, p] of model.namedParameters()) assert.is(p.grad !== null, /lora/.test(n), n);
  model.zeroGrad();
});

test('Emu-I vocabulary growth: new embedding and LM-head rows start at the mean of the existing rows', () => {
  const model = new Emu(cfg, { generator: new Generator(13) });
  const lm = model.lm, V = lm.vocabSize;
  assert.is(V, cfg.llm.baseVocab + 4);
  const meanOf = (w: import('../../src/index.ts').Tensor) => noGrad(() => tidy(() => [...w.mean(0).data()]));
  const embMean = meanOf(lm.model.embed_tokens.weight), headMean = meanOf(lm.lm_head.weight);
  lm.resizeTokenEmbeddings(V + 2);
  assert.is(lm.vocabSize, V + 2);
  assert.equal(lm.lm_head.weight.shape, [V + 2, cfg.llm.hidden]);
  noGrad(() => tidy(() => {
    for (const [w, mean] of [[lm.model.embed_tokens.weight, embMean], [lm.lm_head.weight, headMean]] as const) {
      for (const row of [V, V + 1]) {
        const got = [...w.select(0, row).data()];
        got.forEach((v, i) => assert.ok(Math.abs(v - mean[i]) < 1e-6));
      }
    }
  }));
  const batch = model.collate([model.tokenize(tok, [{ text: '[USER] a red circle [ASSISTANT] yes' }], { eos: true })]);
  assert.ok(batch.ids[0].includes(model.ids.user) && batch.ids[0].includes(model.ids.assistant));
  tidy(() => model.loss(batch).loss.backward());
  assert.ok(lm.model.embed_tokens.weight.grad !== null);
  model.zeroGrad();
});

test('the tiny preset runs a forward and backward pass on cpu', () => {
  const tcfg = preset('tiny');
  const ttok = trainBPE(corpus, { vocabSize: tcfg.llm.baseVocab, minFrequency: 1 });
  const model = new Emu(tcfg, { generator: new Generator(7) });
  const img = randn([3, tcfg.vision.imageSize, tcfg.vision.imageSize], { generator: new Generator(12) });
  const batch = model.collate([
    model.tokenize(ttok, [{ image: img }, { text: 'a red circle' }], { eos: true }),
    model.tokenize(ttok, [{ text: 'two green triangles' }, { video: [img, img] }], { eos: true }),
  ]);
  const loss = tidy(() => {
    const r = model.loss(batch);
    r.loss.backward();
    return r.loss.item() as number;
  });
  assert.ok(Number.isFinite(loss) && loss > 0);
  assert.ok(model.parameters().every((p) => p.grad !== null));
  model.zeroGrad();
  img.dispose();
});

test.run();
