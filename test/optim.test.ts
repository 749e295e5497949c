// optim.test.ts: optimizers, gradient clipping, LR schedules and checkpoints. SGD and AdamW follow
// trajectories computed here in plain JS f64 with torch.optim's formulas (f64 parameters to
// 1e-12, f32 to f32 precision); parameter groups keep their own lr and weight decay; bf16
// parameters train through f32 master weights; a run saved after 10 steps (stateDict through a
// safetensors file, or a whole checkpoint) and resumed in a fresh optimizer gives the same bits
// as the run that never stopped; 1000 steps leave memory flat.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AdamW, clipGradNorm, constant, flattenStateDict, Generator, loadCheckpoint, loadSafetensors, LRScheduler, memoryStats, randn,
  saveCheckpoint, saveSafetensors, SGD, square, stepDecay, sub, sum, tensor, Tensor, tidy, unflattenStateDict, ValueError,
  warmupCosine, type DType, type Optimizer, type Hyper,
} from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'emu-optim-'));

/** loss = sum((p - target)^2); backward leaves p.grad = 2 (p - target). */
function backwardQuadratic(p: Tensor, target: Tensor): void {
  tidy(() => sum(square(sub(p, target))).backward());
}

function values(t: Tensor): number[] {
  return Array.from(t.data() as Float64Array);
}

function bits(t: Tensor): Buffer {
  const d = t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.is(actual.length, expected.length, what);
  actual.forEach((a, i) => {
    const e = expected[i];
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) assert.unreachable(`${what}[${i}]: ${a} vs expected ${e}`);
  });
}

const P0 = [1, -2, 3.5, 0.25];
const TARGET = [0.5, 0.5, -1, 2];

/** torch.optim.SGD (dampening 0) on the quadratic, in f64. */
function sgdReference(steps: number, lr: number, momentum = 0, wd = 0, nesterov = false): number[] {
  const p = [...P0];
  const buf = P0.map(() => 0);
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < p.length; i++) {
      let d = 2 * (p[i] - TARGET[i]) + wd * p[i];
      if (momentum) {
        buf[i] = s === 0 ? d : momentum * buf[i] + d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
  return p;
}

/** torch.optim.AdamW (amsgrad off) on the quadratic, in f64. */
function adamwReference(steps: number, lr: number, b1: number, b2: number, eps: number, wd: number): number[] {
  const p = [...P0];
  const m = P0.map(() => 0), v = P0.map(() => 0);
  for (let t = 1; t <= steps; t++) {
    for (let i = 0; i < p.length; i++) {
      const g = 2 * (p[i] - TARGET[i]);
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      p[i] -= lr * (m[i] / (1 - b1 ** t)) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps);
    }
  }
  return p;
}

function train<H extends Hyper>(make: (p: Tensor) => Optimizer<H>, steps: number, dtype: DType = 'f64'): number[] {
  const p = tensor(P0, { dtype }).requiresGrad_();
  const target = tensor(TARGET, { dtype });
  const opt = make(p);
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    backwardQuadratic(p, target);
    opt.step();
  }
  const out = values(p);
  opt.dispose();
  p.zeroGrad();
  p.dispose();
  target.dispose();
  return out;
}

test('SGD follows torch.optim.SGD: plain, momentum, weight decay, nesterov', () => {
  close(train((p) => new SGD([p], { lr: 0.1 }), 5), sgdReference(5, 0.1), 1e-12, 'plain');
  close(train((p) => new SGD([p], { lr: 0.05, momentum: 0.9 }), 6), sgdReference(6, 0.05, 0.9), 1e-12, 'momentum');
  close(train((p) => new SGD([p], { lr: 0.05, weightDecay: 0.1 }), 4), sgdReference(4, 0.05, 0, 0.1), 1e-12, 'weight decay');
  close(train((p) => new SGD([p], { lr: 0.05, momentum: 0.8, weightDecay: 0.01, nesterov: true }), 6), sgdReference(6, 0.05, 0.8, 0.01, true), 1e-12, 'nesterov');
  close(train((p) => new SGD([p], { lr: 0.05, momentum: 0.9 }), 6, 'f32'), sgdReference(6, 0.05, 0.9), 1e-5, 'momentum f32');
});

test('AdamW follows torch.optim.AdamW, in f64 and f32', () => {
  close(train((p) => new AdamW([p], { lr: 0.1, weightDecay: 0.1 }), 5), adamwReference(5, 0.1, 0.9, 0.999, 1e-8, 0.1), 1e-12, 'f64');
  close(train((p) => new AdamW([p], { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0 }), 7), adamwReference(7, 0.01, 0.8, 0.99, 1e-6, 0), 1e-12, 'no decay');
  close(train((p) => new AdamW([p], { lr: 0.1 }), 5, 'f32'), adamwReference(5, 0.1, 0.9, 0.999, 1e-8, 0.01), 1e-5, 'f32');
});

test('parameter groups keep their own lr and weight decay', () => {
  const a = tensor(P0, { dtype: 'f64' }).requiresGrad_(), b = tensor(P0, { dtype: 'f64' }).requiresGrad_();
  const target = tensor(TARGET, { dtype: 'f64' });
  const opt = new AdamW([{ params: [a], lr: 0.1, weightDecay: 0.1 }, { params: [b], lr: 0.01 }], { weightDecay: 0 });
  assert.is(opt.paramGroups[1].weightDecay, 0);
  for (let s = 0; s < 5; s++) {
    opt.zeroGrad();
    backwardQuadratic(a, target);
    backwardQuadratic(b, target);
    opt.step();
  }
  close(values(a), adamwReference(5, 0.1, 0.9, 0.999, 1e-8, 0.1), 1e-12, 'group 0');
  close(values(b), adamwReference(5, 0.01, 0.9, 0.999, 1e-8, 0), 1e-12, 'group 1');
  // A parameter without a gradient is left alone, and so is its state.
  opt.zeroGrad();
  backwardQuadratic(a, target);
  const before = values(b);
  opt.step();
  assert.equal(values(b), before);
  assert.is(opt.state.get(b)!.step, 5);
  assert.is(opt.state.get(a)!.step, 6);
  opt.zeroGrad();
  opt.dispose();
  for (const t of [a, b, target]) t.dispose();
});

test('turning momentum on mid-run starts its buffer at zero', () => {
  const p = tensor(P0, { dtype: 'f64' }).requiresGrad_();
  const target = tensor(TARGET, { dtype: 'f64' });
  const opt = new SGD([p], { lr: 0.05 });
  for (let s = 0; s < 2; s++) { opt.zeroGrad(); backwardQuadratic(p, target); opt.step(); }
  opt.paramGroups[0].momentum = 0.9;
  for (let s = 0; s < 2; s++) { opt.zeroGrad(); backwardQuadratic(p, target); opt.step(); }
  const q = sgdReference(2, 0.05);
  const buf = q.map(() => 0);
  for (let s = 0; s < 2; s++) {
    for (let i = 0; i < q.length; i++) {
      buf[i] = 0.9 * buf[i] + 2 * (q[i] - TARGET[i]);
      q[i] -= 0.05 * buf[i];
    }
  }
  close(values(p), q, 1e-12, 'momentum from step 3');
  opt.zeroGrad();
  opt.dispose();
  p.dispose();
  target.dispose();
});

test('optimizers check their arguments', () => {
  const p = tensor([1, 2]);
  assert.throws(() => new SGD([p], { lr: -1 }), (e: Error) => e instanceof ValueError && /lr/.test(e.message));
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov needs momentum/);
  assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), /betas/);
  assert.throws(() => new AdamW([{ params: [p] }, { params: [p] }]), /more than one place/);
  assert.throws(() => new AdamW([tensor([1, 2], { dtype: 'i32' })]), /only float tensors/);
  assert.throws(() => new AdamW([{ params: [p], momentum: 0.9 } as never]), /unknown option momentum/);
  assert.throws(() => new AdamW([]), /non-empty/);
  p.dispose();
});

test('bf16 parameters train through f32 master weights', () => {
  // Updates of 1e-4 are far below bf16's half-ulp at 1 (2^-8): alone they would be lost.
  const pb = tensor([1, -1], { dtype: 'bf16' }).requiresGrad_();
  const pf = tensor([1, -1], { dtype: 'f32' }).requiresGrad_();
  const ob = new SGD([pb], { lr: 1e-4 }), of = new SGD([pf], { lr: 1e-4 });
  for (let s = 0; s < 100; s++) {
    pb.grad = tensor([1, -1], { dtype: 'bf16' });
    pf.grad = tensor([1, -1], { dtype: 'f32' });
    ob.step();
    of.step();
    ob.zeroGrad();
    of.zeroGrad();
  }
  const master = ob.state.get(pb)!.buffers.master;
  assert.is(master.dtype, 'f32');
  assert.ok(bits(master).equals(bits(pf)), 'master weights follow the f32 run bit for bit');
  close(values(master), [0.99, -0.99], 1e-5, 'master');
  const rounded = master.to('bf16');
  assert.ok(bits(pb).equals(bits(rounded)), 'the parameter is its master copy rounded to bf16');
  assert.equal(values(pb), [0.98828125, -0.98828125]);
  // AdamW too: moments in f32, parameter rounded.
  const qb = tensor([0.5, 2], { dtype: 'bf16' }).requiresGrad_();
  const adam = new AdamW([qb], { lr: 1e-3 });
  qb.grad = tensor([0.25, -3], { dtype: 'bf16' });
  adam.step();
  const st = adam.state.get(qb)!.buffers;
  assert.equal(Object.keys(st).sort(), ['expAvg', 'expAvgSq', 'master']);
  assert.ok(Object.values(st).every((t) => t.dtype === 'f32'));
  close(values(st.master), [0.5 * (1 - 1e-5) - 1e-3, 2 * (1 - 1e-5) + 1e-3], 1e-6, 'adamw master');
  for (const t of [pb, pf, rounded, qb]) { t.zeroGrad(); t.dispose(); }
  ob.dispose(); of.dispose(); adam.dispose();
});

test('clipGradNorm returns the total norm and scales the gradients', () => {
  const a = tensor([3, 4]), b = tensor([[12]], { dtype: 'f64' }), c = tensor([1]);
  a.grad = tensor([3, 4]);
  b.grad = tensor([[12]], { dtype: 'f64' });
  assert.is(clipGradNorm([a, b, c], 100), 13);
  assert.equal(values(a.grad), [3, 4], 'below maxNorm: unchanged');
  const total = clipGradNorm([a, b, c], 6.5);
  assert.is(total, 13);
  const coef = 6.5 / (13 + 1e-6);
  close(values(a.grad), [3 * coef, 4 * coef], 1e-6, 'a');
  close(values(b.grad!), [12 * coef], 1e-12, 'b');
  close([clipGradNorm([a, b], 1e9)], [6.5], 1e-6, 'norm after clipping');
  a.zeroGrad();
  a.grad = tensor([-7, 2]);
  close([clipGradNorm([a, b], 1e9, Infinity)], [7], 1e-6, 'inf norm');
  close([clipGradNorm([a, b], 1e9, 1)], [9 + 12 * coef], 1e-6, 'l1 norm');
  close([clipGradNorm([a], 1e9, 3)], [Math.cbrt(7 ** 3 + 2 ** 3)], 1e-6, 'l3 norm');
  const h = tensor([1, 1], { dtype: 'bf16' });
  h.grad = tensor([0.5, -0.5], { dtype: 'bf16' });
  close([clipGradNorm([h], 0.25)], [Math.SQRT1_2], 1e-6, 'bf16');
  assert.is(h.grad.dtype, 'bf16');
  close(values(h.grad), [0.1767578125, -0.1767578125], 1e-9, 'bf16 scaled');
  assert.is(clipGradNorm([c], 1), 0, 'no gradients');
  a.zeroGrad();
  a.grad = tensor([3, 4]);
  assert.is(clipGradNorm([a, a], 2.5), 5, 'a parameter listed twice counts once');
  close(values(a.grad), [1.5, 2], 1e-6, 'and is scaled once');
  a.zeroGrad();
  a.grad = tensor([NaN, 1]);
  assert.throws(() => clipGradNorm([a], 1, 2, { errorIfNonfinite: true }), /NaN/);
  for (const t of [a, b, c, h]) { t.zeroGrad(); t.dispose(); }
});

test('schedules: warm-up then cosine, step decay, milestones, constant', () => {
  const f = warmupCosine({ warmupSteps: 10, totalSteps: 110, minLrRatio: 0.1 });
  close([0, 5, 10, 60, 110, 500].map(f), [0, 0.5, 1, 0.55, 0.1, 0.1], 1e-15, 'warmupCosine');
  close([f(35)], [0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI / 4))], 1e-15, 'quarter');
  const g = warmupCosine({ warmupSteps: 0, totalSteps: 4 });
  close([0, 2, 4].map(g), [1, 0.5, 0], 1e-15, 'no warm-up');
  const s = stepDecay({ stepSize: 10, gamma: 0.5 });
  assert.equal([0, 9, 10, 25, 30].map(s), [1, 1, 0.5, 0.25, 0.125]);
  const m = stepDecay({ milestones: [3, 7] });
  close([0, 2, 3, 6, 7, 100].map(m), [1, 1, 0.1, 0.1, 0.01, 0.01], 1e-15, 'milestones');
  assert.is(constant()(1234), 1);
  assert.throws(() => warmupCosine({ warmupSteps: 10, totalSteps: 5 }), /totalSteps/);
  assert.throws(() => stepDecay({ milestones: [5, 2] }), /increase/);
});

test('LRScheduler sets each group lr from its base lr and resumes from its stateDict', () => {
  const a = tensor([1]), b = tensor([2]);
  const opt = new AdamW([{ params: [a], lr: 1e-3 }, { params: [b], lr: 1e-4 }]);
  const sched = new LRScheduler(opt, warmupCosine({ warmupSteps: 4, totalSteps: 20 }));
  assert.equal(sched.getLr(), [0, 0]);
  for (let i = 0; i < 2; i++) sched.step();
  close(sched.getLr(), [5e-4, 5e-5], 1e-18, 'mid warm-up');
  for (let i = 0; i < 2; i++) sched.step();
  close(sched.getLr(), [1e-3, 1e-4], 1e-18, 'warm-up end');
  const saved = sched.stateDict();
  const opt2 = new AdamW([{ params: [a], lr: 1e-3 }, { params: [b], lr: 1e-4 }]);
  const sched2 = new LRScheduler(opt2, warmupCosine({ warmupSteps: 4, totalSteps: 20 }));
  sched2.loadStateDict(JSON.parse(JSON.stringify(saved)));
  for (let i = 0; i < 8; i++) { sched.step(); sched2.step(); }
  assert.equal(sched2.getLr(), sched.getLr());
  close(sched.getLr(), [5e-4, 5e-5], 1e-18, 'cosine midpoint');
  const per = new LRScheduler(opt, [constant(), stepDecay({ stepSize: 1, gamma: 0.5 })]);
  per.step();
  close(per.getLr(), [5e-4, 2.5e-5], 1e-18, 'one schedule per group');
  assert.throws(() => new LRScheduler(opt, [constant()]), /one per group/);
  a.dispose(); b.dispose();
});

/** A deterministic little model: f32 and bf16 parameters, gradients from a quadratic. */
function makeParams(seed: number): Tensor[] {
  const g = new Generator(seed);
  return [randn([3, 5], { generator: g }), randn([7], { generator: g, dtype: 'bf16' }), randn([2, 2], { generator: g })].map((t) => t.requiresGrad_());
}

function runSteps<H extends Hyper>(params: Tensor[], opt: Optimizer<H>, from: number, to: number): void {
  for (let s = from; s < to; s++) {
    opt.zeroGrad();
    tidy(() => {
      for (const [i, p] of params.entries()) sum(square(sub(p, (s % 3) - i))).backward();
    });
    clipGradNorm(params, 5);
    opt.step();
  }
  opt.zeroGrad();
}

function snapshot(params: Tensor[]): Tensor[] {
  return params.map((p) => p.detach().clone().requiresGrad_());
}

const OPTIMIZERS: [string, (ps: Tensor[]) => Optimizer<Hyper>][] = [
  ['AdamW', (ps) => new AdamW([{ params: ps.slice(0, 2), lr: 0.01 }, { params: ps.slice(2), lr: 0.003, weightDecay: 0 }]) as unknown as Optimizer<Hyper>],
  ['SGD', (ps) => new SGD([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 0.01 }], { lr: 0.02, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }) as unknown as Optimizer<Hyper>],
];

for (const [name, make] of OPTIMIZERS) {
  test(`${name}: stateDict through a safetensors file resumes bit for bit`, () => {
    const params = makeParams(1);
    const opt = make(params);
    runSteps(params, opt, 0, 10);
    const resumed = snapshot(params);
    const flat = flattenStateDict(opt.stateDict(), 'opt.');
    const file = join(dir, `${name}.safetensors`);
    saveSafetensors(file, flat.tensors, { optimizer: flat.metadata });
    runSteps(params, opt, 10, 20);

    const loaded = loadSafetensors(file);
    const opt2 = make(resumed);
    opt2.loadStateDict(unflattenStateDict(loaded.tensors, loaded.metadata.optimizer, 'opt.'));
    for (const t of loaded.tensors.values()) t.dispose();
    assert.equal(opt2.paramGroups.map((g) => g.lr), opt.paramGroups.map((g) => g.lr));
    runSteps(resumed, opt2, 10, 20);
    params.forEach((p, i) => assert.ok(bits(p).equals(bits(resumed[i])), `parameter ${i} (${p.dtype}) differs after resuming`));

    // A fresh optimizer that did not load the state does differ (the check above has teeth).
    const fresh = snapshot(resumed);
    const opt3 = make(fresh);
    runSteps(fresh, opt3, 0, 1);
    assert.not.ok(bits(fresh[0]).equals(bits(resumed[0])));
    for (const o of [opt, opt2, opt3]) o.dispose();
    for (const t of [...params, ...resumed, ...fresh]) t.dispose();
  });
}

test('loadStateDict refuses state that does not fit', () => {
  const params = makeParams(2);
  const opt = new AdamW(params);
  runSteps(params, opt, 0, 1);
  const sd = opt.stateDict();
  const other = new AdamW([params[0], params[2], params[1]]);
  assert.throws(() => other.loadStateDict(sd), /buffers|shape/);
  assert.throws(() => new AdamW([{ params: [params[0]] }, { params: params.slice(1) }]).loadStateDict(sd), /param groups/);
  assert.throws(() => new SGD(params, { lr: 0.1, momentum: 0.9 }).loadStateDict(sd), /option momentum|buffers/);
  assert.throws(() => unflattenStateDict({}, '{not json'), /not valid JSON/);
  assert.is(other.state.size, 0, 'a failed load leaves the state as it was');
  opt.dispose();
  for (const t of params) t.dispose();
});

test('saveCheckpoint / loadCheckpoint: model, optimizer, rng, scheduler and extra in one file', () => {
  const params = makeParams(3);
  const opt = new AdamW(params, { lr: 0.01 });
  const sched = new LRScheduler(opt, stepDecay({ milestones: [5] }));
  const gen = new Generator(42);
  runSteps(params, opt, 0, 6);
  sched.step();
  randn([10], { generator: gen }).dispose();
  const file = join(dir, 'ckpt.safetensors');
  const model = { 'enc.w': params[0], 'enc.b': params[1], head: params[2] };
  saveCheckpoint(file, { model, optimizer: opt.stateDict(), rng: { data: gen.getState() }, scheduler: sched.stateDict(), extra: { epoch: 3, note: 'hi' } });
  const expectNext = randn([4], { generator: gen });
  runSteps(params, opt, 6, 9);

  const ck = loadCheckpoint(file);
  assert.equal([...ck.model.keys()].sort(), ['enc.b', 'enc.w', 'head']);
  assert.equal(ck.extra, { epoch: 3, note: 'hi' });
  assert.equal(ck.scheduler, { step: 1, baseLrs: [0.01] });
  const resumed = [ck.model.get('enc.w')!, ck.model.get('enc.b')!, ck.model.get('head')!].map((t) => t.requiresGrad_());
  assert.is(resumed[1].dtype, 'bf16');
  const opt2 = new AdamW(resumed, { lr: 0.01 });
  opt2.loadStateDict(ck.optimizer!);
  const gen2 = new Generator(0);
  gen2.setState(ck.rng!.data);
  const next = randn([4], { generator: gen2 });
  assert.ok(bits(next).equals(bits(expectNext)), 'the generator continues its stream');
  runSteps(resumed, opt2, 6, 9);
  params.forEach((p, i) => assert.ok(bits(p).equals(bits(resumed[i])), `parameter ${i} differs after resuming`));
  for (const sd of Object.values(ck.optimizer!.state)) for (const t of Object.values(sd.buffers)) t.dispose();
  assert.throws(() => loadCheckpoint(join(dir, 'AdamW.safetensors')), (e: Error) => e.name === 'CheckpointError' && /AdamW\.safetensors: no emu\.checkpoint metadata/.test(e.message));
  opt.dispose(); opt2.dispose();
  for (const t of [...params, ...resumed, next, expectNext]) t.dispose();
});

test('1000 steps of AdamW with clipping and a schedule leave memory flat', () => {
  const params = makeParams(4);
  const opt = new AdamW(params, { lr: 1e-3 });
  const sched = new LRScheduler(opt, warmupCosine({ warmupSteps: 100, totalSteps: 1000 }));
  // Inside tidy, as a training loop does: the state made at the first step must outlive it.
  const step = (s: number) => tidy(() => {
    runSteps(params, opt, s, s + 1);
    sched.step();
  });
  for (let s = 0; s < 10; s++) step(s);
  const before = memoryStats();
  for (let s = 10; s < 1010; s++) step(s);
  const after = memoryStats();
  assert.is(after.liveTensors, before.liveTensors);
  assert.is(after.allocated, before.allocated);
  assert.is(after.freshAllocations, before.freshAllocations);
  opt.dispose();
  for (const t of params) t.dispose();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
