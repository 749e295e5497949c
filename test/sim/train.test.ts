// train.test.ts (sim): a small LLaMA-style model trains on sim with the loss curve it has on cpu.
// One decoder layer of src/emu/llama.ts (RMSNorm, RoPE attention, SwiGLU MLP, untied LM head)
// from one seed, next-token cross-entropy with padded (ignored) targets, AdamW with weight decay:
// on sim every fused training kernel of native/cuda runs (norm.cu for the RMSNorms, swiglu.cu
// for the MLP gate, attention/ for the attention, cross_entropy.cu for the loss, adamw.cu for
// the step) beside the emulated op kernels, on cpu the CPU's. The two curves are compared step
// by step.
//
// Tolerance: |loss_sim - loss_cpu| <= 1e-5 x loss_cpu at every step. Both runs are f32 with the
// same arithmetic in a different summation order (per-op differences of a few ulp, ~1e-7
// relative); AdamW divides by sqrt(v), which magnifies them for near-zero gradient entries, so
// the parameters drift apart a little more each step. Measured: the curves agree to within
// 1.1e-7 relative (one ulp) at every one of the 10 steps; 1e-5 leaves 100x room for that growth
// while any kernel bug (a wrong gradient,
// a missed row, a bad step) moves the loss by far more than that within a step or two (the loss
// falls by 10-30% per step here).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { F, Generator, setSimOrder, tensor, tidy, type Device } from '../../src/index.ts';
import type { LlmConfig } from '../../src/emu/config.ts';
import { LlamaForReg } from '../../src/emu/llama.ts';
import { AdamW } from '../../src/nn/optim/adamw.ts';

const CFG: LlmConfig = { baseVocab: 29, hidden: 16, layers: 1, heads: 2, intermediate: 40, maxPositions: 16, ropeBase: 10000, eps: 1e-6 };
const STEPS = 10;
// Two sequences of 9 tokens; the second is right-padded (-100 targets are ignored).
const TOKENS = [[3, 17, 5, 22, 9, 1, 28, 14, 7], [11, 4, 26, 0, 19, 8, 0, 0, 0]];
const LENGTHS = [9, 6];

/** The loss at each of STEPS AdamW steps on `device`. */
function lossCurve(device: Device): number[] {
  const lm = new LlamaForReg(CFG, { generator: new Generator(5), initStd: 0.2 }).to(device);
  const opt = new AdamW(lm.parameters(), { lr: 2e-2, weightDecay: 0.1 });
  const inputs = tensor(TOKENS.map((s) => s.slice(0, -1)), { dtype: 'i32', device });
  const targets = tensor(TOKENS.map((s, b) => s.slice(1).map((t, i) => (i + 1 < LENGTHS[b] ? t : -100))), { dtype: 'i32', device });
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    tidy(() => {
      const { logits } = lm.forward(lm.embed(inputs));
      const loss = F.crossEntropy(logits!.reshape([-1, lm.vocabSize]), targets.reshape([-1]));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      losses.push(Number(loss.item()));
    });
  }
  return losses;
}

test('a one-layer LLaMA trains on sim with the cpu loss curve (10 AdamW steps, 1e-5 relative), the same in every thread order', () => {
  const cpu = lossCurve('cpu');
  const curves = ['random:3', 'sequential', 'reverse'].map((order) => {
    setSimOrder(order);
    try {
      return lossCurve('sim');
    } finally {
      setSimOrder('sequential');
    }
  });
  const sim = curves[0];
  console.log(`loss cpu ${cpu.map((l) => l.toFixed(6)).join(' ')}\nloss sim ${sim.map((l) => l.toFixed(6)).join(' ')}`);
  assert.ok(cpu[STEPS - 1] < 0.5 * cpu[0], `the model learns: ${cpu[0]} -> ${cpu[STEPS - 1]}`);
  cpu.forEach((l, i) => {
    const rel = Math.abs(sim[i] - l) / l;
    assert.ok(rel <= 1e-5, `step ${i}: sim ${sim[i]} vs cpu ${l} (relative ${rel.toExponential(2)})`);
  });
  for (const other of curves.slice(1)) assert.equal(other, sim, 'the thread order changes no bit of the curve');
});

test.run();
