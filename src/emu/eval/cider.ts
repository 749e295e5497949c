// cider.ts: CIDEr-D, the captioning metric of the Emu paper's COCO / NoCaps / Flickr30K columns,
// written from the definition in the coco-caption toolkit (pycocoevalcap/cider/cider_scorer.py,
// which despite its name computes CIDEr-D; Vedantam et al. 2015).
//
// For each image, the candidate and every reference become TF-IDF vectors of their n-grams,
// n = 1..4, one vector per n. The document frequency of an n-gram is the number of images whose
// reference set contains it, counted over the references of the corpus being evaluated (the
// candidates never contribute), and idf = log(#images) - log(max(1, df)). Against one reference,
// the score for each n is a cosine in which each candidate weight is first clipped to the
// reference's weight (the "-D": repeating a word gains nothing), times the Gaussian length
// penalty exp(-(lc - lr)^2 / (2 sigma^2)) with sigma = 6. An image's score is the mean over n,
// averaged over its references, times 10; the corpus score is the mean over images.
//
// The toolkit's length in the penalty is the number of bigrams, not words; the difference of two
// lengths is the same either way for non-empty captions, and an empty caption scores 0 anyway, so
// we use words. With a single image, log(#images) = log(1) = 0 and every reference n-gram gets
// idf 0, so all scores are 0: CIDEr is only meaningful over a corpus.
// The toolkit tokenises with Stanford's PTB tokenizer and drops punctuation tokens; tokenizeCaption
// below does the same for plain English captions (lower-case, punctuation removed, clitics such
// as "n't" and "'s" split off as PTB does).
import { ValueError } from '../../tensor/errors.ts';

export interface CiderOptions {
  /** Largest n-gram length (default 4). */
  n?: number;
  /** Standard deviation of the Gaussian length penalty, in tokens (default 6). */
  sigma?: number;
}

export interface CiderResult {
  /** Mean of the per-image scores. */
  score: number;
  /** One score per image, in input order. */
  perImage: number[];
}

/** PTB-style contractions split off as their own token: "don't" -> "do n't", "dog's" -> "dog 's". */
const CLITIC = /(n't|'s|'re|'ve|'ll|'d|'m)$/;

/**
 * Lower-cases and splits a caption into words the way the coco-caption toolkit sees it: every
 * character that is not a letter, digit, apostrophe or hyphen separates words; quotes and hyphens
 * at a word's ends are dropped (so "--" and "'" vanish); clitics are split off.
 */
export function tokenizeCaption(text: string): string[] {
  if (typeof text !== 'string') throw new ValueError(`tokenizeCaption: expected a string, got ${typeof text}`);
  const tokens: string[] = [];
  for (const raw of text.toLowerCase().split(/[^\p{L}\p{N}'-]+/u)) {
    const word = raw.replace(/^['-]+|['-]+$/g, '');
    if (!word) continue;
    const clitic = CLITIC.exec(word);
    if (clitic && clitic.index > 0) tokens.push(word.slice(0, clitic.index), clitic[0]);
    else tokens.push(word);
  }
  return tokens;
}

/** Counts of every n-gram of length 1..n, one map per length; an n-gram's key is its words joined by spaces. */
function countNgrams(words: string[], n: number): Map<string, number>[] {
  const counts: Map<string, number>[] = [];
  for (let k = 1; k <= n; k++) {
    const m = new Map<string, number>();
    for (let i = 0; i + k <= words.length; i++) {
      const key = words.slice(i, i + k).join(' ');
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    counts.push(m);
  }
  return counts;
}

interface TfIdfVector {
  /** Per n-gram length: n-gram -> term frequency x idf. */
  weights: Map<string, number>[];
  /** Euclidean norm of each length's weights. */
  norms: number[];
  /** Number of words. */
  length: number;
}

function tfIdf(words: number, counts: Map<string, number>[], docFreq: Map<string, number>, logImages: number): TfIdfVector {
  const weights = counts.map((m) => {
    const w = new Map<string, number>();
    for (const [gram, tf] of m) w.set(gram, tf * (logImages - Math.log(Math.max(1, docFreq.get(gram) ?? 0))));
    return w;
  });
  const norms = weights.map((w) => Math.sqrt([...w.values()].reduce((s, x) => s + x * x, 0)));
  return { weights, norms, length: words };
}

/** Per-n clipped cosine similarity of a candidate to one reference, times the length penalty. */
function similarity(cand: TfIdfVector, ref: TfIdfVector, sigma: number): number[] {
  const delta = cand.length - ref.length;
  const penalty = Math.exp(-(delta * delta) / (2 * sigma * sigma));
  return cand.weights.map((cw, k) => {
    const rw = ref.weights[k];
    let dot = 0;
    for (const [gram, c] of cw) {
      const r = rw.get(gram) ?? 0;
      dot += Math.min(c, r) * r;
    }
    if (cand.norms[k] !== 0 && ref.norms[k] !== 0) dot /= cand.norms[k] * ref.norms[k];
    return dot * penalty;
  });
}

/**
 * CIDEr-D of candidate captions against reference captions: candidates[i] is the generated caption
 * of image i and references[i] its human (or ground-truth) captions, at least one each.
 */
export function ciderD(candidates: string[], references: string[][], opts: CiderOptions = {}): CiderResult {
  const n = opts.n ?? 4;
  const sigma = opts.sigma ?? 6;
  if (!Array.isArray(candidates) || !Array.isArray(references)) throw new ValueError('ciderD: candidates and references must be arrays');
  if (candidates.length !== references.length) {
    throw new ValueError(`ciderD: ${candidates.length} candidates but ${references.length} reference sets`);
  }
  if (candidates.length === 0) throw new ValueError('ciderD: no images to score');
  if (!Number.isInteger(n) || n < 1) throw new ValueError(`ciderD: n must be a positive integer, got ${n}`);
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new ValueError(`ciderD: sigma must be a positive number, got ${sigma}`);
  references.forEach((refs, i) => {
    if (!Array.isArray(refs) || refs.length === 0) throw new ValueError(`ciderD: image ${i} has no reference captions`);
    if (refs.some((r) => typeof r !== 'string')) throw new ValueError(`ciderD: image ${i} has a reference that is not a string`);
  });
  candidates.forEach((c, i) => {
    if (typeof c !== 'string') throw new ValueError(`ciderD: candidate ${i} is not a string`);
  });

  const refWords = references.map((refs) => refs.map(tokenizeCaption));
  const refCounts = refWords.map((refs) => refs.map((words) => countNgrams(words, n)));
  const docFreq = new Map<string, number>();
  for (const refs of refCounts) {
    const grams = new Set<string>();
    for (const counts of refs) for (const m of counts) for (const gram of m.keys()) grams.add(gram);
    for (const gram of grams) docFreq.set(gram, (docFreq.get(gram) ?? 0) + 1);
  }
  const logImages = Math.log(references.length);

  const perImage = candidates.map((cand, i) => {
    const words = tokenizeCaption(cand);
    const c = tfIdf(words.length, countNgrams(words, n), docFreq, logImages);
    let total = 0;
    for (const [r, counts] of refCounts[i].entries()) {
      const sims = similarity(c, tfIdf(refWords[i][r].length, counts, docFreq, logImages), sigma);
      total += sims.reduce((s, x) => s + x, 0) / n;
    }
    return (10 * total) / refCounts[i].length;
  });
  return { score: perImage.reduce((s, x) => s + x, 0) / perImage.length, perImage };
}
