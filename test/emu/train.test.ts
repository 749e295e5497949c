// The training stages end to end on the micro recipe: every stage's loss falls, a killed run
// resumed from its checkpoint reproduces the uninterrupted run's losses bit for bit, answer-only
// target masks, and the errors a user can cause.
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/index.ts';
import { Emu, preset, trainBPE } from '../../src/emu/index.ts';
import { train } from '../../src/emu/train/train.ts';
import { STAGES, loadTrained } from '../../src/emu/train/run_dir.ts';
import type { StepRecord } from '../../src/emu/train/loop.ts';

const dirs: string[] = [];
function tempRun(): string {
  const d = mkdtempSync(join(tmpdir(), 'emu-train-'));
  dirs.push(d);
  return d;
}

function losses(dir: string, stage: string): number[] {
  return readFileSync(join(dir, stage, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as StepRecord).losses.loss);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

let full = '';
test('micro recipe: every stage runs, writes its checkpoint, metrics and loss plot, and its loss falls', () => {
  full = tempRun();
  train({ recipe: 'micro', out: full });
  for (const s of STAGES) {
    assert.ok(existsSync(join(full, s, 'checkpoint.safetensors')), `${s} checkpoint`);
    assert.ok(readFileSync(join(full, s, 'loss.png')).subarray(1, 4).toString() === 'PNG', `${s} loss.png`);
    const l = losses(full, s);
    assert.ok(mean(l.slice(-2)) < mean(l.slice(0, 2)), `${s}: loss ${l.map((x) => x.toFixed(3)).join(' ')} does not fall`);
  }
  const t = loadTrained(full);
  assert.ok(t.emuI && t.unet && t.vae, 'loadTrained finds every model');
  // Emu-I trains LoRA only: every pretrained weight (the vision tower and C-Former included) is
  // unchanged, the added vocabulary rows aside.
  const tuned = t.emuI.stateDict();
  for (const [name, w] of Object.entries(t.emu.stateDict())) {
    const v = tuned[name];
    assert.ok(v, `Emu-I has ${name}`);
    const a = Array.from(w.contiguous().data()), b = Array.from(v.contiguous().data()).slice(0, a.length);
    assert.equal(b, a, `instruct changed ${name}`);
  }
  assert.ok(Object.keys(tuned).some((n) => n.endsWith('loraB')), 'Emu-I has LoRA weights');
});

test('a killed run resumed from its checkpoint reproduces the uninterrupted losses bit for bit', () => {
  const killed = tempRun();
  // Killed at pretrain's step 7 (clip 6 + lm 6 steps before it); the micro recipe checkpoints
  // every 4 steps, so the resumed run repeats steps 4..6 from the step-4 checkpoint.
  train({ recipe: 'micro', out: killed, stages: ['clip', 'lm', 'pretrain'], stopAfter: 19 });
  assert.equal(losses(killed, 'pretrain').length, 7);
  train({ recipe: 'micro', out: killed, stages: ['clip', 'lm', 'pretrain'], resume: true });
  for (const s of ['clip', 'lm', 'pretrain']) assert.equal(losses(killed, s), losses(full, s), s);
});

test('resume skips finished stages and refuses a folder of another recipe or seed', () => {
  const skipped: string[] = [];
  train({ recipe: 'micro', out: full, stages: ['clip'], resume: true, onStage: (s, e) => { if (e === 'skip') skipped.push(s); } });
  assert.equal(skipped, ['clip']);
  assert.throws(() => train({ recipe: 'quick', out: full }), (e: unknown) => e instanceof ValueError && /holds a 'micro' run/.test((e as Error).message));
  assert.throws(() => train({ recipe: 'micro', out: full, seed: 5 }), (e: unknown) => e instanceof ValueError && /seed 0, not 5/.test((e as Error).message));
  assert.throws(() => train({ recipe: 'nope', out: tempRun() }), /unknown recipe 'nope'/);
  assert.throws(() => train({ recipe: 'micro', out: tempRun(), overrides: { steps: 0 } }), /steps must be a positive integer/);
});

test('--device sim trains like cpu: the same losses through the emulated CUDA kernels, and a killed sim run resumes from its checkpoint', () => {
  // clip then pretrain (the Emu through every module), two steps each, checkpointing every step
  // so that the sim run, killed after pretrain's first step, resumes from a checkpoint: weights
  // and optimizer state saved from sim and loaded back onto sim.
  const opts = { recipe: 'micro', stages: ['clip', 'pretrain'] as const, overrides: { steps: 2 }, recipeOverrides: { checkpointEvery: 1 } };
  const cpu = tempRun(), sim = tempRun();
  train({ ...opts, stages: [...opts.stages], out: cpu });
  train({ ...opts, stages: [...opts.stages], out: sim, device: 'sim', stopAfter: 3 });
  assert.equal(losses(sim, 'pretrain').length, 1);
  train({ ...opts, stages: [...opts.stages], out: sim, device: 'sim', resume: true });
  for (const s of opts.stages) {
    const a = losses(cpu, s), b = losses(sim, s);
    assert.equal(b.length, a.length, s);
    // Same data, same initial weights (one Philox stream on both devices); the kernels differ
    // in summation order only, so the losses agree to float rounding.
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= 1e-5 * Math.abs(x), `${s} step ${i}: cpu ${x}, sim ${b[i]}`));
  }
  assert.throws(() => train({ ...opts, stages: ['clip'], out: tempRun(), device: 'meta' }), /meta device holds no values/);
});

test('answer-only targets: only marked parts (and their EOS) are CE targets', () => {
  const cfg = preset('micro');
  const tok = trainBPE(['a red circle', 'what colour? red'], { vocabSize: cfg.llm.baseVocab });
  const emu = new Emu(cfg);
  const s = emu.tokenize(tok, [{ text: 'question', target: false }, { text: ' red', target: true }], { eos: true });
  const answer = tok.encode(' red', { bos: false }).length;
  assert.equal(s.targets!.filter(Boolean).length, answer + 1);
  assert.equal(s.targets!.at(-1), true);
  const batch = emu.collate([s, emu.tokenize(tok, [{ text: 'a longer sentence here' }])]);
  assert.equal(batch.targets![0].length, batch.ids[0].length);
  const { counts } = emu.loss(batch);
  // Row 0: the answer and EOS; row 1 (unmarked): every text token after BOS.
  assert.equal(counts.ceTargets, answer + 1 + tok.encode('a longer sentence here', { bos: false }).length);
});

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test.run();
