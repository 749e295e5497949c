// shuffle.ts: a keyed random permutation of [0, size) computed one index at a time, so the data
// loader can shuffle a source of any size (up to the 2^31 seeds of a split) per epoch without
// storing an order: position p of epoch e reads item shuffledIndex(p, size, key(e)).
//
// The trick is cycle-walking: mixRound is a bijection of [0, 2^bits) (each step is invertible
// mod 2^bits: adding a constant, multiplying by an odd constant, xor with a right shift), where
// 2^bits is the smallest power of two >= size; applying it repeatedly until the value falls
// below size is a bijection of [0, size), and takes fewer than two steps on average.
import { ValueError } from '../../tensor/errors.ts';
import { mix32 } from './splits.ts';

const ROUNDS = 4;

function mixRound(x: number, bits: number, keys: readonly number[]): number {
  const mask = 2 ** bits - 1;
  const shift = Math.ceil(bits / 2);
  for (const k of keys) {
    x = (x + k) & mask;
    x = Math.imul(x, 0x2c1b3c6d) & mask; // odd multiplier: the low bits of the product are a bijection
    x ^= x >>> shift;
  }
  return x;
}

/** The item at position i of the permutation of [0, size) named by key (size <= 2^31). */
export function shuffledIndex(i: number, size: number, key: number): number {
  if (!Number.isInteger(size) || size < 1 || size > 2 ** 31) throw new ValueError(`shuffledIndex: size must be an integer in [1, 2^31], got ${size}`);
  if (!Number.isInteger(i) || i < 0 || i >= size) throw new ValueError(`shuffledIndex: position ${i} is outside [0, ${size})`);
  if (size === 1) return 0;
  const bits = Math.ceil(Math.log2(size));
  const keys = Array.from({ length: ROUNDS }, (_, r) => mix32(key, r));
  let x = i;
  do x = mixRound(x, bits, keys); while (x >= size);
  return x;
}
