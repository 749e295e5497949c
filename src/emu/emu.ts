// emu.ts: the Emu model: EVA-CLIP vision tower -> ln_visual -> Causal Transformer -> N visual
// embeddings written into the LLaMA input sequence at the <image> slots, and the unified loss
// (shared/reference/emu-architecture.md sections 1 and 2).
//
// Sequence layout. A sample is a list of parts; text is BPE-encoded (BOS once at the start),
// each image becomes [IMG] + N x <image> + [/IMG], a video its frames as consecutive image
// blocks; the data pipeline appends EOS for training. Images are consumed in order of
// appearance, row-major over the batch.
//
// The loss of one forward pass:
//  - cross-entropy on text only: logits at t predict token t+1; targets [PAD], [IMG], [/IMG] and
//    <image> are ignored; mean over the rest;
//  - regression: the regress-head output at [IMG] regresses z1, at z_k regresses z_(k+1), at
//    z_N regresses the [/IMG] input embedding; targets are the (detached) input embeddings;
//    MSE mean over all regressed elements;
//  - total = CE + regressionWeight * MSE.
// State-dict names follow the released implementation: visual.*, ln_visual.*, cformer.*,
// decoder.lm.* (with decoder.lm.stu_regress_head.*).
import type { Device } from '../tensor/device.ts';
import type { DType } from '../tensor/dtype.ts';
import { ShapeError, ValueError } from '../tensor/errors.ts';
import type { Generator } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { tidy } from '../tensor/memory.ts';
import { noGrad } from '../autograd/grad_mode.ts';
import { fromValues } from '../tensor/ops/creation.ts';
import { indexSelect } from '../tensor/ops/linalg.ts';
import { cat, reshape } from '../tensor/ops/views.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm } from '../nn/layers.ts';
import * as F from '../nn/functional.ts';
import { CausalTransformer } from './cformer.ts';
import { vocabSize, type EmuConfig } from './config.ts';
import { generateText, regressVisual, type GenerateOptions, type GenerateResult } from './generate.ts';
import { LlamaForReg } from './llama.ts';
import type { Tokenizer } from './tokenizer.ts';
import { VisionEncoder, createLnVisual } from './vision.ts';

/**
 * One part of an interleaved sample: text, an image [3,S,S], or a video as frames. A text part
 * marked `target` restricts the cross-entropy: once any part of a sample is marked, only the
 * tokens of marked parts are CE targets (instruction tuning: the loss is on answers only).
 */
export type Part = { text: string; target?: boolean } | { image: Tensor } | { video: Tensor[] };

/** A tokenized sample: ids, its images in order, and (when some part is marked) the CE target flags. */
export interface TokenizedSample {
  ids: number[];
  images: Tensor[];
  targets?: boolean[];
}

export interface EmuOptions {
  dtype?: DType;
  device?: Device;
  generator?: Generator;
  /** Include [USER] and [ASSISTANT] in the vocabulary (Emu-I). */
  instruct?: boolean;
}

/** Holds `lm` so the LLM's names come out as decoder.lm.* as in the release. */
class Decoder extends Module {
  lm: LlamaForReg;
  constructor(lm: LlamaForReg) {
    super();
    this.lm = this.module('lm', lm);
  }
}

/** A batch ready for the model: right-padded ids and the images in order of appearance. */
export interface EmuBatch {
  ids: number[][];
  images: Tensor[];
  /** Per position: may this token be a CE target (absent: every text token may). */
  targets?: boolean[][];
}

export interface EmuLosses {
  loss: Tensor;
  ce: Tensor;
  mse: Tensor;
  /** Counts for sanity checks: CE targets, <image> slots, regression pairs. */
  counts: { ceTargets: number; imageSlots: number; regressPairs: number };
}

export class Emu extends Module {
  readonly cfg: EmuConfig;
  visual: VisionEncoder;
  ln_visual: LayerNorm;
  cformer: CausalTransformer;
  decoder: Decoder;

  constructor(cfg: EmuConfig, opts: EmuOptions = {}) {
    super();
    this.cfg = cfg;
    const vocab = vocabSize(cfg.llm, opts.instruct ?? false);
    const t = { dtype: opts.dtype, device: opts.device, generator: opts.generator };
    this.visual = this.module('visual', new VisionEncoder(cfg.vision, t));
    this.ln_visual = this.module('ln_visual', createLnVisual(cfg.vision, t));
    this.cformer = this.module('cformer', new CausalTransformer(cfg.cformer, cfg.vision.width, cfg.llm.hidden, t));
    this.decoder = this.module('decoder', new Decoder(new LlamaForReg(cfg.llm, { ...t, vocabSize: vocab, padId: this.ids.pad })));
  }

  get lm(): LlamaForReg {
    return this.decoder.lm;
  }

  /** The special-token ids (they follow the base vocabulary, in the reference order). */
  get ids(): { pad: number; img: number; imgEnd: number; image: number; user: number; assistant: number } {
    const b = this.cfg.llm.baseVocab;
    return { pad: b, img: b + 1, imgEnd: b + 2, image: b + 3, user: b + 4, assistant: b + 5 };
  }

  /** Pixels [M,3,S,S] -> the N visual embeddings per image [M, N, H]. */
  encodeImages(pixels: Tensor): Tensor {
    return tidy(() => this.cformer.forward(this.ln_visual.forward(this.visual.forward(pixels))));
  }

  /**
   * Token ids of a sample, and its images in order (BOS first; EOS when asked: the EOS is a
   * target when the last part is).
   */
  tokenize(tok: Tokenizer, parts: Part[], opts: { eos?: boolean } = {}): TokenizedSample {
    const ids: number[] = [tok.bos];
    const images: Tensor[] = [];
    const flags: boolean[] = [false];
    const marked = parts.some((p) => 'text' in p && p.target !== undefined);
    const N = this.cfg.cformer.numQueries;
    const push = (xs: number[], target: boolean) => {
      for (const x of xs) { ids.push(x); flags.push(target); }
    };
    const imageBlock = () => push([this.ids.img, ...new Array<number>(N).fill(this.ids.image), this.ids.imgEnd], false);
    let lastTarget = false;
    for (const p of parts) {
      if ('text' in p) {
        if (typeof p.text !== 'string') throw new ValueError('Emu.tokenize: a text part must hold a string');
        lastTarget = p.target === true;
        push(tok.encode(p.text, { bos: false }), lastTarget);
      } else if ('image' in p) {
        imageBlock();
        images.push(p.image);
        lastTarget = false;
      } else if ('video' in p) {
        for (const frame of p.video) {
          imageBlock();
          images.push(frame);
        }
        lastTarget = false;
      } else throw new ValueError('Emu.tokenize: a part must have text, image or video');
    }
    if (opts.eos) push([tok.eos], lastTarget);
    return marked ? { ids, images, targets: flags } : { ids, images };
  }

  /**
   * Input embeddings [B, L, H] for right-padded ids with the visual embeddings z [M, N, H]
   * written into the <image> slots in order (differentiably: one indexSelect over
   * [token embeddings; z]).
   */
  embedWithImages(ids: number[][], z: Tensor | null): Tensor {
    const B = ids.length, L = ids[0].length, H = this.cfg.llm.hidden;
    const flatIds = ids.flat();
    const slots = flatIds.reduce((n, id) => n + (id === this.ids.image ? 1 : 0), 0);
    const zRows = z ? z.shape[0] * z.shape[1] : 0;
    if (slots !== zRows) throw new ShapeError(`Emu: ${slots} <image> slots but ${zRows} visual embeddings`);
    return tidy(() => {
      const idT = fromValues(flatIds, [B, L], 'i32', this.lm.model.embed_tokens.weight.device);
      const tokens = reshape(this.lm.embed(idT), [B * L, H]);
      if (!z) return reshape(tokens, [B, L, H]);
      const table = cat([tokens, reshape(z.to(tokens.dtype), [zRows, H])], 0);
      let k = 0;
      const source = flatIds.map((id, p) => (id === this.ids.image ? B * L + k++ : p));
      const rows = indexSelect(table, 0, fromValues(source, [B * L], 'i32', table.device));
      return reshape(rows, [B, L, H]);
    });
  }

  /** Right-pads samples with [PAD] into a batch (target flags padded with false). */
  collate(samples: TokenizedSample[]): EmuBatch {
    if (samples.length === 0) throw new ValueError('Emu.collate: no samples');
    const L = Math.max(...samples.map((s) => s.ids.length));
    const batch: EmuBatch = {
      ids: samples.map((s) => [...s.ids, ...new Array<number>(L - s.ids.length).fill(this.ids.pad)]),
      images: samples.flatMap((s) => s.images),
    };
    if (samples.some((s) => s.targets)) {
      batch.targets = samples.map((s) => [...(s.targets ?? s.ids.map(() => true)), ...new Array<boolean>(L - s.ids.length).fill(false)]);
    }
    return batch;
  }

  /** The unified CE + regression loss of one forward pass over a batch. */
  loss(batch: EmuBatch, opts: { regressionWeight?: number } = {}): EmuLosses {
    const { ids, images, targets: allowed } = batch;
    const lambda = opts.regressionWeight ?? this.cfg.regressionWeight;
    const B = ids.length, L = ids[0].length, H = this.cfg.llm.hidden;
    const { pad, img, imgEnd, image } = this.ids;
    return tidy(() => {
      const z = images.length ? this.encodeImages(images.length === 1 ? images[0].unsqueeze(0) : stackImages(images)) : null;
      const embeds = this.embedWithImages(ids, z);
      const mask = fromValues(ids.flat().map((id) => (id === pad ? 0 : 1)), [B, L], 'bool', embeds.device);
      const out = this.lm.forward(embeds, { attentionMask: mask, regress: true });
      // Cross-entropy: logits at t predict id t+1; special and pad targets are ignored.
      const ignored = new Set([pad, img, imgEnd, image]);
      const targets: number[] = [];
      ids.forEach((row, b) => {
        for (let t = 1; t <= L; t++) targets.push(t < L && !ignored.has(row[t]) && (!allowed || allowed[b][t]) ? row[t] : -100);
      });
      const ceTargets = targets.filter((t) => t !== -100).length;
      const ce = F.crossEntropy(out.logits!, fromValues(targets, [B, L], 'i32', embeds.device), { ignoreIndex: -100 });
      // Regression pairs: outputs at [IMG] and <image> -> inputs at <image> and [/IMG], in order.
      const from: number[] = [], to: number[] = [];
      ids.forEach((row, b) => row.forEach((id, t) => {
        if (id === img || id === image) from.push(b * L + t);
        if (id === image || id === imgEnd) to.push(b * L + t);
      }));
      if (from.length !== to.length) throw new ShapeError(`Emu: ${from.length} regressed outputs but ${to.length} targets (unbalanced [IMG] blocks?)`);
      let mse: Tensor;
      if (from.length) {
        const pred = indexSelect(reshape(out.regress!, [B * L, H]), 0, fromValues(from, [from.length], 'i32', embeds.device));
        const target = indexSelect(reshape(embeds, [B * L, H]), 0, fromValues(to, [to.length], 'i32', embeds.device)).detach();
        mse = F.mseLoss(pred, target);
      } else {
        mse = ce.mul(0);
      }
      const loss = lambda === 0 ? ce.add(mse.mul(0)) : ce.add(mse.mul(lambda));
      const imageSlots = ids.flat().filter((id) => id === image).length;
      return { loss, ce, mse, counts: { ceTargets, imageSlots, regressPairs: from.length } };
    });
  }
}

export interface EmuTextResult extends GenerateResult {
  text: string;
}

/** Input embeddings [1, L, H] of a prompt (its images encoded and written into their slots). */
function promptEmbeds(model: Emu, tok: Tokenizer, parts: Part[]): Tensor {
  const { ids, images } = model.tokenize(tok, parts);
  return tidy(() => model.embedWithImages([ids], images.length ? model.encodeImages(stackImages(images)) : null));
}

/**
 * Text continuing an interleaved prompt (captioning, VQA, chat, in-context prompts): the
 * prompt's images go through the vision path into their <image> slots, then the LLM decodes
 * with its KV cache. EOS defaults to the tokenizer's.
 */
export function emuGenerate(model: Emu, tok: Tokenizer, parts: Part[], opts: GenerateOptions = {}): EmuTextResult {
  return noGrad(() => {
    const prefix = promptEmbeds(model, tok, parts);
    try {
      const r = generateText(model.lm, prefix, { eos: tok.eos, ...opts });
      return { ...r, text: tok.decode(r.tokens, { skipSpecial: true }) };
    } finally {
      prefix.dispose();
    }
  });
}

/**
 * The N visual embeddings Emu regresses after `[IMG]` for a prompt [1, N, H] (text-to-image,
 * blending, in-context generation): greedy regression with the KV cache, which equals the
 * reference's full-recompute loop (spec 4.3). The empty prompt gives the unconditional branch
 * of classifier-free guidance.
 */
export function emuVisualEmbeddings(model: Emu, tok: Tokenizer, parts: Part[]): Tensor {
  return noGrad(() => tidy(() => {
    const prefix = promptEmbeds(model, tok, parts);
    const img = model.lm.embed(fromValues([model.ids.img], [1], 'i32', prefix.device));
    return regressVisual(model.lm, prefix, img, model.cfg.cformer.numQueries);
  }));
}

function stackImages(images: Tensor[]): Tensor {
  return cat(images.map((x) => x.unsqueeze(0)), 0);
}
