// tables.ts: evaluation results as markdown tables shaped like the Emu paper's Table 1 (zero-shot:
// one row per model or setting, one column per benchmark) and Table 3 (few-shot: one column per
// benchmark and number of in-context examples k = 2, 4, 8), for runs/<name>/report.md.
//
// Numbers follow the paper's conventions: CIDEr as the toolkit's score x 100 (a CIDEr-D of 1.124
// is printed 112.4), accuracies as percentages, one decimal; FID with two decimals; a result that
// was not measured is "-". The default columns are the benchmarks of our tiny setting; pass your
// own to lay out other ones.
import { ValueError } from '../../tensor/errors.ts';

/** How a column's values are printed. */
export type MetricKind = 'cider' | 'accuracy' | 'fid';

export interface TableColumn {
  /** The key of this column's value in a row's results. */
  key: string;
  title: string;
  metric: MetricKind;
}

/** A row of Table 1: results by column key (missing or null: not measured). */
export interface ZeroShotRow {
  name: string;
  results: Record<string, number | null | undefined>;
}

/** A row of Table 3: results by column key, then by number of in-context examples. */
export interface FewShotRow {
  name: string;
  results: Record<string, Record<number, number | null | undefined> | undefined>;
}

/** Table 1 of our setting: captioning the shapes world and the digits, VQA, video QA. */
export const ZERO_SHOT_COLUMNS: readonly TableColumn[] = [
  { key: 'caption', title: 'Shapes caption (CIDEr)', metric: 'cider' },
  { key: 'digitCaption', title: 'Digits caption (CIDEr)', metric: 'cider' },
  { key: 'vqa', title: 'Shapes VQA (acc)', metric: 'accuracy' },
  { key: 'videoQa', title: 'Video QA (acc)', metric: 'accuracy' },
];

/** Table 3 of our setting: the question-answering benchmarks with k in-context examples. */
export const FEW_SHOT_COLUMNS: readonly TableColumn[] = [
  { key: 'vqa', title: 'Shapes VQA', metric: 'accuracy' },
  { key: 'videoQa', title: 'Video QA', metric: 'accuracy' },
];

/**
 * Text-to-image in our setting (the paper's Table 2 reports FID only): the attribute accuracies of
 * generated shapes images (attributes.ts), the classifier's accuracy on generated digits and FID
 * on its features (digits.ts). Use with zeroShotTable.
 */
export const TEXT_TO_IMAGE_COLUMNS: readonly TableColumn[] = [
  { key: 'color', title: 'Colour (acc)', metric: 'accuracy' },
  { key: 'shape', title: 'Shape (acc)', metric: 'accuracy' },
  { key: 'size', title: 'Size (acc)', metric: 'accuracy' },
  { key: 'position', title: 'Position (acc)', metric: 'accuracy' },
  { key: 'count', title: 'Count (acc)', metric: 'accuracy' },
  { key: 'digit', title: 'Digit (acc)', metric: 'accuracy' },
  { key: 'fid', title: 'Digits FID', metric: 'fid' },
];

export const FEW_SHOT_KS: readonly number[] = [2, 4, 8];

/** One value as the paper prints it; undefined or null is "-". */
export function formatTableMetric(value: number | null | undefined, metric: MetricKind): string {
  if (value === undefined || value === null) return '-';
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ValueError(`formatTableMetric: expected a finite number, got ${String(value)}`);
  switch (metric) {
    case 'cider':
    case 'accuracy': return (100 * value).toFixed(1);
    case 'fid': return value.toFixed(2);
  }
  throw new ValueError(`formatTableMetric: unknown metric '${String(metric)}' (cider, accuracy or fid)`);
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function markdown(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;
  const rule = `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n') + '\n';
}

function checkRows(op: string, rows: { name: string }[], columns: readonly TableColumn[]): void {
  if (!Array.isArray(rows) || rows.length === 0) throw new ValueError(`${op}: no rows`);
  if (!Array.isArray(columns) || columns.length === 0) throw new ValueError(`${op}: no columns`);
  rows.forEach((r, i) => {
    if (!r || typeof r.name !== 'string') throw new ValueError(`${op}: row ${i} has no name`);
  });
}

/** Table 1: one row per model or setting, one column per benchmark. */
export function zeroShotTable(rows: ZeroShotRow[], columns: readonly TableColumn[] = ZERO_SHOT_COLUMNS): string {
  checkRows('zeroShotTable', rows, columns);
  return markdown(
    ['Model', ...columns.map((c) => c.title)],
    rows.map((r) => [r.name, ...columns.map((c) => formatTableMetric(r.results?.[c.key], c.metric))]),
  );
}

/** Table 3: one row per model, one column per benchmark and k (headers like "Shapes VQA k=4"). */
export function fewShotTable(rows: FewShotRow[], columns: readonly TableColumn[] = FEW_SHOT_COLUMNS, ks: readonly number[] = FEW_SHOT_KS): string {
  checkRows('fewShotTable', rows, columns);
  if (!Array.isArray(ks) || ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 0)) {
    throw new ValueError(`fewShotTable: ks must be non-negative integers, got ${JSON.stringify(ks)}`);
  }
  return markdown(
    ['Model', ...columns.flatMap((c) => ks.map((k) => `${c.title} k=${k}`))],
    rows.map((r) => [r.name, ...columns.flatMap((c) => ks.map((k) => formatTableMetric(r.results?.[c.key]?.[k], c.metric)))]),
  );
}
