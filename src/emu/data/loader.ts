// loader.ts: the data loader: a seeded mixture of sources, batches of N samples, skipping of bad
// samples, and a resumable position.
//
// Mixing: each slot of a batch is given to a source by smooth weighted round-robin over the
// integer ratios (every draw adds each source's ratio to its credit, the source with the most
// credit wins, ties to the earlier one, and pays back the total), so over any sum(ratios)
// consecutive draws each source gets exactly its ratio, spread evenly, whatever the batch size.
// With batchSize = sum(ratios) (e.g. 128+128+64+16+16) every batch has exactly the paper's counts.
//
// Order: each source is read in a fresh seeded permutation every epoch (shuffle.ts), keyed by
// (loader seed, source position, epoch); a cursor (epoch, offset) per source is the position.
//
// Bad data: a sample whose get() throws (unreadable file) or whose measure() exceeds maxLen is
// skipped, never truncated: counted in `skipped` by reason, reported through `warn`, and the slot
// is filled by the same source's next item. A source that yields maxConsecutiveSkips bad samples
// in a row is a configuration error (ValueError), not something to loop on forever.
//
// Resuming: state() is a JSON-serialisable snapshot (round-robin credit, cursors, counts);
// restore(state) on a loader built with the same sources and options continues with exactly the
// batches the uninterrupted loader would have produced. Padding happens later, at collation
// (Emu.collate), once samples are token ids.
import { ValueError } from '../../tensor/errors.ts';
import type { Sample } from './sample.ts';
import { shuffledIndex } from './shuffle.ts';
import { mix32 } from './splits.ts';
import type { DataSource, MixtureEntry } from './sources.ts';

export type SkipReason = 'too-long' | 'load-error';

export interface DataLoaderOptions {
  sources: MixtureEntry[];
  batchSize: number;
  seed: number;
  /** Longest sample accepted, in the unit of `measure` (tokens). */
  maxLen: number;
  /** The sample's length (e.g. its token count including image blocks). */
  measure: (sample: Sample) => number;
  /** Where skip warnings go (default console.warn). */
  warn?: (message: string) => void;
  /** Bad samples in a row from one source before giving up (default 1000). */
  maxConsecutiveSkips?: number;
}

export interface SampleOrigin {
  source: string;
  /** The item's index in its source. */
  index: number;
  epoch: number;
}

export interface Batch {
  samples: Sample[];
  origins: SampleOrigin[];
}

export interface DataLoaderState {
  version: 1;
  seed: number;
  batchSize: number;
  batches: number;
  credit: number[];
  cursors: { source: string; epoch: number; offset: number }[];
  skipped: Record<SkipReason, number>;
}

export class DataLoader {
  /** Samples skipped so far, by reason (restored with the state). */
  readonly skipped: Record<SkipReason, number> = { 'too-long': 0, 'load-error': 0 };
  /** Batches produced so far. */
  batches = 0;
  private readonly sources: DataSource[];
  private readonly ratios: number[];
  private readonly total: number;
  private credit: number[];
  private cursors: { epoch: number; offset: number }[];
  private readonly opts: Required<Omit<DataLoaderOptions, 'sources'>>;

  constructor(opts: DataLoaderOptions) {
    const fn = 'DataLoader';
    if (!Array.isArray(opts.sources) || opts.sources.length === 0) throw new ValueError(`${fn}: needs at least one source`);
    const names = new Set<string>();
    for (const { source, ratio } of opts.sources) {
      if (names.has(source.name)) throw new ValueError(`${fn}: two sources are named '${source.name}'`);
      names.add(source.name);
      if (!Number.isInteger(ratio) || ratio < 1) throw new ValueError(`${fn}: ratio of '${source.name}' must be a positive integer, got ${ratio}`);
      if (!Number.isInteger(source.size) || source.size < 1) throw new ValueError(`${fn}: source '${source.name}' has size ${source.size}`);
    }
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new ValueError(`${fn}: batchSize must be a positive integer, got ${opts.batchSize}`);
    if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed >= 2 ** 32) throw new ValueError(`${fn}: seed must be a uint32, got ${opts.seed}`);
    if (!(opts.maxLen > 0)) throw new ValueError(`${fn}: maxLen must be positive, got ${opts.maxLen}`);
    if (typeof opts.measure !== 'function') throw new ValueError(`${fn}: measure must be a function`);
    const maxConsecutiveSkips = opts.maxConsecutiveSkips ?? 1000;
    if (!Number.isInteger(maxConsecutiveSkips) || maxConsecutiveSkips < 1) throw new ValueError(`${fn}: maxConsecutiveSkips must be a positive integer`);
    this.sources = opts.sources.map((e) => e.source);
    this.ratios = opts.sources.map((e) => e.ratio);
    this.total = this.ratios.reduce((a, b) => a + b, 0);
    this.credit = this.ratios.map(() => 0);
    this.cursors = this.sources.map(() => ({ epoch: 0, offset: 0 }));
    this.opts = {
      batchSize: opts.batchSize, seed: opts.seed, maxLen: opts.maxLen, measure: opts.measure,
      warn: opts.warn ?? ((m) => console.warn(m)), maxConsecutiveSkips,
    };
  }

  /** The next batch of batchSize samples. */
  next(): Batch {
    const batch: Batch = { samples: [], origins: [] };
    for (let slot = 0; slot < this.opts.batchSize; slot++) {
      const j = this.pickSource();
      const { sample, origin } = this.drawFrom(j);
      batch.samples.push(sample);
      batch.origins.push(origin);
    }
    this.batches++;
    return batch;
  }

  /** Smooth weighted round-robin: the source that gets the next slot. */
  private pickSource(): number {
    let best = 0;
    for (let j = 0; j < this.credit.length; j++) {
      this.credit[j] += this.ratios[j];
      if (this.credit[j] > this.credit[best]) best = j;
    }
    this.credit[best] -= this.total;
    return best;
  }

  /** The next good sample of source j, skipping (and counting) bad ones. */
  private drawFrom(j: number): { sample: Sample; origin: SampleOrigin } {
    const source = this.sources[j];
    for (let misses = 0; misses < this.opts.maxConsecutiveSkips; misses++) {
      const cursor = this.cursors[j];
      const epoch = cursor.epoch;
      const index = shuffledIndex(cursor.offset, source.size, mix32(mix32(this.opts.seed, j), epoch));
      if (++cursor.offset === source.size) { cursor.epoch++; cursor.offset = 0; }
      let sample: Sample;
      try {
        sample = source.get(index);
      } catch (err) {
        this.skip('load-error', `${source.name}[${index}]: ${(err as Error).message}`);
        continue;
      }
      const length = this.opts.measure(sample);
      if (!Number.isFinite(length)) throw new ValueError(`DataLoader: measure returned ${length} for ${source.name}[${index}]`);
      if (length > this.opts.maxLen) {
        this.skip('too-long', `${source.name}[${index}] is ${length} long, more than maxLen ${this.opts.maxLen}`);
        continue;
      }
      return { sample, origin: { source: source.name, index, epoch } };
    }
    throw new ValueError(`DataLoader: ${this.opts.maxConsecutiveSkips} samples in a row of source '${source.name}' were skipped `
      + `(too long: ${this.skipped['too-long']}, unloadable: ${this.skipped['load-error']} in all); check maxLen and the data`);
  }

  private skip(reason: SkipReason, detail: string): void {
    this.skipped[reason]++;
    this.opts.warn(`DataLoader: skipped ${detail} (${reason}; ${this.skipped[reason]} so far)`);
  }

  /** A JSON-serialisable snapshot of the position. */
  state(): DataLoaderState {
    return {
      version: 1,
      seed: this.opts.seed,
      batchSize: this.opts.batchSize,
      batches: this.batches,
      credit: [...this.credit],
      cursors: this.cursors.map((c, j) => ({ source: this.sources[j].name, epoch: c.epoch, offset: c.offset })),
      skipped: { ...this.skipped },
    };
  }

  /** Continues from a snapshot made by a loader with the same sources, seed and batch size. */
  restore(state: DataLoaderState): void {
    const fn = 'DataLoader.restore';
    if (state?.version !== 1) throw new ValueError(`${fn}: unknown state version ${state?.version}`);
    if (state.seed !== this.opts.seed) throw new ValueError(`${fn}: state has seed ${state.seed}, this loader ${this.opts.seed}`);
    if (state.batchSize !== this.opts.batchSize) throw new ValueError(`${fn}: state has batchSize ${state.batchSize}, this loader ${this.opts.batchSize}`);
    const names = this.sources.map((s) => s.name);
    const stateNames = state.cursors.map((c) => c.source);
    if (stateNames.join('\n') !== names.join('\n')) throw new ValueError(`${fn}: state has sources [${stateNames}], this loader [${names}]`);
    if (state.credit.length !== names.length) throw new ValueError(`${fn}: state has ${state.credit.length} credits for ${names.length} sources`);
    state.cursors.forEach((c, j) => {
      if (!Number.isInteger(c.epoch) || c.epoch < 0 || !Number.isInteger(c.offset) || c.offset < 0 || c.offset >= this.sources[j].size) {
        throw new ValueError(`${fn}: bad cursor for '${c.source}': epoch ${c.epoch}, offset ${c.offset}`);
      }
    });
    this.batches = state.batches;
    this.credit = [...state.credit];
    this.cursors = state.cursors.map((c) => ({ epoch: c.epoch, offset: c.offset }));
    this.skipped['too-long'] = state.skipped['too-long'];
    this.skipped['load-error'] = state.skipped['load-error'];
  }
}
