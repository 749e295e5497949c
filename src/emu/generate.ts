// generate.ts: decoding over a LlamaForReg from prefix embeddings (spec 4.1 and 4.3).
//
// The prefix is given as embeddings [1, L, H] (not ids) so the Emu wrapper can write visual
// embeddings into it. Everything runs under noGrad with a KVCache: the prefix is prefilled
// once, then one position is fed per step.
//
//   generateText     greedy, sampling (temperature -> top-k -> top-p, as HF's warpers) or beam
//                    search (HF BeamSearchScorer semantics: 2*numBeams candidates per step, an eos
//                    candidate closes a hypothesis only when ranked below numBeams, finished score
//                    = sum logprob / len^lengthPenalty, stop when no running beam can beat the worst
//                    kept hypothesis, then the running beams are added and the best is returned).
//                    Batch 1 only (one prompt); beams are the cache's batch.
//   regressVisual    N steps of greedy regression after [IMG], KV cached (spec 4.3's "mathematically
//                    equivalent" loop).
//   regressVisualFullRecompute   the reference's procedure: no cache, the whole prefix + [IMG] +
//                    k fed-back embeddings recomputed at step k; outputs from the last step.
import { ShapeError, ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import { rand, type Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { fromValues } from '../tensor/ops/creation.ts';
import { cat, narrow, reshape, to } from '../tensor/ops/views.ts';
import { noGrad } from '../autograd/grad_mode.ts';
import type { KVCache, LlamaForReg } from './llama.ts';

export interface GenerateOptions {
  /** Most new tokens (default 20). */
  maxNewTokens?: number;
  /** eos is forbidden (logit -inf) until this many new tokens exist (HF min_new_tokens; default 0). */
  minNewTokens?: number;
  /** End-of-sequence id (default 2, LLaMA's </s>); null never stops early. */
  eos?: number | null;
  strategy?: 'greedy' | 'sample' | 'beam';
  /** Sampling: logits / temperature (default 1; 0 means greedy). */
  temperature?: number;
  /** Sampling: keep the k most likely tokens (0 = off). */
  topK?: number;
  /** Sampling: keep the smallest set whose probability reaches p (1 = off). */
  topP?: number;
  /** Beam search width (default 1). */
  numBeams?: number;
  /** Beam search: a finished hypothesis scores sum logprob / len^lengthPenalty (default 1). */
  lengthPenalty?: number;
  /** Sampling's random source (default: the default generator). */
  generator?: Generator;
}

export interface GenerateResult {
  /** The new token ids (eos included when the sequence ended with it). */
  tokens: number[];
  /** Beam search: the winning hypothesis' score; otherwise the sum of the chosen tokens' logprobs. */
  score: number;
}

function checkPrefix(lm: LlamaForReg, x: Tensor, op: string, batch1 = true): void {
  const H = lm.cfg.hidden;
  if (!(x instanceof Tensor) || x.ndim !== 3 || x.shape[2] !== H || x.shape[1] < 1 || (batch1 && x.shape[0] !== 1)) {
    throw new ShapeError(`${op}: prefixEmbeds must be [${batch1 ? 1 : 'B'}, L >= 1, ${H}], got ${x instanceof Tensor ? `[${x.shape.join(',')}]` : String(x)}`);
  }
}

/** Feeds x [B, L, H] through lm with the cache; returns the last position's log-softmax per row (f64 arrays). */
function stepLogits(lm: LlamaForReg, x: Tensor, cache: KVCache): Float64Array[] {
  return tidy(() => {
    const { hidden } = lm.forward(x, { cache, logits: false });
    const [B, L, H] = hidden.shape;
    const last = reshape(narrow(hidden, 1, L - 1, 1), [B, H]);
    const logits = to(lm.lm_head.forward(last), 'f64');
    const v = logits.data() as Float64Array, V = logits.shape[1];
    return Array.from({ length: B }, (_, b) => Float64Array.from(v.subarray(b * V, (b + 1) * V)));
  });
}

function logSoftmaxJs(l: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of l) if (v > m) m = v;
  let s = 0;
  for (const v of l) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return l.map((v) => v - lse);
}

function argmaxJs(l: Float64Array): number {
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
  return best;
}

/** HF warpers on raw logits: temperature, then top-k, then top-p; masked entries become -inf. */
export function warpLogits(logits: Float64Array, opts: { temperature?: number; topK?: number; topP?: number }): Float64Array {
  const T = opts.temperature ?? 1, k = opts.topK ?? 0, p = opts.topP ?? 1;
  let l = T === 1 ? Float64Array.from(logits) : logits.map((v) => v / T);
  if (k > 0 && k < l.length) {
    const kth = Float64Array.from(l).sort((a, b) => b - a)[k - 1];
    l = l.map((v) => (v < kth ? -Infinity : v));
  }
  if (p < 1) {
    // Remove the least likely tokens whose cumulative probability (ascending) is <= 1 - p; keep >= 1.
    const order = Array.from(l.keys()).sort((a, b) => l[a] - l[b]);
    const lp = logSoftmaxJs(l);
    let cum = 0;
    for (let r = 0; r < order.length - 1; r++) {
      cum += Math.exp(lp[order[r]]);
      if (cum <= 1 - p) l[order[r]] = -Infinity;
      else break;
    }
  }
  return l;
}

function forbidEos(l: Float64Array, eos: number | null, nNew: number, minNew: number): void {
  if (eos !== null && nNew < minNew && eos >= 0 && eos < l.length) l[eos] = -Infinity;
}

function tokenEmbeds(lm: LlamaForReg, ids: number[], like: Tensor): Tensor {
  return tidy(() => {
    const e = lm.embed(fromValues(ids, [ids.length, 1], 'i32', like.device));
    return e.dtype === like.dtype ? e : to(e, like.dtype);
  });
}

interface Resolved {
  maxNew: number; minNew: number; eos: number | null; strategy: 'greedy' | 'sample' | 'beam';
  temperature: number; topK: number; topP: number; numBeams: number; lengthPenalty: number; generator?: Generator;
}

function resolve(opts: GenerateOptions): Resolved {
  const r: Resolved = {
    maxNew: opts.maxNewTokens ?? 20, minNew: opts.minNewTokens ?? 0, eos: opts.eos === undefined ? 2 : opts.eos,
    strategy: opts.strategy ?? 'greedy', temperature: opts.temperature ?? 1, topK: opts.topK ?? 0, topP: opts.topP ?? 1,
    numBeams: opts.numBeams ?? 1, lengthPenalty: opts.lengthPenalty ?? 1, generator: opts.generator,
  };
  const int = (v: number, lo: number, name: string) => {
    if (!Number.isInteger(v) || v < lo) throw new ValueError(`generateText: ${name} must be an integer >= ${lo}, got ${String(v)}`);
  };
  int(r.maxNew, 0, 'maxNewTokens');
  int(r.minNew, 0, 'minNewTokens');
  int(r.topK, 0, 'topK');
  int(r.numBeams, 1, 'numBeams');
  if (!['greedy', 'sample', 'beam'].includes(r.strategy)) throw new ValueError(`generateText: unknown strategy ${String(r.strategy)}`);
  if (!(r.temperature >= 0)) throw new ValueError(`generateText: temperature must be >= 0, got ${r.temperature}`);
  if (!(r.topP > 0 && r.topP <= 1)) throw new ValueError(`generateText: topP must be in (0, 1], got ${r.topP}`);
  if (typeof r.lengthPenalty !== 'number' || !Number.isFinite(r.lengthPenalty)) throw new ValueError('generateText: lengthPenalty must be a finite number');
  return r;
}

/**
 * Generates up to maxNewTokens after prefixEmbeds [1, L, H] (batch 1: one prompt; for beam
 * search the beams form the batch). Returns the new ids (with the final eos when produced).
 */
export function generateText(lm: LlamaForReg, prefixEmbeds: Tensor, opts: GenerateOptions = {}): GenerateResult {
  checkPrefix(lm, prefixEmbeds, 'generateText');
  const o = resolve(opts);
  return noGrad(() => (o.strategy === 'beam' ? beamSearch(lm, prefixEmbeds, o) : decode(lm, prefixEmbeds, o)));
}

function decode(lm: LlamaForReg, prefix: Tensor, o: Resolved): GenerateResult {
  const cache = lm.newCache();
  const tokens: number[] = [];
  let score = 0;
  try {
    if (o.maxNew === 0) return { tokens, score };
    let logits = stepLogits(lm, prefix, cache)[0];
    for (;;) {
      forbidEos(logits, o.eos, tokens.length, o.minNew);
      let tok: number;
      if (o.strategy === 'greedy' || o.temperature === 0) tok = argmaxJs(logits);
      else tok = sampleFrom(warpLogits(logits, o), o.generator);
      score += logSoftmaxJs(logits)[tok];
      tokens.push(tok);
      if (tok === o.eos || tokens.length >= o.maxNew) break;
      const x = tokenEmbeds(lm, [tok], prefix);
      logits = stepLogits(lm, x, cache)[0];
      x.dispose();
    }
    return { tokens, score };
  } finally {
    cache.dispose();
  }
}

/** One draw from softmax(l) with a uniform number from the generator (inverse CDF). */
function sampleFrom(l: Float64Array, generator?: Generator): number {
  const lp = logSoftmaxJs(l);
  const u = tidy(() => rand([1], { dtype: 'f64', generator }).item() as number);
  let cum = 0, last = -1;
  for (let i = 0; i < lp.length; i++) {
    if (lp[i] === -Infinity) continue;
    cum += Math.exp(lp[i]);
    last = i;
    if (u < cum) return i;
  }
  return last;
}

interface Hyp { tokens: number[]; score: number }

function beamSearch(lm: LlamaForReg, prefix: Tensor, o: Resolved): GenerateResult {
  const nb = o.numBeams, lp = o.lengthPenalty;
  const norm = (sum: number, len: number) => sum / Math.max(1, len) ** lp;
  const finished: Hyp[] = [];
  const worst = () => (finished.length < nb ? -Infinity : Math.min(...finished.map((h) => h.score)));
  const addFinished = (h: Hyp) => {
    if (finished.length < nb || h.score > worst()) {
      finished.push(h);
      if (finished.length > nb) finished.splice(finished.indexOf(finished.reduce((a, b) => (b.score < a.score ? b : a))), 1);
    }
  };
  if (o.maxNew === 0) return { tokens: [], score: 0 };
  const cache = lm.newCache();
  try {
    let logits = stepLogits(lm, prefix, cache);
    cache.selectRows(Array(nb).fill(0));
    logits = Array.from({ length: nb }, () => logits[0]);
    // Beam 0 alone is live at the start (HF: the other beams start at -1e9).
    let beams: Hyp[] = Array.from({ length: nb }, (_, i) => ({ tokens: [], score: i === 0 ? 0 : -1e9 }));
    let done = false;
    for (let cur = 0; cur < o.maxNew && !done; cur++) {
      const cand: { score: number; tok: number; beam: number }[] = [];
      for (let b = 0; b < nb; b++) {
        const lgp = logSoftmaxJs(logits[b]);
        forbidEos(lgp, o.eos, cur, o.minNew);
        for (let t = 0; t < lgp.length; t++) cand.push({ score: beams[b].score + lgp[t], tok: t, beam: b });
      }
      // Top 2*nb by score (stable: ties keep the lower beam, then the lower token).
      cand.sort((a, b) => b.score - a.score || a.beam - b.beam || a.tok - b.tok);
      const top = cand.slice(0, 2 * nb);
      const next: { score: number; tok: number; beam: number }[] = [];
      for (const [rank, c] of top.entries()) {
        if (c.tok === o.eos) {
          if (rank >= nb) continue;
          // Length = the tokens before eos (HF 4.29 with inputs_embeds: the hypothesis excludes the eos).
          addFinished({ tokens: [...beams[c.beam].tokens, c.tok], score: norm(c.score, cur) });
        } else next.push(c);
        if (next.length === nb) break;
      }
      if (next.length < nb) throw new ValueError(`generateText: beam search found only ${next.length} live candidates for ${nb} beams (vocabulary too small)`);
      const newLen = cur + 1;
      beams = next.map((c) => ({ tokens: [...beams[c.beam].tokens, c.tok], score: c.score }));
      // HF is_done (early_stopping=False): the best candidate of this step, normalised at the length
      // before it (HF's cur_len), cannot beat the worst kept hypothesis.
      if (finished.length >= nb && worst() >= norm(top[0].score, cur)) done = true;
      if (done || newLen >= o.maxNew) break;
      cache.selectRows(next.map((c) => c.beam));
      const x = tokenEmbeds(lm, next.map((c) => c.tok), prefix);
      logits = stepLogits(lm, x, cache);
      x.dispose();
    }
    if (!done) for (const b of beams) addFinished({ tokens: b.tokens, score: norm(b.score, b.tokens.length) });
    const best = finished.reduce((a, b) => (b.score > a.score ? b : a));
    return { tokens: best.tokens, score: best.score };
  } finally {
    cache.dispose();
  }
}

function checkImg(lm: LlamaForReg, img: Tensor, B: number, like: Tensor): Tensor {
  const H = lm.cfg.hidden;
  if (!(img instanceof Tensor) || img.numel !== H || img.shape[img.ndim - 1] !== H) {
    throw new ShapeError(`regressVisual: imgTokenEmbedding must hold one vector of ${H} ([H], [1, H] or [1, 1, H])`);
  }
  const x = reshape(img, [1, 1, H]);
  const y = B === 1 ? x : cat(Array(B).fill(x), 0);
  return y.dtype === like.dtype ? y : to(y, like.dtype);
}

function checkN(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new ValueError(`regressVisual: n must be a positive integer, got ${String(n)}`);
}

/**
 * Greedy regression of n visual embeddings after prefixEmbeds [B, L, H] (no padding): feed the
 * prefix and the [IMG] embedding, z1 = stu_regress_head(last hidden), feed z1, ... (KV cached).
 * Returns [B, n, H].
 */
export function regressVisual(lm: LlamaForReg, prefixEmbeds: Tensor, imgTokenEmbedding: Tensor, n: number): Tensor {
  checkPrefix(lm, prefixEmbeds, 'regressVisual', false);
  checkN(n);
  const B = prefixEmbeds.shape[0];
  return noGrad(() => {
    const cache = lm.newCache();
    try {
      const zs: Tensor[] = [];
      let x = tidy(() => cat([prefixEmbeds, checkImg(lm, imgTokenEmbedding, B, prefixEmbeds)], 1));
      for (let k = 0; k < n; k++) {
        const z = tidy(() => {
          const { hidden } = lm.forward(x, { cache, logits: false });
          const L = hidden.shape[1];
          return lm.stu_regress_head.forward(narrow(hidden, 1, L - 1, 1));
        });
        if (k === 0) x.dispose();
        zs.push(z);
        x = z;
      }
      const out = tidy(() => cat(zs, 1));
      for (const z of zs) z.dispose();
      return out;
    } finally {
      cache.dispose();
    }
  });
}

/**
 * The reference procedure (spec 4.3, no cache): at step k = 0..n-1 the model runs over
 * prefix + [IMG] + z_1..z_k and the regression head at the last k + 1 positions gives z_1..z_{k+1};
 * the output is the last step's n vectors [B, n, H].
 */
export function regressVisualFullRecompute(lm: LlamaForReg, prefixEmbeds: Tensor, imgTokenEmbedding: Tensor, n: number): Tensor {
  checkPrefix(lm, prefixEmbeds, 'regressVisualFullRecompute', false);
  checkN(n);
  const B = prefixEmbeds.shape[0], L0 = prefixEmbeds.shape[1];
  return noGrad(() => {
    let zs: Tensor | null = null;  // [B, k, H]
    for (let k = 0; k < n; k++) {
      const out: Tensor = tidy(() => {
        const parts = [prefixEmbeds, checkImg(lm, imgTokenEmbedding, B, prefixEmbeds)];
        if (zs) parts.push(zs);
        const { hidden } = lm.forward(cat(parts, 1), { logits: false });
        return lm.stu_regress_head.forward(narrow(hidden, 1, L0, k + 1));
      });
      zs?.dispose();
      zs = out;
    }
    return zs as unknown as Tensor;
  });
}
