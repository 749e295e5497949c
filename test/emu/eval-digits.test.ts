// eval-digits.test.ts: the digit classifier of src/emu/eval/digits.ts. On a small budget (2,000
// training digits of the mnist package, 2 epochs, a few seconds) it must classify held-out
// digits far above chance; its input conversion, features, checkpoint round trip, FID on its
// features and its input checks are tested alongside.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mnistEntries, mnistImage, type DigitEntry } from '../../src/emu/data/mnist.ts';
import {
  DIGIT_FEATURES, DigitClassifier, digitAccuracy, digitFid, digitInput, loadDigitClassifier, loadOrTrainDigitClassifier, saveDigitClassifier,
  trainDigitClassifier, trainDigitClassifierOnMnist,
} from '../../src/emu/eval/digits.ts';
import { saveCheckpoint, tensor } from '../../src/index.ts';
import { CheckpointError, ShapeError, ValueError } from '../../src/tensor/errors.ts';

const every = (entries: DigitEntry[], k: number) => entries.filter((_, i) => i % k === 0);
const train = every(mnistEntries('train'), 4);      // ~2,000 digits, all ten classes
const heldOut = every(mnistEntries('heldOut'), 4);  // ~500 digits never trained on
const trainImages = train.map((e) => mnistImage(e));
const heldOutImages = heldOut.map((e) => mnistImage(e));
let trained: DigitClassifier | undefined;
const model = (): DigitClassifier => (trained ??= trainDigitClassifier(trainImages, train.map((e) => e.label), { epochs: 2, seed: 1 }));

test('digitInput: the mean of R, G, B, normalised with MNIST mean and std, as [N, 1, 32, 32]', () => {
  const img = new Float32Array(32 * 32 * 3);
  img.set([0.3, 0.6, 0.9], 0);       // pixel (0, 0): grey 0.6
  img.set([1, 1, 1], 3 * 33);         // pixel (1, 1): grey 1
  const x = digitInput([img, new Float32Array(32 * 32 * 3)]);
  assert.equal(x.shape, [2, 1, 32, 32]);
  const v = x.data() as Float32Array;
  x.dispose();
  const norm = (g: number) => (g - 0.1307) / 0.3081;
  assert.ok(Math.abs(v[0] - norm(0.6)) < 1e-6);
  assert.ok(Math.abs(v[33] - norm(1)) < 1e-6);
  assert.ok(Math.abs(v[1] - norm(0)) < 1e-6);
  assert.ok(Math.abs(v[1024 + 500] - norm(0)) < 1e-6);
});

test('trained on 2,000 digits for 2 epochs, it classifies held-out digits far above chance (10%)', () => {
  const losses: number[] = [];
  const m = trainDigitClassifier(trainImages.slice(0, 200), train.slice(0, 200).map((e) => e.label), {
    epochs: 1, batch: 20, seed: 3, onStep: (_s, _t, loss) => losses.push(loss),
  });
  assert.is(losses.length, 10);
  assert.ok(m instanceof DigitClassifier);
  const acc = digitAccuracy(model(), heldOutImages, heldOut.map((e) => e.label));
  console.log(`    digits: held-out accuracy ${(100 * acc).toFixed(1)}% on ${heldOut.length} digits (2,000 train, 2 epochs)`);
  assert.ok(acc >= 0.85, `held-out accuracy ${acc}`);
  // Every class is recognised, not just the frequent ones.
  const predicted = model().classify(heldOutImages);
  for (let d = 0; d < 10; d++) {
    const ofClass = heldOut.map((e, i) => [e.label, predicted[i]]).filter(([l]) => l === d);
    const right = ofClass.filter(([l, p]) => l === p).length;
    assert.ok(right / ofClass.length > 0.5, `digit ${d}: ${right}/${ofClass.length}`);
  }
});

test('the same seed trains the same network', () => {
  const a = trainDigitClassifier(trainImages.slice(0, 100), train.slice(0, 100).map((e) => e.label), { epochs: 1, batch: 25, seed: 7 });
  const b = trainDigitClassifier(trainImages.slice(0, 100), train.slice(0, 100).map((e) => e.label), { epochs: 1, batch: 25, seed: 7 });
  const fa = a.features(heldOutImages.slice(0, 20)), fb = b.features(heldOutImages.slice(0, 20));
  assert.equal([...(fa.data() as Float32Array)], [...(fb.data() as Float32Array)]);
  fa.dispose(); fb.dispose();
});

test('features are [N, 84]; FID on them is ~0 for one set, small for the same digit, large across digits', () => {
  const m = model();
  const f = m.features(trainImages);  // several batches of 500, concatenated
  assert.equal(f.shape, [trainImages.length, DIGIT_FEATURES]);
  const last = m.features(trainImages.slice(-1));
  const all = f.data() as Float32Array;
  assert.equal([...all.subarray(all.length - DIGIT_FEATURES)], [...(last.data() as Float32Array)]);
  f.dispose(); last.dispose();
  const ofDigit = (entries: DigitEntry[], images: Float32Array[], d: number) => images.filter((_, i) => entries[i].label === d);
  const sevensTrain = ofDigit(train, trainImages, 7), sevensHeld = ofDigit(heldOut, heldOutImages, 7);
  const onesTrain = ofDigit(train, trainImages, 1);
  assert.ok(digitFid(m, sevensHeld, sevensHeld) < 1e-6);
  const same = digitFid(m, sevensHeld, sevensTrain), different = digitFid(m, sevensHeld, onesTrain);
  assert.ok(different > 3 * same, `FID sevens/sevens ${same}, sevens/ones ${different}`);
});

test('save and load give the same predictions and features; other checkpoints are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emu-digits-'));
  try {
    const path = join(dir, 'digits.safetensors');
    saveDigitClassifier(path, model());
    const loaded = loadDigitClassifier(path);
    const sample = heldOutImages.slice(0, 50);
    assert.equal(loaded.classify(sample), model().classify(sample));
    const a = loaded.features(sample), b = model().features(sample);
    assert.equal([...(a.data() as Float32Array)], [...(b.data() as Float32Array)]);
    a.dispose(); b.dispose();
    const other = join(dir, 'other.safetensors');
    const w = tensor([1, 2, 3]);
    saveCheckpoint(other, { model: { w }, extra: { kind: 'something-else' } });
    w.dispose();
    assert.throws(() => loadDigitClassifier(other), (e: Error) => e instanceof CheckpointError && /not a digit classifier/.test(e.message));
    const corrupt = join(dir, 'corrupt.safetensors');
    writeFileSync(corrupt, 'not a checkpoint');
    assert.throws(() => loadDigitClassifier(corrupt), (e: Error) => e instanceof CheckpointError);
    assert.throws(() => loadDigitClassifier(join(dir, 'missing.safetensors')), (e: Error) => e instanceof CheckpointError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadOrTrainDigitClassifier trains on the mnist training split and saves once, then loads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emu-digits-'));
  try {
    const path = join(dir, 'classifier.safetensors');
    let steps = 0;
    const first = loadOrTrainDigitClassifier(path, { subsample: 20, epochs: 1, onStep: () => steps++ });
    assert.is(steps, Math.ceil(Math.ceil(mnistEntries('train').length / 20) / 50));
    assert.ok(existsSync(path));
    const second = loadOrTrainDigitClassifier(path, { onStep: () => steps++ });
    assert.is(steps, Math.ceil(Math.ceil(mnistEntries('train').length / 20) / 50), 'the second call loads, it does not train');
    assert.equal(second.classify(heldOutImages.slice(0, 40)), first.classify(heldOutImages.slice(0, 40)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives typed errors naming the function', () => {
  const img = new Float32Array(32 * 32 * 3);
  const isErr = (cls: typeof ValueError, re: RegExp) => (e: Error) => e instanceof cls && re.test(e.message);
  assert.throws(() => digitInput([]), isErr(ValueError, /digitInput: expected a non-empty/));
  assert.throws(() => model().classify([img, new Float32Array(28 * 28)]), isErr(ShapeError, /classify: image 1 must be a 32x32x3/));
  assert.throws(() => trainDigitClassifier([img], [1, 2]), isErr(ValueError, /1 images but 2 labels/));
  assert.throws(() => trainDigitClassifier([img], [10]), isErr(ValueError, /label 0 is 10/));
  assert.throws(() => trainDigitClassifier([img], [1], { epochs: 0 }), isErr(ValueError, /epochs must be/));
  assert.throws(() => trainDigitClassifier([img], [1], { lr: -1 }), isErr(ValueError, /lr must be positive/));
  assert.throws(() => digitAccuracy(model(), [img], []), isErr(ValueError, /digitAccuracy/));
  assert.throws(() => trainDigitClassifierOnMnist({ subsample: 0 }), isErr(ValueError, /trainDigitClassifierOnMnist: subsample/));
});

test.run();
