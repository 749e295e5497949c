// sources.ts: indexable data sources for the loader: a size and get(index) -> Sample.
//
//  - seededSource: index i of a split is the seed splitSeed(split, i) fed to a layout function,
//    so a training source never reaches a held-out seed (splits.ts);
//  - mnistSource: the MNIST digits of one split as image-text pairs (or, with `dialogues`, as
//    Emu-I dialogues about them);
//  - imageFolderSource: PNG files of a folder, each with a caption in a sidecar .txt file of the
//    same name (img1.png + img1.txt, the webdataset convention), decoded by a caller-supplied
//    function (so this module does not depend on an image codec). An unreadable or undecodable
//    file, a missing caption or pixels of the wrong size make get() throw; the loader counts that
//    as a skipped sample instead of stopping.
// pretrainMixture is the paper's five-source mixture mapped onto the built-in data.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ValueError } from '../../tensor/errors.ts';
import { digitDialogueSample, documentSample, imageTextSample, mnistPair, shapesPair, storyboardSample, videoPair, type LayoutOptions, type PairOptions } from './layouts.ts';
import { mnistEntries, type DigitEntry } from './mnist.ts';
import type { Sample } from './sample.ts';
import { SPLIT_SIZE, rngFor, splitSeed, type SplitName } from './splits.ts';

export interface DataSource {
  name: string;
  /** Items are get(0) .. get(size - 1). */
  size: number;
  get(index: number): Sample;
}

/** A source and its share of each batch. */
export interface MixtureEntry {
  source: DataSource;
  /** Positive integer; a batch of sum(ratios) samples holds exactly `ratio` from this source. */
  ratio: number;
}

function checkIndex(source: string, index: number, size: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= size) throw new ValueError(`${source}: index ${index} is outside [0, ${size})`);
}

/** Item i is make(splitSeed(split, i)); `size` (default: the whole split) bounds the seeds used. */
export function seededSource(name: string, make: (seed: number) => Sample, opts: { split?: SplitName; size?: number } = {}): DataSource {
  const split = opts.split ?? 'train';
  const size = opts.size ?? SPLIT_SIZE;
  if (!Number.isInteger(size) || size < 1 || size > SPLIT_SIZE) throw new ValueError(`seededSource: size must be an integer in [1, 2^31], got ${size}`);
  return { name, size, get: (index) => { checkIndex(name, index, size); return make(splitSeed(split, index)); } };
}

/** The MNIST digits of a split as captioned image-text pairs, or as dialogues about them. */
export function mnistSource(split: SplitName, opts: PairOptions & { dialogues?: boolean } = {}): DataSource {
  const entries = mnistEntries(split);
  const make = opts.dialogues ? (e: DigitEntry) => digitDialogueSample(e, opts) : (e: DigitEntry) => mnistPair(e, opts);
  const name = opts.dialogues ? 'mnist-dialogues' : 'mnist';
  return { name, size: entries.length, get: (index) => { checkIndex(name, index, entries.length); return make(entries[index]); } };
}

/**
 * PNG files of `dir` (sorted by name) with sidecar .txt captions, as image-text pairs in random
 * order. `decode` turns a file's bytes into HxWx3 pixels in [0,1]; they must be size x size.
 */
export function imageFolderSource(
  name: string, dir: string, decode: (bytes: Uint8Array, path: string) => Float32Array, opts: LayoutOptions = {},
): DataSource {
  const size = opts.size ?? 32;
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new ValueError(`imageFolderSource: '${dir}' is not a directory`);
  const files = readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.png')).sort();
  if (files.length === 0) throw new ValueError(`imageFolderSource: no .png files in '${dir}'`);
  return {
    name,
    size: files.length,
    get(index) {
      checkIndex(name, index, files.length);
      const path = join(dir, files[index]);
      const pixels = decode(readFileSync(path), path);
      if (!(pixels instanceof Float32Array) || pixels.length !== size * size * 3) {
        throw new ValueError(`imageFolderSource: '${path}' decoded to ${pixels?.length} values, expected ${size}x${size}x3`);
      }
      const text = readFileSync(path.replace(/\.png$/i, '.txt'), 'utf8').trim();
      if (!text) throw new ValueError(`imageFolderSource: the caption of '${path}' is empty`);
      return imageTextSample(pixels, text, rngFor(index, 7)() < 0.5);
    },
  };
}

/**
 * The paper's pretraining mixture (LAION-2B 128, LAION-COCO 128, MMC4 64, WebVid 16,
 * YT-Storyboard 16) mapped onto built-in data: shapes pairs, MNIST pairs, documents, video pairs,
 * storyboards, with the same ratios.
 */
export function pretrainMixture(split: SplitName, opts: LayoutOptions = {}): MixtureEntry[] {
  return [
    { source: seededSource('shapes-pairs', (s) => shapesPair(s, opts), { split }), ratio: 128 },
    { source: mnistSource(split, opts), ratio: 128 },
    { source: seededSource('documents', (s) => documentSample(s, opts), { split }), ratio: 64 },
    { source: seededSource('video-pairs', (s) => videoPair(s, opts), { split }), ratio: 16 },
    { source: seededSource('storyboards', (s) => storyboardSample(s, opts), { split }), ratio: 16 },
  ];
}
