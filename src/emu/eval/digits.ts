// digits.ts: a small digit classifier trained with the engine, the judge of generated digits.
// Emu's text-to-image evaluation on the mnist data asks it which digit an image shows (is the
// picture of "a handwritten seven" a seven?), and FID (fid.ts) is computed on its penultimate
// layer, as FID on natural images uses Inception's.
//
// Input: images in the model's pixel layout, row-major 32x32x3 Float32Arrays in [0,1] (what
// src/emu/data/mnist.ts's mnistImage gives: the 28x28 digit padded by 2 black pixels per side,
// grey copied to R, G and B, white ink on black). digitInput is the one conversion the network
// sees: the mean of R, G and B (so a tinted generated digit still reads), normalised with MNIST's
// mean 0.1307 and std 0.3081, as a [N, 1, 32, 32] tensor.
//
// Network: LeNet-5 as LeCun et al. built it for 32x32 input: conv 5x5 (6) -> ReLU -> max-pool 2 ->
// conv 5x5 (16) -> ReLU -> max-pool 2 -> 400 -> 120 -> 84 -> 10, ReLU between the linear layers.
// The 84 ReLU activations are the features. About 62k parameters; trained with AdamW and a
// warm-up-cosine schedule (the defaults: 3 epochs over the ~8,000 training digits, about 20 s of
// CPU on 2 cores) it classifies 97.5% of the 1,996 held-out digits correctly.
import { existsSync } from 'node:fs';
import { CheckpointError, ShapeError, ValueError } from '../../tensor/errors.ts';
import { tidy } from '../../tensor/memory.ts';
import { Generator, randperm } from '../../tensor/random.ts';
import { fromValues } from '../../tensor/ops/creation.ts';
import { cat } from '../../tensor/ops/views.ts';
import { argmax } from '../../tensor/ops/reduce.ts';
import { maxPool2d } from '../../tensor/ops/image.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../autograd/index.ts';
import { Conv2d, Linear } from '../../nn/layers.ts';
import { Module } from '../../nn/module.ts';
import { AdamW } from '../../nn/optim/adamw.ts';
import { LRScheduler, warmupCosine } from '../../nn/schedule.ts';
import { crossEntropy } from '../../nn/functional.ts';
import { loadCheckpoint, saveCheckpoint } from '../../nn/checkpoint.ts';
import { mnistEntries, mnistImage } from '../data/mnist.ts';
import { featureStats, frechetDistance } from './fid.ts';

/** Side of the images the classifier reads. */
export const DIGIT_IMAGE_SIZE = 32;
/** Length of a feature vector (the penultimate layer). */
export const DIGIT_FEATURES = 84;
const MNIST_MEAN = 0.1307, MNIST_STD = 0.3081;
const PIXELS = DIGIT_IMAGE_SIZE * DIGIT_IMAGE_SIZE;
/** Images per forward pass when classifying or extracting features. */
const EVAL_BATCH = 500;
const CHECKPOINT_KIND = 'emu-digit-classifier';

/** Grey, normalised classifier input [N, 1, 32, 32] from 32x32x3 RGB images in [0,1]. */
export function digitInput(images: Float32Array[]): Tensor {
  return fromValues(greyNormalised(images, 'digitInput'), [images.length, 1, DIGIT_IMAGE_SIZE, DIGIT_IMAGE_SIZE], 'f32', 'cpu');
}

function greyNormalised(images: Float32Array[], op: string): Float32Array {
  if (!Array.isArray(images) || images.length === 0) throw new ValueError(`${op}: expected a non-empty array of images`);
  const out = new Float32Array(images.length * PIXELS);
  images.forEach((img, i) => {
    if (!(img instanceof Float32Array) || img.length !== PIXELS * 3) {
      throw new ShapeError(`${op}: image ${i} must be a 32x32x3 Float32Array (${PIXELS * 3} values), got ${img?.length} values`);
    }
    for (let p = 0; p < PIXELS; p++) {
      const grey = (img[3 * p] + img[3 * p + 1] + img[3 * p + 2]) / 3;
      out[i * PIXELS + p] = (grey - MNIST_MEAN) / MNIST_STD;
    }
  });
  return out;
}

export class DigitClassifier extends Module {
  conv1: Conv2d;
  conv2: Conv2d;
  fc1: Linear;
  fc2: Linear;
  fc3: Linear;

  /** Weights drawn from `generator` (seeded: the same seed gives the same network). */
  constructor(generator = new Generator(0)) {
    super();
    this.conv1 = this.module('conv1', new Conv2d(1, 6, 5, { generator }));
    this.conv2 = this.module('conv2', new Conv2d(6, 16, 5, { generator }));
    this.fc1 = this.module('fc1', new Linear(16 * 5 * 5, 120, { generator }));
    this.fc2 = this.module('fc2', new Linear(120, 84, { generator }));
    this.fc3 = this.module('fc3', new Linear(84, 10, { generator }));
  }

  /** Penultimate activations [N, 84] of a [N, 1, 32, 32] input from digitInput. */
  embed(x: Tensor): Tensor {
    let h = maxPool2d(this.conv1.forward(x).relu(), 2);   // [N, 6, 14, 14]
    h = maxPool2d(this.conv2.forward(h).relu(), 2);       // [N, 16, 5, 5]
    h = this.fc1.forward(h.flatten(1)).relu();
    return this.fc2.forward(h).relu();
  }

  /** Logits [N, 10] of a [N, 1, 32, 32] input from digitInput. */
  forward(x: Tensor): Tensor {
    return this.fc3.forward(this.embed(x));
  }

  /** The digit each image shows, 0-9. */
  classify(images: Float32Array[]): number[] {
    const predicted = this.#inBatches(images, 'classify', (x) => argmax(this.forward(x), 1));
    try {
      return [...(predicted.data() as Int32Array)];
    } finally {
      predicted.dispose();
    }
  }

  /** Feature vectors [N, 84] (f32, cpu; the caller owns the tensor). */
  features(images: Float32Array[]): Tensor {
    return this.#inBatches(images, 'features', (x) => this.embed(x));
  }

  #inBatches(images: Float32Array[], op: string, fn: (x: Tensor) => Tensor): Tensor {
    const grey = greyNormalised(images, `DigitClassifier.${op}`);
    const wasTraining = this.training;
    this.eval();
    try {
      return noGrad(() => tidy(() => {
        const parts: Tensor[] = [];
        for (let s = 0; s < images.length; s += EVAL_BATCH) {
          const n = Math.min(EVAL_BATCH, images.length - s);
          parts.push(fn(fromValues(grey.subarray(s * PIXELS, (s + n) * PIXELS), [n, 1, DIGIT_IMAGE_SIZE, DIGIT_IMAGE_SIZE], 'f32', 'cpu')));
        }
        return parts.length === 1 ? parts[0] : cat(parts, 0);
      }));
    } finally {
      this.train(wasTraining);
    }
  }
}

export interface DigitTrainOptions {
  /** Passes over the training images (default 3). */
  epochs?: number;
  /** Images per step (default 50). */
  batch?: number;
  /** Peak learning rate (default 3e-3), reached after 50 warm-up steps, then cosine to 0. */
  lr?: number;
  /** Seeds the weights and the shuffling (default 0). */
  seed?: number;
  /** Called after every step with the step number (from 1), the total and the loss. */
  onStep?: (step: number, totalSteps: number, loss: number) => void;
}

/** Trains a fresh DigitClassifier on images (32x32x3 RGB in [0,1]) with labels 0-9. */
export function trainDigitClassifier(images: Float32Array[], labels: number[], opts: DigitTrainOptions = {}): DigitClassifier {
  const { epochs = 3, batch = 50, lr = 3e-3, seed = 0 } = opts;
  if (!Array.isArray(labels) || labels.length !== images?.length) {
    throw new ValueError(`trainDigitClassifier: ${images?.length} images but ${labels?.length} labels`);
  }
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l > 9) throw new ValueError(`trainDigitClassifier: label ${i} is ${l}, expected an integer 0-9`);
  });
  for (const [name, v] of [['epochs', epochs], ['batch', batch]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ValueError(`trainDigitClassifier: ${name} must be a positive integer, got ${v}`);
  }
  if (!(lr > 0)) throw new ValueError(`trainDigitClassifier: lr must be positive, got ${lr}`);
  const grey = greyNormalised(images, 'trainDigitClassifier');
  const generator = new Generator(seed);
  const model = new DigitClassifier(generator);
  const opt = new AdamW(model.parameters(), { lr, weightDecay: 0 });
  const stepsPerEpoch = Math.ceil(images.length / batch);
  const totalSteps = epochs * stepsPerEpoch;
  const sched = new LRScheduler(opt, warmupCosine({ warmupSteps: Math.min(50, totalSteps - 1), totalSteps }));
  const x = new Float32Array(batch * PIXELS);
  const y = new Int32Array(batch);
  let step = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = randperm(images.length, { generator });
    const idx = order.data() as Int32Array;
    order.dispose();
    for (let s = 0; s < images.length; s += batch) {
      const n = Math.min(batch, images.length - s);
      for (let j = 0; j < n; j++) {
        x.set(grey.subarray(idx[s + j] * PIXELS, (idx[s + j] + 1) * PIXELS), j * PIXELS);
        y[j] = labels[idx[s + j]];
      }
      const loss = tidy(() => {
        const logits = model.forward(fromValues(x.subarray(0, n * PIXELS), [n, 1, DIGIT_IMAGE_SIZE, DIGIT_IMAGE_SIZE], 'f32', 'cpu'));
        const l = crossEntropy(logits, fromValues(y.subarray(0, n), [n], 'i32', 'cpu'));
        opt.zeroGrad();
        l.backward();
        opt.step();
        sched.step();
        return l.item() as number;
      });
      opts.onStep?.(++step, totalSteps, loss);
    }
  }
  model.eval();
  return model;
}

export interface MnistTrainOptions extends DigitTrainOptions {
  /** Train on every k-th digit of the training split only (default 1: all ~8,000). */
  subsample?: number;
}

/** Trains a DigitClassifier on the training split of the mnist package (src/emu/data/mnist.ts). */
export function trainDigitClassifierOnMnist(opts: MnistTrainOptions = {}): DigitClassifier {
  const { subsample = 1 } = opts;
  if (!Number.isInteger(subsample) || subsample < 1) throw new ValueError(`trainDigitClassifierOnMnist: subsample must be a positive integer, got ${subsample}`);
  const entries = mnistEntries('train').filter((_, i) => i % subsample === 0);
  return trainDigitClassifier(entries.map((e) => mnistImage(e)), entries.map((e) => e.label), opts);
}

/**
 * The classifier saved at `path`, or, when there is no file there yet, one trained on the mnist
 * training split and saved there. A file that is there but unreadable is a CheckpointError, not a
 * reason to retrain silently.
 */
export function loadOrTrainDigitClassifier(path: string, opts: MnistTrainOptions = {}): DigitClassifier {
  if (existsSync(path)) return loadDigitClassifier(path);
  const model = trainDigitClassifierOnMnist(opts);
  saveDigitClassifier(path, model);
  return model;
}

/** Fraction of images the classifier labels correctly. */
export function digitAccuracy(model: DigitClassifier, images: Float32Array[], labels: number[]): number {
  if (!Array.isArray(labels) || labels.length !== images?.length) throw new ValueError(`digitAccuracy: ${images?.length} images but ${labels?.length} labels`);
  const predicted = model.classify(images);
  return predicted.filter((p, i) => p === labels[i]).length / labels.length;
}

/** FID between two image sets measured on the classifier's features (e.g. generated vs held-out digits). */
export function digitFid(model: DigitClassifier, generated: Float32Array[], real: Float32Array[]): number {
  const a = model.features(generated), b = model.features(real);
  try {
    return frechetDistance(featureStats(a), featureStats(b));
  } finally {
    a.dispose();
    b.dispose();
  }
}

/** Saves the weights to a safetensors checkpoint (atomic), marked as a digit classifier. */
export function saveDigitClassifier(path: string, model: DigitClassifier): void {
  saveCheckpoint(path, { model: model.stateDict(), extra: { kind: CHECKPOINT_KIND } });
}

/** Loads a classifier written by saveDigitClassifier; anything else is a CheckpointError. */
export function loadDigitClassifier(path: string): DigitClassifier {
  const ckpt = loadCheckpoint(path);
  try {
    const kind = (ckpt.extra as { kind?: unknown } | undefined)?.kind;
    if (kind !== CHECKPOINT_KIND) throw new CheckpointError(`loadDigitClassifier: ${path} is not a digit classifier checkpoint (kind ${JSON.stringify(kind)})`);
    const model = new DigitClassifier();
    model.loadStateDict(ckpt.model);
    return model.eval();
  } finally {
    for (const t of ckpt.model.values()) t.dispose();
  }
}
