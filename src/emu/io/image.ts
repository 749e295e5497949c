// image.ts: image files in and out of the model's pixel layout, and grids of images for reports.
//
// The model sees images as row-major HxWx3 Float32Arrays in [0,1] (as src/emu/data renders
// them). readImage turns any PNG into that: gray is expanded to RGB, alpha composited over
// white, and the picture resized to size x size (area averaging when shrinking, bilinear when
// enlarging, each axis on its own, so a non-square picture is stretched). writeImage rounds back
// to 8-bit RGB and writes a PNG atomically. imageGrid tiles images into one, with nearest
// upscaling so 32x32 samples are big enough to see.
import { readFileSync } from 'node:fs';
import { ValueError } from '../../tensor/errors.ts';
import { writeFileAtomic } from '../../nn/atomic_write.ts';
import { decodePNG, encodePNG, ImageError, type RawImage } from './png.ts';

/** An RGB image: `pixels` is row-major HxWx3 in [0,1]. */
export interface RGBImage {
  width: number;
  height: number;
  pixels: Float32Array;
}

/** 8-bit samples of any channel count to RGB floats in [0,1], alpha composited over white. */
export function toRGB(image: RawImage): RGBImage {
  const { width, height, channels, data } = image;
  const n = width * height;
  const pixels = new Float32Array(n * 3);
  const colour = channels >= 3 ? 3 : 1;
  const hasAlpha = channels === 2 || channels === 4;
  for (let p = 0; p < n; p++) {
    const alpha = hasAlpha ? data[p * channels + colour] / 255 : 1;
    for (let c = 0; c < 3; c++) {
      const v = data[p * channels + (colour === 3 ? c : 0)] / 255;
      pixels[p * 3 + c] = v * alpha + (1 - alpha);
    }
  }
  return { width, height, pixels };
}

/** Per output index, the input indices and weights that make it (weights sum to 1). */
function axisWeights(inSize: number, outSize: number): { index: number[]; weight: number[] }[] {
  const scale = inSize / outSize;
  return Array.from({ length: outSize }, (_, j) => {
    const index: number[] = [], weight: number[] = [];
    if (outSize < inSize) {
      // Area: output j covers input [j*scale, (j+1)*scale); each input pixel weighs its overlap.
      const lo = j * scale, hi = (j + 1) * scale;
      for (let i = Math.floor(lo); i < Math.min(inSize, Math.ceil(hi)); i++) {
        const overlap = Math.min(hi, i + 1) - Math.max(lo, i);
        if (overlap > 0) { index.push(i); weight.push(overlap / scale); }
      }
    } else {
      // Bilinear with pixel centres aligned (align_corners=false), clamped at the edges.
      const x = Math.min(inSize - 1, Math.max(0, (j + 0.5) * scale - 0.5));
      const i0 = Math.floor(x), f = x - i0;
      index.push(i0); weight.push(1 - f);
      if (f > 0) { index.push(i0 + 1); weight.push(f); }
    }
    return { index, weight };
  });
}

/** Resizes an RGB image to outWidth x outHeight (area when shrinking an axis, bilinear when growing). */
export function resize(image: RGBImage, outWidth: number, outHeight: number): RGBImage {
  checkImage('resize', image);
  for (const [name, v] of [['outWidth', outWidth], ['outHeight', outHeight]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ValueError(`resize: ${name} must be a positive integer, got ${v}`);
  }
  const { width, height, pixels } = image;
  if (width === outWidth && height === outHeight) return { width, height, pixels: pixels.slice() };
  // Rows first (width), then columns (height): separable, so the order does not change the result.
  const wx = axisWeights(width, outWidth), wy = axisWeights(height, outHeight);
  const mid = new Float32Array(height * outWidth * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < outWidth; x++) {
      const { index, weight } = wx[x];
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < index.length; k++) s += weight[k] * pixels[(y * width + index[k]) * 3 + c];
        mid[(y * outWidth + x) * 3 + c] = s;
      }
    }
  }
  const out = new Float32Array(outHeight * outWidth * 3);
  for (let y = 0; y < outHeight; y++) {
    const { index, weight } = wy[y];
    for (let x = 0; x < outWidth * 3; x++) {
      let s = 0;
      for (let k = 0; k < index.length; k++) s += weight[k] * mid[index[k] * outWidth * 3 + x];
      out[y * outWidth * 3 + x] = s;
    }
  }
  return { width: outWidth, height: outHeight, pixels: out };
}

/** Reads a PNG file as a size x size HxWx3 Float32Array in [0,1]; an ImageError naming the path if it cannot. */
export function readImage(path: string, size: number): Float32Array {
  if (typeof path !== 'string' || path === '') throw new ValueError('readImage: path must be a non-empty string');
  if (!Number.isInteger(size) || size < 1) throw new ValueError(`readImage: size must be a positive integer, got ${size}`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageError(code === 'ENOENT' ? `readImage: file not found: ${path}` : `readImage: cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: RawImage;
  try {
    raw = decodePNG(bytes);
  } catch (e) {
    if (e instanceof ImageError) throw new ImageError(`readImage: ${path}: ${e.message.replace(/^decodePNG: /, '')}`);
    throw e;
  }
  return resize(toRGB(raw), size, size).pixels;
}

/** Rounds [0,1] RGB floats (clamped) to 8-bit samples; a ValueError for a NaN or infinite pixel. */
export function toBytes(image: RGBImage, fn = 'toBytes'): RawImage {
  checkImage(fn, image);
  const { width, height, pixels } = image;
  const data = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i];
    if (!Number.isFinite(v)) throw new ValueError(`${fn}: pixel value ${v} at index ${i} (row ${Math.floor(i / 3 / width)}) is not finite`);
    data[i] = Math.round(Math.min(1, Math.max(0, v)) * 255);
  }
  return { width, height, channels: 3, data };
}

/**
 * Writes HxWx3 [0,1] pixels to `path` as an RGB PNG, atomically. `height` defaults to `width`
 * (the size of a square image).
 */
export function writeImage(path: string, pixels: Float32Array, width: number, height = width): void {
  if (typeof path !== 'string' || path === '') throw new ValueError('writeImage: path must be a non-empty string');
  const png = encodePNG(toBytes({ width, height, pixels }, 'writeImage'));
  try {
    writeFileAtomic(path, [png]);
  } catch (e) {
    throw new ImageError(`writeImage: cannot write ${path}: ${(e as Error).message}`);
  }
}

export interface GridOptions {
  /** Pixels between images and around the border (after upscaling), default 2. */
  pad?: number;
  /** Nearest-neighbour scale factor for every image, default 1. */
  upscale?: number;
  /** Gray level of the padding in [0,1], default 1 (white). */
  background?: number;
}

/**
 * Tiles images (square HxWx3 Float32Arrays or RGBImages, all the same size) into one image,
 * `cols` per row, filled row by row.
 */
export function imageGrid(images: readonly (Float32Array | RGBImage)[], cols: number, options: GridOptions = {}): RGBImage {
  const { pad = 2, upscale = 1, background = 1 } = options;
  if (!Array.isArray(images) || images.length === 0) throw new ValueError('imageGrid: images must be a non-empty array');
  if (!Number.isInteger(cols) || cols < 1) throw new ValueError(`imageGrid: cols must be a positive integer, got ${cols}`);
  if (!Number.isInteger(pad) || pad < 0) throw new ValueError(`imageGrid: pad must be a non-negative integer, got ${pad}`);
  if (!Number.isInteger(upscale) || upscale < 1) throw new ValueError(`imageGrid: upscale must be a positive integer, got ${upscale}`);
  if (!(background >= 0 && background <= 1)) throw new ValueError(`imageGrid: background must be in [0,1], got ${background}`);
  const tiles = images.map((im, i) => {
    if (im instanceof Float32Array) {
      const side = Math.round(Math.sqrt(im.length / 3));
      if (side < 1 || side * side * 3 !== im.length) throw new ValueError(`imageGrid: image ${i} has ${im.length} values, not a square HxWx3 image`);
      return { width: side, height: side, pixels: im };
    }
    checkImage(`imageGrid: image ${i}`, im);
    return im;
  });
  const { width, height } = tiles[0];
  tiles.forEach((t, i) => {
    if (t.width !== width || t.height !== height) throw new ValueError(`imageGrid: image ${i} is ${t.width}x${t.height}, image 0 is ${width}x${height}`);
  });
  const rows = Math.ceil(tiles.length / cols), usedCols = Math.min(cols, tiles.length);
  const tw = width * upscale, th = height * upscale;
  const outW = usedCols * tw + (usedCols + 1) * pad, outH = rows * th + (rows + 1) * pad;
  const out = new Float32Array(outW * outH * 3).fill(background);
  tiles.forEach((t, i) => {
    const ox = pad + (i % cols) * (tw + pad), oy = pad + Math.floor(i / cols) * (th + pad);
    for (let y = 0; y < th; y++) {
      const src = Math.floor(y / upscale) * width;
      for (let x = 0; x < tw; x++) {
        const s = (src + Math.floor(x / upscale)) * 3, d = ((oy + y) * outW + ox + x) * 3;
        out[d] = t.pixels[s]; out[d + 1] = t.pixels[s + 1]; out[d + 2] = t.pixels[s + 2];
      }
    }
  });
  return { width: outW, height: outH, pixels: out };
}

function checkImage(fn: string, image: RGBImage): void {
  const { width, height, pixels } = image ?? ({} as RGBImage);
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new ValueError(`${fn}: size must be positive integers, got ${width}x${height}`);
  }
  if (!(pixels instanceof Float32Array)) throw new ValueError(`${fn}: pixels must be a Float32Array`);
  if (pixels.length !== width * height * 3) {
    throw new ValueError(`${fn}: pixels has ${pixels.length} values, expected ${width}x${height}x3 = ${width * height * 3}`);
  }
}
