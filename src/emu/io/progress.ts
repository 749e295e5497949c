// progress.ts: the progress reporter of training and evaluation loops.
//
// On a terminal it keeps one line redrawn in place ('\r' and erase-to-end-of-line), at most every
// `redrawEvery` seconds:
//   pretrain [=========>          ] 450/1000  45% | loss 2.310 ce 1.204 | 1.23k tok/s | 1:23 < 1:42
// (bar, step/total, the named metrics, throughput, elapsed < estimated time left). Anywhere else
// (a log file, CI) it writes plain lines, the first update, then at most one every `logEvery`
// seconds, and always the final one:
//   pretrain step 450/1000 (45%) loss 2.310 ce 1.204 1.23k tok/s elapsed 1:23 eta 1:42
// Rate and ETA are averages since the reporter was made (or since `startStep` on a resumed run).
// The stream and the clock are injectable, so tests drive it without a terminal or waiting.
import { ValueError } from '../../tensor/errors.ts';

/** Where the lines go: process.stderr by default; `isTTY` picks the redrawn line, `columns` caps its width. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** The step count at which the work is done. */
  total: number;
  /** Printed first on every line, e.g. the stage name. */
  label?: string;
  /** What update()'s `units` count, e.g. 'tok' or 'img'; without it the rate is in steps. */
  unit?: string;
  stream?: ProgressStream;
  /** Milliseconds from any fixed origin; performance.now by default. */
  now?: () => number;
  /** Seconds between plain log lines when not on a terminal, default 10. */
  logEvery?: number;
  /** Seconds between redraws on a terminal, default 0.1. */
  redrawEvery?: number;
  /** The step a resumed run starts from: rate and ETA count only the steps done here. */
  startStep?: number;
}

const BAR_WIDTH = 20;

export class Progress {
  private readonly total: number;
  private readonly label: string;
  private readonly unit: string | undefined;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly logEvery: number;
  private readonly redrawEvery: number;
  private readonly startStep: number;
  private readonly tty: boolean;
  private readonly startTime: number;
  private step: number;
  private metrics: Record<string, number> = {};
  private units = 0;
  /** Time of the last line written (plain) or drawn (terminal); -Infinity before the first. */
  private lastShown = -Infinity;
  private shownStep = -1;
  private barVisible = false;
  private finished = false;

  constructor(options: ProgressOptions) {
    const { total, label = '', unit, stream = process.stderr, now = () => performance.now(), logEvery = 10, redrawEvery = 0.1, startStep = 0 } = options ?? ({} as ProgressOptions);
    if (!Number.isInteger(total) || total < 1) throw new ValueError(`Progress: total must be a positive integer, got ${total}`);
    if (!Number.isInteger(startStep) || startStep < 0 || startStep > total) throw new ValueError(`Progress: startStep must be an integer in [0, ${total}], got ${startStep}`);
    if (!(logEvery >= 0) || !(redrawEvery >= 0)) throw new ValueError(`Progress: logEvery and redrawEvery must be non-negative seconds, got ${logEvery} and ${redrawEvery}`);
    if (typeof stream?.write !== 'function') throw new ValueError('Progress: stream must have a write(string) method');
    this.total = total; this.label = label; this.unit = unit; this.stream = stream; this.now = now;
    this.logEvery = logEvery; this.redrawEvery = redrawEvery; this.startStep = startStep;
    this.tty = stream.isTTY === true;
    this.step = startStep;
    this.startTime = now();
  }

  /**
   * Records that `step` steps are done, with the latest metrics (e.g. {loss: 2.31}) and the number
   * of units (tokens, images) processed since the previous update, then shows it if it is time.
   */
  update(step: number, metrics: Record<string, number> = {}, units = 0): void {
    if (this.finished) throw new ValueError('Progress.update: called after done()');
    if (!Number.isInteger(step) || step < this.startStep || step > this.total) {
      throw new ValueError(`Progress.update: step must be an integer in [${this.startStep}, ${this.total}], got ${step}`);
    }
    for (const [name, v] of Object.entries(metrics)) {
      if (typeof v !== 'number') throw new ValueError(`Progress.update: metric ${name} must be a number, got ${typeof v}`);
    }
    if (!(units >= 0) || !Number.isFinite(units)) throw new ValueError(`Progress.update: units must be a non-negative number, got ${units}`);
    this.step = step;
    this.metrics = { ...metrics };
    this.units += units;
    const t = this.now();
    const every = this.tty ? this.redrawEvery : this.logEvery;
    if (step === this.total || t - this.lastShown >= every * 1000) this.show(t);
  }

  /** Writes a message on its own line; on a terminal the bar is redrawn below it. */
  log(message: string): void {
    if (this.tty && this.barVisible) {
      this.stream.write(`\r\x1b[K${message}\n`);
      this.stream.write(this.fit(this.line(this.now())));
    } else {
      this.stream.write(`${message}\n`);
    }
  }

  /** Shows the final state (if not shown already) and ends the terminal line. */
  done(): void {
    if (this.finished) return;
    const t = this.now();
    if (this.tty) {
      this.stream.write(`${this.barVisible ? '\r\x1b[K' : ''}${this.fit(this.line(t))}\n`);
    } else if (this.shownStep !== this.step) {
      this.stream.write(`${this.line(t)}\n`);
    }
    this.finished = true;
  }

  private show(t: number): void {
    if (this.tty) {
      this.stream.write(`${this.barVisible ? '\r\x1b[K' : ''}${this.fit(this.line(t))}`);
      this.barVisible = true;
    } else {
      this.stream.write(`${this.line(t)}\n`);
    }
    this.lastShown = t;
    this.shownStep = this.step;
  }

  /** Cuts a terminal line to the terminal's width, so it never wraps (a wrapped line cannot be redrawn). */
  private fit(line: string): string {
    const columns = this.stream.columns;
    return columns && columns > 1 && line.length > columns - 1 ? line.slice(0, columns - 1) : line;
  }

  private line(t: number): string {
    const elapsed = Math.max(0, (t - this.startTime) / 1000);
    const done = this.step - this.startStep;
    const fraction = this.step / this.total;
    const percent = `${Math.floor(fraction * 100)}%`;
    const metrics = Object.entries(this.metrics).map(([k, v]) => `${k} ${formatMetric(v)}`).join(' ');
    const rate = elapsed > 0 && done > 0
      ? this.unit ? `${formatCount(this.units / elapsed)} ${this.unit}/s` : `${formatCount(done / elapsed)} step/s`
      : '';
    const eta = done > 0 ? formatDuration(((this.total - this.step) * elapsed) / done) : '?';
    const label = this.label ? `${this.label} ` : '';
    if (this.tty) {
      const filled = Math.floor(fraction * BAR_WIDTH);
      const bar = '='.repeat(filled) + (filled < BAR_WIDTH ? '>' + ' '.repeat(BAR_WIDTH - filled - 1) : '');
      const parts = [`${label}[${bar}] ${this.step}/${this.total} ${percent.padStart(4)}`, metrics, rate, `${formatDuration(elapsed)} < ${eta}`];
      return parts.filter(Boolean).join(' | ');
    }
    return [`${label}step ${this.step}/${this.total} (${percent})`, metrics, rate, `elapsed ${formatDuration(elapsed)} eta ${eta}`].filter(Boolean).join(' ');
  }
}

/** A metric value to 4 significant digits ('nan', 'inf' for the non-finite). */
export function formatMetric(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e5 || abs < 1e-3) return v.toExponential(3);
  return v.toPrecision(4);
}

/** A rate or count with a k/M/G suffix: 950, 1.23k, 45.6M. */
export function formatCount(v: number): string {
  const suffixes = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(v) >= 999.5 && i < suffixes.length - 1) { v /= 1000; i++; }
  return `${Math.abs(v) >= 100 || (i === 0 && Number.isInteger(v)) ? v.toFixed(0) : v.toPrecision(3)}${suffixes[i]}`;
}

/** Seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return `${h ? `${h}:` : ''}${mm}:${String(sec).padStart(2, '0')}`;
}
