// splits.ts: the seed ranges that keep evaluation data out of training.
//
// Every generated sample is a pure function of a uint32 seed. The seed space is cut in two by its
// top bit: training seeds are [0, 2^31), held-out (evaluation) seeds are [2^31, 2^32). A sample
// that needs more scenes than its own (a document's images, a dialogue's) derives them with
// subSeed, which keeps the top bit, so nothing a training seed produces is ever built from a
// held-out seed and vice versa. Note that disjoint seeds are not the same as distinct scenes: two
// seeds can draw the same small scene (one red circle at the same place); the held-out split
// guarantees unseen seeds and, for multi-shape scenes, almost surely unseen compositions.
//
// rngFor gives independent random streams for the choices made around a scene (template,
// image-before-or-after-text) so they do not reuse the scene's own stream.
import { ValueError } from '../../tensor/errors.ts';
import { mulberry32, type Rng } from './shapes.ts';

export type SplitName = 'train' | 'heldOut';

/** Seeds per split. */
export const SPLIT_SIZE = 2 ** 31;
const SPLIT_START: Record<SplitName, number> = { train: 0, heldOut: 2 ** 31 };

/** The index-th seed of a split (index in [0, 2^31)). */
export function splitSeed(split: SplitName, index: number): number {
  if (!(split in SPLIT_START)) throw new ValueError(`splitSeed: unknown split '${split}' (train or heldOut)`);
  if (!Number.isInteger(index) || index < 0 || index >= SPLIT_SIZE) {
    throw new ValueError(`splitSeed: index must be an integer in [0, 2^31), got ${index}`);
  }
  return SPLIT_START[split] + index;
}

/** Which split a seed belongs to. */
export function splitOf(seed: number): SplitName {
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new ValueError(`splitOf: seed must be a uint32, got ${seed}`);
  return seed >= 2 ** 31 ? 'heldOut' : 'train';
}

/** murmur3's 32-bit finaliser over a combination of a and b: a well-spread uint32. */
export function mix32(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul(b >>> 0, 0x85ebca77) ^ (b >>> 16)) >>> 0;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The salt-th derived seed of a seed, in the same split. */
export function subSeed(seed: number, salt: number): number {
  const top = splitOf(seed) === 'heldOut' ? 2 ** 31 : 0;
  return top + (mix32(seed, salt) & 0x7fffffff);
}

/** An independent random stream for a seed's non-scene choices, one per salt. */
export function rngFor(seed: number, salt: number): Rng {
  return mulberry32(mix32(seed, 0x51ed270b ^ salt));
}
