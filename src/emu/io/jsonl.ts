// jsonl.ts: the metrics log of a training run, one JSON object per line (JSONL).
//
// MetricsLog appends records ({step, loss, ce, ...}) with one write per line, so a crash can
// tear only the last line. Opening a log repairs it before appending: a torn last line is cut
// off (otherwise the next record would be glued onto it), and with `resumeStep` the records of
// steps after the checkpoint being resumed are dropped, so a resumed run's log reads like an
// uninterrupted one. readJsonl reads a log back, skipping and counting a torn last line; any
// other line that is not a JSON object is an error naming the file and line, since only a
// crash mid-append is expected to damage the file. JSON has no NaN or Infinity: such values are
// written as null.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { ValueError } from '../../tensor/errors.ts';
import { writeFileAtomic } from '../../nn/atomic_write.ts';

export type MetricsRecord = Record<string, unknown>;

export interface JsonlContents {
  records: MetricsRecord[];
  /** 1 when the last line was cut off mid-write (skipped), else 0. */
  torn: number;
}

/** Reads a JSONL file; a torn last line is skipped and counted, any other bad line is a ValueError. */
export function readJsonl(path: string): JsonlContents {
  if (typeof path !== 'string' || path === '') throw new ValueError('readJsonl: path must be a non-empty string');
  return parse(readText('readJsonl', path), path, 'readJsonl');
}

export interface MetricsLogOptions {
  /** Resuming from a checkpoint at this step: drop the records with a larger `step`. */
  resumeStep?: number;
}

/** An open metrics log: append() writes one record per line. */
export class MetricsLog {
  readonly path: string;
  /** What opening changed: a torn last line removed, and records after resumeStep dropped. */
  readonly repaired: { torn: number; dropped: number };
  private fd: number;

  /** Opens (creating if needed) the log at `path`, repairing it as the header describes. */
  constructor(path: string, options: MetricsLogOptions = {}) {
    if (typeof path !== 'string' || path === '') throw new ValueError('MetricsLog: path must be a non-empty string');
    const { resumeStep } = options;
    if (resumeStep !== undefined && !(Number.isInteger(resumeStep) && resumeStep >= 0)) {
      throw new ValueError(`MetricsLog: resumeStep must be a non-negative integer, got ${resumeStep}`);
    }
    this.path = path;
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ValueError(`MetricsLog: cannot read ${path}: ${(e as Error).message}`);
    }
    let dropped = 0, torn = 0;
    if (text !== undefined) {
      const contents = parse(text, path, 'MetricsLog');
      torn = contents.torn;
      const kept = resumeStep === undefined ? contents.records : contents.records.filter((r) => !(typeof r.step === 'number' && r.step > resumeStep));
      dropped = contents.records.length - kept.length;
      // Rewrite (atomically) only when something must change, including a kept last line without its newline.
      if (torn || dropped || (text.length && !text.endsWith('\n'))) {
        try {
          writeFileAtomic(path, [Buffer.from(kept.map((r) => `${JSON.stringify(r)}\n`).join(''))]);
        } catch (e) {
          throw new ValueError(`MetricsLog: cannot repair ${path}: ${(e as Error).message}`);
        }
      }
    }
    this.repaired = { torn, dropped };
    try {
      this.fd = openSync(path, 'a');
    } catch (e) {
      throw new ValueError(`MetricsLog: cannot open ${path}: ${(e as Error).message}`);
    }
  }

  /** Appends one record as a line. */
  append(record: MetricsRecord): void {
    if (this.fd < 0) throw new ValueError(`MetricsLog.append: ${this.path} is closed`);
    if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new ValueError('MetricsLog.append: record must be an object');
    const line = Buffer.from(`${JSON.stringify(record)}\n`);
    let done = 0;
    while (done < line.length) done += writeSync(this.fd, line, done, line.length - done);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function readText(fn: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ValueError(code === 'ENOENT' ? `${fn}: file not found: ${path}` : `${fn}: cannot read ${path}: ${(e as Error).message}`);
  }
}

function parse(text: string, path: string, fn: string): JsonlContents {
  const lines = text.split('\n');
  const records: MetricsRecord[] = [];
  let torn = 0;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    // Only the last line can lack its newline; whether it is complete is decided by parsing it.
    const last = i === lines.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (last) { torn = 1; return; }
      throw new ValueError(`${fn}: ${path} line ${i + 1} is not valid JSON`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      if (last) { torn = 1; return; }
      throw new ValueError(`${fn}: ${path} line ${i + 1} is not a JSON object`);
    }
    records.push(value as MetricsRecord);
  });
  return { records, torn };
}
