// run.ts: `npm run bench` — measures this machine's roofline, times every case in bench/ops.ts,
// prints one table and writes the same results as JSON to runs/bench/latest.json.
//
//   npm run bench                    full sizes (a few minutes)
//   npm run bench -- --quick         small sizes, few samples (under a minute)
//   npm run bench -- --filter matmul only cases whose suite or op contains the word
//   npm run bench -- --no-ref        without the references (OpenBLAS, PyTorch; bench/ref/)
//
// Speed is measured here only, never asserted in tests. Shared machines are noisy: compare
// figures only within one run (the roofline and any reference are measured in the same run).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { manualSeed, runtimeInfo } from '../src/index.ts';
import { native } from '../src/tensor/native.ts';
import { attachReference, fmtTime, formatTable, runCase, type Peaks, type Row, type TimeOptions } from './harness.ts';
import { allCases } from './ops.ts';
import { openblasRunner } from './ref/openblas.ts';
import { torchRunner } from './ref/torch.ts';
import { fusedCases } from './fused.ts';

interface Args { quick: boolean; noRef: boolean; filter?: string }

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, noRef: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--no-ref') args.noRef = true;
    else if (a === '--filter') args.filter = argv[++i];
    else if (a.startsWith('--filter=')) args.filter = a.slice('--filter='.length);
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- [--quick] [--no-ref] [--filter WORD]');
      process.exit(0);
    } else {
      console.error(`bench: unknown argument ${a} (usage: npm run bench -- [--quick] [--no-ref] [--filter WORD])`);
      process.exit(2);
    }
  }
  if (args.filter === undefined && argv.includes('--filter')) {
    console.error('bench: --filter needs a word');
    process.exit(2);
  }
  return args;
}

/** Peak FMA rate: calibrate the iteration count to ~targetS seconds, then the best of `tries` runs. */
function measurePeakGflops(targetS: number, tries: number): { gflops: number; iters: number } {
  let iters = 1e6;
  const t0 = performance.now();
  native.peakGflops(iters);
  const s = (performance.now() - t0) / 1e3;
  iters = Math.max(1e5, Math.round((iters * targetS) / Math.max(s, 1e-4)));
  let best = 0;
  for (let i = 0; i < tries; i++) best = Math.max(best, native.peakGflops(iters));
  return { gflops: best, iters };
}

const args = parseArgs(process.argv.slice(2));
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = args.quick ? 'quick' : 'full';
const timeOpts: TimeOptions = args.quick ? { maxTime: 0.3, minSamples: 3, minTime: 0.01 } : { maxTime: 2, minSamples: 10 };

const filter = args.filter?.toLowerCase();
const cases = [...allCases(args.quick), ...fusedCases(args.quick)].filter((c) => !filter || c.suite.toLowerCase().includes(filter) || c.op.toLowerCase().includes(filter));
if (cases.length === 0) {
  console.error(`bench: no case matches --filter ${args.filter}`);
  process.exit(2);
}

const info = runtimeInfo();
const cpuModel = cpus()[0]?.model.trim() ?? 'unknown CPU';
// Give the pool's workers a moment to start before the first parallel loop: a job submitted
// right after the pool is created can be missed by a worker that has not read the job counter
// yet, and the caller then waits for it forever (native/cpu/thread_pool.cpp, reported).
await sleep(100);

console.log(`emu-engine bench (${mode}${args.filter ? `, filter "${args.filter}"` : ''}), ${new Date().toISOString()}`);
console.log(`cpu: ${cpuModel}; kernels for ${info.cpuIsa}; ${info.threads} pool thread(s); node ${process.version}`);

const triadN = 32 << 20;
const peak = measurePeakGflops(args.quick ? 0.1 : 0.3, args.quick ? 2 : 3);
const gbps = native.triadGbps(triadN, args.quick ? 4 : 10);
const peaks: Peaks = { gflops: peak.gflops, gbps };
console.log(`roofline: peak FMA ${peaks.gflops.toFixed(1)} GFLOP/s (f32, ${info.threads} thread(s)); ` +
  `triad ${peaks.gbps.toFixed(1)} GB/s (3 arrays of ${triadN >> 20}M f32, best of reps)`);
console.log('');

manualSeed(0);
const rows: Row[] = [];
for (const c of cases) {
  process.stderr.write(`  ${c.op} ${c.size} ... `);
  const row = runCase(c, peaks, timeOpts);
  process.stderr.write(row.error ? `error: ${row.error}\n` : `${fmtTime(row.timeS)}\n`);
  rows.push(row);
}
// The references time the same specs in subprocesses, after ours, in this same run.
const refNotes: string[] = [];
if (!args.noRef) {
  const outDir = join(root, 'runs', 'bench');
  const refs = [openblasRunner(outDir, info.cpuIsa, info.threads), torchRunner(info.cpuIsa, info.threads, args.quick ? 0.2 : 1)];
  for (const ref of refs) {
    if (!ref) continue;
    const specs = rows.filter((r) => r.timeS !== null && ref.runner.supports(r.spec)).map((r) => ({ key: r.key, spec: r.spec }));
    if (specs.length === 0) continue;
    process.stderr.write(`  reference ${ref.runner.name}: ${specs.length} case(s) ...\n`);
    attachReference(rows, ref.runner.name, ref.runner.run(specs));
    refNotes.push(`${ref.runner.name}: ${ref.note}`);
  }
}

for (const note of refNotes) console.log(`reference ${note}`);
if (refNotes.length) console.log('');

console.log(formatTable(rows));
console.log('');
console.log('% peak: GFLOP/s over the peak FMA rate, GB/s over the triad bandwidth above; time is the mean per call;');
console.log('vs REF: the reference\'s time / ours, same run (above 1: we are faster).');

const outDir = join(root, 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, 'latest.json');
const report = {
  version: 1,
  date: new Date().toISOString(),
  mode,
  filter: args.filter ?? null,
  machine: {
    cpu: cpuModel, cpuIsa: info.cpuIsa, threads: info.threads, node: process.version,
    platform: `${process.platform}-${process.arch}`,
  },
  peaks: { gflops: peaks.gflops, gbps: peaks.gbps, fmaIters: peak.iters, triadN },
  references: refNotes,
  timing: timeOpts,
  rows,
};
writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');
console.log(`results: ${relative(process.cwd(), outFile) || outFile}`);

const failed = rows.filter((r) => r.error);
const leaked = rows.filter((r) => r.leak);
if (leaked.length) console.log(`warning: ${leaked.length} case(s) did not keep memory flat: ${leaked.map((r) => r.key).join(', ')}`);
if (failed.length) {
  console.log(`${failed.length} case(s) failed: ${failed.map((r) => r.key).join(', ')}`);
  process.exitCode = 1;
}
