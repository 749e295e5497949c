// safetensors.ts: reading and writing checkpoints in the safetensors format.
//
// The format (huggingface/safetensors): 8 bytes little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__":
// {string: string}}, then the raw little-endian tensor bytes, offsets relative to the end of the
// header. We read and write F32, F64, BF16, F16, I32 and BOOL, and also read I64 (narrowed to
// i32 when every value fits), which PyTorch writes by default for integer tensors.
//
// Writes are atomic (atomic_write.ts: temporary file, fsync, rename), so a crash mid-write leaves
// the previous checkpoint intact.
// Reads validate everything before trusting it (header size, JSON, dtypes, shapes, offsets
// inside the file and consistent with the shape, BOOL bytes 0 or 1), and any problem is a
// CheckpointError naming the file and what is wrong.
import { writeFileAtomic } from './atomic_write.ts';
import { readFileSync } from 'node:fs';
import { DTYPE_SIZE, type DType } from '../tensor/dtype.ts';
import { CheckpointError, ValueError } from '../tensor/errors.ts';
import { native } from '../tensor/native.ts';
import { Tensor } from '../tensor/tensor.ts';
import { contiguous } from '../tensor/ops/views.ts';
import { fromValues } from '../tensor/ops/creation.ts';

const WRITE_NAME: Record<DType, string> = { f32: 'F32', f64: 'F64', bf16: 'BF16', f16: 'F16', i32: 'I32', bool: 'BOOL' };
const READ_DTYPE: Record<string, { dtype: DType; size: number }> = {
  F32: { dtype: 'f32', size: 4 }, F64: { dtype: 'f64', size: 8 }, BF16: { dtype: 'bf16', size: 2 },
  F16: { dtype: 'f16', size: 2 }, I32: { dtype: 'i32', size: 4 }, BOOL: { dtype: 'bool', size: 1 }, I64: { dtype: 'i32', size: 8 },
};
/** Headers above this are refused as corrupt rather than parsed (the format's own limit is 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

export type Metadata = Record<string, string>;

/** Writes `tensors` (name -> tensor, any device with memory) to `path` atomically. */
export function saveSafetensors(path: string, tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Metadata = {}): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new ValueError(`saveSafetensors: metadata value for ${k} must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const blobs: Uint8Array[] = [];
  for (const [name, t] of entries) {
    if (!(t instanceof Tensor)) throw new ValueError(`saveSafetensors: ${name} is not a Tensor`);
    if (name === '__metadata__') throw new ValueError('saveSafetensors: "__metadata__" is reserved');
    t.live('saveSafetensors');
    if (t.device === 'meta') throw new ValueError(`saveSafetensors: ${name} is a meta tensor and has no values`);
    const c = contiguous(t);
    const bytes = c.numel * DTYPE_SIZE[c.dtype];
    const blob = bytes ? new Uint8Array(native.read(c.handle, c.offset * DTYPE_SIZE[c.dtype], bytes)) : new Uint8Array(0);
    c.dispose();
    header[name] = { dtype: WRITE_NAME[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    blobs.push(blob);
    offset += bytes;
  }
  // Pad the header with spaces to a multiple of 8 so the data section is aligned.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  try {
    writeFileAtomic(path, [prefix, headerBytes, ...blobs]);
  } catch (e) {
    throw new CheckpointError(`saveSafetensors: cannot write ${path}: ${(e as Error).message}`);
  }
}

export interface Loaded {
  tensors: Map<string, Tensor>;
  metadata: Metadata;
}

/** Reads a safetensors file into cpu tensors. */
export function loadSafetensors(path: string): Loaded {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`loadSafetensors: cannot read ${path}: ${(e as Error).message}`);
  }
  const bad = (what: string): never => {
    throw new CheckpointError(`loadSafetensors: ${path}: ${what}`);
  };
  if (buf.length < 8) bad(`file is ${buf.length} bytes, too short for a safetensors header`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER)) bad(`header length ${n} is larger than the ${MAX_HEADER}-byte limit (corrupt file?)`);
  if (n > BigInt(buf.length - 8)) bad(`header length ${n} runs past the end of the ${buf.length}-byte file (truncated?)`);
  const headerLen = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    return bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) bad('header is not a JSON object');
  const dataStart = 8 + headerLen, dataLen = buf.length - dataStart;
  const metadata: Metadata = {};
  const raw = header.__metadata__;
  if (raw !== undefined) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('__metadata__ is not an object');
    for (const [k, v] of Object.entries(raw as object)) {
      if (typeof v !== 'string') bad(`__metadata__.${k} is not a string`);
      metadata[k] = v as string;
    }
  }
  const tensors = new Map<string, Tensor>();
  const ranges: [number, number, string][] = [];
  try {
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!e || typeof e !== 'object') bad(`entry ${name} is not an object`);
      const kind = READ_DTYPE[String(e.dtype)];
      if (!kind) bad(`tensor ${name} has unsupported dtype ${String(e.dtype)}`);
      const shape = e.shape;
      if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        bad(`tensor ${name} has a bad shape ${JSON.stringify(shape)}`);
      }
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1]) {
        bad(`tensor ${name} has bad data_offsets ${JSON.stringify(offs)}`);
      }
      const [b, end] = offs as [number, number];
      const numel = (shape as number[]).reduce((a, d) => a * d, 1);
      if (end - b !== numel * kind.size) bad(`tensor ${name}: data_offsets span ${end - b} bytes but shape ${JSON.stringify(shape)} of ${e.dtype} needs ${numel * kind.size}`);
      if (end > dataLen) bad(`tensor ${name}: data runs past the end of the file (truncated?)`);
      ranges.push([b, end, name]);
      tensors.set(name, decode(buf.subarray(dataStart + b, dataStart + end), String(e.dtype), kind.dtype, shape as number[], bad, name));
    }
    ranges.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i][0] < ranges[i - 1][1]) bad(`tensors ${ranges[i - 1][2]} and ${ranges[i][2]} overlap`);
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata };
}

function decode(bytes: Buffer, fileDType: string, dtype: DType, shape: number[], bad: (w: string) => never, name: string): Tensor {
  // Copy into an aligned buffer first: the slice of the file need not be aligned for typed arrays.
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  if (fileDType === 'I64') {
    const v = new BigInt64Array(aligned.buffer);
    const out = new Int32Array(v.length);
    for (let i = 0; i < v.length; i++) {
      if (v[i] > 2147483647n || v[i] < -2147483648n) bad(`tensor ${name}: I64 value ${v[i]} does not fit in i32`);
      out[i] = Number(v[i]);
    }
    return fromValues(out, shape, 'i32', 'cpu');
  }
  // Kernels take a bool as one byte that is 0 or 1; any other byte would read as garbage.
  const notBool = fileDType === 'BOOL' ? aligned.findIndex((b) => b > 1) : -1;
  if (notBool >= 0) bad(`tensor ${name}: BOOL element ${notBool} is byte ${aligned[notBool]}, not 0 or 1`);
  const t = Tensor.empty(shape, dtype, 'cpu');
  if (aligned.length) native.write(t.handle, 0, aligned);
  return t;
}
