// io-plot.test.ts: the bitmap font (src/emu/io/font.ts) and the curve plotter
// (src/emu/io/plot.ts). The font: exact pixels of a glyph, scaling, clipping, every character the
// plots need has its own glyph. The plotter: a valid PNG of the asked size; each series drawn in
// its own colour where its values put it; log axes straighten an exponential; gaps at
// non-finite points; title and legend ink where they belong; ticks and labels; argument errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ADVANCE, drawText, GLYPH_HEIGHT, GLYPH_WIDTH, textWidth, type Raster } from '../../src/emu/io/font.ts';
import { formatTick, niceTicks, plotCurves, seriesFromRecords, SERIES_COLORS, type Series } from '../../src/emu/io/plot.ts';
import { decodePNG, type RawImage } from '../../src/emu/io/png.ts';
import { ValueError } from '../../src/tensor/errors.ts';

function raster(width: number, height: number): Raster {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

/** Row strings of '#' (ink, any non-zero red) and '.' for a raster. */
function picture(r: Raster): string[] {
  return Array.from({ length: r.height }, (_, y) => Array.from({ length: r.width }, (_, x) => (r.data[(y * r.width + x) * 3] ? '#' : '.')).join(''));
}

test('drawText draws the glyph pixels exactly, scaled and clipped', () => {
  const r = raster(5, 7);
  drawText(r, 0, 0, '1', [255, 0, 0]);
  assert.equal(picture(r), ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.']);
  const big = raster(10, 14);
  drawText(big, 0, 0, '1', [255, 0, 0], 2);
  assert.equal(picture(big).slice(0, 4), ['....##....', '....##....', '..####....', '..####....']);
  // Descenders take two rows below the baseline.
  const g = raster(5, 9);
  drawText(g, 0, 0, 'g', [255, 0, 0]);
  assert.equal(picture(g).slice(7), ['....#', '.###.']);
  // Drawing past the edges is clipped, not an error.
  const clip = raster(3, 3);
  drawText(clip, -2, -4, '8888', [255, 0, 0], 3);
  assert.equal(textWidth('ab'), 2 * ADVANCE - 1);
  assert.equal(textWidth('ab', 3), (2 * ADVANCE - 1) * 3);
  assert.is(textWidth(''), 0);
});

test('every character the plots need has its own glyph; unknown ones draw as "?"', () => {
  const render = (ch: string) => {
    const r = raster(GLYPH_WIDTH, GLYPH_HEIGHT + 2);
    drawText(r, 0, 0, ch, [255, 255, 255]);
    return picture(r).join('\n');
  };
  const needed = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,-+:/%()[]_=<>!#*\'';
  const seen = new Map<string, string>();
  for (const ch of needed) {
    const p = render(ch);
    assert.ok(p.includes('#'), `${ch} has no ink`);
    assert.is.not(p, render('?'), `${ch} falls back to ?`);
    assert.not.ok(seen.has(p), `${ch} looks the same as ${seen.get(p)}`);
    seen.set(p, ch);
  }
  assert.is(render('\u00e9'), render('?'));
  assert.not.ok(render(' ').includes('#'));
});

/** Pixels of the picture within `tol` of an RGB colour, as [x, y] pairs. */
function pixelsOf(img: RawImage, rgb: readonly number[], tol = 8): [number, number][] {
  const out: [number, number][] = [];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const o = (y * img.width + x) * img.channels;
      if (Math.abs(img.data[o] - rgb[0]) <= tol && Math.abs(img.data[o + 1] - rgb[1]) <= tol && Math.abs(img.data[o + 2] - rgb[2]) <= tol) out.push([x, y]);
    }
  }
  return out;
}

const line = (n: number, f: (x: number) => number): [number, number][] => Array.from({ length: n }, (_, i) => [i, f(i)]);

test('plotCurves: a PNG of the asked size, each series in its own colour at its own height', () => {
  const series: Series[] = [
    { name: 'low', points: line(50, () => 1) },
    { name: 'high', points: line(50, () => 3) },
    { name: 'mid', points: line(50, () => 2) },
  ];
  const img = decodePNG(plotCurves(series, { width: 500, height: 300 }));
  assert.equal([img.width, img.height, img.channels], [500, 300, 3]);
  const meanY = (i: number) => {
    // Pixels of the line itself (the legend swatch sits in the top right; leave it out).
    const px = pixelsOf(img, SERIES_COLORS[i]).filter(([x]) => x < 300);
    assert.ok(px.length > 100, `series ${i}: only ${px.length} pixels`);
    return px.reduce((s, [, y]) => s + y, 0) / px.length;
  };
  const [low, high, mid] = [meanY(0), meanY(1), meanY(2)];
  assert.ok(high < mid && mid < low, `rows: high ${high}, mid ${mid}, low ${low}`);
  // Equal spacing in value gives equal spacing in pixels on a linear axis.
  assert.ok(Math.abs((low - mid) - (mid - high)) < 2, `${low - mid} vs ${mid - high}`);
});

test('plotCurves: logY turns an exponential into a straight line', () => {
  const points = line(100, (x) => 10 ** (x / 33));
  // Straightness: the row of the curve at x = 25%, 50%, 75% of its columns, against a chord.
  const residual = (logY: boolean) => {
    const img = decodePNG(plotCurves([{ name: 'exp', points }], { width: 400, height: 300, logY }));
    const px = pixelsOf(img, SERIES_COLORS[0], 30).filter(([x, y]) => !(x > 250 && y < 60));
    const xs = px.map(([x]) => x), x0 = Math.min(...xs), x1 = Math.max(...xs);
    const rowAt = (x: number) => {
      const col = px.filter(([c]) => c === Math.round(x));
      return col.reduce((s, [, y]) => s + y, 0) / col.length;
    };
    const a = rowAt(x0 + 2), b = rowAt(x1 - 2);
    return Math.max(...[0.25, 0.5, 0.75].map((f) => Math.abs(rowAt(x0 + 2 + f * (x1 - x0 - 4)) - (a + f * (b - a)))));
  };
  const straight = residual(true), curved = residual(false);
  assert.ok(straight < 3, `log axis: ${straight} px off straight`);
  assert.ok(curved > 30, `linear axis: only ${curved} px off straight`);
});

test('plotCurves: NaN and infinite points leave a gap, non-positive points are skipped on a log axis', () => {
  const points = line(100, (x) => 1 + x / 100);
  for (let i = 45; i < 55; i++) points[i][1] = i % 2 ? NaN : Infinity;
  const img = decodePNG(plotCurves([{ name: 'gappy', points }], { width: 400, height: 300 }));
  const cols = new Set(pixelsOf(img, SERIES_COLORS[0]).filter(([, y]) => y > 60).map(([x]) => x));
  const sorted = [...cols].sort((a, b) => a - b);
  const biggestGap = Math.max(...sorted.slice(1).map((x, i) => x - sorted[i]));
  assert.ok(biggestGap > 20, `largest gap between drawn columns is ${biggestGap}`);
  const withZero = line(20, (x) => x);
  const logImg = decodePNG(plotCurves([{ name: 'zero', points: withZero }], { width: 300, height: 200, logY: true }));
  assert.ok(pixelsOf(logImg, SERIES_COLORS[0]).length > 50);
  // Nothing drawable at all: still a picture, not an error.
  const empty = decodePNG(plotCurves([{ name: 'nan', points: [[0, NaN]] }], { width: 300, height: 200 }));
  assert.equal([empty.width, empty.height], [300, 200]);
});

test('plotCurves: smoothing draws a faint raw curve and the smoothed one', () => {
  const noisy = line(200, (x) => 2 + (x % 2 ? 0.5 : -0.5));
  const img = decodePNG(plotCurves([{ name: 'noisy', points: noisy }], { width: 400, height: 300, smooth: 0.9 }));
  const full = pixelsOf(img, SERIES_COLORS[0], 4).filter(([x]) => x < 250);
  const faint = pixelsOf(img, SERIES_COLORS[0].map((c) => Math.round(c * 0.3 + 255 * 0.7)), 4);
  assert.ok(full.length > 100 && faint.length > 100, `full ${full.length}, faint ${faint.length}`);
  // The smoothed curve stays near the middle (value 2) while the raw one spans 1.5..2.5.
  const spread = (px: [number, number][]) => Math.max(...px.map(([, y]) => y)) - Math.min(...px.map(([, y]) => y));
  assert.ok(spread(full.filter(([x]) => x > 100)) < spread(faint) / 3, `${spread(full)} vs ${spread(faint)}`);
});

test('plotCurves: title and legend put ink where they belong', () => {
  const series = [{ name: 'CE', points: line(10, (x) => x) }];
  const ink = (img: RawImage, x0: number, y0: number, x1: number, y1: number) => pixelsOf(img, [34, 34, 34], 0).filter(([x, y]) => x >= x0 && x < x1 && y >= y0 && y < y1).length;
  const titled = decodePNG(plotCurves(series, { width: 400, height: 300, title: 'pretrain loss' }));
  const plain = decodePNG(plotCurves(series, { width: 400, height: 300 }));
  assert.ok(ink(titled, 100, 0, 300, 16) > 40, 'title ink');
  assert.is(ink(plain, 100, 0, 300, 8), 0);
  // The legend: a swatch of the series colour in the top-right corner.
  assert.ok(pixelsOf(plain, SERIES_COLORS[0], 0).some(([x, y]) => x > 330 && y < 40), 'legend swatch');
});

test('niceTicks and formatTick', () => {
  assert.equal(niceTicks(0, 10, 5).map((t) => t.value), [0, 2, 4, 6, 8, 10]);
  assert.equal(niceTicks(0.13, 0.61, 5).map((t) => +t.value.toFixed(10)), [0.2, 0.3, 0.4, 0.5, 0.6]);
  assert.equal(niceTicks(-3, 7, 2).map((t) => t.value), [0, 5]);
  assert.equal(niceTicks(0, 1000, 4).map((t) => t.value), [0, 500, 1000]);
  assert.is(formatTick(0, 1), '0');
  assert.is(formatTick(2.5, 0.5), '2.5');
  assert.is(formatTick(0.30000000000000004, 0.1), '0.3');
  assert.is(formatTick(400, 200), '400');
  assert.is(formatTick(0.0001, 0.00005), '1e-4');
  assert.is(formatTick(0.00025, 0.00005), '2.5e-4');
  assert.is(formatTick(250000, 50000), '2.5e+5');
  assert.is(formatTick(-0.02, 0), '-0.02');
});

test('seriesFromRecords picks numeric fields against step', () => {
  const records = [{ step: 1, ce: 3, mse: 0.5 }, { step: 2, ce: 2.5 }, { step: 3, ce: 'x', mse: 0.4 }, { ce: 1 }];
  assert.equal(seriesFromRecords(records, ['ce', 'mse']), [
    { name: 'ce', points: [[1, 3], [2, 2.5]] },
    { name: 'mse', points: [[1, 0.5], [3, 0.4]] },
  ]);
  assert.equal(seriesFromRecords([{ t: 5, loss: 1 }], ['loss'], 't'), [{ name: 'loss', points: [[5, 1]] }]);
  assert.throws(() => seriesFromRecords('x' as never, ['a']), (e: Error) => e instanceof ValueError);
});

test('plotCurves rejects bad arguments with ValueError', () => {
  const ok = [{ name: 'a', points: [[0, 1]] as [number, number][] }];
  const cases: [() => unknown, RegExp][] = [
    [() => plotCurves('x' as never), /series must be an array/],
    [() => plotCurves([{ points: [] }] as never), /series 0 needs a string name/],
    [() => plotCurves([{ name: 'a', points: 3 }] as never), /series a: points must be an array/],
    [() => plotCurves([{ name: 'a', points: [[1, 2, 3]] }] as never), /series a: point 0 is not a pair of numbers/],
    [() => plotCurves(ok, { width: 100 }), /at least 200x150, got 100x480/],
    [() => plotCurves(ok, { height: 10.5 }), /got 800x10.5/],
    [() => plotCurves(ok, { smooth: 1 }), /smooth must be in \[0, 1\), got 1/],
  ];
  for (const [fn, pattern] of cases) assert.throws(fn, (e: Error) => e instanceof ValueError && pattern.test(e.message));
});

test.run();
