// io-png.test.ts: the PNG codec of src/emu/io/png.ts. Round trips through encodePNG; PNGs built
// here by an independent reference writer (every colour type and bit depth, all five filters,
// Adam7, IDAT split in pieces, tRNS) decoded and compared with the expected 8-bit samples; files
// written by Pillow and ImageMagick (test/fixtures/png, made once by make_png_fixtures.py);
// and malformed files, each of which must give an ImageError naming the problem.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodePNG, encodePNG, ImageError, MAX_PIXELS, type RawImage } from '../../src/emu/io/png.ts';
import { ValueError } from '../../src/tensor/errors.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'png');
const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

function chunk(type: string, data: Uint8Array | number[]): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const len = Buffer.alloc(4), crc = Buffer.alloc(4);
  len.writeUInt32BE(body.length - 4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function ihdr(width: number, height: number, depth: number, colorType: number, interlace = 0, compression = 0, filter = 0): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d.set([depth, colorType, compression, filter, interlace], 8);
  return chunk('IHDR', d);
}

/** Reference filter of one row: written plainly from the spec, independent of png.ts. */
function filterRow(type: number, row: number[], up: number[], bpp: number): number[] {
  return row.map((x, i) => {
    const a = i >= bpp ? row[i - bpp] : 0, b = up[i] ?? 0, c = i >= bpp ? (up[i - bpp] ?? 0) : 0;
    if (type === 0) return x;
    if (type === 1) return (x - a) & 255;
    if (type === 2) return (x - b) & 255;
    if (type === 3) return (x - Math.floor((a + b) / 2)) & 255;
    const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
    return (x - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 255;
  });
}

/** Packs samples (full precision) of one row into bytes at `depth` bits, MSB first. */
function packRow(samples: number[], depth: number): number[] {
  if (depth === 16) return samples.flatMap((v) => [v >> 8, v & 255]);
  if (depth === 8) return samples;
  const out = new Array(Math.ceil((samples.length * depth) / 8)).fill(0);
  samples.forEach((v, i) => { out[(i * depth) >> 3] |= v << (8 - depth - ((i * depth) & 7)); });
  return out;
}

interface Spec {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  /** samples[y][x][s], full precision */
  samples: number[][][];
  interlace?: boolean;
  extra?: Buffer[]; // chunks placed before IDAT (PLTE, tRNS, ancillary)
  idatPieces?: number;
}

/** A complete PNG from samples: rows filtered with filter (row index + pass) % 5, so all five appear. */
function makePNG(s: Spec): Buffer {
  const ch = SAMPLES[s.colorType];
  const bpp = Math.max(1, (ch * s.depth) >> 3);
  const passes = s.interlace ? ADAM7 : [[0, 0, 1, 1]];
  const bytes: number[] = [];
  passes.forEach(([x0, y0, dx, dy], pass) => {
    let up: number[] = [];
    for (let y = y0, r = 0; y < s.height; y += dy, r++) {
      const samples: number[] = [];
      for (let x = x0; x < s.width; x += dx) samples.push(...s.samples[y][x]);
      if (!samples.length) break;
      const row = packRow(samples, s.depth);
      const f = (r + pass) % 5;
      bytes.push(f, ...filterRow(f, row, up, bpp));
      up = row;
    }
  });
  const z = deflateSync(Buffer.from(bytes));
  const pieces = s.idatPieces ?? 1;
  const idats = Array.from({ length: pieces }, (_, i) => chunk('IDAT', z.subarray(Math.floor((i * z.length) / pieces), Math.floor(((i + 1) * z.length) / pieces))));
  return Buffer.concat([Buffer.from(SIGNATURE), ihdr(s.width, s.height, s.depth, s.colorType, s.interlace ? 1 : 0), ...(s.extra ?? []), ...idats, chunk('IEND', [])]);
}

/** Deterministic pseudo-random sample values in [0, 2^depth). */
function randomSamples(width: number, height: number, ch: number, max: number, seed: number): number[][][] {
  let state = seed >>> 0;
  const next = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state; };
  return Array.from({ length: height }, () => Array.from({ length: width }, () => Array.from({ length: ch }, () => next() % (max + 1))));
}

function to8(v: number, depth: number): number {
  return depth === 16 ? Math.round(v / 257) : Math.round((v * 255) / ((1 << depth) - 1));
}

function expectError(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, ImageError, `wanted an ImageError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`no error; expected ${pattern}`);
}

test('encodePNG -> decodePNG round trips every channel count, odd sizes, all byte values', () => {
  for (const channels of [1, 2, 3, 4] as const) {
    for (const [w, h] of [[1, 1], [7, 3], [33, 17]]) {
      const data = new Uint8Array(w * h * channels);
      for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 3) * 11) & 255;
      const back = decodePNG(encodePNG({ width: w, height: h, channels, data }));
      assert.equal([back.width, back.height, back.channels], [w, h, channels]);
      assert.equal(Array.from(back.data), Array.from(data));
    }
  }
});

test('encodePNG chooses filters per row: a smooth gradient compresses far below its raw size', () => {
  const w = 64, h = 64, data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x * 4, y * 4, (x + y) * 2], (y * w + x) * 3);
  const png = encodePNG({ width: w, height: h, channels: 3, data });
  // Inspect the IDAT: the filter bytes used must include something other than None.
  const idatStart = png.indexOf('IDAT') + 4;
  const raw = inflateSync(png.subarray(idatStart, idatStart + png.readUInt32BE(idatStart - 8)));
  const filters = new Set(Array.from({ length: h }, (_, y) => raw[y * (w * 3 + 1)]));
  assert.ok([...filters].some((f) => f !== 0), `filters used: ${[...filters]}`);
  assert.ok(png.length < (w * h * 3) / 8, `png is ${png.length} bytes`);
  assert.equal(Array.from(decodePNG(png).data), Array.from(data));
});

test('encodePNG rejects bad arguments with ValueError', () => {
  const bad: [unknown, RegExp][] = [
    [{ width: 0, height: 1, channels: 3, data: new Uint8Array(0) }, /width must be a positive integer/],
    [{ width: 2, height: 1.5, channels: 3, data: new Uint8Array(9) }, /height must be a positive integer/],
    [{ width: 2, height: 2, channels: 5, data: new Uint8Array(20) }, /channels must be 1, 2, 3 or 4/],
    [{ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }, /11 bytes, expected 2x2x3 = 12/],
    [{ width: 2, height: 2, channels: 3, data: [1, 2, 3] }, /must be a Uint8Array/],
    [{ width: MAX_PIXELS, height: 2, channels: 1, data: new Uint8Array(0) }, /pixel limit/],
  ];
  for (const [arg, pattern] of bad) assert.throws(() => encodePNG(arg as RawImage), (e: Error) => e instanceof ValueError && pattern.test(e.message));
});

test('gray at depths 1, 2, 4, 8, 16, interlaced or not, scaled to 8 bits', () => {
  for (const depth of [1, 2, 4, 8, 16]) {
    for (const interlace of [false, true]) {
      const [w, h] = [13, 11];
      const samples = randomSamples(w, h, 1, (1 << depth) - 1, depth * 7 + (interlace ? 1 : 0));
      const img = decodePNG(makePNG({ width: w, height: h, depth, colorType: 0, samples, interlace }));
      assert.equal([img.width, img.height, img.channels], [w, h, 1]);
      assert.equal(Array.from(img.data), samples.flat(2).map((v) => to8(v, depth)), `depth ${depth} interlace ${interlace}`);
    }
  }
});

test('RGB, gray+alpha and RGBA at depths 8 and 16, interlaced or not', () => {
  for (const colorType of [2, 4, 6]) {
    for (const depth of [8, 16]) {
      for (const interlace of [false, true]) {
        const [w, h] = [9, 10];
        const ch = SAMPLES[colorType];
        const samples = randomSamples(w, h, ch, (1 << depth) - 1, colorType * 100 + depth);
        const img = decodePNG(makePNG({ width: w, height: h, depth, colorType, samples, interlace, idatPieces: 3 }));
        assert.is(img.channels, ch);
        assert.equal(Array.from(img.data), samples.flat(2).map((v) => to8(v, depth)), `type ${colorType} depth ${depth} interlace ${interlace}`);
      }
    }
  }
});

test('16-bit samples round to the nearest 8-bit value', () => {
  const samples = [[[0], [128], [129], [257 * 100 + 128], [257 * 100 + 129], [65535]]];
  const img = decodePNG(makePNG({ width: 6, height: 1, depth: 16, colorType: 0, samples }));
  assert.equal(Array.from(img.data), [0, 0, 1, 100, 101, 255]);
});

test('palette at depths 1, 2, 4, 8, with and without tRNS alpha', () => {
  for (const depth of [1, 2, 4, 8]) {
    for (const withAlpha of [false, true]) {
      const entries = Math.min(1 << depth, 200);
      const palette = Array.from({ length: entries * 3 }, (_, i) => (i * 53 + 7) & 255);
      // tRNS shorter than the palette: entries past its end are opaque.
      const alpha = Array.from({ length: Math.max(1, entries - 1) }, (_, i) => (i * 91) & 255);
      const [w, h] = [11, 9];
      const samples = randomSamples(w, h, 1, entries - 1, depth);
      const extra = [chunk('PLTE', palette), ...(withAlpha ? [chunk('tRNS', alpha)] : [])];
      for (const interlace of [false, true]) {
        const img = decodePNG(makePNG({ width: w, height: h, depth, colorType: 3, samples, extra, interlace }));
        const expected = samples.flat(2).flatMap((i) => [...palette.slice(3 * i, 3 * i + 3), ...(withAlpha ? [alpha[i] ?? 255] : [])]);
        assert.is(img.channels, withAlpha ? 4 : 3);
        assert.equal(Array.from(img.data), expected, `depth ${depth} alpha ${withAlpha} interlace ${interlace}`);
      }
    }
  }
});

test('tRNS colour key on gray and RGB becomes an alpha channel (compared at full precision)', () => {
  const gray = decodePNG(makePNG({ width: 3, height: 1, depth: 16, colorType: 0, samples: [[[1000], [1001], [1000]]], extra: [chunk('tRNS', [1000 >> 8, 1000 & 255])] }));
  assert.is(gray.channels, 2);
  assert.equal(Array.from(gray.data), [4, 0, 4, 255, 4, 0]);
  const rgb = decodePNG(makePNG({ width: 2, height: 1, depth: 8, colorType: 2, samples: [[[1, 2, 3], [1, 2, 4]]], extra: [chunk('tRNS', [0, 1, 0, 2, 0, 3])] }));
  assert.is(rgb.channels, 4);
  assert.equal(Array.from(rgb.data), [1, 2, 3, 0, 1, 2, 4, 255]);
});

test('ancillary chunks are skipped; an image smaller than the Adam7 grid decodes', () => {
  const tEXt = chunk('tEXt', [...Buffer.from('Comment'), 0, ...Buffer.from('hello')]);
  for (const [w, h] of [[1, 1], [2, 1], [1, 3], [5, 2]]) {
    const samples = randomSamples(w, h, 3, 255, w * 10 + h);
    const img = decodePNG(makePNG({ width: w, height: h, depth: 8, colorType: 2, samples, interlace: true, extra: [tEXt] }));
    assert.equal(Array.from(img.data), samples.flat(2), `${w}x${h}`);
  }
});

test('files written by Pillow decode to the pixels they were made from', () => {
  // make_png_fixtures.py draws value(x, y, c) = (x * 31 + y * 17 + c * 80) % 256 into 13x7 images.
  const value = (x: number, y: number, c: number) => (x * 31 + y * 17 + c * 80) % 256;
  const [w, h] = [13, 7];
  const rgb = Array.from({ length: h * w * 3 }, (_, i) => value(Math.floor(i / 3) % w, Math.floor(i / 3 / w), i % 3));
  const gray = Array.from({ length: h * w }, (_, i) => value(i % w, Math.floor(i / w), 0));
  const check = (file: string, channels: number, expected: number[]) => {
    const img = decodePNG(readFileSync(join(FIXTURES, file)));
    assert.equal([img.width, img.height, img.channels], [w, h, channels], file);
    assert.equal(Array.from(img.data), expected, file);
  };
  check('pil_rgb.png', 3, rgb);
  check('pil_rgba.png', 4, rgb.flatMap((v, i) => (i % 3 === 2 ? [v, value(Math.floor(i / 3) % w, Math.floor(i / 3 / w), 3)] : [v])));
  check('pil_gray.png', 1, gray);
  check('pil_1bit.png', 1, gray.map((v) => (v >= 128 ? 255 : 0)));
  check('pil_gray16.png', 1, gray);
  // Palette: the four-colour image made by make_png_fixtures.py, index (x + y) % 4, index 0 transparent.
  const pal = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
  check('pil_palette_trns.png', 4, Array.from({ length: h * w }, (_, i) => {
    const k = ((i % w) + Math.floor(i / w)) % 4;
    return [...pal[k], k === 0 ? 0 : 255];
  }).flat());
});

test('malformed PNGs give an ImageError naming the problem', () => {
  const good = encodePNG({ width: 4, height: 3, channels: 3, data: new Uint8Array(36).fill(9) });
  const idatAt = good.indexOf('IDAT') - 4;
  const idatLen = good.readUInt32BE(idatAt);
  const withData = (raw: number[], head = ihdr(2, 2, 8, 0)) => Buffer.concat([Buffer.from(SIGNATURE), head, chunk('IDAT', deflateSync(Buffer.from(raw))), chunk('IEND', [])]);
  const png = (...chunks: Buffer[]) => Buffer.concat([Buffer.from(SIGNATURE), ...chunks]);
  const anyIdat = chunk('IDAT', deflateSync(Buffer.alloc(8)));
  const flip = (at: number) => { const b = Buffer.from(good); b[at] ^= 1; return b; };
  const cases: [Uint8Array, RegExp][] = [
    [Buffer.alloc(0), /bad signature/],
    [Buffer.from('GIF89a....'), /bad signature/],
    [good.subarray(0, 20), /truncated: chunk IHDR/],
    [good.subarray(0, idatAt + 10), /truncated: chunk IDAT/],
    [good.subarray(0, good.length - 12), /no IEND/],
    [flip(20), /CRC mismatch in chunk IHDR/],
    [flip(idatAt + 9), /CRC mismatch in chunk IDAT/],
    [png(chunk('IDAT', [1]), chunk('IEND', [])), /first chunk is IDAT, expected IHDR/],
    [png(ihdr(0, 4, 8, 2), chunk('IEND', [])), /bad size 0x4/],
    [png(ihdr(4, 4, 8, 5), chunk('IEND', [])), /bad colour type 5/],
    [png(ihdr(4, 4, 4, 2), chunk('IEND', [])), /bit depth 4 is not allowed for colour type 2/],
    [png(ihdr(4, 4, 16, 3), chunk('IEND', [])), /bit depth 16 is not allowed for colour type 3/],
    [png(ihdr(4, 4, 8, 2, 2), chunk('IEND', [])), /bad interlace method 2/],
    [png(ihdr(4, 4, 8, 2, 0, 1), chunk('IEND', [])), /bad compression method 1/],
    [png(ihdr(4, 4, 8, 2, 0, 0, 1), chunk('IEND', [])), /bad filter method 1/],
    [png(ihdr(1 << 14, 1 << 14, 8, 2), chunk('IEND', [])), /pixel limit/],
    [png(chunk('IHDR', [0, 0, 0, 1]), chunk('IEND', [])), /IHDR has 4 bytes, expected 13/],
    [png(ihdr(2, 2, 8, 0), ihdr(2, 2, 8, 0), chunk('IEND', [])), /more than one IHDR/],
    [png(ihdr(2, 2, 8, 0), chunk('IEND', [])), /no IDAT chunk/],
    [png(ihdr(2, 2, 8, 0), chunk('IDAT', [1, 2, 3, 4]), chunk('IEND', [])), /zlib error/],
    [withData([0, 1, 2, 0, 3]), /image data is 5 bytes, the header implies 6/],
    [withData([0, 1, 2, 0, 3, 4, 5]), /longer than the 6 bytes/],
    [withData([0, 1, 2, 7, 3, 4]), /bad filter type 7 on scanline 1/],
    [withData([0, 0, 0, 0, 0, 5], ihdr(2, 2, 8, 3)), /palette image without a PLTE/],
    [png(ihdr(2, 2, 8, 0), chunk('ABCD', []), chunk('IEND', [])), /unknown critical chunk ABCD/],
    [png(ihdr(2, 2, 8, 0), chunk('AB1D', []), chunk('IEND', [])), /bad chunk type/],
    [png(ihdr(2, 2, 8, 3), chunk('PLTE', [1, 2, 3, 4]), chunk('IEND', [])), /PLTE has 4 bytes/],
    [png(ihdr(2, 2, 1, 3), chunk('PLTE', new Array(9).fill(0)), chunk('IDAT', deflateSync(Buffer.from([0, 0, 0, 0]))), chunk('IEND', [])), /PLTE has 3 entries, more than 2 for bit depth 1/],
    [png(ihdr(2, 2, 8, 3), chunk('PLTE', [1, 2, 3]), chunk('tRNS', [1, 2]), anyIdat, chunk('IEND', [])), /tRNS has 2 entries, more than the 1 palette/],
    [png(ihdr(2, 2, 8, 2), chunk('tRNS', [1, 2]), anyIdat, chunk('IEND', [])), /tRNS has 2 bytes, expected 6/],
    [png(ihdr(2, 2, 8, 6), chunk('tRNS', [1, 2]), anyIdat, chunk('IEND', [])), /tRNS is not allowed for colour type 6/],
    [png(ihdr(2, 1, 8, 3), chunk('PLTE', [1, 2, 3, 4, 5, 6]), chunk('IDAT', deflateSync(Buffer.from([0, 1, 2]))), chunk('IEND', [])), /palette index 2 at pixel 1 is outside the 2-entry palette/],
  ];
  assert.ok(idatLen > 0);
  for (const [bytes, pattern] of cases) expectError(() => decodePNG(bytes), pattern);
  // A chunk length with the top bit set is refused before any allocation.
  const huge = Buffer.from(good);
  huge.writeUInt32BE(0x80000000, idatAt);
  expectError(() => decodePNG(huge), /above the 2\^31-1 limit/);
  assert.throws(() => decodePNG('not bytes' as unknown as Uint8Array), (e: Error) => e instanceof ValueError);
});

test.run();
