// emu.test.ts: the Emu wrapper: sequence layout, <image> slot filling, the unified loss and its
// mask/slot/pair sanity checks (spec section 5), gradient flow, and the full-size parameter count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdamW, Generator, randn, tidy, noGrad } from '../../src/index.ts';
import { preset } from '../../src/emu/config.ts';
import { Emu } from '../../src/emu/emu.ts';
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

test.run();
