// tokenizer.ts: the byte-level BPE tokenizer of Emu, trained by us (no pretrained vocabulary).
//
// What it does: text -> UTF-8 bytes -> words (a GPT-2-style regex, so merges never cross word
// boundaries) -> byte tokens merged by the learned BPE merges, in the order they were learned.
// Special-token strings found in the text ("[IMG]", "<image>", ...) are cut out first and mapped
// straight to their ids; they are never split into bytes, and no merge can produce them.
//
// Ids layout (shared/reference/emu-architecture.md sections 1.4 and 5):
//
//   0 .. 255                       the 256 byte tokens (id == byte value)
//   256                            <s>   BOS, prepended by encode() unless { bos: false }
//   257                            </s>  EOS, appended by the data pipeline (never by encode)
//   258 .. 258+M-1                 the M learned merges, in the order learned
//   258+M .. baseVocab-1           unused (when training stopped early: too few pairs left);
//                                  encode never produces them, decode renders them as U+FFFD
//   baseVocab + 0                  [PAD]        (embedding padding_idx)
//   baseVocab + 1                  [IMG]
//   baseVocab + 2                  [/IMG]
//   baseVocab + 3                  <image>      (one per visual embedding)
//   baseVocab + 4                  [USER]       instruction tuning only
//   baseVocab + 5                  [ASSISTANT]  instruction tuning only
//
// baseVocab is config.llm.baseVocab (32000 for Emu-14B, 512 tiny) and vocabSize(instruct) equals
// config.ts's vocabSize(llm, instruct): baseVocab + 4, or + 6 for instruction tuning.
//
// Small vocabularies (baseVocab < 258, e.g. the micro preset's 64) cannot hold all 256 bytes.
// For those, training uses a *compact alphabet*: only the bytes that occur in the training
// corpus get a token, in ascending byte order, so the layout becomes
//   0 .. A-1 alphabet bytes, A <s>, A+1 </s>, A+2 .. merges, then specials at baseVocab as above;
// and encode() throws a ValueError on a byte outside the alphabet. The general rule for both
// modes: ids 0..A-1 are the alphabet bytes (A = 256 in full byte mode), then <s>, </s>, merges.
//
// Strings "<s>" and "</s>" in the text are recognised as BOS/EOS too (the instruction template
// separates turns with a literal "</s>"). Round trips are exact for any well-formed string; a
// lone UTF-16 surrogate is encoded as U+FFFD's bytes (TextEncoder), so it comes back as U+FFFD.
//
// On disk: JSON { format: "emu-bpe", version: 1, baseVocab, alphabet, merges: [[left, right], ...],
// specials } with merges as id pairs; save() writes it atomically (nn/atomic_write.ts).
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../nn/atomic_write.ts';
import { CheckpointError, ValueError } from '../tensor/errors.ts';
import { SPECIAL_TOKENS } from './config.ts';

export const BOS_TOKEN = '<s>';
export const EOS_TOKEN = '</s>';
const FORMAT = 'emu-bpe';
const VERSION = 1;

/**
 * Pre-tokenisation (GPT-2 style, without the English contraction rules): runs of letters (with
 * combining marks), runs of digits, runs of other non-space characters, each optionally with one
 * leading space; whitespace runs keep their last space for the following word ("\s+(?!\S)").
 * Every character of any string is matched by one branch, so the words concatenate back to the text.
 */
const WORD_RE = / ?[\p{L}\p{M}]+| ?\p{N}+| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Every special string recognised in text, longest first so no prefix can shadow another. */
const ALL_SPECIALS: readonly string[] = [...SPECIAL_TOKENS, BOS_TOKEN, EOS_TOKEN].sort((a, b) => b.length - a.length);
const SPECIAL_RE = new RegExp(ALL_SPECIALS.map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|'), 'g');

const utf8 = new TextEncoder();
const utf8Lenient = new TextDecoder('utf-8', { fatal: false });

/** Splits text into pieces: special-token strings (`special: true`) and the plain text between them. */
function splitSpecials(text: string): { text: string; special: boolean }[] {
  const out: { text: string; special: boolean }[] = [];
  let last = 0;
  for (const m of text.matchAll(SPECIAL_RE)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), special: false });
    out.push({ text: m[0], special: true });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), special: false });
  return out;
}

/** The words of plain text (no special strings in it), in order. */
function words(text: string): string[] {
  return text.match(WORD_RE) ?? [];
}

/** Ids are < 2^21 (two million) so a pair packs into one safe integer. */
const PAIR_SHIFT = 2 ** 21;
const pairKey = (a: number, b: number): number => a * PAIR_SHIFT + b;

export interface TokenizerSpec {
  /** Ids below this are text tokens; the special tokens start here. */
  baseVocab: number;
  /** Byte values that have a token, ascending and distinct (default: all 256). */
  alphabet?: number[];
  /** Learned merges in order: merge i joins ids [left, right] into id alphabet.length + 2 + i. */
  merges: [number, number][];
}

export interface EncodeOptions {
  /** Prepend <s> (default true, as LLaMA's tokenizer does). */
  bos?: boolean;
  /** Append </s> (default false: the data pipeline appends it). */
  eos?: boolean;
}

export interface DecodeOptions {
  /** Leave out <s>, </s> and the six special tokens (default false: render them as their strings). */
  skipSpecial?: boolean;
}

export interface TrainOptions {
  /** The target base vocabulary (config.llm.baseVocab): alphabet + <s> + </s> + merges. */
  vocabSize: number;
  /** Stop when the most frequent pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** 'bytes' (all 256; default when vocabSize >= 258) or 'corpus' (only bytes seen; default below). */
  alphabet?: 'bytes' | 'corpus';
}

/** The JSON object written by toJSON() / save(). */
export interface TokenizerJSON {
  format: typeof FORMAT;
  version: number;
  baseVocab: number;
  alphabet: number[];
  merges: [number, number][];
  specials: string[];
}

export class Tokenizer {
  /** Ids below this are text tokens; [PAD] = baseVocab. */
  readonly baseVocab: number;
  /** Byte values with a token; byte alphabet[i] has id i. */
  readonly alphabet: readonly number[];
  /** The learned merges, in order. */
  readonly merges: readonly (readonly [number, number])[];
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
  readonly img: number;
  readonly imgEnd: number;
  readonly image: number;
  readonly user: number;
  readonly assistant: number;

  /** byte value -> id, -1 for bytes outside the alphabet. */
  readonly #byteToId = new Int32Array(256).fill(-1);
  /** pair key -> merge rank; the merged id is #firstMerge + rank. */
  readonly #ranks = new Map<number, number>();
  readonly #firstMerge: number;
  /** The bytes each text token stands for (alphabet and merges). */
  readonly #bytes: Uint8Array[] = [];
  readonly #specialIds = new Map<string, number>();
  readonly #specialNames = new Map<number, string>();
  /** word -> ids, cleared when it grows past CACHE_LIMIT. */
  readonly #cache = new Map<string, number[]>();

  constructor(spec: TokenizerSpec) {
    checkSpec(spec, ValueError);
    const alphabet = spec.alphabet ?? Array.from({ length: 256 }, (_, i) => i);
    this.baseVocab = spec.baseVocab;
    this.alphabet = Object.freeze([...alphabet]);
    this.merges = Object.freeze(spec.merges.map((m) => Object.freeze([m[0], m[1]] as const)));
    alphabet.forEach((byte, id) => {
      this.#byteToId[byte] = id;
      this.#bytes.push(Uint8Array.of(byte));
    });
    this.bos = alphabet.length;
    this.eos = alphabet.length + 1;
    this.#bytes.push(new Uint8Array(0), new Uint8Array(0)); // <s>, </s>: no bytes
    this.#firstMerge = alphabet.length + 2;
    spec.merges.forEach(([a, b], rank) => {
      this.#ranks.set(pairKey(a, b), rank);
      const joined = new Uint8Array(this.#bytes[a].length + this.#bytes[b].length);
      joined.set(this.#bytes[a]);
      joined.set(this.#bytes[b], this.#bytes[a].length);
      this.#bytes.push(joined);
    });
    [this.pad, this.img, this.imgEnd, this.image, this.user, this.assistant] = SPECIAL_TOKENS.map((_, i) => this.baseVocab + i);
    const named: [string, number][] = [[BOS_TOKEN, this.bos], [EOS_TOKEN, this.eos], ...SPECIAL_TOKENS.map((s, i): [string, number] => [s, this.baseVocab + i])];
    for (const [name, id] of named) {
      this.#specialIds.set(name, id);
      this.#specialNames.set(id, name);
    }
  }

  /** Rows of the LLM's embedding: baseVocab + 4 ([PAD] [IMG] [/IMG] <image>), + 6 with [USER] [ASSISTANT]. */
  vocabSize(instruct = false): number {
    return this.baseVocab + (instruct ? 6 : 4);
  }

  /** Number of text ids actually in use (alphabet + <s> + </s> + merges); <= baseVocab. */
  get usedVocab(): number {
    return this.#firstMerge + this.merges.length;
  }

  /** The id of a special token ([PAD], [IMG], [/IMG], <image>, [USER], [ASSISTANT], <s>, </s>). */
  tokenToId(token: string): number {
    const id = this.#specialIds.get(token);
    if (id === undefined) throw new ValueError(`tokenToId: ${JSON.stringify(token)} is not a special token; known: ${[...this.#specialIds.keys()].join(' ')}`);
    return id;
  }

  /**
   * The string of an id: the special token's name for special ids, else the UTF-8 decoding of the
   * token's bytes (a token may hold part of a character: that part shows as U+FFFD).
   */
  idToToken(id: number): string {
    const special = this.#specialNames.get(id);
    if (special !== undefined) return special;
    if (!Number.isInteger(id) || id < 0 || id >= this.usedVocab) {
      throw new ValueError(`idToToken: id ${id} is not in use (text ids 0..${this.usedVocab - 1}, specials ${this.baseVocab}..${this.baseVocab + 5})`);
    }
    return utf8Lenient.decode(this.#bytes[id]);
  }

  /** The raw bytes of a text token (a copy); a ValueError for special or unused ids. */
  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.usedVocab || id === this.bos || id === this.eos) {
      throw new ValueError(`tokenBytes: id ${id} is not a text token`);
    }
    return this.#bytes[id].slice();
  }

  /** Is `id` one of <s>, </s> or the six special tokens? */
  isSpecial(id: number): boolean {
    return this.#specialNames.has(id);
  }

  /** Token ids of `text`: [<s>] + BPE of the text between special strings + the specials' ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new ValueError(`encode: text must be a string, got ${typeof text}`);
    const { bos = true, eos = false } = options;
    const ids: number[] = bos ? [this.bos] : [];
    for (const piece of splitSpecials(text)) {
      if (piece.special) {
        ids.push(this.#specialIds.get(piece.text)!);
        continue;
      }
      for (const word of words(piece.text)) {
        for (const id of this.#encodeWord(word)) ids.push(id);
      }
    }
    if (eos) ids.push(this.eos);
    return ids;
  }

  /**
   * The text of `ids`. Never throws on any number array: bytes that are not valid UTF-8 become
   * U+FFFD, and ids that are not in use (unused, out of range, not integers) become U+FFFD too.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const { skipSpecial = false } = options;
    let out = '';
    let pending: number[] = [];
    const flush = (): void => {
      if (pending.length) out += utf8Lenient.decode(Uint8Array.from(pending));
      pending = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const special = this.#specialNames.get(id);
      if (special !== undefined) {
        if (skipSpecial) continue;
        flush();
        out += special;
      } else if (Number.isInteger(id) && id >= 0 && id < this.usedVocab) {
        for (const byte of this.#bytes[id]) pending.push(byte);
      } else {
        flush();
        out += '\uFFFD';
      }
    }
    flush();
    return out;
  }

  toJSON(): TokenizerJSON {
    return {
      format: FORMAT,
      version: VERSION,
      baseVocab: this.baseVocab,
      alphabet: [...this.alphabet],
      merges: this.merges.map(([a, b]): [number, number] => [a, b]),
      specials: [...SPECIAL_TOKENS],
    };
  }

  /** A tokenizer from toJSON()'s object; a CheckpointError if the object is malformed. */
  static fromJSON(obj: unknown): Tokenizer {
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new CheckpointError('tokenizer: expected a JSON object');
    const o = obj as Record<string, unknown>;
    if (o.format !== FORMAT) throw new CheckpointError(`tokenizer: format is ${JSON.stringify(o.format)}, expected "${FORMAT}"`);
    if (o.version !== VERSION) throw new CheckpointError(`tokenizer: unsupported version ${JSON.stringify(o.version)} (this build reads ${VERSION})`);
    if (!Array.isArray(o.specials) || o.specials.join('\n') !== SPECIAL_TOKENS.join('\n')) {
      throw new CheckpointError(`tokenizer: specials must be ${SPECIAL_TOKENS.join(' ')} in this order`);
    }
    if (!Array.isArray(o.alphabet)) throw new CheckpointError('tokenizer: alphabet must be an array of byte values');
    const spec = { baseVocab: o.baseVocab, alphabet: o.alphabet, merges: o.merges } as TokenizerSpec;
    checkSpec(spec, CheckpointError);
    return new Tokenizer(spec);
  }

  /** Writes toJSON() to `path` atomically (a temporary file next to it, then a rename). */
  save(path: string): void {
    if (typeof path !== 'string' || path === '') throw new ValueError('save: path must be a non-empty string');
    try {
      writeFileAtomic(path, [Buffer.from(JSON.stringify(this.toJSON()))]);
    } catch (e) {
      throw new CheckpointError(`tokenizer: cannot save to ${path}: ${(e as Error).message}`);
    }
  }

  /** Reads a file written by save(); a CheckpointError if it is missing, not JSON, or malformed. */
  static load(path: string): Tokenizer {
    if (typeof path !== 'string' || path === '') throw new ValueError('load: path must be a non-empty string');
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CheckpointError(code === 'ENOENT' ? `tokenizer: file not found: ${path}` : `tokenizer: cannot read ${path}: ${(e as Error).message}`);
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new CheckpointError(`tokenizer: ${path} is not valid JSON (truncated or corrupt?): ${(e as Error).message}`);
    }
    try {
      return Tokenizer.fromJSON(obj);
    } catch (e) {
      if (e instanceof CheckpointError) throw new CheckpointError(`${e.message} (in ${path})`);
      throw e;
    }
  }

  /** BPE of one word: its bytes, then repeatedly the lowest-ranked adjacent pair merged everywhere. */
  #encodeWord(word: string): number[] {
    const cached = this.#cache.get(word);
    if (cached) return cached;
    let ids: number[] = [];
    for (const byte of utf8.encode(word)) {
      const id = this.#byteToId[byte];
      if (id < 0) {
        throw new ValueError(`encode: byte 0x${byte.toString(16).padStart(2, '0')} (in ${JSON.stringify(word)}) is not in this tokenizer's compact alphabet`);
      }
      ids.push(id);
    }
    // Applying the lowest rank first, everywhere, reproduces the order the merges were learned in.
    for (;;) {
      let best = Infinity;
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = this.#ranks.get(pairKey(ids[i], ids[i + 1]));
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) break;
      const [a, b] = this.merges[best];
      ids = mergePair(ids, a, b, this.#firstMerge + best);
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(word, ids);
    return ids;
  }
}

const CACHE_LIMIT = 50_000;

/** `ids` with every non-overlapping (a, b), left to right, replaced by `merged`. */
function mergePair(ids: number[], a: number, b: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(ids[i]);
    }
  }
  return out;
}

/** Throws `Err` unless spec is a consistent tokenizer description. */
function checkSpec(spec: TokenizerSpec, Err: new (message: string) => Error): void {
  const fail = (what: string): never => {
    throw new Err(`tokenizer: ${what}`);
  };
  if (typeof spec !== 'object' || spec === null) fail('spec must be an object');
  const { baseVocab, merges } = spec;
  const alphabet = spec.alphabet ?? Array.from({ length: 256 }, (_, i) => i);
  if (!Array.isArray(alphabet) || alphabet.length === 0 || alphabet.length > 256) fail('alphabet must be an array of 1..256 byte values');
  alphabet.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 0 || b > 255) fail(`alphabet[${i}] = ${JSON.stringify(b)} is not a byte value`);
    if (i > 0 && b <= alphabet[i - 1]) fail('alphabet must be strictly ascending');
  });
  if (!Number.isInteger(baseVocab) || baseVocab < alphabet.length + 2 || baseVocab >= PAIR_SHIFT - 6) {
    fail(`baseVocab = ${JSON.stringify(baseVocab)} must be an integer >= ${alphabet.length + 2} (alphabet + <s> + </s>)`);
  }
  if (!Array.isArray(merges)) fail('merges must be an array of [left, right] id pairs');
  const first = alphabet.length + 2;
  if (first + merges.length > baseVocab) fail(`${merges.length} merges do not fit below baseVocab ${baseVocab} (first merge id ${first})`);
  merges.forEach((m, i) => {
    const ok = (id: unknown): boolean => Number.isInteger(id) && (id as number) >= 0 && (id as number) < first + i && id !== first - 2 && id !== first - 1;
    if (!Array.isArray(m) || m.length !== 2 || !ok(m[0]) || !ok(m[1])) {
      fail(`merges[${i}] = ${JSON.stringify(m)} must join two earlier text ids (not <s> or </s>)`);
    }
  });
}

/**
 * Trains a byte-level BPE on `corpus` (an array of documents) up to `vocabSize` text ids.
 *
 * Deterministic: at every step the most frequent adjacent pair (counted over all words, weighted
 * by word frequency) is merged; ties go to the pair whose (left, right) byte strings come first
 * lexicographically. Stops at vocabSize, or when the best pair occurs fewer than minFrequency
 * times (then the ids up to vocabSize stay unused: the special ids still start at vocabSize).
 *
 * Efficient: pair counts are kept incrementally. Each merge touches only the words that contain
 * the merged pair (an index pair -> words), and a max-heap with lazy deletion finds the next best.
 */
export function trainBPE(corpus: string[], options: TrainOptions): Tokenizer {
  if (!Array.isArray(corpus) || corpus.some((d) => typeof d !== 'string')) throw new ValueError('trainBPE: corpus must be an array of strings');
  if (typeof options !== 'object' || options === null) throw new ValueError('trainBPE: options { vocabSize } are required');
  const { vocabSize, minFrequency = 2 } = options;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new ValueError(`trainBPE: minFrequency must be an integer >= 1, got ${minFrequency}`);
  const mode = options.alphabet ?? (vocabSize >= 258 ? 'bytes' : 'corpus');
  if (mode !== 'bytes' && mode !== 'corpus') throw new ValueError(`trainBPE: alphabet must be 'bytes' or 'corpus', got ${JSON.stringify(mode)}`);

  // 1. Unique words with their frequencies (special strings are cut out, as in encode).
  const wordFreq = new Map<string, number>();
  for (const doc of corpus) {
    for (const piece of splitSpecials(doc)) {
      if (piece.special) continue;
      for (const w of words(piece.text)) wordFreq.set(w, (wordFreq.get(w) ?? 0) + 1);
    }
  }
  const sortedWords = [...wordFreq.keys()].sort(); // fixed order: results never depend on Map order
  const wordBytes = sortedWords.map((w) => utf8.encode(w));

  let alphabet: number[];
  if (mode === 'bytes') {
    alphabet = Array.from({ length: 256 }, (_, i) => i);
  } else {
    const seen = new Uint8Array(256);
    for (const bytes of wordBytes) for (const b of bytes) seen[b] = 1;
    alphabet = [...seen.keys()].filter((b) => seen[b]);
    if (alphabet.length === 0) alphabet = [0x20];
  }
  if (!Number.isInteger(vocabSize) || vocabSize < alphabet.length + 2 || vocabSize >= PAIR_SHIFT - 6) {
    throw new ValueError(
      `trainBPE: vocabSize = ${vocabSize} must be an integer >= ${alphabet.length + 2} (${alphabet.length} ${mode === 'bytes' ? 'byte tokens' : 'bytes seen in the corpus'} + <s> + </s>)`,
    );
  }
  const byteToId = new Int32Array(256).fill(-1);
  alphabet.forEach((b, id) => (byteToId[b] = id));

  // 2. Symbols of each word, and the (latin1) byte string of each token for tie-breaking: comparing
  //    JS strings of code units 0..255 is comparing byte strings lexicographically.
  const syms: number[][] = wordBytes.map((bytes) => Array.from(bytes, (b) => byteToId[b]));
  const freq = sortedWords.map((w) => wordFreq.get(w)!);
  const tokenStr: string[] = alphabet.map((b) => String.fromCharCode(b));
  tokenStr.push('', ''); // <s>, </s>: never in a word

  const counts = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair -> words that contained it (may be stale/duplicated)
  const changed = new Set<number>();
  const addPairs = (w: number, sign: 1 | -1): void => {
    const s = syms[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = pairKey(s[i], s[i + 1]);
      counts.set(k, (counts.get(k) ?? 0) + sign * freq[w]);
      changed.add(k);
      if (sign > 0) {
        const list = where.get(k);
        if (list) {
          if (list[list.length - 1] !== w) list.push(w);
        } else {
          where.set(k, [w]);
        }
      }
    }
  };
  for (let w = 0; w < syms.length; w++) addPairs(w, 1);

  // 3. Max-heap of [count, pair]; an entry is valid only while counts.get(pair) still equals it.
  const heap = new PairHeap((a, b) => {
    const ka = a[1];
    const kb = b[1];
    if (a[0] !== b[0]) return a[0] > b[0];
    const la = tokenStr[Math.floor(ka / PAIR_SHIFT)];
    const lb = tokenStr[Math.floor(kb / PAIR_SHIFT)];
    if (la !== lb) return la < lb;
    return tokenStr[ka % PAIR_SHIFT] < tokenStr[kb % PAIR_SHIFT];
  });
  const pushChanged = (): void => {
    for (const k of changed) {
      const c = counts.get(k)!;
      if (c > 0) heap.push([c, k]);
      else counts.delete(k);
    }
    changed.clear();
  };
  pushChanged();

  const merges: [number, number][] = [];
  const stamp = new Int32Array(syms.length).fill(-1);
  let next = alphabet.length + 2;
  while (next < vocabSize) {
    let top: [number, number] | undefined;
    while ((top = heap.peek()) && counts.get(top[1]) !== top[0]) heap.pop();
    if (!top || top[0] < minFrequency) break;
    heap.pop();
    const key = top[1];
    const a = Math.floor(key / PAIR_SHIFT);
    const b = key % PAIR_SHIFT;
    const id = next++;
    merges.push([a, b]);
    tokenStr.push(tokenStr[a] + tokenStr[b]);
    // Re-count only the words that contain (a, b): remove their pairs, merge, add them back.
    for (const w of where.get(key) ?? []) {
      if (stamp[w] === id) continue; // already done in this step
      stamp[w] = id;
      const s = syms[w];
      let has = false;
      for (let i = 0; i + 1 < s.length && !has; i++) has = s[i] === a && s[i + 1] === b;
      if (!has) continue; // stale entry: an earlier merge removed the pair from this word
      addPairs(w, -1);
      syms[w] = mergePair(s, a, b, id);
      addPairs(w, 1);
    }
    where.delete(key);
    pushChanged();
  }
  return new Tokenizer({ baseVocab: vocabSize, alphabet, merges });
}

/** A binary heap; `before(x, y)` is true when x belongs nearer the top. */
class PairHeap {
  readonly #items: [number, number][] = [];
  constructor(private readonly before: (x: [number, number], y: [number, number]) => boolean) {}

  peek(): [number, number] | undefined {
    return this.#items[0];
  }

  push(item: [number, number]): void {
    const h = this.#items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): [number, number] | undefined {
    const h = this.#items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
