// vae_step.ts: times the passes that bound the Emu VAE's training on small images (GroupNorm with
// its affine, silu, broadcast adds) and one AutoencoderKL training step, in milliseconds (median
// of several runs), on the CPU. To compare two checkouts in one sitting, pass another
// checkout's root: its src/ and built addon are loaded instead of this one's.
//
//   npx tsx bench/vae_step.ts [--root /path/to/checkout] [--reps 9]
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const root = resolve(arg('--root') ?? resolve(dirname(fileURLToPath(import.meta.url)), '..'));
const reps = Number(arg('--reps') ?? 9);

const E = await import(`${root}/src/index.ts`);
const { AutoencoderKL } = await import(`${root}/src/emu/vae.ts`);
type T = InstanceType<typeof E.Tensor>;

/** Median milliseconds of fn over reps runs, after one warm-up run. */
function time(fn: () => void): number {
  fn();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[reps >> 1];
}

/** Forward + backward of f on leaves xs with output gradient g, in a tidy scope. */
function fwdBwd(xs: T[], g: T, f: () => T): () => void {
  return () => {
    E.tidy(() => f().backward(g));
    for (const x of xs) x.zeroGrad();
  };
}

const gen = new E.Generator(1);
const rows: [string, number][] = [];
for (const [N, C, H, W] of [[8, 32, 32, 32], [16, 64, 16, 16]]) {
  const x = E.randn([N, C, H, W], { generator: gen }).requiresGrad_();
  const w = E.randn([C], { generator: gen }).requiresGrad_(), b = E.randn([C], { generator: gen }).requiresGrad_();
  const g = E.randn([N, C, H, W], { generator: gen });
  rows.push([`groupNorm f+b ${N}x${C}x${H}x${W} /8 affine`, time(fwdBwd([x, w, b], g, () => E.F.groupNorm(x, 8, w, b)))]);
}
{
  const x = E.randn([8, 32, 32, 32], { generator: gen }).requiresGrad_(), g = E.randn([8, 32, 32, 32], { generator: gen });
  rows.push(['silu f+b 8x32x32x32', time(fwdBwd([x], g, () => E.F.silu(x)))]);
  const y = E.randn([8, 32, 32, 32], { generator: gen }), c = E.randn([32, 1, 1], { generator: gen });
  rows.push(['add same shape 8x32x32x32', time(() => E.tidy(() => E.add(x.detach(), y)))]);
  rows.push(['add broadcast [32,1,1]', time(() => E.tidy(() => E.add(x.detach(), c)))]);
}
const vae = new AutoencoderKL({ inChannels: 3, latentChannels: 4, blockChannels: 32, channelMult: [1, 2, 2], layersPerBlock: 1, groups: 8, scalingFactor: 1 },
  { generator: new E.Generator(1) });
const img = E.randn([8, 3, 32, 32], { generator: gen });
rows.push(['AutoencoderKL step B8 32x32', time(() => {
  E.tidy(() => vae.loss(img, { reconstruction: 'mse' }).loss.backward());
  for (const p of vae.parameters()) p.zeroGrad();
})]);
console.log(`root ${root}, median of ${reps}`);
for (const [name, ms] of rows) console.log(`${name.padEnd(40)} ${ms.toFixed(2)} ms`);
