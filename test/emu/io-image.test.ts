// io-image.test.ts: image files in and out (src/emu/io/image.ts) and the atomic writer under them:
// conversion of every channel layout to RGB over white, resampling (area down, bilinear up,
// mean preserved, exact on constant images), writeImage -> readImage round trips, atomic writes,
// imageGrid layout and upscaling, and typed errors naming the path or argument.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileAtomic } from '../../src/nn/atomic_write.ts';
import { imageGrid, readImage, resize, toBytes, toRGB, writeImage, type RGBImage } from '../../src/emu/io/image.ts';
import { decodePNG, encodePNG, ImageError } from '../../src/emu/io/png.ts';
import { ValueError } from '../../src/tensor/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'emu-io-image-'));

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}: index ${i}: ${a[i]} vs ${b[i]}`);
}

function throwsWith(fn: () => unknown, type: new (...a: never[]) => Error, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => e instanceof type && pattern.test(e.message));
}

test('toRGB expands gray, drops opaque alpha and composites transparency over white', () => {
  assert.equal(Array.from(toRGB({ width: 2, height: 1, channels: 1, data: new Uint8Array([0, 255]) }).pixels), [0, 0, 0, 1, 1, 1]);
  const ga = toRGB({ width: 2, height: 1, channels: 2, data: new Uint8Array([0, 255, 0, 0]) });
  assert.equal(Array.from(ga.pixels), [0, 0, 0, 1, 1, 1]);
  const rgba = toRGB({ width: 1, height: 1, channels: 4, data: new Uint8Array([255, 0, 51, 102]) });
  const a = 102 / 255;
  close(rgba.pixels, [1 * a + (1 - a), 0 * a + (1 - a), 0.2 * a + (1 - a)], 1e-6, 'rgba');
  close(toRGB({ width: 1, height: 1, channels: 3, data: new Uint8Array([51, 102, 255]) }).pixels, [0.2, 0.4, 1], 1e-6, 'rgb');
});

test('resize: identity, constant images stay constant, area halving averages 2x2 blocks, mean preserved', () => {
  const w = 6, h = 4;
  const pixels = Float32Array.from({ length: w * h * 3 }, (_, i) => ((i * 7) % 11) / 10);
  const img: RGBImage = { width: w, height: h, pixels };
  assert.equal(Array.from(resize(img, w, h).pixels), Array.from(pixels));
  const half = resize(img, 3, 2);
  for (let y = 0; y < 2; y++) {
    for (let x = 0; x < 3; x++) {
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number) => pixels[(yy * w + xx) * 3 + c];
        const mean = (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4;
        assert.ok(Math.abs(half.pixels[(y * 3 + x) * 3 + c] - mean) < 1e-6);
      }
    }
  }
  // Non-integer shrink (6 -> 4, 4 -> 3): area weights still preserve the mean of each channel.
  const odd = resize(img, 4, 3);
  for (let c = 0; c < 3; c++) {
    const m = (p: Float32Array) => p.filter((_, i) => i % 3 === c).reduce((s, v) => s + v, 0) / (p.length / 3);
    assert.ok(Math.abs(m(odd.pixels) - m(pixels)) < 1e-5, `channel ${c}`);
  }
  const constant = { width: 5, height: 3, pixels: new Float32Array(45).fill(0.3) };
  for (const [ow, oh] of [[2, 2], [11, 7], [5, 9], [1, 1]]) close(resize(constant, ow, oh).pixels, new Float32Array(ow * oh * 3).fill(0.3), 1e-6, `${ow}x${oh}`);
});

test('resize: non-integer shrinking equals exact area averaging (brute force on a fine grid)', () => {
  // Reference: split every input pixel into outW x outH sub-pixels; each output pixel is then the
  // plain mean of a block of inW x inH sub-pixels.
  const w = 11, h = 7, ow = 4, oh = 3;
  const pixels = Float32Array.from({ length: w * h * 3 }, (_, i) => ((i * 13) % 17) / 16);
  const out = resize({ width: w, height: h, pixels }, ow, oh).pixels;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let sy = y * h; sy < (y + 1) * h; sy++) {
          for (let sx = x * w; sx < (x + 1) * w; sx++) sum += pixels[(Math.floor(sy / oh) * w + Math.floor(sx / ow)) * 3 + c];
        }
        assert.ok(Math.abs(out[(y * ow + x) * 3 + c] - sum / (w * h)) < 1e-5, `(${x}, ${y}, ${c})`);
      }
    }
  }
});

test('resize: bilinear enlarging of a 2-pixel row matches hand-computed values', () => {
  // Input 0 and 1 at centres 0.5 and 1.5; output centres of 4 pixels map to 0.25-0.5 = -0.25 (clamped
  // to 0), 0.25, 0.75, 1.25 (clamped to 1): values 0, 0.25, 0.75, 1.
  const row = { width: 2, height: 1, pixels: new Float32Array([0, 0, 0, 1, 1, 1]) };
  const out = resize(row, 4, 1);
  close(out.pixels.filter((_, i) => i % 3 === 0), [0, 0.25, 0.75, 1], 1e-6, 'bilinear');
  throwsWith(() => resize(row, 0, 1), ValueError, /resize: outWidth must be a positive integer/);
  throwsWith(() => resize({ width: 2, height: 2, pixels: new Float32Array(3) }, 1, 1), ValueError, /pixels has 3 values, expected 2x2x3 = 12/);
});

test('writeImage -> readImage round trips to within 8-bit rounding; readImage resizes', () => {
  const size = 16;
  const pixels = Float32Array.from({ length: size * size * 3 }, (_, i) => (i % 97) / 96);
  const path = join(dir, 'round.png');
  writeImage(path, pixels, size);
  close(readImage(path, size), pixels, 0.5 / 255 + 1e-6, 'round trip');
  const small = readImage(path, 8);
  assert.is(small.length, 8 * 8 * 3);
  close(small, resize({ width: size, height: size, pixels: readImage(path, size) }, 8, 8).pixels, 1e-6, 'resized');
  // Out of range values are clamped; non-square images are written with their own height.
  writeImage(path, new Float32Array([-1, 0.5, 2, 0, 0, 0]), 2, 1);
  const raw = decodePNG(readFileSync(path));
  assert.equal([raw.width, raw.height, raw.channels], [2, 1, 3]);
  assert.equal(Array.from(raw.data), [0, 128, 255, 0, 0, 0]);
});

test('readImage reads gray, alpha and palette files as RGB over white', () => {
  const path = join(dir, 'ga.png');
  writeFileSync(path, encodePNG({ width: 1, height: 1, channels: 2, data: new Uint8Array([0, 0]) }));
  close(readImage(path, 1), [1, 1, 1], 0, 'transparent black is white');
  writeFileSync(path, encodePNG({ width: 2, height: 2, channels: 1, data: new Uint8Array([0, 255, 255, 0]) }));
  close(readImage(path, 1), [0.5, 0.5, 0.5], 1e-6, 'gray averaged');
});

test('readImage and writeImage errors name the path and the problem', () => {
  throwsWith(() => readImage(join(dir, 'missing.png'), 32), ImageError, /readImage: file not found: .*missing\.png/);
  throwsWith(() => readImage(dir, 32), ImageError, /readImage: cannot read .*emu-io-image/);
  const corrupt = join(dir, 'corrupt.png');
  const good = encodePNG({ width: 2, height: 2, channels: 3, data: new Uint8Array(12) });
  writeFileSync(corrupt, good.subarray(0, good.length - 20));
  throwsWith(() => readImage(corrupt, 32), ImageError, /readImage: .*corrupt\.png: truncated/);
  writeFileSync(corrupt, 'hello');
  throwsWith(() => readImage(corrupt, 32), ImageError, /corrupt\.png: not a PNG file/);
  throwsWith(() => readImage('', 32), ValueError, /path must be a non-empty string/);
  throwsWith(() => readImage(corrupt, 0), ValueError, /size must be a positive integer/);
  throwsWith(() => writeImage(join(dir, 'no-such-dir', 'x.png'), new Float32Array(3), 1), ImageError, /writeImage: cannot write .*no-such-dir/);
  throwsWith(() => writeImage(join(dir, 'x.png'), new Float32Array(4), 1), ValueError, /writeImage: pixels has 4 values, expected 1x1x3 = 3/);
  throwsWith(() => writeImage(join(dir, 'x.png'), new Float32Array([0, NaN, 0]), 1), ValueError, /writeImage: pixel value NaN at index 1/);
  assert.not.ok(existsSync(join(dir, 'x.png')));
  throwsWith(() => toBytes({ width: 1, height: 1, pixels: new Float32Array([Infinity, 0, 0]) }), ValueError, /toBytes: pixel value Infinity/);
});

test('writeFileAtomic replaces the file whole and leaves no temporary file, even on failure', () => {
  const path = join(dir, 'atomic.bin');
  writeFileAtomic(path, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  assert.equal(Array.from(readFileSync(path)), [1, 2, 3]);
  writeFileAtomic(path, [Buffer.from('new')]);
  assert.is(readFileSync(path, 'utf8'), 'new');
  // A directory sitting where the file goes: rename fails, the directory stays, no temp file is left.
  const blocked = join(dir, 'blocked');
  mkdirSync(blocked);
  assert.throws(() => writeFileAtomic(blocked, [Buffer.from('x')]));
  assert.ok(existsSync(blocked));
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
});

test('imageGrid lays images out row by row with padding and nearest upscaling', () => {
  const solid = (v: number) => new Float32Array(2 * 2 * 3).fill(v);
  const grid = imageGrid([solid(0), solid(0.25), solid(0.5)], 2, { pad: 1, upscale: 3 });
  // 2 columns of 6 px + 3 pads = 15 wide; 2 rows of 6 px + 3 pads = 15 high.
  assert.equal([grid.width, grid.height], [15, 15]);
  const at = (x: number, y: number) => grid.pixels[(y * grid.width + x) * 3];
  assert.is(at(0, 0), 1);
  assert.is(at(1, 1), 0);
  assert.is(at(6, 6), 0);
  assert.is(at(7, 1), 1);
  assert.is(at(8, 1), 0.25);
  assert.is(at(13, 6), 0.25);
  assert.is(at(1, 8), 0.5);
  assert.is(at(8, 8), 1, 'the empty cell is background');
  // Nearest upscaling: each source pixel becomes an upscale x upscale block.
  const checker = { width: 2, height: 1, pixels: new Float32Array([0, 0, 0, 1, 1, 1]) };
  const big = imageGrid([checker], 1, { pad: 0, upscale: 2, background: 0 });
  assert.equal([big.width, big.height], [4, 2]);
  assert.equal(Array.from(big.pixels.filter((_, i) => i % 3 === 0)), [0, 0, 1, 1, 0, 0, 1, 1]);
  // A single row when cols exceeds the count.
  assert.equal([imageGrid([solid(0), solid(0)], 5, { pad: 0 }).width], [4]);
});

test('imageGrid rejects bad arguments', () => {
  const img = new Float32Array(12);
  throwsWith(() => imageGrid([], 2), ValueError, /images must be a non-empty array/);
  throwsWith(() => imageGrid([img], 0), ValueError, /cols must be a positive integer/);
  throwsWith(() => imageGrid([img], 1, { pad: -1 }), ValueError, /pad must be a non-negative integer/);
  throwsWith(() => imageGrid([img], 1, { upscale: 1.5 }), ValueError, /upscale must be a positive integer/);
  throwsWith(() => imageGrid([img], 1, { background: 2 }), ValueError, /background must be in \[0,1\]/);
  throwsWith(() => imageGrid([new Float32Array(6)], 1), ValueError, /image 0 has 6 values, not a square/);
  throwsWith(() => imageGrid([img, new Float32Array(27)], 1), ValueError, /image 1 is 3x3, image 0 is 2x2/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
