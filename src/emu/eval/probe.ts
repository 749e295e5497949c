// probe.ts: what the pretrained Emu's visual embeddings carry, and what its LLM reads from them.
//
// Two checks on held-out shapes scenes, reported by `emu eval` (report.md, "Visual embeddings"):
//
//  - Linear probes: ridge regression on one-hot targets (closed form, by Cholesky) from an
//    image's N visual embeddings (the C-Former's output, what the LLM sees) to the kind, colour
//    and size of a lone shape, and to the number of shapes. Once on the N embeddings flattened,
//    once on their mean: what the flattened probe finds and the mean does not is carried by
//    which query holds it, position-specifically, and is hard for the LLM's attention to read.
//  - Reading: for each scene of one shape, the pretrained model's caption loss on
//    "a picture of a {size} {colour} {kind}" with each kind (and with each colour); the fraction
//    of scenes where the true word gives the lowest loss. That is what the LLM reads.
//  - Binding: in scenes of two shapes that differ in colour and in kind, for each shape the loss
//    of "a picture of a {its colour} {kind}" with its own kind against the other shape's kind.
//    Both kinds are in the picture, so only a model that pairs colours with kinds beats 50%.
//
// A property the probes find and the reading misses is lost between the embeddings and the LLM;
// one the probes miss was never encoded. Chance: 1/3 kind, 1/6 colour, 1/2 size.
import { ValueError } from '../../tensor/errors.ts';
import { noGrad } from '../../autograd/index.ts';
import { tidy } from '../../tensor/memory.ts';
import { stack } from '../../tensor/ops/views.ts';
import type { Emu } from '../emu.ts';
import type { Tokenizer } from '../tokenizer.ts';
import { COLORS, KINDS, SIZES, render, scene, type Scene } from '../data/shapes.ts';
import { imageTextSample } from '../data/layouts.ts';
import { splitSeed } from '../data/splits.ts';
import { emuBatch, imageTensor } from '../train/samples.ts';

/** One classification target of a ridge fit: a label in [0, classes) per row. */
export interface RidgeTarget {
  labels: readonly number[];
  classes: number;
}

/**
 * Ridge-regression classifiers sharing one design matrix: for each target, weights W minimising
 * |[X 1] W - onehot(labels)|^2 + lambda |W|^2 (the bias regularised too), predicting argmax.
 * X^T X is formed and Cholesky-factored once, then solved for every target's one-hot columns.
 */
export function ridgeClassifiers(x: readonly Float64Array[], targets: readonly RidgeTarget[], lambda = 1): ((f: Float64Array) => number)[] {
  if (x.length === 0) throw new ValueError('ridgeClassifiers: no rows');
  if (!(lambda > 0)) throw new ValueError(`ridgeClassifiers: lambda must be positive, got ${lambda}`);
  const d = x[0].length + 1;
  x.forEach((xi, r) => {
    if (xi.length !== d - 1) throw new ValueError(`ridgeClassifiers: row ${r} has ${xi.length} features, row 0 has ${d - 1}`);
  });
  for (const { labels, classes } of targets) {
    if (labels.length !== x.length) throw new ValueError(`ridgeClassifiers: need as many labels as rows (got ${x.length} rows, ${labels.length} labels)`);
    const bad = labels.find((y) => !Number.isInteger(y) || y < 0 || y >= classes);
    if (bad !== undefined) throw new ValueError(`ridgeClassifiers: label ${bad} is not in [0, ${classes})`);
  }
  // A = [X 1]^T [X 1] + lambda I, upper triangle first, then mirrored and factored A = L L^T in place.
  const a = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (const xi of x) {
    row.set(xi); row[d - 1] = 1;
    for (let i = 0; i < d; i++) {
      const v = row[i];
      if (v !== 0) for (let j = i; j < d; j++) a[i * d + j] += v * row[j];
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) a[i * d + j] = a[j * d + i];
    a[i * d + i] += lambda;
  }
  for (let j = 0; j < d; j++) {
    let s = a[j * d + j];
    for (let p = 0; p < j; p++) s -= a[j * d + p] * a[j * d + p];
    a[j * d + j] = Math.sqrt(s);
    for (let i = j + 1; i < d; i++) {
      let t = a[i * d + j];
      for (let p = 0; p < j; p++) t -= a[i * d + p] * a[j * d + p];
      a[i * d + j] = t / a[j * d + j];
    }
  }
  return targets.map(({ labels, classes }) => {
    // b = [X 1]^T onehot(labels); solve L u = b, then L^T w = u, one class column at a time.
    const b = new Float64Array(d * classes);
    x.forEach((xi, r) => {
      for (let i = 0; i < d - 1; i++) b[i * classes + labels[r]] += xi[i];
      b[(d - 1) * classes + labels[r]] += 1;
    });
    const w = new Float64Array(d * classes), u = new Float64Array(d);
    for (let c = 0; c < classes; c++) {
      for (let i = 0; i < d; i++) {
        let s = b[i * classes + c];
        for (let p = 0; p < i; p++) s -= a[i * d + p] * u[p];
        u[i] = s / a[i * d + i];
      }
      for (let i = d - 1; i >= 0; i--) {
        let s = u[i];
        for (let p = i + 1; p < d; p++) s -= a[p * d + i] * w[p * classes + c];
        w[i * classes + c] = s / a[i * d + i];
      }
    }
    return (f: Float64Array) => {
      let best = 0, bestScore = -Infinity;
      for (let c = 0; c < classes; c++) {
        let s = w[(d - 1) * classes + c];
        for (let i = 0; i < d - 1; i++) s += f[i] * w[i * classes + c];
        if (s > bestScore) { bestScore = s; best = c; }
      }
      return best;
    };
  });
}

/** A single ridge classifier (ridgeClassifiers with one target). */
export function ridgeClassifier(x: readonly Float64Array[], labels: readonly number[], classes: number, lambda = 1): (f: Float64Array) => number {
  return ridgeClassifiers(x, [{ labels, classes }], lambda)[0];
}

export interface ProbeRow {
  kind: number;
  colour: number;
  size: number;
  count: number;
}

export interface VisualProbes {
  /** Linear-probe accuracy from the N embeddings flattened, and from their mean. */
  flattened: ProbeRow;
  mean: ProbeRow;
  /** What the LLM reads: the caption loss picks the right kind / colour of a lone shape, and the named colour's own kind of two (chance 1/2). */
  reading: { kind: number; colour: number; binding: number };
  /** Chance: 1/3, 1/6, 1/2, and the majority count of the held-out scenes. */
  chance: ProbeRow;
  /** Held-out scenes the probes were scored on (lone shapes / all), scenes of one shape read, and of two shapes read for binding. */
  counts: { single: number; all: number; read: number; pairs: number };
}

export interface ProbeOptions {
  /** Scenes the probes are fitted on (training split) and scored on (held-out split). */
  train: number;
  test: number;
  /** Held-out scenes of one shape whose captions are scored (and as many of two shapes, for binding). */
  read: number;
}

interface Features {
  sc: Scene;
  flat: Float64Array;
  mean: Float64Array;
}

function features(emu: Emu, scenes: Scene[]): Features[] {
  const out: Features[] = [];
  const S = emu.cfg.vision.imageSize;
  for (let i = 0; i < scenes.length; i += 64) {
    const chunk = scenes.slice(i, i + 64);
    noGrad(() => tidy(() => {
      const device = emu.lm.lm_head.weight.device;
      const z = emu.encodeImages(stack(chunk.map((sc) => imageTensor(render(sc), S, device))));
      const [, N, H] = z.shape;
      const data = z.to('cpu').contiguous().data() as Float32Array;
      chunk.forEach((sc, k) => {
        const flat = Float64Array.from(data.subarray(k * N * H, (k + 1) * N * H));
        const mean = new Float64Array(H);
        for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) mean[h] += flat[n * H + h] / N;
        out.push({ sc, flat, mean });
      });
    }));
  }
  return out;
}

const accuracy = (hits: boolean[]): number => (hits.length ? hits.filter(Boolean).length / hits.length : 0);

function probeRow(train: Features[], test: Features[], key: 'flat' | 'mean'): ProbeRow {
  const hits = (predict: (f: Float64Array) => number, on: Features[], label: (sc: Scene) => number) => accuracy(on.map((f) => predict(f[key]) === label(f.sc)));
  const lone = (fs: Features[]) => fs.filter((f) => f.sc.shapes.length === 1);
  const kind = (sc: Scene) => KINDS.indexOf(sc.shapes[0].kind);
  const colour = (sc: Scene) => COLORS.indexOf(sc.shapes[0].color);
  const size = (sc: Scene) => SIZES.indexOf(sc.shapes[0].size);
  const count = (sc: Scene) => sc.shapes.length - 1;
  const fitLone = lone(train), testLone = lone(test);
  const [pKind, pColour, pSize] = ridgeClassifiers(fitLone.map((f) => f[key]), [
    { labels: fitLone.map((f) => kind(f.sc)), classes: KINDS.length },
    { labels: fitLone.map((f) => colour(f.sc)), classes: COLORS.length },
    { labels: fitLone.map((f) => size(f.sc)), classes: SIZES.length },
  ]);
  const pCount = ridgeClassifier(train.map((f) => f[key]), train.map((f) => count(f.sc)), 3);
  return { kind: hits(pKind, testLone, kind), colour: hits(pColour, testLone, colour), size: hits(pSize, testLone, size), count: hits(pCount, test, count) };
}

/** Caption loss of `text` after the image (image first, CE only) under the pretrained Emu. */
function captionLoss(emu: Emu, tok: Tokenizer, image: Float32Array, text: string): number {
  return noGrad(() => tidy(() => emu.loss(emuBatch(emu, tok, [imageTextSample(image, text, true)]), { regressionWeight: 0 }).ce.item() as number));
}

function argmin(xs: number[]): number {
  return xs.indexOf(Math.min(...xs));
}

/** The first n held-out scenes from index `from` on that `keep` accepts. */
function heldOutWhere(n: number, from: number, keep: (sc: Scene) => unknown): Scene[] {
  const out: Scene[] = [];
  for (let i = from; out.length < n; i++) {
    const sc = scene(splitSeed('heldOut', i));
    if (keep(sc)) out.push(sc);
  }
  return out;
}

/** Both checks on the pretrained Emu (evaluation mode); deterministic for a given model. */
export function probeVisualEmbeddings(emu: Emu, tok: Tokenizer, opts: ProbeOptions): VisualProbes {
  for (const k of ['train', 'test', 'read'] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new ValueError(`probeVisualEmbeddings: ${k} must be a positive integer, got ${String(opts[k])}`);
  }
  const wasTraining = emu.training;
  emu.eval();
  try {
    const train = features(emu, Array.from({ length: opts.train }, (_, i) => scene(splitSeed('train', 900000 + i))));
    const test = features(emu, Array.from({ length: opts.test }, (_, i) => scene(splitSeed('heldOut', 300000 + i))));
    const counts = test.map((f) => f.sc.shapes.length);
    const majority = Math.max(...[1, 2, 3].map((n) => counts.filter((c) => c === n).length)) / counts.length;
    const lones = heldOutWhere(opts.read, 400000, (sc) => sc.shapes.length === 1);
    const kindHits: boolean[] = [], colourHits: boolean[] = [];
    for (const sc of lones) {
      const s = sc.shapes[0], image = render(sc);
      const kinds = KINDS.map((k) => captionLoss(emu, tok, image, `a picture of a ${s.size} ${s.color} ${k}`));
      const colours = COLORS.map((c) => captionLoss(emu, tok, image, `a picture of a ${s.size} ${c} ${s.kind}`));
      kindHits.push(KINDS[argmin(kinds)] === s.kind);
      colourHits.push(COLORS[argmin(colours)] === s.color);
    }
    const pairs = heldOutWhere(opts.read, 500000, ({ shapes: [a, b, c] }) => b && !c && a.color !== b.color && a.kind !== b.kind);
    const bindingHits: boolean[] = [];
    for (const sc of pairs) {
      const image = render(sc);
      for (const [s, other] of [sc.shapes, [...sc.shapes].reverse()]) {
        const own = captionLoss(emu, tok, image, `a picture of a ${s.color} ${s.kind}`);
        bindingHits.push(own < captionLoss(emu, tok, image, `a picture of a ${s.color} ${other.kind}`));
      }
    }
    return {
      flattened: probeRow(train, test, 'flat'),
      mean: probeRow(train, test, 'mean'),
      reading: { kind: accuracy(kindHits), colour: accuracy(colourHits), binding: accuracy(bindingHits) },
      chance: { kind: 1 / KINDS.length, colour: 1 / COLORS.length, size: 1 / SIZES.length, count: majority },
      counts: { single: test.filter((f) => f.sc.shapes.length === 1).length, all: test.length, read: lones.length, pairs: pairs.length },
    };
  } finally {
    if (wasTraining) emu.train();
  }
}
