// plot.ts: line plots of training curves (loss against step) as PNG, drawn by our own code.
//
// plotCurves draws every series into one axes box: a title, "nice" ticks (1, 2, 5 x 10^k) with
// grid lines and labels in the 5x7 font of font.ts, a legend, and one distinct colour per series.
// Lines are anti-aliased: each series is first rasterised into a coverage buffer (the distance
// from each pixel centre to the nearest segment, turned into 0..1 coverage, max over segments so
// joints are not drawn twice), then blended onto the picture in one pass. Non-finite points, and
// non-positive ones on a log axis, are skipped and break the line. With `smooth` the raw curve is
// drawn faintly and an exponential moving average (debiased, as TensorBoard does) on top.
// seriesFromRecords turns metrics records (jsonl.ts) into series.
import { ValueError } from '../../tensor/errors.ts';
import { DESCENT, drawText, GLYPH_HEIGHT, textWidth, type Raster } from './font.ts';
import { encodePNG } from './png.ts';

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface PlotOptions {
  title?: string;
  /** Picture size in pixels, default 800 x 480 (at least 200 x 150). */
  width?: number;
  height?: number;
  /** Logarithmic y axis (points with y <= 0 are skipped). */
  logY?: boolean;
  /** EMA factor in [0, 1): 0 draws the raw curve only; 0.9 is heavy smoothing. */
  smooth?: number;
  xLabel?: string;
  yLabel?: string;
}

/** Ten colours that stay apart from each other (matplotlib's tab10). */
export const SERIES_COLORS: readonly (readonly [number, number, number])[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];
const INK = [34, 34, 34];
const GRID = [232, 232, 232];
const FRAME = [120, 120, 120];
const LINE_HALF_WIDTH = 1;

/** Draws the series as a line plot and returns the PNG bytes. */
export function plotCurves(series: readonly Series[], options: PlotOptions = {}): Buffer {
  const { title = '', width = 800, height = 480, logY = false, smooth = 0, xLabel = 'step', yLabel = '' } = options;
  checkArgs(series, width, height, smooth);
  const canvas: Raster = { width, height, data: new Uint8Array(width * height * 3).fill(255) };
  const scale = width >= 640 && height >= 360 ? 2 : 1;
  const capHeight = GLYPH_HEIGHT * scale, lineHeight = (GLYPH_HEIGHT + DESCENT) * scale;

  // Keep the drawable points (finite; positive on a log axis), as runs that break at skipped points.
  const ty = logY ? Math.log10 : (y: number) => y;
  const runs = series.map((s) => splitRuns(s.points, logY));
  const smoothed = smooth > 0 ? series.map((s) => splitRuns(ema(s.points, smooth), logY)) : undefined;
  const all = runs.flat(2);
  const hasData = all.length > 0;
  const [x0, x1] = padRange(...extent(all.map((p) => p[0])), 0);
  const [y0, y1] = padRange(...extent(all.map((p) => ty(p[1]))), 0.05);
  const yTicks = logY ? logTicks(y0, y1) : niceTicks(y0, y1, 6);
  const xTicks = niceTicks(x0, x1, Math.max(3, Math.floor(width / 110)));
  const yLabels = yTicks.map((t) => formatTick(logY ? 10 ** t.value : t.value, t.step));
  const xLabels = xTicks.map((t) => formatTick(t.value, t.step));

  // Layout: the axes box, leaving room for the title, tick labels and axis labels.
  const gap = 4 * scale;
  const left = gap * 2 + Math.max(0, ...yLabels.map((l) => textWidth(l, scale))) + (yLabel ? lineHeight + gap : 0);
  const top = title ? lineHeight + gap * 3 : gap * 3;
  const right = width - gap * 3;
  const bottom = height - (lineHeight + gap * 2) - (xLabel ? lineHeight + gap : 0);
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (right - left);
  const py = (y: number) => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);

  for (const [i, t] of yTicks.entries()) {
    const y = Math.round(py(t.value));
    fillRect(canvas, left, y, right - left, 1, GRID);
    drawText(canvas, left - gap - textWidth(yLabels[i], scale), y - capHeight / 2, yLabels[i], INK, scale);
  }
  for (const [i, t] of xTicks.entries()) {
    const x = Math.round(px(t.value));
    fillRect(canvas, x, top, 1, bottom - top, GRID);
    drawText(canvas, x - textWidth(xLabels[i], scale) / 2, bottom + gap, xLabels[i], INK, scale);
  }
  strokeRect(canvas, left, top, right - left, bottom - top, FRAME);
  if (title) drawText(canvas, (width - textWidth(title, scale)) / 2, gap * 2, title, INK, scale);
  if (xLabel) drawText(canvas, (left + right - textWidth(xLabel, scale)) / 2, bottom + lineHeight + gap * 2, xLabel, INK, scale);
  if (yLabel) drawVerticalLabel(canvas, gap, (top + bottom) / 2, yLabel, scale);
  if (!hasData) drawText(canvas, (left + right - textWidth('no data', scale)) / 2, (top + bottom) / 2, 'no data', FRAME, scale);

  const box = { left, top, right, bottom };
  const toPixels = (run: (readonly [number, number])[]) => run.map(([x, y]) => [px(x), py(ty(y))] as const);
  series.forEach((_, i) => {
    const color = SERIES_COLORS[i % SERIES_COLORS.length];
    if (smoothed) {
      // The raw curve as a faint tint of the series colour, the smoothed one on top.
      drawRuns(canvas, box, runs[i].map(toPixels), color.map((c) => Math.round(c * 0.3 + 255 * 0.7)));
      drawRuns(canvas, box, smoothed[i].map(toPixels), color);
    } else {
      drawRuns(canvas, box, runs[i].map(toPixels), color);
    }
  });
  drawLegend(canvas, series.map((s) => s.name), box, scale);
  return encodePNG({ width, height, channels: 3, data: canvas.data });
}

/**
 * Series for plotCurves from metrics records: one series per key, the point (record[xKey],
 * record[key]) for every record where both are numbers.
 */
export function seriesFromRecords(records: readonly Record<string, unknown>[], keys: readonly string[], xKey = 'step'): Series[] {
  if (!Array.isArray(records)) throw new ValueError('seriesFromRecords: records must be an array');
  return keys.map((key) => ({
    name: key,
    points: records.flatMap((r) => (typeof r[xKey] === 'number' && typeof r[key] === 'number' ? [[r[xKey], r[key]] as [number, number]] : [])),
  }));
}

function checkArgs(series: readonly Series[], width: number, height: number, smooth: number): void {
  if (!Array.isArray(series)) throw new ValueError('plotCurves: series must be an array of {name, points}');
  series.forEach((s, i) => {
    if (typeof s?.name !== 'string') throw new ValueError(`plotCurves: series ${i} needs a string name`);
    const points: unknown = s.points;
    if (!Array.isArray(points)) throw new ValueError(`plotCurves: series ${s.name}: points must be an array of [x, y]`);
    points.forEach((p: unknown, j) => {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number') {
        throw new ValueError(`plotCurves: series ${s.name}: point ${j} is not a pair of numbers`);
      }
    });
  });
  if (!Number.isInteger(width) || width < 200 || !Number.isInteger(height) || height < 150) {
    throw new ValueError(`plotCurves: size must be integers of at least 200x150, got ${width}x${height}`);
  }
  if (!(smooth >= 0 && smooth < 1)) throw new ValueError(`plotCurves: smooth must be in [0, 1), got ${smooth}`);
}

/** The drawable points as runs: a skipped point (non-finite, or y <= 0 on a log axis) ends a run. */
function splitRuns(points: readonly (readonly [number, number])[], logY: boolean): (readonly [number, number])[][] {
  const runs: (readonly [number, number])[][] = [[]];
  for (const p of points) {
    if (Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logY || p[1] > 0)) runs[runs.length - 1].push(p);
    else if (runs[runs.length - 1].length) runs.push([]);
  }
  return runs.filter((r) => r.length);
}

/** Debiased exponential moving average of y; non-finite points pass through and do not update it. */
function ema(points: readonly (readonly [number, number])[], factor: number): [number, number][] {
  let avg = 0, weight = 0;
  return points.map(([x, y]) => {
    if (!Number.isFinite(y)) return [x, y];
    avg = factor * avg + (1 - factor) * y;
    weight = factor * weight + (1 - factor);
    return [x, avg / weight];
  });
}

/** [min, max] of the values ([0, 1] when there are none); a loop, as spreading 10^5 values into Math.min overflows the stack. */
function extent(values: readonly number[]): [number, number] {
  if (!values.length) return [0, 1];
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return [lo, hi];
}

/** [lo, hi] widened by `pad` of its span on each side; a single value gets a span of 1 around it. */
function padRange(lo: number, hi: number, pad: number): [number, number] {
  if (hi - lo <= Math.abs(hi) * 1e-12) return [lo - 0.5 * Math.max(1, Math.abs(lo) * 0.1), hi + 0.5 * Math.max(1, Math.abs(hi) * 0.1)];
  const span = hi - lo;
  return [lo - span * pad, hi + span * pad];
}

interface Tick {
  value: number;
  /** Distance between ticks in data units, which sets how many decimals a label needs (0: use the value's own magnitude). */
  step: number;
}

/** Ticks at multiples of 1, 2 or 5 x 10^k inside [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count: number): Tick[] {
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) as number;
  const ticks: Tick[] = [];
  for (let k = Math.ceil(lo / step); k * step <= hi + step * 1e-9; k++) ticks.push({ value: k * step, step });
  return ticks;
}

/** Ticks for a log axis, values in log10 units: decades, with 2 and 5 in between when the range is short. */
function logTicks(lo: number, hi: number): Tick[] {
  const mantissas = hi - lo > 4 ? [1] : [1, 2, 5];
  const ticks: Tick[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of mantissas) {
      const value = e + Math.log10(m);
      if (value >= lo && value <= hi) ticks.push({ value, step: 0 });
    }
  }
  if (ticks.length >= 2) return ticks;
  // Less than a decade with at most one 1-2-5 value inside: nice linear values, placed in log space.
  return niceTicks(10 ** lo, 10 ** hi, 5).filter((t) => t.value > 0).map((t) => ({ value: Math.log10(t.value), step: t.step }));
}

/** A tick label: plain decimals fitting the tick spacing, or short exponent form for very large or small values. */
export function formatTick(value: number, step: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e5 || abs < 1e-3) return value.toExponential(2).replace(/\.?0+e/, 'e');
  const decimals = step > 0 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))) : Math.max(0, -Math.floor(Math.log10(abs)));
  return value.toFixed(decimals);
}

function fillRect(canvas: Raster, x: number, y: number, w: number, h: number, rgb: readonly number[]): void {
  for (let yy = Math.max(0, Math.round(y)); yy < Math.min(canvas.height, Math.round(y + h)); yy++) {
    for (let xx = Math.max(0, Math.round(x)); xx < Math.min(canvas.width, Math.round(x + w)); xx++) canvas.data.set(rgb, (yy * canvas.width + xx) * 3);
  }
}

function strokeRect(canvas: Raster, x: number, y: number, w: number, h: number, rgb: readonly number[]): void {
  fillRect(canvas, x, y, w + 1, 1, rgb);
  fillRect(canvas, x, y + h, w + 1, 1, rgb);
  fillRect(canvas, x, y, 1, h + 1, rgb);
  fillRect(canvas, x + w, y, 1, h + 1, rgb);
}

/** Text rotated 90 degrees counter-clockwise, centred at (x + half its height, cy). */
function drawVerticalLabel(canvas: Raster, x: number, cy: number, text: string, scale: number): void {
  const w = textWidth(text, scale), h = (GLYPH_HEIGHT + DESCENT) * scale;
  const strip: Raster = { width: w, height: h, data: new Uint8Array(w * h * 3).fill(255) };
  drawText(strip, 0, 0, text, INK, scale);
  const top = Math.round(cy - w / 2);
  for (let sy = 0; sy < h; sy++) {
    for (let sx = 0; sx < w; sx++) {
      const dx = Math.round(x) + sy, dy = top + (w - 1 - sx);
      if (dx < 0 || dx >= canvas.width || dy < 0 || dy >= canvas.height) continue;
      canvas.data.set(strip.data.subarray((sy * w + sx) * 3, (sy * w + sx) * 3 + 3), (dy * canvas.width + dx) * 3);
    }
  }
}

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

/** Draws polylines (pixel coordinates) anti-aliased in one colour, clipped to the axes box. */
function drawRuns(canvas: Raster, box: Box, runs: (readonly (readonly [number, number])[])[], rgb: readonly number[]): void {
  const x0 = Math.ceil(box.left) + 1, y0 = Math.ceil(box.top) + 1;
  const w = Math.floor(box.right) - x0, h = Math.floor(box.bottom) - y0;
  if (w <= 0 || h <= 0) return;
  const coverage = new Float32Array(w * h);
  const reach = LINE_HALF_WIDTH + 0.5;
  for (const run of runs) {
    // A lone point is a segment of length zero: a dot.
    const segments = run.length === 1 ? [[run[0], run[0]]] : run.slice(1).map((p, i) => [run[i], p]);
    for (const [[ax, ay], [bx, by]] of segments) {
      const minX = Math.max(x0, Math.floor(Math.min(ax, bx) - reach)), maxX = Math.min(x0 + w - 1, Math.ceil(Math.max(ax, bx) + reach));
      const minY = Math.max(y0, Math.floor(Math.min(ay, by) - reach)), maxY = Math.min(y0 + h - 1, Math.ceil(Math.max(ay, by) + reach));
      const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
      for (let y = minY; y <= maxY; y++) {
        for (let x = minX; x <= maxX; x++) {
          // Distance from the pixel centre to the segment.
          const cx = x + 0.5, cy = y + 0.5;
          const t = len2 > 0 ? Math.min(1, Math.max(0, ((cx - ax) * dx + (cy - ay) * dy) / len2)) : 0;
          const ex = cx - (ax + t * dx), ey = cy - (ay + t * dy);
          const d = Math.sqrt(ex * ex + ey * ey);
          const c = Math.min(1, reach - d);
          const k = (y - y0) * w + (x - x0);
          if (c > coverage[k]) coverage[k] = c;
        }
      }
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const c = coverage[y * w + x];
      if (c <= 0) continue;
      const o = ((y + y0) * canvas.width + x + x0) * 3;
      for (let ch = 0; ch < 3; ch++) canvas.data[o + ch] = Math.round(canvas.data[o + ch] * (1 - c) + rgb[ch] * c);
    }
  }
}

/** The legend: a framed box in the top-right corner of the axes, a colour swatch and name per series. */
function drawLegend(canvas: Raster, names: readonly string[], box: Box, scale: number): void {
  if (!names.length) return;
  const lineHeight = (GLYPH_HEIGHT + DESCENT + 3) * scale, swatch = 12 * scale, pad = 4 * scale;
  const w = pad * 3 + swatch + Math.max(...names.map((n) => textWidth(n, scale)));
  const h = pad * 2 + names.length * lineHeight - 3 * scale;
  const x = box.right - w - pad * 2, y = box.top + pad * 2;
  fillRect(canvas, x, y, w, h, [255, 255, 255]);
  strokeRect(canvas, x, y, w, h, FRAME);
  names.forEach((name, i) => {
    const ty = y + pad + i * lineHeight;
    fillRect(canvas, x + pad, ty + (GLYPH_HEIGHT * scale) / 2 - scale, swatch, 2 * scale, SERIES_COLORS[i % SERIES_COLORS.length]);
    drawText(canvas, x + pad * 2 + swatch, ty, name, INK, scale);
  });
}
