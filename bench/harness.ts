// harness.ts: times one benchmark case with Benchmark.js and turns the timing into a result row
// (GFLOP/s, GB/s or microseconds, and % of this machine's roofline), then lays rows out as a table.
//
// A Case says what it computes (op, size, a framework-neutral RefSpec that a reference runner can
// replay), how much work one call does (flops or bytes), and how to build its inputs; setup()
// returns the timed function, which must dispose what it makes (wrap it in tidy) so memory stays
// flat however many calls Benchmark.js makes. runCase checks that: a case whose live tensors or
// allocated bytes grow across the run is flagged in its row.
//
// References (OpenBLAS through a C driver, PyTorch through python: bench/ref/) run as
// subprocesses: a ReferenceRunner times the RefSpecs of the rows it supports and attachReference
// puts its times beside ours, each as its own pair of table columns (time, and ratio = reference
// time / our time, so above 1 means we are faster).
import Benchmark from 'benchmark';
import { memoryStats } from '../src/index.ts';

/** What a row reports: a compute rate, a memory rate, or a latency (for overhead cases). */
export type Metric = 'GFLOP/s' | 'GB/s' | 'us';

/** This machine's roofline, measured by bench/run.ts before any case runs. */
export interface Peaks {
  /** f32 FMA rate on every pool thread, GFLOP/s. */
  gflops: number;
  /** STREAM triad bandwidth, GB/s (bytes read + written, as for our GB/s figures). */
  gbps: number;
}

/** An op and its inputs described without our API, for a reference runner to rebuild. */
export interface RefSpec {
  /** torch-style op name: 'matmul', 'add', 'exp', 'sum', 'softmax', 'conv2d', 'contiguous', ... */
  op: string;
  /** Input shapes, in order; random, f32 unless params.dtype says otherwise (matmul: 'bf16'). */
  inputs: number[][];
  /** Op arguments (dim, padding, permutation of a view input, ...). */
  params?: Record<string, number | number[] | string | boolean>;
}

export interface Setup {
  /** The timed call. Synchronous; disposes everything it creates. */
  fn: () => void;
  /** Frees the inputs after timing. */
  dispose: () => void;
}

export interface Case {
  /** The family ('matmul', 'elementwise', 'reduce', ...); --filter matches it or op. */
  suite: string;
  op: string;
  /** Human-readable size ('1024x1024x1024', '16M', ...). */
  size: string;
  metric: Metric;
  /** Flops (GFLOP/s rows) or bytes read + written (GB/s rows) of one call; 0 for 'us' rows. */
  work: number;
  spec: RefSpec;
  setup(): Setup;
}

export interface TimeOptions {
  /** Seconds Benchmark.js may spend on one case (after calibration). */
  maxTime: number;
  minSamples: number;
  /** Seconds one sample lasts at least; Benchmark.js's default (~0.05) when absent. */
  minTime?: number;
}

export interface Timing {
  /** Mean seconds per call over the samples. */
  meanS: number;
  /** Fastest sample's seconds per call. */
  minS: number;
  /** Relative margin of error of the mean (95%), percent. */
  rme: number;
  samples: number;
  /** Calls per sample in the last cycle. */
  callsPerSample: number;
}

export interface RefResult {
  timeS: number;
  /** Reference time / our time: above 1 means we are faster. */
  ratio: number;
}

export interface Row {
  /** `suite/op/size`: stable across runs, the key reference runners answer by. */
  key: string;
  suite: string;
  op: string;
  size: string;
  metric: Metric;
  spec: RefSpec;
  /** Mean seconds per call (null when the case failed). */
  timeS: number | null;
  minTimeS: number | null;
  rme: number | null;
  samples: number;
  /** In the row's metric. */
  value: number | null;
  /** value as a percentage of the peak FMA rate (GFLOP/s) or the triad bandwidth (GB/s). */
  pctPeak: number | null;
  /** Reference timings by runner name ('openblas', 'torch'); empty until runners exist. */
  refs: Record<string, RefResult>;
  /** Set when live tensors or allocated bytes grew over the run (an undisposed output). */
  leak?: string;
  /** Set when the case threw; the row then has no figures. */
  error?: string;
}

/** Times a reference implementation of some rows, in a subprocess (bench/ref/). */
export interface ReferenceRunner {
  name: string;
  supports(spec: RefSpec): boolean;
  /** Seconds per call by row key; keys missing from the answer were not measured. */
  run(specs: { key: string; spec: RefSpec }[]): Map<string, number>;
}

// ---------------------------------------------------------------- flop and byte accounting

/** Flops of a (batched) matrix product [b,m,k] x [b,k,n]: one multiply and one add per term. */
export function matmulFlops(m: number, n: number, k: number, batch = 1): number {
  return 2 * batch * m * n * k;
}

/** Flops of conv2d: every output element is a dot product of length (cin/groups)*kh*kw. */
export function conv2dFlops(
  n: number, cin: number, cout: number, oh: number, ow: number, kh: number, kw: number, groups = 1,
): number {
  return 2 * n * cout * oh * ow * (cin / groups) * kh * kw;
}

/** Bytes of f32 tensors with these element counts: compulsory traffic, each read or write once. */
export function f32Bytes(...numels: number[]): number {
  return 4 * numels.reduce((a, b) => a + b, 0);
}

// ---------------------------------------------------------------- timing

/** Times a synchronous function with Benchmark.js (after one untimed warm-up call). */
export function time(name: string, fn: () => void, opts: TimeOptions): Timing {
  fn();  // warm-up: JIT, and the caching allocator's blocks for this size
  const b = new Benchmark(name, fn, {
    maxTime: opts.maxTime,
    minSamples: opts.minSamples,
    ...(opts.minTime !== undefined ? { minTime: opts.minTime } : {}),
    initCount: 1,
  });
  b.run({ async: false });
  if (b.error) throw b.error;
  const s = b.stats;
  return { meanS: s.mean, minS: Math.min(...s.sample), rme: s.rme, samples: s.sample.length, callsPerSample: b.count };
}

export function keyOf(c: Pick<Case, 'suite' | 'op' | 'size'>): string {
  return `${c.suite}/${c.op}/${c.size}`;
}

/** Sets up, times and tears down one case; never throws (a failure becomes the row's error). */
export function runCase(c: Case, peaks: Peaks, opts: TimeOptions): Row {
  const row: Row = {
    key: keyOf(c), suite: c.suite, op: c.op, size: c.size, metric: c.metric, spec: c.spec,
    timeS: null, minTimeS: null, rme: null, samples: 0, value: null, pctPeak: null, refs: {},
  };
  let setup: Setup | undefined;
  try {
    setup = c.setup();
    const fn = setup.fn;
    fn();  // first call outside the memory check: lets the allocator cache settle
    const before = memoryStats();
    const t = time(row.key, fn, opts);
    const after = memoryStats();
    row.timeS = t.meanS;
    row.minTimeS = t.minS;
    row.rme = t.rme;
    row.samples = t.samples;
    row.value = rate(c.metric, c.work, t.meanS);
    const peak = c.metric === 'GFLOP/s' ? peaks.gflops : c.metric === 'GB/s' ? peaks.gbps : 0;
    row.pctPeak = peak > 0 ? (100 * row.value) / peak : null;
    const dLive = after.liveTensors - before.liveTensors, dBytes = after.allocated - before.allocated;
    if (dLive !== 0 || dBytes !== 0) row.leak = `+${dLive} tensors, +${dBytes} bytes over the run`;
  } catch (e) {
    row.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } finally {
    try {
      setup?.dispose();
    } catch (e) {
      row.error ??= `dispose: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  return row;
}

export function rate(metric: Metric, work: number, seconds: number): number {
  return metric === 'us' ? seconds * 1e6 : work / seconds / 1e9;
}

/** Adds a reference runner's times to the rows it measured. */
export function attachReference(rows: Row[], name: string, times: Map<string, number>): void {
  for (const row of rows) {
    const t = times.get(row.key);
    if (t === undefined || row.timeS === null) continue;
    row.refs[name] = { timeS: t, ratio: t / row.timeS };
  }
}

// ---------------------------------------------------------------- formatting

/** Seconds with a unit that keeps 3 significant digits: 812 ns, 4.21 us, 31.5 ms, 1.20 s. */
export function fmtTime(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '';
  const [v, unit] = s < 1e-6 ? [s * 1e9, 'ns'] : s < 1e-3 ? [s * 1e6, 'us'] : s < 1 ? [s * 1e3, 'ms'] : [s, 's'];
  return `${sig3(v)} ${unit}`;
}

function sig3(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function fmtNum(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '' : v.toFixed(digits);
}

interface Column { title: string; right: boolean; cell: (r: Row) => string }

/** The rows as one aligned text table; one pair of columns per reference runner seen. */
export function formatTable(rows: Row[]): string {
  const refNames = [...new Set(rows.flatMap((r) => Object.keys(r.refs)))].sort();
  const cols: Column[] = [
    { title: 'op', right: false, cell: (r) => r.op },
    { title: 'size', right: false, cell: (r) => r.size },
    { title: 'time', right: true, cell: (r) => fmtTime(r.timeS) },
    { title: '±%', right: true, cell: (r) => fmtNum(r.rme) },
    { title: 'rate', right: true, cell: (r) => (r.metric === 'us' ? fmtNum(r.value, 2) : fmtNum(r.value, 1)) },
    { title: 'unit', right: false, cell: (r) => r.metric },
    { title: '% peak', right: true, cell: (r) => fmtNum(r.pctPeak) },
  ];
  if (refNames.length === 0) {
    cols.push({ title: 'ref time', right: true, cell: () => '' }, { title: 'ratio', right: true, cell: () => '' });
  }
  for (const name of refNames) {
    cols.push(
      { title: name, right: true, cell: (r) => fmtTime(r.refs[name]?.timeS) },
      { title: `vs ${name}`, right: true, cell: (r) => (r.refs[name] ? `${r.refs[name].ratio.toFixed(2)}x` : '') },
    );
  }
  cols.push({ title: 'note', right: false, cell: (r) => r.error ?? r.leak ?? '' });

  const cells = rows.map((r) => cols.map((c) => c.cell(r)));
  const widths = cols.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i].length)));
  const line = (vals: string[]) =>
    vals.map((v, i) => (cols[i].right ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(cols.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w)))];
  let suite = '';
  for (const [i, r] of rows.entries()) {
    if (r.suite !== suite && i > 0) out.push('');
    suite = r.suite;
    out.push(line(cells[i]));
  }
  return out.join('\n');
}
