// benchmark.d.ts: the part of Benchmark.js (the `benchmark` package, which ships no types) that
// bench/harness.ts uses: one synchronous benchmark, run in place, then read its stats.
declare module 'benchmark' {
  namespace Benchmark {
    interface Options {
      /** Seconds a benchmark may run for (default 5). */
      maxTime?: number;
      /** Seconds one sample must last at least (default: from the timer's resolution, ~0.05). */
      minTime?: number;
      /** Samples to take at least (default 5). */
      minSamples?: number;
      /** Calls per sample in the first cycle (default 1). */
      initCount?: number;
      async?: boolean;
      defer?: boolean;
    }
    interface Stats {
      /** Seconds per call: the mean over samples. */
      mean: number;
      deviation: number;
      variance: number;
      /** Standard error of the mean, seconds. */
      sem: number;
      /** Margin of error (95%), seconds. */
      moe: number;
      /** Relative margin of error, in percent. */
      rme: number;
      /** Seconds per call of each sample. */
      sample: number[];
    }
  }
  class Benchmark {
    constructor(name: string, fn: () => void, options?: Benchmark.Options);
    run(options?: { async?: boolean }): Benchmark;
    readonly name: string;
    readonly stats: Benchmark.Stats;
    /** Calls per second. */
    readonly hz: number;
    /** Calls per sample in the last cycle. */
    readonly count: number;
    readonly cycles: number;
    readonly aborted: boolean;
    readonly error?: unknown;
  }
  export = Benchmark;
}
