// safetensors.test.ts: checkpoint files. Every dtype round-trips with __metadata__; F16 files (as
// PyTorch writes them) are read bit for bit, I64 ones narrowed; each kind of damaged file gives a CheckpointError that
// names the file and the problem; a failed write (disk full mid-write, temp path taken, target a
// directory) leaves the previous file intact and no temporary file behind.
import fs, { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arange, CheckpointError, loadSafetensors, memoryStats, saveSafetensors, tensor, Tensor } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'emu-st-'));

/** A file from a header object and data bytes, laid out as the format says. */
function rawFile(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([prefix, json, data]));
  return path;
}

function expectCorrupt(path: string, problem: RegExp): void {
  const live = memoryStats().liveTensors;
  try {
    loadSafetensors(path);
  } catch (e) {
    assert.instance(e, CheckpointError);
    const msg = (e as Error).message;
    assert.ok(msg.includes(path), `message names the file: ${msg}`);
    assert.match(msg, problem);
    assert.is(memoryStats().liveTensors, live, 'no tensors leak from a failed load');
    return;
  }
  assert.unreachable(`${path}: expected a CheckpointError`);
}

function leftovers(): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.tmp'));
}

test('every dtype round-trips with __metadata__', () => {
  const base = arange(12, { dtype: 'f32' }).reshape(3, 4);
  const tensors: Record<string, Tensor> = {
    f32: tensor([[1.5, -2.25e-30], [3.4e38, NaN]]),
    f64: tensor([Math.PI, -1e-300, Infinity], { dtype: 'f64' }),
    bf16: tensor([1, -0.0078125, 3.140625, 65280], { dtype: 'bf16' }),
    f16: tensor([1, -0.0999755859375, 65504, 2 ** -24, -Infinity, NaN], { dtype: 'f16' }),
    i32: tensor([-2147483648, 0, 2147483647], { dtype: 'i32' }),
    bool: tensor([true, false, true]),
    scalar: tensor(7),
    empty: tensor([], { dtype: 'f64' }).reshape(0, 3),
    view: base.t().slice(0, 1, 3),  // non-contiguous, offset into its storage
  };
  const path = join(dir, 'all.safetensors');
  saveSafetensors(path, tensors, { format: 'pt', note: 'héllo' });
  const { tensors: back, metadata } = loadSafetensors(path);
  assert.equal(metadata, { format: 'pt', note: 'héllo' });
  assert.equal([...back.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const r = back.get(name)!;
    assert.is(r.dtype, t.dtype, name);
    assert.equal(r.shape, t.shape, name);
    const a = t.data(), b = r.data();
    assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), `${name}: bits differ`);
    r.dispose();
  }
  // The data section starts 8-byte aligned and the header is valid JSON as written.
  const n = Number(readFileSync(path).readBigUInt64LE(0));
  assert.is(n % 8, 0);
  for (const t of [...Object.values(tensors), base]) t.dispose();
});

test('a file without __metadata__ and an empty file of tensors', () => {
  const path = join(dir, 'none.safetensors');
  saveSafetensors(path, new Map());
  const { tensors, metadata } = loadSafetensors(path);
  assert.is(tensors.size, 0);
  assert.equal(metadata, {});
});

test('reads F16 as f16, bit for bit (and writes it back the same), and I64 (narrowed to i32)', () => {
  const half = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00, 0x0001, 0x8000, 0x7e01]);
  const path = rawFile('f16.safetensors', { h: { dtype: 'F16', shape: [2, 4], data_offsets: [0, 16] } }, new Uint8Array(half.buffer));
  const h = loadSafetensors(path).tensors.get('h')!;
  assert.is(h.dtype, 'f16');
  const v = Array.from(h.data() as Float32Array);
  assert.equal(v.slice(0, 7), [1, -2, 0.5, 65504, Infinity, 2 ** -24, -0]);
  assert.ok(Object.is(v[6], -0) && Number.isNaN(v[7]));
  const again = join(dir, 'f16-again.safetensors');
  saveSafetensors(again, { h });
  assert.ok(readFileSync(again).subarray(-16).equals(Buffer.from(half.buffer)), 'the same 16 bytes, NaN payload included');
  assert.match(readFileSync(again).toString('latin1'), /"dtype":"F16"/);
  h.dispose();

  const longs = new BigInt64Array([-3n, 7n, 2147483647n, -2147483648n]);
  const p2 = rawFile('i64.safetensors', { __metadata__: { format: 'pt' }, ids: { dtype: 'I64', shape: [4], data_offsets: [0, 32] } }, new Uint8Array(longs.buffer));
  const ids = loadSafetensors(p2).tensors.get('ids')!;
  assert.is(ids.dtype, 'i32');
  assert.equal(ids.toArray(), [-3, 7, 2147483647, -2147483648]);
  ids.dispose();
  const big = new BigInt64Array([1n, 2n ** 40n]);
  expectCorrupt(rawFile('i64big.safetensors', { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(big.buffer)), /does not fit in i32/);
});

test('damaged files give a CheckpointError naming the file and the problem', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'I32', shape: [1], data_offsets: [8, 12] } };
  const data = new Uint8Array(12);
  const good = rawFile('good.safetensors', ok, data);
  for (const t of loadSafetensors(good).tensors.values()) t.dispose();

  const whole = readFileSync(good);
  const truncated = join(dir, 'truncated.safetensors');
  writeFileSync(truncated, whole.subarray(0, whole.length - 5));
  expectCorrupt(truncated, /data runs past the end of the file/);
  const cutHeader = join(dir, 'cut-header.safetensors');
  writeFileSync(cutHeader, whole.subarray(0, 20));
  expectCorrupt(cutHeader, /header length \d+ runs past the end of the 20-byte file/);
  expectCorrupt(rawFile('long-header.safetensors', ok, data, 1000n), /header length 1000 runs past the end/);
  expectCorrupt(rawFile('huge-header.safetensors', ok, data, 2n ** 40n), /header length 1099511627776 is larger than/);
  expectCorrupt(rawFile('bad-json.safetensors', '{"a": {"dtype": "F32", '), /header is not valid JSON/);
  expectCorrupt(rawFile('not-object.safetensors', '[1, 2]'), /header is not a JSON object/);
  expectCorrupt(rawFile('dtype.safetensors', { a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, data), /tensor a has unsupported dtype Q4/);
  expectCorrupt(rawFile('mismatch.safetensors', { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data), /tensor a: data_offsets span 8 bytes but shape \[3\] of F32 needs 12/);
  expectCorrupt(rawFile('past-end.safetensors', { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, data), /tensor a: data runs past the end/);
  expectCorrupt(rawFile('overlap.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'I32', shape: [1], data_offsets: [4, 8] } }, data), /tensors a and b overlap/);
  expectCorrupt(rawFile('shape.safetensors', { a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data), /tensor a has a bad shape/);
  expectCorrupt(rawFile('offsets.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, data), /tensor a has bad data_offsets/);
  expectCorrupt(rawFile('bool.safetensors', { m: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] } }, new Uint8Array([1, 0, 7])), /tensor m: BOOL element 2 is byte 7, not 0 or 1/);
  expectCorrupt(rawFile('meta.safetensors', { __metadata__: { n: 3 } }), /__metadata__\.n is not a string/);
  const empty = join(dir, 'empty.safetensors');
  writeFileSync(empty, '');
  expectCorrupt(empty, /file is 0 bytes, too short/);
  expectCorrupt(join(dir, 'missing.safetensors'), /cannot read/);
});

test('a failed write leaves the previous file intact and no temporary file', () => {
  const path = join(dir, 'keep.safetensors');
  const old = tensor([1, 2, 3]);
  saveSafetensors(path, { w: old }, { version: 'old' });
  const before = readFileSync(path);
  const next = tensor([4, 5, 6]);

  // The disk fills up part-way through writing the data.
  const realWrite = fs.writeSync;
  let calls = 0;
  fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    if (++calls === 3) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return (realWrite as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  syncBuiltinESMExports();
  try {
    assert.throws(() => saveSafetensors(path, { w: next }, { version: 'new' }), (e: Error) => e instanceof CheckpointError && e.message.includes(path) && /ENOSPC/.test(e.message));
  } finally {
    fs.writeSync = realWrite;
    syncBuiltinESMExports();
  }
  assert.ok(calls >= 3, 'the write really was interrupted');
  assert.ok(readFileSync(path).equals(before), 'the previous checkpoint is untouched');
  assert.equal(leftovers(), []);

  // The temporary path is taken by a directory: the file cannot even be created.
  const blocker = join(dir, `.keep.safetensors.${process.pid}.tmp`);
  mkdirSync(blocker);
  assert.throws(() => saveSafetensors(path, { w: next }), (e: Error) => e instanceof CheckpointError && e.message.includes(path));
  rmSync(blocker, { recursive: true });
  assert.ok(readFileSync(path).equals(before));

  // The target is a non-empty directory: the rename fails, and the temporary file is removed.
  const target = join(dir, 'taken.safetensors');
  mkdirSync(target);
  writeFileSync(join(target, 'inside'), 'x');
  assert.throws(() => saveSafetensors(target, { w: next }), (e: Error) => e instanceof CheckpointError && e.message.includes(target));
  assert.equal(readdirSync(target), ['inside']);
  assert.equal(leftovers(), []);

  // Writing into a directory that does not exist.
  assert.throws(() => saveSafetensors(join(dir, 'no', 'such', 'x.safetensors'), { w: next }), (e: Error) => e instanceof CheckpointError && /cannot write/.test(e.message));

  const { tensors, metadata } = loadSafetensors(path);
  assert.equal(metadata, { version: 'old' });
  assert.equal(tensors.get('w')!.toArray(), [1, 2, 3]);
  for (const t of [...tensors.values(), old, next]) t.dispose();
});

test('saving checks its arguments', () => {
  const t = tensor([1]);
  const path = join(dir, 'args.safetensors');
  assert.throws(() => saveSafetensors(path, { __metadata__: t }), /reserved/);
  assert.throws(() => saveSafetensors(path, { x: 3 as unknown as Tensor }), /not a Tensor/);
  assert.throws(() => saveSafetensors(path, { x: t }, { n: 3 as unknown as string }), /must be a string/);
  t.dispose();
  assert.throws(() => saveSafetensors(path, { x: t }), /disposed/);
  assert.equal(leftovers(), []);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
