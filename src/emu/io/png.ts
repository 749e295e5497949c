// png.ts: a PNG encoder and decoder of our own, on node:zlib (deflate and crc32) only.
//
// The format (PNG spec, 2nd edition): an 8-byte signature, then chunks of [length u32 BE][type 4
// ASCII][data][CRC-32 of type+data]. IHDR gives the size, bit depth, colour type and interlace;
// the IDAT chunks, concatenated, are one zlib stream of scanlines, each prefixed by a filter byte
// (None, Sub, Up, Average, Paeth) that predicts every byte from its left, upper and upper-left
// neighbours. Adam7 interlacing stores seven reduced images (passes) one after another.
//
// encodePNG writes 8-bit gray, gray+alpha, RGB or RGBA, non-interlaced, choosing each row's
// filter by the spec's minimum-sum-of-absolute-differences heuristic. decodePNG reads every
// standard combination (colour types 0, 2, 3, 4, 6; bit depths 1, 2, 4, 8, 16; interlaced or
// not) into 8 bits per sample: low depths are scaled up (a 1-bit 1 becomes 255), 16-bit samples
// rounded down to 8, palettes expanded to RGB (RGBA when a tRNS chunk gives alpha), and a tRNS
// colour key on gray or RGB becomes an alpha channel. Any malformed input is an ImageError
// naming what is wrong; nothing is trusted before it is checked.
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { EmuError, ValueError } from '../../tensor/errors.ts';

/** An image file that is missing, unreadable, truncated or corrupt. */
export class ImageError extends EmuError {}

/** 8-bit samples, row-major, interleaved: gray, gray+alpha, RGB or RGBA. */
export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  data: Uint8Array;
}

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
/** Images above this many pixels (4096 x 4096) are refused, so a forged header cannot make us allocate gigabytes. */
export const MAX_PIXELS = 1 << 24;

/** Samples per pixel and the bit depths the spec allows, by colour type. */
const COLOR_TYPES: Record<number, { samples: number; depths: number[]; name: string }> = {
  0: { samples: 1, depths: [1, 2, 4, 8, 16], name: 'gray' },
  2: { samples: 3, depths: [8, 16], name: 'RGB' },
  3: { samples: 1, depths: [1, 2, 4, 8], name: 'palette' },
  4: { samples: 2, depths: [8, 16], name: 'gray+alpha' },
  6: { samples: 4, depths: [8, 16], name: 'RGBA' },
};
const COLOR_TYPE_OF_CHANNELS = { 1: 0, 2: 4, 3: 2, 4: 6 } as const;

/** Adam7 passes: [x0, y0, dx, dy]. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

/**
 * The value filter type `filter` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) predicts for a byte
 * from its left (a), upper (b) and upper-left (c) neighbours; the row stores byte - prediction.
 */
function predict(filter: number, a: number, b: number, c: number): number {
  switch (filter) {
    case 0: return 0;
    case 1: return a;
    case 2: return b;
    case 3: return (a + b) >> 1;
    default: {
      // Paeth: whichever neighbour is closest to a + b - c, ties in the order a, b, c.
      const p = a + b - c;
      const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
  }
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes an 8-bit image as a non-interlaced PNG. */
export function encodePNG(image: RawImage): Buffer {
  const { width, height, channels, data } = image ?? ({} as RawImage);
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ValueError(`encodePNG: ${name} must be a positive integer, got ${v}`);
  }
  if (width * height > MAX_PIXELS) throw new ValueError(`encodePNG: ${width}x${height} is above the ${MAX_PIXELS}-pixel limit`);
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
    throw new ValueError(`encodePNG: channels must be 1, 2, 3 or 4, got ${channels}`);
  }
  if (!(data instanceof Uint8Array)) throw new ValueError('encodePNG: data must be a Uint8Array');
  if (data.length !== width * height * channels) {
    throw new ValueError(`encodePNG: data has ${data.length} bytes, expected ${width}x${height}x${channels} = ${width * height * channels}`);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = COLOR_TYPE_OF_CHANNELS[channels];
  // bytes 10..12: compression 0, filter method 0, no interlace.

  const stride = width * channels;
  const filtered = new Uint8Array(height * (stride + 1));
  const candidates = Array.from({ length: 5 }, () => new Uint8Array(stride));
  const zeros = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? data.subarray((y - 1) * stride, y * stride) : zeros;
    let best = 0, bestSum = Infinity;
    for (let f = 0; f < 5; f++) {
      const out = candidates[f];
      let sum = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= channels ? row[i - channels] : 0, b = up[i], c = i >= channels ? up[i - channels] : 0;
        const v = (row[i] - predict(f, a, b, c)) & 0xff;
        out[i] = v;
        // The heuristic reads filtered bytes as signed: small magnitudes compress well.
        sum += v < 128 ? v : 256 - v;
      }
      if (sum < bestSum) { best = f; bestSum = sum; }
    }
    filtered[y * (stride + 1)] = best;
    filtered.set(candidates[best], y * (stride + 1) + 1);
  }
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(filtered)), chunk('IEND', new Uint8Array(0))]);
}

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
}

/** Decodes a PNG file's bytes; an ImageError for anything malformed. */
export function decodePNG(buf: Uint8Array): RawImage {
  if (!(buf instanceof Uint8Array)) throw new ValueError('decodePNG: input must be a Buffer or Uint8Array');
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const bad = (what: string): never => { throw new ImageError(`decodePNG: ${what}`); };
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(SIGNATURE)) bad('not a PNG file (bad signature)');

  let header: Header | undefined;
  let palette: Uint8Array | undefined;
  let trns: Uint8Array | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  for (let pos = 8; !ended;) {
    if (pos + 8 > bytes.length) bad(`truncated: chunk header at byte ${pos} cut off (no IEND)`);
    const length = bytes.readUInt32BE(pos);
    const type = bytes.toString('latin1', pos + 4, pos + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) bad(`bad chunk type ${JSON.stringify(type)} at byte ${pos}`);
    if (length > 0x7fffffff) bad(`chunk ${type} has length ${length}, above the 2^31-1 limit`);
    if (pos + 12 + length > bytes.length) bad(`truncated: chunk ${type} at byte ${pos} needs ${length + 12} bytes, ${bytes.length - pos} left`);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    const stored = bytes.readUInt32BE(pos + 8 + length);
    const actual = crc32(bytes.subarray(pos + 4, pos + 8 + length));
    if (stored !== actual) bad(`CRC mismatch in chunk ${type} at byte ${pos} (stored ${hex(stored)}, computed ${hex(actual)})`);
    if (!header && type !== 'IHDR') bad(`first chunk is ${type}, expected IHDR`);
    switch (type) {
      case 'IHDR':
        if (header) bad('more than one IHDR chunk');
        header = readHeader(data, bad);
        break;
      case 'PLTE':
        if (data.length % 3 !== 0 || data.length === 0 || data.length > 768) bad(`PLTE has ${data.length} bytes, expected 3 to 768 in multiples of 3`);
        if (idat.length) bad('PLTE after IDAT');
        palette = data;
        break;
      case 'tRNS':
        trns = data;
        break;
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        ended = true;
        break;
      default:
        // Bit 5 of the first letter clear (upper case) marks a chunk the decoder must understand.
        if ((type.charCodeAt(0) & 0x20) === 0) bad(`unknown critical chunk ${type}`);
    }
    pos += 12 + length;
  }
  const h = header as Header;
  if (!idat.length) bad('no IDAT chunk');
  if (h.colorType === 3 && !palette) bad('palette image without a PLTE chunk');
  if (palette && h.colorType === 3 && palette.length / 3 > 1 << h.depth) bad(`PLTE has ${palette.length / 3} entries, more than ${1 << h.depth} for bit depth ${h.depth}`);
  if (trns) checkTransparency(trns, h, palette, bad);

  let raw: Buffer;
  const expected = filteredLength(h);
  const tooLong = `image data is longer than the ${expected} bytes the header implies`;
  try {
    // One byte of headroom, so a stream holding more than the image shows up as too long.
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch (e) {
    return bad((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? tooLong : `zlib error in image data: ${(e as Error).message}`);
  }
  if (raw.length > expected) bad(tooLong);
  if (raw.length < expected) bad(`image data is ${raw.length} bytes, the header implies ${expected}`);

  const samples = COLOR_TYPES[h.colorType].samples;
  const bitsPerPixel = samples * h.depth;
  // Values of every sample, full precision (up to 16 bits), for the whole image.
  const values = new Uint16Array(h.width * h.height * samples);
  const passes = h.interlaced ? ADAM7 : [[0, 0, 1, 1] as const];
  let offset = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((h.width - x0) / dx), ph = Math.ceil((h.height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const stride = Math.ceil((pw * bitsPerPixel) / 8);
    const rows = unfilter(raw.subarray(offset, offset + ph * (stride + 1)), stride, ph, Math.max(1, bitsPerPixel >> 3), bad);
    offset += ph * (stride + 1);
    for (let r = 0; r < ph; r++) {
      const row = rows.subarray(r * stride, (r + 1) * stride);
      const y = y0 + r * dy;
      for (let c = 0; c < pw; c++) {
        const base = (y * h.width + x0 + c * dx) * samples;
        for (let s = 0; s < samples; s++) values[base + s] = readSample(row, c * samples + s, h.depth);
      }
    }
  }
  return expand(values, h, palette, trns, bad);
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function readHeader(data: Buffer, bad: (what: string) => never): Header {
  if (data.length !== 13) bad(`IHDR has ${data.length} bytes, expected 13`);
  const width = data.readUInt32BE(0), height = data.readUInt32BE(4);
  const [depth, colorType, compression, filter, interlace] = data.subarray(8, 13);
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) bad(`bad size ${width}x${height} in IHDR`);
  if (width * height > MAX_PIXELS) bad(`${width}x${height} is above the ${MAX_PIXELS}-pixel limit`);
  const kind = COLOR_TYPES[colorType];
  if (!kind) bad(`bad colour type ${colorType} in IHDR (expected 0, 2, 3, 4 or 6)`);
  if (!kind.depths.includes(depth)) bad(`bit depth ${depth} is not allowed for colour type ${colorType} (${kind.name}; allowed: ${kind.depths.join(', ')})`);
  if (compression !== 0) bad(`bad compression method ${compression} in IHDR`);
  if (filter !== 0) bad(`bad filter method ${filter} in IHDR`);
  if (interlace > 1) bad(`bad interlace method ${interlace} in IHDR`);
  return { width, height, depth, colorType, interlaced: interlace === 1 };
}

function checkTransparency(trns: Uint8Array, h: Header, palette: Uint8Array | undefined, bad: (what: string) => never): void {
  if (h.colorType === 3) {
    if (palette && trns.length > palette.length / 3) bad(`tRNS has ${trns.length} entries, more than the ${palette.length / 3} palette entries`);
  } else if (h.colorType === 0 || h.colorType === 2) {
    const want = h.colorType === 0 ? 2 : 6;
    if (trns.length !== want) bad(`tRNS has ${trns.length} bytes, expected ${want} for colour type ${h.colorType}`);
  } else {
    bad(`tRNS is not allowed for colour type ${h.colorType} (it already has alpha)`);
  }
}

/** Bytes of filtered data (with the filter byte of every row) the header implies, over all passes. */
function filteredLength(h: Header): number {
  const bitsPerPixel = COLOR_TYPES[h.colorType].samples * h.depth;
  const passes = h.interlaced ? ADAM7 : [[0, 0, 1, 1] as const];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((h.width - x0) / dx), ph = Math.ceil((h.height - y0) / dy);
    if (pw > 0 && ph > 0) total += ph * (Math.ceil((pw * bitsPerPixel) / 8) + 1);
  }
  return total;
}

/** Undoes the per-row filters of one (pass) image; `bpp` is the byte distance to the left neighbour. */
function unfilter(src: Uint8Array, stride: number, rows: number, bpp: number, bad: (what: string) => never): Uint8Array {
  const out = new Uint8Array(stride * rows);
  for (let y = 0; y < rows; y++) {
    const filter = src[y * (stride + 1)];
    const line = src.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    if (filter > 4) bad(`bad filter type ${filter} on scanline ${y}`);
    const o = y * stride, u = o - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[o + i - bpp] : 0, b = y > 0 ? out[u + i] : 0, c = y > 0 && i >= bpp ? out[u + i - bpp] : 0;
      out[o + i] = (line[i] + predict(filter, a, b, c)) & 0xff;
    }
  }
  return out;
}

/** The `index`-th sample of a row at `depth` bits (sub-byte samples are packed MSB first). */
function readSample(row: Uint8Array, index: number, depth: number): number {
  if (depth === 8) return row[index];
  if (depth === 16) return (row[2 * index] << 8) | row[2 * index + 1];
  const bit = index * depth;
  return (row[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
}

/** Turns full-precision samples into 8-bit output: palette lookup, depth scaling, tRNS alpha. */
function expand(values: Uint16Array, h: Header, palette: Uint8Array | undefined, trns: Uint8Array | undefined, bad: (what: string) => never): RawImage {
  const n = h.width * h.height;
  const samples = COLOR_TYPES[h.colorType].samples;
  // 8 bits from any depth: 16-bit rounded (v/257), low depths scaled so the maximum maps to 255.
  const to8 = h.depth === 16 ? (v: number) => Math.round(v / 257) : (v: number) => (v * 255) / ((1 << h.depth) - 1);
  if (h.colorType === 3) {
    const pal = palette as Uint8Array;
    const entries = pal.length / 3;
    const channels = trns ? 4 : 3;
    const data = new Uint8Array(n * channels);
    for (let p = 0; p < n; p++) {
      const i = values[p];
      if (i >= entries) bad(`palette index ${i} at pixel ${p} is outside the ${entries}-entry palette`);
      data.set(pal.subarray(3 * i, 3 * i + 3), p * channels);
      if (trns) data[p * channels + 3] = i < trns.length ? trns[i] : 255;
    }
    return { width: h.width, height: h.height, channels, data };
  }
  // A tRNS colour key (gray or RGB at full precision) marks exactly that colour transparent.
  const key = trns && (h.colorType === 0 ? [trns[0] << 8 | trns[1]] : [0, 2, 4].map((o) => trns[o] << 8 | trns[o + 1]));
  const channels = (samples + (key ? 1 : 0)) as RawImage['channels'];
  const data = new Uint8Array(n * channels);
  for (let p = 0; p < n; p++) {
    for (let s = 0; s < samples; s++) data[p * channels + s] = to8(values[p * samples + s]);
    if (key) {
      const opaque = key.some((k, s) => values[p * samples + s] !== k);
      data[p * channels + samples] = opaque ? 255 : 0;
    }
  }
  return { width: h.width, height: h.height, channels, data };
}
