// demo.ts: what `npm start` runs: a tiny Emu trained end to end on the built-in data, then
// evaluated on held-out data, with a report at the end.
//
//   npm start                 the tiny recipe (clip, lm, pretrain, vae, decoder, instruct), then
//                             the full evaluation: at most 15 minutes on 2 cores
//   npm start -- --quick      short stages and a quick evaluation (about 2 minutes)
//   npm start -- --out DIR    another run folder (default runs/tiny or runs/quick)
// Run it again and finished stages are skipped (an interrupted one resumes from its checkpoint).
import { parseArgs } from 'node:util';
import { runtimeInfo } from '../src/index.ts';
import { evaluateRun, headline, Progress, train } from '../src/emu/index.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } } });
const recipe = values.quick ? 'quick' : 'tiny';
const out = values.out ?? `runs/${recipe}`;
const info = runtimeInfo();
console.log(`emu-engine demo: training a tiny Emu (recipe '${recipe}') in ${out} on ${info.threads} CPU thread(s), ${info.cpuIsa} kernels`);

const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)}s`;
let bar: Progress | null = null;
train({
  recipe, out, resume: true,
  onStage: (stage, event, detail) => {
    if (event === 'end') { bar?.done(); bar = null; }
    console.log(`[${elapsed()}] ${stage}: ${event === 'start' ? 'training' : event === 'skip' ? 'skipped' : 'done'} (${detail})`);
  },
  onStep: (stage, rec, total) => {
    bar ??= new Progress({ total, label: stage, unit: rec.unit, startStep: rec.step, stream: process.stdout });
    bar.update(rec.step + 1, rec.losses, rec.items);
  },
});
const trainSeconds = (performance.now() - t0) / 1000;
console.log(`[${elapsed()}] evaluating on held-out data`);
const { results, path } = evaluateRun(out, values.quick ? 'quick' : 'full', {
  about: [`Trained and evaluated by \`npm start${values.quick ? ' -- --quick' : ''}\` in ${trainSeconds.toFixed(0)} s of training on ${info.threads} thread(s).`],
});
for (const line of headline(results)) console.log(`  ${line}`);
console.log(`[${elapsed()}] done. The report: ${path}`);
