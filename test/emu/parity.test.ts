// parity.test.ts: the micro Emu matches a plain PyTorch reference, as llm.c's test_gpt2 does.
// test/fixtures/make_emu_fixture.py (run once with Debian's python3-torch; CI only reads its
// output, test/fixtures/emu_micro.safetensors) implements Emu with the 'micro' sizes, draws fixed
// seeded weights under our state-dict names, runs a batch of two right-padded sequences (one
// image-first, one caption-first) forward and backward in float64, and stores the weights, the
// inputs, the per-module outputs, CE, MSE, the total loss, the sanity counts and every parameter
// gradient (rounded to f32). Here the same weights go into Emu(preset('micro')) (f32) on cpu and
// on sim (native/cuda's kernels in the SIMT emulator) and every stored tensor must agree.
//
// Criterion, per tensor, both must hold: err = max|a - e| / (1 + max|e|) <= 1e-4 (the absolute
// error against the tensor's scale, floored at 1) and rel = max|a - e| / max|e| <= 1e-4 (against
// the tensor's scale alone, so a tensor of tiny gradients cannot pass loosely). The worst of each
// per group is printed.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadSafetensors, tidy, type Device, type Tensor } from '../../src/index.ts';
import { preset } from '../../src/emu/config.ts';
import { Emu } from '../../src/emu/emu.ts';

const TOL = 1e-4;
const fixture = loadSafetensors(join(import.meta.dirname, '..', 'fixtures', 'emu_micro.safetensors'));
const T = (name: string): Tensor => {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`emu_micro fixture has no ${name}`);
  return t;
};
const num = (name: string): number => Number(T(name).data()[0]);

/** Worst errors per group, reported at the end. */
const worst = new Map<string, { err: number; rel: number; name: string }>();

function assertClose(actual: Tensor, expected: Tensor, what: string, group: string): void {
  assert.equal(actual.shape, expected.shape, `${what}: shape [${actual.shape.join(',')}] vs PyTorch [${expected.shape.join(',')}]`);
  const a = actual.data(), e = expected.data();
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(Number(a[i]) - Number(e[i]));
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(Number(e[i])));
  }
  const err = diff / (1 + scale), rel = scale > 0 ? diff / scale : diff;
  const w = worst.get(group);
  if (!w || err > w.err) worst.set(group, { err, rel: Math.max(rel, w?.rel ?? 0), name: what });
  else w.rel = Math.max(w.rel, rel);
  const detail = `(max|a-e| ${diff.toExponential(3)}, max|e| ${scale.toExponential(3)})`;
  assert.ok(err <= TOL, `${what}: max|a-e|/(1+max|e|) = ${err.toExponential(3)} > ${TOL} ${detail}`);
  assert.ok(rel <= TOL, `${what}: max|a-e|/max|e| = ${rel.toExponential(3)} > ${TOL} ${detail}`);
}

function build(device: Device = 'cpu'): { model: Emu; ids: number[][]; pixels: Tensor } {
  const model = new Emu(preset('micro'));
  const sd: Record<string, Tensor> = {};
  for (const [k, v] of fixture.tensors) if (k.startsWith('param.')) sd[k.slice('param.'.length)] = v;
  model.loadStateDict(sd); // strict: every name on both sides
  const idT = T('input.ids');
  const [B, L] = idT.shape;
  const flat = Array.from(idT.data() as ArrayLike<number>, Number);
  const ids = Array.from({ length: B }, (_, b) => flat.slice(b * L, (b + 1) * L));
  return { model: model.to(device), ids, pixels: T('input.pixels').to(device) };
}

test('the fixture was written by PyTorch for the micro preset, with every parameter and gradient', () => {
  assert.match(fixture.metadata.torch, /^\d+\.\d+/);
  assert.is(fixture.metadata.preset, 'micro');
  const { model } = build();
  for (const [name, p] of model.namedParameters()) {
    assert.ok(fixture.tensors.has(`grad.${name}`), `fixture has grad.${name}`);
    assert.equal(T(`param.${name}`).shape, p.shape, `param.${name} shape`);
  }
  const pad = model.ids.pad;
  const emb = T('param.decoder.lm.model.embed_tokens.weight').select(0, pad);
  assert.ok([...emb.data()].every((x) => x === 0), 'the [PAD] embedding row is zero');
});

for (const device of ['cpu', 'sim'] as const) test(`micro Emu on ${device} matches PyTorch: module outputs, CE, MSE, loss, counts and every gradient (1e-4)`, () => {
  worst.clear();
  const { model, ids, pixels } = build(device);
  const { pad } = model.ids;
  const B = ids.length;
  tidy(() => {
    // The pieces, one at a time: vision, ln_visual, cformer, slot filling, LLaMA.
    const vis = model.visual.forward(pixels);
    assertClose(vis, T('out.vision'), 'vision tokens', 'vision');
    const visLn = model.ln_visual.forward(vis);
    assertClose(visLn, T('out.ln_visual'), 'ln_visual', 'vision');
    const z = model.encodeImages(pixels);
    assertClose(z, T('out.z'), 'cformer z', 'cformer');
    const embeds = model.embedWithImages(ids, z);
    assertClose(embeds, T('out.embeds'), 'input embeddings after slot filling', 'llm');
    const mask = T('input.ids').ne(pad).to(device);
    const out = model.lm.forward(embeds, { attentionMask: mask, regress: true });
    assertClose(out.hidden, T('out.hidden'), 'final hidden', 'llm');
    assertClose(out.logits!, T('out.logits'), 'logits', 'llm');
    assertClose(out.regress!, T('out.regress'), 'regress', 'llm');
  });
  const images = [0, 1].map((i) => pixels.select(0, i));
  assert.is(images.length, B);
  tidy(() => {
    const r = model.loss({ ids, images });
    assertClose(r.ce, T('out.ce'), 'ce', 'losses');
    assertClose(r.mse, T('out.mse'), 'mse', 'losses');
    assertClose(r.loss, T('out.loss'), 'loss', 'losses');
    assert.ok(Math.abs(num('out.ce') - 6.4236) < 1e-3 && Math.abs(num('out.mse') - 1.0049) < 1e-3, 'the fixture is the committed one');
    assert.is(r.counts.ceTargets, num('count.ce_targets'), 'CE target count');
    assert.is(r.counts.imageSlots, num('count.image_slots'), '<image> slot count');
    assert.is(r.counts.regressPairs, num('count.regress_pairs'), 'regression pair count');
    r.loss.backward();
  });
  for (const [name, p] of model.namedParameters()) {
    assert.ok(p.grad, `${name} has a gradient`);
    const group = `grad ${name.split('.')[0] === 'decoder' ? 'llm' : name.split('.')[0]}`;
    assertClose(p.grad!, T(`grad.${name}`), `grad ${name}`, group);
  }
  model.zeroGrad();
  const lines = [...worst].map(([g, w]) => `  ${g.padEnd(15)} worst ${w.err.toExponential(2)} (${w.name}); max|a-e|/max|e| ${w.rel.toExponential(2)}`);
  console.log(`emu parity vs PyTorch on ${device} (max|a-e|/(1+max|e|)):\n${lines.join('\n')}`);
});

test.run();
