// emu eval end to end on a randomly initialised micro run: every table and sample is filled, the
// report and its pictures are written, the chance rows do not depend on the model, and the
// descriptions used for text-to-image state exactly the relation that is scored.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/index.ts';
import { describeScene, evaluate, evaluateRun, EVAL_SIZES, headline, wrongLabelIndex, type EvalOptions } from '../../src/emu/eval/index.ts';
import { QUESTIONS_PER_SCENE } from '../../src/emu/eval/suite.ts';
import { holds, scene } from '../../src/emu/data/shapes.ts';
import { loadTrained } from '../../src/emu/train/run_dir.ts';
import { writeMicroRun } from './infer_fixture.ts';

const root = writeMicroRun();
const small: EvalOptions = {
  scenes: 2, clips: 2, digits: 2, fewShotQueries: 2, images: 2, digitsPerLabel: 1, steps: 2, guidance: 3, beams: 1, probeScenes: 20, readScenes: 2,
  classifierPath: join(root, 'digits.safetensors'),
};

test('describeScene states the first two shapes and their true relation', () => {
  for (let s = 0; s < 200; s++) {
    const sc = scene(s);
    const d = describeScene(sc);
    if (sc.shapes.length === 1) {
      assert.equal(d.relations, []);
      assert.ok(d.prompt.endsWith(sc.shapes[0].kind));
    } else {
      const { a, relation, b } = d.relations![0];
      assert.ok(holds(sc.shapes[a], relation, sc.shapes[b]), `${d.prompt}`);
      assert.ok(d.prompt.includes(sc.shapes[0].color) && d.prompt.includes(sc.shapes[1].color));
    }
  }
});

test('wrongLabelIndex: the next item of another label, cyclically', () => {
  const labels = [0, 0, 0, 1, 1, 2];
  assert.equal(labels.map((_, i) => wrongLabelIndex(labels, i)), [3, 3, 3, 5, 5, 0]);
  assert.equal(wrongLabelIndex([7, 7], 0), 1, 'one label only: the next item');
});

test('evaluate fills every table, and the chance rows do not depend on the model', () => {
  const trained = loadTrained(root);
  const r = evaluate(trained, { ...small, classifierPath: join(root, 'digits.safetensors') });
  const [pre, emuI, chance] = r.zeroShot;
  assert.type(pre.results.caption, 'number');
  for (const k of ['caption', 'vqa', 'videoQa', 'digitCaption']) {
    assert.type(emuI.results[k], 'number', k);
    assert.ok(chance.results[k]! >= 0 && chance.results[k]! <= 10, k);
  }
  assert.equal(Object.keys(r.fewShot[0].results.caption).map(Number), [0, 2, 4, 8]);
  assert.equal(r.textToImage.length, 3);
  assert.equal(r.images.length, small.images + 10 * small.digitsPerLabel);
  assert.ok(r.images.every((x) => x.pixels.length === 32 * 32 * 3));
  assert.equal(r.samples.answers.length, r.vqaByType.reduce((n, t) => n + t.questions, 0));
  assert.ok(r.samples.answers.length > 2 * small.scenes && r.samples.answers.length <= QUESTIONS_PER_SCENE * small.scenes);
  // The per-type accuracies recombine into the overall one.
  const correct = r.vqaByType.reduce((n, t) => n + t.accuracy * t.questions, 0);
  assert.ok(Math.abs(correct / r.samples.answers.length - (emuI.results.vqa as number)) < 1e-9);
  assert.ok(r.vqaByType.every((t) => t.majority >= 0 && t.majority <= 1 && t.questions > 0));
  const again = evaluate(trained, small);
  assert.equal(again.zeroShot[2], chance, 'chance rows are a function of the held-out data only');
  assert.equal(again.zeroShot[1], emuI, 'evaluation is deterministic');
  assert.equal(again.visual, r.visual, 'the probes are deterministic');
  assert.equal(again.textToImage, r.textToImage, 'generation, its read-back and the VAE ceiling are deterministic');
  assert.ok(Object.values(r.textToImage[2].results).every((x) => x !== null && x >= 0), JSON.stringify(r.textToImage[2]));
  const rows = [r.visual.flattened, r.visual.mean, r.visual.chance];
  assert.ok(rows.every((row) => Object.values(row).every((x) => x >= 0 && x <= 1)), JSON.stringify(r.visual));
  assert.equal(r.visual.counts.read, small.readScenes);
  assert.equal(r.visual.counts.pairs, small.readScenes);
  assert.ok(Object.values(r.visual.reading).every((x) => x >= 0 && x <= 1), JSON.stringify(r.visual.reading));
  assert.is(r.visual.chance.kind, 1 / 3);
  assert.equal(headline(r).length, 3);
  assert.throws(() => evaluate(trained, { ...small, scenes: 0 }), (e: unknown) => e instanceof ValueError && /scenes must be a positive integer/.test((e as Error).message));
});

test('evaluateRun writes report.md with its tables and pictures, and results.json', () => {
  const sizes = EVAL_SIZES as Record<string, Omit<EvalOptions, 'classifierPath'>>;
  sizes.test = { ...small };
  try {
    const { path } = evaluateRun(root, 'test' as 'quick');
    const md = readFileSync(path, 'utf8');
    for (const heading of ['Zero-shot', 'Visual embeddings', 'Few-shot', 'Text-to-image', 'Sample captions', 'Sample answers', 'Sample video answers']) {
      assert.ok(md.includes(`## ${heading}`), heading);
    }
    for (const [, pic] of md.matchAll(/!\[[^\]]*\]\((report\/[^)]+)\)/g)) assert.ok(existsSync(join(root, pic)), pic);
    const numbers = JSON.parse(readFileSync(join(root, 'results.json'), 'utf8'));
    assert.equal(numbers.zeroShot.length, 3);
  } finally {
    delete sizes.test;
  }
});

test.after(() => rmSync(root, { recursive: true, force: true }));

test.run();
