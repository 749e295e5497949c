// autocast.test.ts: bf16 and f16 mixed precision (src/tensor/autocast.ts): which ops cast, what
// stays f32, gradients reaching f32 parameters, nesting, and a training step close to f32's, on
// cpu and on sim. The values stay modest, so f16 needs no loss scaling here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AdamW, Conv2d, F, Generator, Linear, RMSNorm, autocast, autocastDType, randn, simAvailable, tidy, ValueError, type AutocastDType, type Device,
  type Tensor,
} from '../src/index.ts';

const devices: Device[] = simAvailable() ? ['cpu', 'sim'] : ['cpu'];
const HALVES: AutocastDType[] = ['bf16', 'f16'];

function maxRelErr(a: Tensor, b: Tensor): number {
  const x = a.to('cpu').to('f64').data() as Float64Array, y = b.to('cpu').to('f64').data() as Float64Array;
  let err = 0, scale = 0;
  for (let i = 0; i < x.length; i++) {
    err = Math.max(err, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return err / scale;
}

for (const half of HALVES) test(`autocast(${half}): matmul, linear, conv2d and attention compute in ${half}; other ops and f64 keep their dtype`, () => tidy(() => {
  const g = new Generator(1);
  const a = randn([5, 7], { generator: g }), b = randn([7, 3], { generator: g });
  const x = randn([2, 3, 9, 9], { generator: g }), w = randn([4, 3, 3, 3], { generator: g });
  const q = randn([2, 5, 8], { generator: g }), k = randn([2, 6, 8], { generator: g }), v = randn([2, 6, 8], { generator: g });
  const a64 = a.to('f64'), b64 = b.to('f64');
  assert.is(autocastDType(), null);
  autocast(() => {
    assert.is(autocastDType(), half);
    const y = a.matmul(b);
    assert.is(y.dtype, half);
    assert.ok(maxRelErr(y, a.matmul(b).to('f32')) < 1e-6, 'the same product either way inside autocast');
    assert.is(F.linear(a, b.transpose(0, 1)).dtype, half);
    const bias = randn([3], { generator: g });
    assert.is(F.linear(a, b.transpose(0, 1), bias).dtype, half, 'the bias is cast with x and W, as torch does');
    assert.is(F.linear(a.to('sim'), b.transpose(0, 1).to('sim'), bias.to('sim'), { activation: 'gelu' }).dtype, half, 'the fused path too');
    assert.is(F.linear(a, b.transpose(0, 1), bias, { residual: randn([5, 3], { generator: g }) }).dtype, 'f32', 'an f32 residual promotes, as x + linear(h) does');
    assert.is(F.conv2d(x, w, null, { padding: 1 }).dtype, half);
    assert.is(F.scaledDotProductAttention(q, k, v).dtype, half);
    assert.is(a64.matmul(b64).dtype, 'f64', 'f64 is never cast');
    assert.is(a.add(1).dtype, 'f32', 'elementwise ops are not cast');
    assert.is(a.softmax(-1).dtype, 'f32');
    assert.is(autocast(() => a.matmul(b).dtype, { enabled: false }), 'f32', 'enabled: false turns it off inside');
    assert.is(autocastDType(), half, 'and restores it');
  }, { dtype: half });
  const ref = a.matmul(b);
  const mixed = autocast(() => a.matmul(b), { dtype: half });
  assert.is(ref.dtype, 'f32');
  const bound = half === 'bf16' ? 2e-2 : 3e-3;
  assert.ok(maxRelErr(mixed, ref) < bound, `${half} product within ${half} rounding: ${maxRelErr(mixed, ref)}`);
  assert.throws(() => autocast(() => { throw new Error('inside'); }, { dtype: half }), /inside/);
  assert.is(autocastDType(), null, 'restored after a throw');
  assert.throws(() => autocast(() => 0, { dtype: 'f64' as 'bf16' }), (e: unknown) => e instanceof ValueError && /dtype must be bf16 or f16/.test((e as Error).message));
}));

for (const device of devices) for (const half of HALVES) {
  test(`autocast(${half}) on ${device}: f32 parameters get f32 gradients close to full precision, and a training step follows f32's`, () => tidy(() => {
    const build = () => {
      const g = new Generator(7);
      return {
        conv: new Conv2d(3, 4, 3, { padding: 1, generator: g }).to(device),
        lin: new Linear(4 * 25, 16, { generator: g }).to(device),
        norm: new RMSNorm(16).to(device),
        head: new Linear(16, 5, { generator: g }).to(device),
      };
    };
    const g = new Generator(3);
    const x = randn([6, 3, 5, 5], { generator: g }).to(device);
    const target = randn([6, 5], { generator: g }).to(device);
    const loss = (m: ReturnType<typeof build>) => {
      const h = F.silu(m.conv.forward(x)).reshape(6, -1);
      const y = m.head.forward(m.norm.forward(m.lin.forward(h)));
      return F.mseLoss(y, target);
    };
    const runs = [false, true].map((mixed) => {
      const m = build();
      const params = [m.conv, m.lin, m.norm, m.head].flatMap((l) => l.parameters());
      const opt = new AdamW(params, { lr: 1e-2 });
      const losses: number[] = [];
      let firstGrads: Tensor[] = [];
      for (let step = 0; step < 4; step++) {
        tidy(() => {
          const l = autocast(() => loss(m), { enabled: mixed, dtype: half });
          assert.is(l.dtype, 'f32', 'the loss of an f32 target is f32');
          l.backward();
          losses.push(l.item() as number);
        });
        for (const p of params) {
          assert.is(p.dtype, 'f32', 'parameters stay f32');
          assert.is(p.grad!.dtype, 'f32', 'and their gradients are f32');
        }
        if (step === 0) firstGrads = params.map((p) => p.grad!.clone());
        opt.step();
        opt.zeroGrad();
      }
      return { losses, grads: firstGrads };
    });
    const [full, mixed] = runs;
    full.grads.forEach((gr, i) => {
      const e = maxRelErr(mixed.grads[i], gr);
      assert.ok(e < 5e-2, `gradient ${i}: relative error ${e} beyond ${half} rounding`);
    });
    full.losses.forEach((l, i) => assert.ok(Math.abs(mixed.losses[i] - l) < 3e-2 * Math.abs(l), `step ${i}: f32 ${l}, autocast ${mixed.losses[i]}`));
    assert.ok(mixed.losses[3] < mixed.losses[0], `the autocast run learns: ${mixed.losses.join(' ')}`);
  }));
}

test.run();
