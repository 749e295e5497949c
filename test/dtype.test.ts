// dtype.test.ts: the 16-bit float conversions, bit for bit, on every device that has them.
//
// f16 (IEEE binary16) is converted in three places that must agree exactly: native/core/dtype.h
// (the CPU kernels, and the CUDA kernels through cuda/strided.cuh), and src/tensor/dtype.ts (the
// host, when a tensor is made from JS numbers or read back). Each is checked against
// test/reference.ts's f16Round, which rounds the exact value arithmetically rather than by bits:
// every one of the 65536 f16 bit patterns widened to f32 and back, f32 values at and around every
// rounding boundary (ties to even, the subnormal range, the overflow threshold 65520), and random
// f32 bit patterns. Also: dtype promotion with f16, and the typed errors of the ops without f16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DTypeError, promoteTypes, simAvailable, Tensor, tensor, tidy, type Device } from '../src/index.ts';
import { f16BitsToFloat, floatToF16Bits, isFloat } from '../src/tensor/dtype.ts';
import { native } from '../src/tensor/native.ts';
import { attention } from '../src/tensor/ops/attention.ts';
import { f16Round } from './reference.ts';

const DEVICES: Device[] = simAvailable() ? ['cpu', 'sim'] : ['cpu'];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fromBits = (u: number) => ((u32[0] = u), f32[0]);

/** The f16 value of bits by the definition: (-1)^s 2^(e-15) (1 + m/1024), subnormals 2^-14 m/1024. */
function f16Value(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (e === 0 ? 2 ** -14 * (m / 1024) : 2 ** (e - 15) * (1 + m / 1024));
}

/** An f16 tensor holding exactly these bits. */
function f16FromBits(bits: Uint16Array, device: Device): Tensor {
  const t = Tensor.empty([bits.length], 'f16', device);
  native.write(t.handle, 0, bits);
  return t;
}

/** The bits of an f16 tensor (contiguous, offset 0). */
function bitsOf(t: Tensor): Uint16Array {
  return new Uint16Array(native.read(t.handle, 0, t.numel * 2));
}

/** The expected f16 bits of an f32 value: f16Round's value, encoded; NaN quiet with its upper payload. */
function wantBits(x: number): number {
  if (Number.isNaN(x)) {
    f32[0] = x;
    const u = u32[0];
    return ((u >>> 16) & 0x8000) | 0x7e00 | ((u >>> 13) & 0x3ff);
  }
  const v = f16Round(x);
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | (a / 2 ** -24);
  let e = -14;
  while (2 ** (e + 1) <= a) e++;
  return sign | ((e + 15) << 10) | (a / 2 ** e - 1) * 1024;
}

/** f32 values at and around every kind of boundary, plus random bit patterns. */
function boundaryValues(): Float32Array {
  const out: number[] = [];
  for (let bits = 0; bits < 0x7bff; bits++) {
    const v = f16Value(bits), mid = (v + f16Value(bits + 1)) / 2;  // the tie, exact in f32 (12 significant bits)
    out.push(v, mid, fromBits(u32Of(mid) + 1), -fromBits(u32Of(mid) - 1), -mid);
  }
  out.push(65504, 65519.99, 65520, 65536, 1e10, 2 ** -25, 2 ** -26, 1e-30, 1.4e-45, Infinity, -Infinity, 0, -0);
  let s = 12345;
  for (let i = 0; i < 20000; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push(fromBits(s));
  }
  return Float32Array.from(out);
}

function u32Of(x: number): number {
  f32[0] = x;
  return u32[0];
}

test('f16 bits -> f32 (all 65536 patterns): the host and every device give the value of the definition', () => tidy(() => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (let i = 0; i < 65536; i++) {
    const want = f16Value(i), got = f16BitsToFloat(i);
    if (Number.isNaN(want) ? !Number.isNaN(got) : !Object.is(got, want)) assert.unreachable(`host: 0x${i.toString(16)} -> ${got}, expected ${want}`);
  }
  for (const device of DEVICES) {
    const t = f16FromBits(all, device).to('f32');
    // The f32 bits as stored: reading a signalling NaN into a JS number would quieten it.
    const bits = new Uint32Array(native.read(t.handle, 0, 65536 * 4)), wide = new Float32Array(bits.buffer);
    for (let i = 0; i < 65536; i++) {
      const want = f16Value(i), got = wide[i];
      if (Number.isNaN(want) ? !Number.isNaN(got) : !Object.is(got, want)) assert.unreachable(`${device}: 0x${i.toString(16)} -> ${got}, expected ${want}`);
      // NaN keeps its sign and payload when widened (as bf16's does)
      if (Number.isNaN(want) && bits[i] !== (((i & 0x8000) << 16) | 0x7f800000 | ((i & 0x3ff) << 13)) >>> 0) {
        assert.unreachable(`${device}: NaN 0x${i.toString(16)} widened to 0x${bits[i].toString(16)}`);
      }
    }
  }
}));

test('f16 round trip: every pattern widened to f32 and narrowed back is the same bits (NaN quietened)', () => tidy(() => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const quiet = (b: number) => (((b >> 10) & 0x1f) === 31 && (b & 0x3ff) ? b | 0x200 : b);
  for (let i = 0; i < 65536; i++) {
    if (floatToF16Bits(f16BitsToFloat(i)) !== quiet(i)) assert.unreachable(`host: 0x${i.toString(16)} does not round-trip`);
  }
  for (const device of DEVICES) {
    const back = bitsOf(f16FromBits(all, device).to('f32').to('f16'));
    for (let i = 0; i < 65536; i++) {
      if (back[i] !== quiet(i)) assert.unreachable(`${device}: 0x${i.toString(16)} came back as 0x${back[i].toString(16)}`);
    }
  }
}));

test('f32 -> f16 at every tie, its neighbours, the subnormals, overflow and random patterns: host and devices match the reference', () => tidy(() => {
  const values = boundaryValues();
  const want = values.map(wantBits);
  const mismatch = (got: ArrayLike<number>, who: string) => {
    for (let i = 0; i < values.length; i++) {
      if (got[i] !== want[i]) assert.unreachable(`${who}: ${values[i]} (0x${u32Of(values[i]).toString(16)}) -> 0x${got[i].toString(16)}, expected 0x${want[i].toString(16)}`);
    }
  };
  mismatch(Array.from(values, floatToF16Bits), 'host');
  for (const device of DEVICES) mismatch(bitsOf(tensor(values, { device }).to('f16')), device);
}));

test('f16 rounding: pinned ties to even, subnormals, overflow to inf', () => tidy(() => {
  const cases: [number, number][] = [
    [1 + 2 ** -11, 1], [1 + 3 * 2 ** -11, 1 + 2 ** -9], [-(1 + 2 ** -11), -1], [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10],
    [2049, 2048], [2051, 2052], [65504, 65504], [65519, 65504], [65520, Infinity], [-70000, -Infinity],
    [2 ** -24, 2 ** -24], [2 ** -25, 0], [3 * 2 ** -25, 2 ** -23], [2 ** -25 + 2 ** -40, 2 ** -24], [2 ** -14 - 2 ** -25, 2 ** -14],
    [1e-8, 0], [0.1, 0.0999755859375],
  ];
  for (const device of DEVICES) {
    const got = tensor(cases.map((c) => c[0]), { device }).to('f16').data();
    assert.equal(Array.from(got), cases.map((c) => c[1]), device);
    assert.equal(Array.from(tensor(cases.map((c) => c[0]), { dtype: 'f16', device }).data()), cases.map((c) => c[1]), `${device} host`);
    assert.ok(Object.is(tensor([-(2 ** -26)], { device }).to('f16').item(), -0), 'a negative underflow keeps its sign');
  }
}));

test('dtype promotion with f16 follows PyTorch', () => {
  assert.is(promoteTypes('bf16', 'f16'), 'f32');
  assert.is(promoteTypes('f16', 'bf16'), 'f32');
  assert.is(promoteTypes('f16', 'f32'), 'f32');
  assert.is(promoteTypes('i32', 'f16'), 'f16');
  assert.is(promoteTypes('bool', 'f16'), 'f16');
  assert.is(promoteTypes('f16', 'f64'), 'f64');
  assert.ok(isFloat('f16'));
  tidy(() => {
    const h = tensor([1.5, 2], { dtype: 'f16' });
    assert.is(h.add(tensor([1, 1], { dtype: 'bf16' })).dtype, 'f32');
    assert.is(h.mul(2).dtype, 'f16');
    assert.is(h.add(tensor([1, 2], { dtype: 'i32' })).dtype, 'f16');
    assert.equal(h.add(tensor([1, 2], { dtype: 'i32' })).toArray(), [2.5, 4]);
  });
});

test('the CPU attention kernel takes no f16: a DTypeError naming the op (F.scaledDotProductAttention computes it in f32)', () => tidy(() => {
  const q = tensor([1, 2, 3, 4], { dtype: 'f16' }).reshape([1, 1, 2, 2]);
  assert.throws(() => attention(q, q, q, { bias: null, keyPaddingMask: null, scale: 1, causal: false }),
    (e: unknown) => e instanceof DTypeError && /^attention: .*f16/.test((e as Error).message));
}));

test.run();
