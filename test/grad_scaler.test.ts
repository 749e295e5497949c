// grad_scaler.test.ts: dynamic loss scaling (src/nn/optim/grad_scaler.ts) for f16 autocast: a
// gradient that flushes to zero in an f16 backward survives scaling and comes back unscaled;
// an overflow skips the step and backs the scale off; clean steps grow it; and the misuses are
// typed errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { autocast, Generator, GradScaler, Linear, randn, SGD, tidy, ValueError, type Tensor } from '../src/index.ts';

/** A linear layer, its input, and a loss of it whose gradient is `tiny` per output (f16 flushes 1e-8 to 0). */
function setup(tiny: number) {
  const g = new Generator(3);
  const lin = new Linear(8, 3, { generator: g });
  const x = randn([4, 8], { generator: g });
  const loss = (dtype: 'f16' | null) => {
    const y = dtype ? autocast(() => lin.forward(x), { dtype }) : lin.forward(x);
    return y.to('f32').sum().mul(tiny);
  };
  return { lin, loss };
}

const values = (t: Tensor) => Array.from(t.data());

test('GradScaler: an f16 gradient that flushes to zero unscaled comes back within f16 rounding when scaled', () => tidy(() => {
  const { lin, loss } = setup(1e-8);
  loss(null).backward();
  const want = values(lin.weight.grad!);
  lin.weight.zeroGrad();
  lin.bias!.zeroGrad();

  loss('f16').backward();
  assert.ok(values(lin.weight.grad!).every((v) => v === 0), 'without scaling the f16 backward loses the gradient');
  lin.weight.zeroGrad();
  lin.bias!.zeroGrad();

  const scaler = new GradScaler();
  const opt = new SGD(lin.parameters(), { lr: 0.1 });
  scaler.scale(loss('f16')).backward();
  scaler.unscale(opt);
  const got = values(lin.weight.grad!);
  const scale = Math.max(...want.map(Math.abs));
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 2 ** -10 * scale, `grad ${i}: ${v}, f32 ${want[i]}`));
  assert.ok(scaler.step(opt), 'a finite step is taken');
  scaler.update();
  assert.is(scaler.getScale(), 2 ** 16, 'one clean step of 2000 does not grow the scale');
}));

test('GradScaler: an overflowed gradient skips the step and backs the scale off; clean steps grow it', () => tidy(() => {
  const { lin, loss } = setup(1);
  const opt = new SGD(lin.parameters(), { lr: 0.1 });
  const scaler = new GradScaler({ initScale: 2 ** 40, growthInterval: 2 });
  const before = values(lin.weight);
  scaler.scale(loss('f16')).backward();  // 2^40 per output is inf in f16
  assert.is(scaler.step(opt), false);
  assert.equal(values(lin.weight), before, 'the parameters are untouched');
  scaler.update();
  assert.is(scaler.getScale(), 2 ** 39);

  const small = new GradScaler({ initScale: 4, growthInterval: 2 });
  for (let step = 0; step < 2; step++) {
    opt.zeroGrad();
    small.scale(loss('f16')).backward();
    const w = values(lin.weight);
    assert.ok(small.step(opt));
    small.update();
    // SGD with the true gradient: the weight moved by lr * grad, the grad unscaled.
    const grad = values(lin.weight.grad!);
    values(lin.weight).forEach((v, i) => assert.ok(Math.abs(v - (w[i] - 0.1 * grad[i])) < 1e-6));
  }
  assert.is(small.getScale(), 8, 'two clean steps in a row double it');
  assert.equal(small.stateDict(), { scale: 8, growthTracker: 0 });
}));

test('GradScaler: misuse is a ValueError; disabled, it is a pass-through', () => tidy(() => {
  for (const opts of [{ initScale: 0 }, { initScale: Infinity }, { growthFactor: 1 }, { backoffFactor: 1 }, { growthInterval: 1.5 }]) {
    assert.throws(() => new GradScaler(opts), (e: unknown) => e instanceof ValueError && /^GradScaler: /.test((e as Error).message));
  }
  const { lin, loss } = setup(1);
  const opt = new SGD(lin.parameters(), { lr: 0.1 });
  const scaler = new GradScaler();
  assert.throws(() => scaler.update(), (e: unknown) => e instanceof ValueError && /no optimizer/.test((e as Error).message));
  scaler.scale(loss(null)).backward();
  scaler.unscale(opt);
  assert.throws(() => scaler.unscale(opt), (e: unknown) => e instanceof ValueError && /already called/.test((e as Error).message));
  assert.throws(() => scaler.scale(randn([2]).gt(0)), (e: unknown) => e instanceof ValueError && /float/.test((e as Error).message));
  assert.throws(() => scaler.loadStateDict({ scale: -1, growthTracker: 0 }), (e: unknown) => e instanceof ValueError);
  scaler.loadStateDict({ scale: 1024, growthTracker: 3 });
  assert.equal(scaler.stateDict(), { scale: 1024, growthTracker: 3 });

  const off = new GradScaler({ enabled: false });
  const l = loss(null);
  assert.is(off.scale(l), l);
  assert.is(off.getScale(), 1);
  assert.ok(off.step(opt));
  off.update();
}));

test.run();
