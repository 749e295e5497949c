// decoder.test.ts: Emu's visual decoder (src/emu/vae.ts, unet.ts, diffusion.ts): shapes for the
// micro and tiny presets, diffusers state-dict names, the SD-1.5-layout parameter counts on the
// meta device (UNet 859,520,964 with 768-wide cross-attention, plus the K/V growth to 5120; VAE
// 83,653,863), the scaled-linear schedule against its closed form, DDIM and PNDM with an oracle
// epsilon, PNDM's timestep sequence as diffusers builds it, CFG at scale 1, a tiny overfit, and
// gradients reaching every UNet parameter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdamW, Generator, noGrad, numThreads, randn, setNumThreads, tensor, Tensor, tidy, zerosLike } from '../../src/index.ts';
import { preset, type UnetConfig } from '../../src/emu/config.ts';
import { AutoencoderKL } from '../../src/emu/vae.ts';
import { timestepFeatures, UNet2DConditionModel } from '../../src/emu/unet.ts';
import {
  addNoise, DDIMScheduler, ddpmLoss, guidedEps, inferenceTimesteps, PNDMScheduler, sample, SD_SCHEDULE,
} from '../../src/emu/diffusion.ts';

const arr = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);
const maxAbsDiff = (a: Tensor, b: Tensor): number => {
  const x = arr(a), y = arr(b);
  assert.is(x.length, y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};
const finite = (t: Tensor): boolean => arr(t).every(Number.isFinite);

// ---- shapes ----------------------------------------------------------------------------------

for (const name of ['micro', 'tiny']) {
  test(`${name}: VAE encode/decode and UNet shapes`, () => {
    const c = preset(name), g = new Generator(1);
    tidy(() => noGrad(() => {
      const vae = new AutoencoderKL(c.vae, { generator: g });
      const f = 2 ** (c.vae.channelMult.length - 1);
      assert.is(vae.factor, f);
      const S = c.vision.imageSize;
      const img = randn([2, c.vae.inChannels, S, S], { generator: g });
      const post = vae.encode(img);
      assert.equal(post.mean.shape, [2, c.vae.latentChannels, S / f, S / f]);
      assert.equal(post.logvar.shape, post.mean.shape);
      const z = post.sample(g);
      assert.equal(z.shape, post.mean.shape);
      const xr = vae.decode(z);
      assert.equal(xr.shape, [2, c.vae.inChannels, S, S]);
      assert.equal(vae.decodeLatents(vae.encodeLatents(img, g)).shape, [2, c.vae.inChannels, S, S]);
      assert.ok(finite(xr));
      post.dispose();

      const unet = new UNet2DConditionModel(c.unet, { generator: g });
      const cond = randn([2, c.cformer.numQueries, c.llm.hidden], { generator: g });
      const eps = unet.forward(z, [0, 999], cond);
      assert.equal(eps.shape, z.shape);
      assert.ok(finite(eps));
      // timesteps as an i32 tensor give the same result as numbers
      const eps2 = unet.forward(z, tensor([0, 999], { dtype: 'i32' }), cond);
      assert.ok(maxAbsDiff(eps, eps2) === 0);
    }));
  });
}

test('logvar is clamped to [-30, 20]', () => {
  const c = preset('micro');
  tidy(() => noGrad(() => {
    const vae = new AutoencoderKL(c.vae, { generator: new Generator(2) });
    // Zero quant_conv and bias its logvar half to +-100, so the raw logvar is far out of range.
    const w = vae.quantConv.weight;
    vae.quantConv.loadStateDict({ weight: zerosLike(w), bias: tensor([0, 0, 0, 0, 100, -100, 100, -100]) });
    const post = vae.encode(randn([1, 3, 16, 16], { generator: new Generator(3) }));
    const lv = arr(post.logvar);
    assert.ok(lv.every((v) => v === 20 || v === -30), 'clamped');
    assert.ok(w === vae.quantConv.weight);
    post.dispose();
  }));
});

test('timestep features are [cos, sin] (flip_sin_to_cos, shift 0)', () => {
  const f = timestepFeatures([0, 10], 8);
  assert.equal(Array.from(f.slice(0, 8)), [1, 1, 1, 1, 0, 0, 0, 0]);
  const half = 4;
  for (let k = 0; k < half; k++) {
    const arg = 10 * Math.exp((-Math.log(10000) * k) / half);
    assert.ok(Math.abs(f[8 + k] - Math.cos(arg)) < 1e-5);
    assert.ok(Math.abs(f[8 + half + k] - Math.sin(arg)) < 1e-5);
  }
});

// ---- names and counts --------------------------------------------------------------------------

test('state-dict names are diffusers\'', () => {
  const c = preset('emu-14b');
  const vae = new AutoencoderKL(c.vae, { device: 'meta' });
  const vs = vae.stateDict();
  const vaeShapes: Record<string, number[]> = {
    'encoder.conv_in.weight': [128, 3, 3, 3],
    'encoder.down_blocks.0.resnets.0.norm1.weight': [128],
    'encoder.down_blocks.1.resnets.0.conv_shortcut.weight': [256, 128, 1, 1],
    'encoder.down_blocks.0.downsamplers.0.conv.weight': [128, 128, 3, 3],
    'encoder.mid_block.attentions.0.group_norm.weight': [512],
    'encoder.mid_block.attentions.0.to_q.weight': [512, 512],
    'encoder.mid_block.attentions.0.to_out.0.bias': [512],
    'encoder.mid_block.resnets.1.conv2.weight': [512, 512, 3, 3],
    'encoder.conv_out.weight': [8, 512, 3, 3],
    'quant_conv.weight': [8, 8, 1, 1],
    'post_quant_conv.weight': [4, 4, 1, 1],
    'decoder.conv_in.weight': [512, 4, 3, 3],
    'decoder.up_blocks.0.resnets.2.conv1.weight': [512, 512, 3, 3],
    'decoder.up_blocks.0.upsamplers.0.conv.weight': [512, 512, 3, 3],
    'decoder.up_blocks.2.resnets.0.conv_shortcut.weight': [256, 512, 1, 1],
    'decoder.up_blocks.3.resnets.0.conv_shortcut.weight': [128, 256, 1, 1],
    'decoder.conv_norm_out.weight': [128],
    'decoder.conv_out.weight': [3, 128, 3, 3],
  };
  for (const [k, s] of Object.entries(vaeShapes)) {
    assert.ok(k in vs, `missing ${k}`);
    assert.equal(vs[k].shape, s, k);
  }
  assert.not.ok('encoder.down_blocks.3.downsamplers.0.conv.weight' in vs);
  assert.not.ok('decoder.up_blocks.3.upsamplers.0.conv.weight' in vs);

  const unet = new UNet2DConditionModel(c.unet, { device: 'meta' });
  const us = unet.stateDict();
  const unetShapes: Record<string, number[]> = {
    'time_embedding.linear_1.weight': [1280, 320],
    'time_embedding.linear_2.weight': [1280, 1280],
    'conv_in.weight': [320, 4, 3, 3],
    'down_blocks.0.resnets.0.time_emb_proj.weight': [320, 1280],
    'down_blocks.1.resnets.0.conv_shortcut.weight': [640, 320, 1, 1],
    'down_blocks.0.attentions.0.proj_in.weight': [320, 320, 1, 1],
    'down_blocks.0.attentions.0.norm.weight': [320],
    'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight': [320, 320],
    'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight': [320, 5120],
    'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight': [320, 5120],
    'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.weight': [320, 320],
    'down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight': [2560, 320],
    'down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight': [320, 1280],
    'down_blocks.0.attentions.0.transformer_blocks.0.norm3.weight': [320],
    'down_blocks.2.downsamplers.0.conv.weight': [1280, 1280, 3, 3],
    'down_blocks.3.resnets.1.conv2.weight': [1280, 1280, 3, 3],
    'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight': [1280, 5120],
    'mid_block.resnets.1.conv1.weight': [1280, 1280, 3, 3],
    'up_blocks.0.resnets.0.conv1.weight': [1280, 2560, 3, 3],
    'up_blocks.0.upsamplers.0.conv.weight': [1280, 1280, 3, 3],
    'up_blocks.1.resnets.2.conv1.weight': [1280, 1920, 3, 3],
    'up_blocks.1.attentions.2.proj_out.weight': [1280, 1280, 1, 1],
    'up_blocks.3.resnets.0.conv_shortcut.weight': [320, 960, 1, 1],
    'up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v.weight': [320, 5120],
    'conv_norm_out.weight': [320],
    'conv_out.weight': [4, 320, 3, 3],
  };
  for (const [k, s] of Object.entries(unetShapes)) {
    assert.ok(k in us, `missing ${k}`);
    assert.equal(us[k].shape, s, k);
  }
  for (const k of ['down_blocks.3.attentions.0.norm.weight', 'down_blocks.3.downsamplers.0.conv.weight', 'up_blocks.0.attentions.0.norm.weight', 'up_blocks.3.upsamplers.0.conv.weight']) {
    assert.not.ok(k in us, `unexpected ${k}`);
  }
  const attn2 = Object.keys(us).filter((k) => k.endsWith('attn2.to_k.weight'));
  assert.is(attn2.length, 16);
});

test('emu-14b decoder parameter counts on meta (SD-1.5 UNet with 5120-wide K/V, SD VAE)', () => {
  const c = preset('emu-14b');
  const sd = new UNet2DConditionModel({ ...c.unet, crossAttentionDim: 768 }, { device: 'meta' }).numParameters();
  const emu = new UNet2DConditionModel(c.unet, { device: 'meta' }).numParameters();
  const vae = new AutoencoderKL(c.vae, { device: 'meta' }).numParameters();
  // 16 cross-attentions (6 down, 1 mid, 9 up); each to_k and to_v is [inner, cad] without bias.
  const u: UnetConfig = c.unet, ch = u.channelMult.map((m) => m * u.blockChannels), L = ch.length;
  let inner = 0;
  for (const l of u.attentionLevels) inner += ch[l] * u.layersPerBlock; // down
  inner += ch[L - 1]; // mid
  for (const l of u.attentionLevels) inner += ch[l] * (u.layersPerBlock + 1); // up
  assert.is(inner, 12480);
  const delta = 2 * inner * (5120 - 768);
  console.log(`  SD-1.5 UNet (cad 768): ${sd.toLocaleString('en')}; Emu UNet (cad 5120): ${emu.toLocaleString('en')} (+${delta.toLocaleString('en')}); SD VAE: ${vae.toLocaleString('en')}`);
  assert.is(sd, 859_520_964);
  assert.is(emu - sd, delta);
  assert.is(emu, 968_146_884);
  assert.is(vae, 83_653_863);
});

test('the meta-device UNet forward gives the latent shape', () => {
  const c = preset('emu-14b');
  const unet = new UNet2DConditionModel(c.unet, { device: 'meta' });
  const y = unet.forward(randn([2, 4, 64, 64], { device: 'meta' }), [1, 2], randn([2, 32, 5120], { device: 'meta' }));
  assert.equal(y.shape, [2, 4, 64, 64]);
  assert.is(y.device, 'meta');
});

// ---- schedule and samplers ----------------------------------------------------------------------

test('scaled-linear betas and alphas_cumprod against the closed form', () => {
  const s = SD_SCHEDULE;
  assert.is(s.T, 1000);
  assert.ok(Math.abs(s.betas[0] - 0.00085) < 1e-12);
  assert.ok(Math.abs(s.betas[999] - 0.012) < 1e-12);
  const mid = (Math.sqrt(0.00085) + (Math.sqrt(0.012) - Math.sqrt(0.00085)) * (500 / 999)) ** 2;
  assert.ok(Math.abs(s.betas[500] - mid) < 1e-12);
  assert.ok(Math.abs(s.alphasCumprod[0] - 0.99915) < 1e-12);
  let acp = 1;
  for (let i = 0; i < 1000; i++) acp *= 1 - s.betas[i];
  assert.ok(Math.abs(s.alphasCumprod[999] - acp) < 1e-15);
  // known SD value: alphas_cumprod[-1] = 0.0046 (diffusers, float32: 0.00466)
  assert.ok(Math.abs(s.alphasCumprod[999] - 0.004660) < 2e-5, String(s.alphasCumprod[999]));
});

test('addNoise mixes per-sample', () => {
  tidy(() => {
    const g = new Generator(4);
    const x0 = randn([2, 4, 2, 2], { generator: g }), n = randn([2, 4, 2, 2], { generator: g });
    const xt = addNoise(x0, n, [0, 999]);
    const a = arr(x0), b = arr(n), y = arr(xt);
    for (let i = 0; i < 32; i++) {
      const t = i < 16 ? 0 : 999, acp = SD_SCHEDULE.alphasCumprod[t];
      assert.ok(Math.abs(y[i] - (Math.sqrt(acp) * a[i] + Math.sqrt(1 - acp) * b[i])) < 1e-5);
    }
  });
});

test('DDIM: SD leading timesteps, and 1000 steps with an oracle epsilon recover x0', () => {
  assert.equal(inferenceTimesteps(50, 1000, 'leading', 1).slice(0, 3), [981, 961, 941]);
  assert.throws(() => new DDIMScheduler().setTimesteps(1000), /outside/); // offset 1 would index acp[1000]
  tidy(() => {
    const g = new Generator(5);
    const x0 = randn([1, 4, 4, 4], { generator: g }), n = randn([1, 4, 4, 4], { generator: g });
    const sch = new DDIMScheduler({ stepsOffset: 0 });
    sch.setTimesteps(1000);
    assert.is(sch.timesteps.length, 1000);
    assert.is(sch.timesteps[0], 999);
    let x = addNoise(x0, n, 999);
    for (const t of sch.timesteps) {
      const next = sch.step(n, t, x);
      x.dispose();
      x = next;
    }
    assert.ok(maxAbsDiff(sch.predOriginalSample!, x0) < 1e-3, 'predicted x0');
    // set_alpha_to_one false: the last step lands on acp[0], not on 1.
    const a0 = SD_SCHEDULE.alphasCumprod[0];
    const expected = addNoise(x0, n, 0);
    assert.ok(maxAbsDiff(x, expected) < 1e-3, `final ${maxAbsDiff(x, expected)}`);
    assert.ok(maxAbsDiff(x, x0) < 0.2 && Math.sqrt(1 - a0) < 0.03);
    sch.dispose();
  });
});

test('PNDM (skip_prk_steps): diffusers timesteps for 50 steps, and an oracle epsilon stays on the trajectory', () => {
  const sch = new PNDMScheduler();
  sch.setTimesteps(50);
  // diffusers: _timesteps = arange(50) * 20 + 1; plms = concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]
  const base = Array.from({ length: 50 }, (_, i) => i * 20 + 1);
  const expected = [...base.slice(0, -1), base[48], base[49]].reverse();
  assert.equal(sch.timesteps, expected);
  assert.equal(sch.timesteps.slice(0, 5), [981, 961, 961, 941, 921]);
  assert.is(sch.timesteps.length, 51);
  assert.is(sch.timesteps[50], 1);
  tidy(() => {
    const g = new Generator(6);
    const x0 = randn([1, 4, 4, 4], { generator: g }), n = randn([1, 4, 4, 4], { generator: g });
    let x = addNoise(x0, n, 981);
    for (const [i, t] of sch.timesteps.entries()) {
      const next = sch.step(n, t, x);
      x.dispose();
      x = next;
      // After step i the sample sits at the scheduler's next "previous" timestep.
      const at = i === 0 || i === 1 ? 961 : sch.timesteps[i] - 20;
      const ref = at >= 0 ? addNoise(x0, n, at) : addNoise(x0, n, 0);
      assert.ok(maxAbsDiff(x, ref) < 1e-3, `step ${i} (t ${t})`);
    }
    assert.ok(maxAbsDiff(x, x0) < 0.2);
  });
  sch.dispose();
});

test('PNDM follows diffusers\' multistep combination on a non-constant epsilon', () => {
  // Reference: diffusers' step_plms transcribed on scalars (one element).
  const acp = (t: number) => (t >= 0 ? SD_SCHEDULE.alphasCumprod[t] : SD_SCHEDULE.alphasCumprod[0]);
  const prev = (x: number, t: number, tp: number, e: number) => {
    const a = acp(t), ap = acp(tp);
    return Math.sqrt(ap / a) * x - ((ap - a) * e) / (a * Math.sqrt(1 - ap) + Math.sqrt(a * (1 - a) * ap));
  };
  const epsOf = (x: number, t: number) => Math.sin(x) + t / 1000;
  const steps = 10, stride = 100;
  const sch = new PNDMScheduler();
  sch.setTimesteps(steps);
  let ets: number[] = [], counter = 0, cur = 0, xr = 0.7;
  let x = tensor([0.7]).reshape(1, 1, 1, 1);
  for (const t0 of sch.timesteps) {
    const e = epsOf(xr, t0);
    let t = t0, tp = t - stride, m = e, s = xr;
    if (counter !== 1) { ets = ets.slice(-3); ets.push(e); } else { tp = t; t = t + stride; }
    if (ets.length === 1 && counter === 0) cur = xr;
    else if (ets.length === 1 && counter === 1) { m = (e + ets[0]) / 2; s = cur; }
    else if (ets.length === 2) m = (3 * ets[1] - ets[0]) / 2;
    else if (ets.length === 3) m = (23 * ets[2] - 16 * ets[1] + 5 * ets[0]) / 12;
    else m = (55 * ets[3] - 59 * ets[2] + 37 * ets[1] - 9 * ets[0]) / 24;
    xr = prev(s, t, tp, m);
    counter++;
    const et = tensor([Math.sin(arr(x)[0]) + t0 / 1000]).reshape(1, 1, 1, 1);
    const nx = sch.step(et, t0, x);
    x.dispose();
    et.dispose();
    x = nx;
    assert.ok(Math.abs(arr(x)[0] - xr) < 1e-4, `t ${t0}: ${arr(x)[0]} vs ${xr}`);
  }
  x.dispose();
  sch.dispose();
});

// ---- guidance, sampling, training --------------------------------------------------------------

test('CFG with guidance 1 equals the conditional prediction; sample() runs with pndm and ddim', () => {
  const c = preset('micro'), g = new Generator(7);
  tidy(() => noGrad(() => {
    const unet = new UNet2DConditionModel(c.unet, { generator: g });
    const x = randn([2, 4, 8, 8], { generator: g });
    const cond = randn([2, 4, 64], { generator: g }), unc = randn([1, 4, 64], { generator: g });
    const e1 = guidedEps(unet, x, 321, cond, unc, 1);
    const ec = unet.forward(x, 321, cond);
    assert.ok(maxAbsDiff(e1, ec) < 1e-5, `cfg(1) ${maxAbsDiff(e1, ec)}`);
    const e0 = guidedEps(unet, x, 321, cond, unc, 0);
    const eu = unet.forward(x, 321, unc.expand(2, 4, 64));
    assert.ok(maxAbsDiff(e0, eu) < 1e-5, 'cfg(0) is the unconditional prediction');
    for (const scheduler of ['pndm', 'ddim'] as const) {
      const z = sample(unet, { condition: cond, uncondition: unc, guidanceScale: 5, steps: 5, scheduler, shape: [2, 4, 8, 8], generator: new Generator(8) });
      assert.equal(z.shape, [2, 4, 8, 8]);
      assert.ok(finite(z), scheduler);
      const z2 = sample(unet, { condition: cond, uncondition: unc, guidanceScale: 5, steps: 5, scheduler, shape: [2, 4, 8, 8], generator: new Generator(8) });
      assert.ok(maxAbsDiff(z, z2) === 0, 'reproducible');
    }
  }));
});

test('gradients of the DDPM loss reach every UNet parameter', () => {
  const c = preset('micro'), g = new Generator(9);
  const unet = new UNet2DConditionModel(c.unet, { generator: g });
  tidy(() => {
    const lat = randn([2, 4, 8, 8], { generator: g }), cond = randn([2, 4, 64], { generator: g });
    const loss = ddpmLoss(unet, lat, cond, { generator: g, conditionDropout: 0 });
    loss.backward();
  });
  for (const [name, p] of unet.namedParameters()) {
    assert.ok(p.grad, `no grad for ${name}`);
    const v = arr(p.grad!);
    assert.ok(v.every(Number.isFinite) && v.some((x) => x !== 0), `zero or non-finite grad for ${name}`);
  }
  unet.zeroGrad();
});

test('micro UNet overfits one latent batch (DDPM loss, AdamW, 100 steps)', () => {
  // The ops here are tiny; the 2-thread pool costs more than it saves on them (about 3x the wall
  // time on a loaded 2-core machine), so this test runs on one thread and restores the setting.
  const threads = numThreads();
  setNumThreads(1);
  try {
    overfit();
  } finally {
    setNumThreads(threads);
  }
});

function overfit(): void {
  const c = preset('micro'), g = new Generator(10);
  const unet = new UNet2DConditionModel(c.unet, { generator: g });
  const lat = randn([2, 4, 8, 8], { generator: g }), cond = randn([2, 4, 64], { generator: g });
  const nul = randn([4, 64], { generator: g });
  const evalLoss = () => tidy(() => noGrad(() => {
    const eg = new Generator(123);
    let s = 0;
    for (const ts of [[50, 500], [250, 750], [150, 650], [400, 900]]) {
      s += ddpmLoss(unet, lat, cond, { generator: eg, conditionDropout: 0, timesteps: ts }).item() as number;
    }
    return s / 4;
  }));
  const before = evalLoss();
  const opt = new AdamW(unet.parameters(), { lr: 2e-3, weightDecay: 0 });
  const t0 = Date.now();
  for (let i = 0; i < 100; i++) {
    tidy(() => {
      opt.zeroGrad();
      ddpmLoss(unet, lat, cond, { generator: g, nullCondition: nul }).backward();
      opt.step();
    });
  }
  const after = evalLoss();
  console.log(`  DDPM loss ${before.toFixed(4)} -> ${after.toFixed(4)} in 100 steps (${Date.now() - t0} ms)`);
  assert.ok(after < 0.6 * before, `${before} -> ${after}`);
  opt.zeroGrad();
  lat.dispose();
  cond.dispose();
  nul.dispose();
}

test('VAE loss pieces: rec + beta * kl, and gradients flow', () => {
  const c = preset('micro'), g = new Generator(11);
  const vae = new AutoencoderKL(c.vae, { generator: g });
  tidy(() => {
    const x = randn([2, 3, 16, 16], { generator: g });
    for (const reconstruction of ['l1', 'mse'] as const) {
      const { loss, rec, kl } = vae.loss(x, { generator: g, beta: 0.5, reconstruction });
      assert.ok(Math.abs((loss.item() as number) - ((rec.item() as number) + 0.5 * (kl.item() as number))) < 1e-5);
      assert.ok((kl.item() as number) >= 0);
    }
    const { loss } = vae.loss(x, { generator: g });
    loss.backward();
  });
  for (const [name, p] of vae.namedParameters()) assert.ok(p.grad && finite(p.grad), `grad ${name}`);
  vae.zeroGrad();
});

test.run();
