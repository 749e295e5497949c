// train.ts: `emu train`: a recipe's stages in order, each starting from the checkpoints of the
// ones before it (run_dir.ts), in one run folder.
//
// Order: the tokenizer (BPE trained on the run's text), clip (vision tower warm-up), lm (LLM
// text warm-up), pretrain (Emu's unified objective), vae, decoder (UNet on the frozen Emu's
// regressed embeddings), instruct (Emu-I's LoRA). `stages` runs a subset (`--stage NAME`), which
// needs the earlier stages' checkpoints in the folder. With `resume`, a stage that finished is
// skipped and a stage that was interrupted continues from its last checkpoint.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkDevice, type Device } from '../../tensor/device.ts';
import { DeviceError, ValueError } from '../../tensor/errors.ts';
import { defaultGenerator } from '../../tensor/random.ts';
import type { Json } from '../../nn/checkpoint.ts';
import { preset } from '../config.ts';
import { trainBPE, type Tokenizer } from '../tokenizer.ts';
import { DataLoader, type DataLoaderState } from '../data/loader.ts';
import type { MixtureEntry } from '../data/sources.ts';
import type { Sample } from '../data/sample.ts';
import { EOS, sampleText } from '../data/sample.ts';
import { IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE } from '../data/dialogue.ts';
import { plotCurves, seriesFromRecords } from '../io/plot.ts';
import { readJsonl } from '../io/jsonl.ts';
import { writeFileAtomic } from '../../nn/atomic_write.ts';
import { METRICS_FILE, runStage, type BatchSource, type StageSpec, type StepRecord } from './loop.ts';
import { RunDir, STAGES, type RunMeta, type StageName } from './run_dir.ts';
import { applyOverrides, captionSources, clipSources, instructSources, pairSources, pretrainSources, vaeSources, recipe as getRecipe, textOnly, type Recipe, type RecipeOverrides } from './recipe.ts';
import { sampleLength } from './samples.ts';
import { checkStageOptions, phasedBatches, type StageContext, type StageOptions } from './stage.ts';
import { CLIP_CONTEXT, clipStage, type Pair } from './stages/clip.ts';
import { decoderStage } from './stages/decoder.ts';
import { instructStage } from './stages/instruct.ts';
import { lmStage } from './stages/lm.ts';
import { CAPTION_WARMUP, pretrainStage } from './stages/pretrain.ts';
import { vaeStage } from './stages/vae.ts';

export interface TrainRunOptions {
  recipe: string;
  /** The run folder. */
  out: string;
  seed?: number;
  resume?: boolean;
  /** Run only these stages (default: all, in order). */
  stages?: StageName[];
  /** Overrides of every selected stage's options (--steps, --batch, --lr). */
  overrides?: Partial<StageOptions>;
  /** Overrides of the recipe itself (a config file): per-stage options, mixture, pool, checkpoint period. */
  recipeOverrides?: RecipeOverrides;
  /** Called after every step; and with each stage's name when it starts and ends. */
  onStep?: (stage: StageName, rec: StepRecord, total: number) => void;
  onStage?: (stage: StageName, event: 'start' | 'skip' | 'end', detail: string) => void;
  /** Stop the whole run after this many steps of this invocation, as if killed (tests). */
  stopAfter?: number;
  /** Where to train (default cpu); checkpoints are the same files on every device. */
  device?: Device;
}

/** Samples drawn from the training mixtures to train the tokenizer on. */
const TOKENIZER_SAMPLES = 3000;

export function train(opts: TrainRunOptions): RunDir {
  const device = checkDevice(opts.device ?? 'cpu', 'train');
  if (device === 'meta') throw new DeviceError('train: the meta device holds no values; train on cpu, sim or cuda');
  const r = applyOverrides(getRecipe(opts.recipe), opts.recipeOverrides ?? {});
  const run = new RunDir(opts.out);
  const meta = prepareMeta(run, r, opts);
  const tok = prepareTokenizer(run, meta, r);
  const selected = opts.stages ?? [...STAGES];
  let budget = opts.stopAfter ?? Infinity;
  for (const name of selected) if (!STAGES.includes(name)) throw new ValueError(`train: unknown stage '${name}'; the stages are ${STAGES.join(', ')}`);
  for (const name of STAGES.filter((s) => selected.includes(s))) {
    const options: StageOptions = { ...r.stages[name], ...opts.overrides };
    checkStageOptions(name, options);
    if (opts.resume && stageFinished(run, name, options.steps)) {
      opts.onStage?.(name, 'skip', 'already trained');
      continue;
    }
    const ctx: StageContext = { run, meta, tok, options, seed: ((meta.seed * 31 + STAGES.indexOf(name) + 1) >>> 0) % 2 ** 31, device };
    // Model initialisation and any op given no generator draw from the default generator:
    // seeding it per stage makes a stage's run independent of what ran before in the process,
    // and saving it with the checkpoint makes resume exact.
    defaultGenerator.manualSeed(ctx.seed);
    const spec = buildStage(name, ctx, r);
    spec.generators = { ...spec.generators, default: defaultGenerator };
    if (budget <= 0) break;
    opts.onStage?.(name, 'start', `${options.steps} steps, batch ${options.batch}`);
    const records = runStage(spec as StageSpec<unknown>, {
      dir: run.stageDir(name), checkpointEvery: r.checkpointEvery, resume: opts.resume,
      stopAfter: Number.isFinite(budget) ? budget : undefined,
      onStep: (rec, total) => { budget--; opts.onStep?.(name, rec, total); },
    });
    if (records.length < options.steps) break;
    const keys = Object.keys(records[0]?.losses ?? {});
    const plot = plotCurves(seriesFromRecords(records.map((x) => ({ step: x.step, ...x.losses })), keys), { title: `${name} losses`, logY: true });
    writeFileAtomic(join(run.stageDir(name), 'loss.png'), [plot]);
    opts.onStage?.(name, 'end', `loss ${records.at(-1)?.losses.loss.toFixed(4) ?? '-'}`);
  }
  return run;
}

function prepareMeta(run: RunDir, r: Recipe, opts: TrainRunOptions): RunMeta {
  if (existsSync(join(run.root, 'run.json'))) {
    const meta = run.readMeta();
    const was = (meta.recipe as { name?: string } | null)?.name;
    if (was !== r.name) throw new ValueError(`train: ${run.root} holds a '${String(was)}' run; use another --out or --recipe ${String(was)}`);
    if (opts.seed !== undefined && opts.seed !== meta.seed) throw new ValueError(`train: ${run.root} was trained with seed ${meta.seed}, not ${opts.seed}`);
    return meta;
  }
  const meta: RunMeta = { config: preset(r.preset), seed: opts.seed ?? 0, lora: { rank: 16, alpha: 16, dropout: 0.05 }, recipe: r };
  run.writeMeta(meta);
  return meta;
}

/** The run's tokenizer: trained once on text drawn from the training mixtures, then reused. */
function prepareTokenizer(run: RunDir, meta: RunMeta, r: Recipe): Tokenizer {
  if (existsSync(run.tokenizerPath)) return run.tokenizer();
  const corpus = [IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE];
  const sources = [...pretrainSources(r), ...instructSources()];
  const perSource = Math.ceil(TOKENIZER_SAMPLES / sources.length);
  for (const { source } of sources) {
    for (let i = 0; i < perSource; i++) corpus.push(sampleText(source.get(i % source.size), ' '));
  }
  const tok = trainBPE(corpus, { vocabSize: meta.config.llm.baseVocab });
  tok.save(run.tokenizerPath);
  return tok;
}

/** Whether a stage's checkpoint is at its last step. */
function stageFinished(run: RunDir, name: StageName, steps: number): boolean {
  const path = join(run.root, name, METRICS_FILE);
  if (!run.has(name) || !existsSync(path)) return false;
  return readJsonl(path).records.at(-1)?.step === steps - 1;
}

/** A DataLoader as the batch source of a stage, its samples mapped by `map`. */
function loaderSource<B>(ctx: StageContext, sources: MixtureEntry[], maxLen: number, measure: (s: Sample) => number,
  map: (samples: Sample[]) => B): BatchSource<B> {
  const loader = new DataLoader({ sources, batchSize: ctx.options.batch, seed: ctx.seed, maxLen, measure });
  return {
    next: () => map(loader.next().samples),
    state: () => loader.state() as unknown as Json,
    restore: (s) => loader.restore(s as unknown as DataLoaderState),
  };
}

/**
 * The (image, caption) pairs of a sample in which each image is directly followed by its text
 * (image-first pairs, shapesTwins): the clip stage's view of its samples.
 */
export function toPairs(s: Sample): Pair[] {
  const pairs: Pair[] = [];
  s.parts.forEach((p, i) => {
    if (!('image' in p)) return;
    const next = s.parts[i + 1];
    if (!next || !('text' in next) || next.text === EOS) throw new ValueError(`toPairs: an image of a ${s.kind} sample is not followed by its caption`);
    pairs.push({ image: p.image, caption: next.text.trim() });
  });
  if (pairs.length === 0) throw new ValueError(`toPairs: a ${s.kind} sample has no image`);
  return pairs;
}

/** An image-text pair sample as (image, caption). */
export function toPair(s: Sample): Pair {
  const image = s.parts.find((p) => 'image' in p);
  if (!image || !('image' in image)) throw new ValueError(`toPair: a ${s.kind} sample has no image`);
  const caption = s.parts.flatMap((p) => ('text' in p && p.text !== '</s>' ? [p.text] : [])).join(' ').trim();
  return { image: image.image, caption };
}

function buildStage(name: StageName, ctx: StageContext, r: Recipe): StageSpec<unknown> {
  const cfg = ctx.meta.config, tok = ctx.tok;
  const tokens = (s: Sample) => sampleLength(cfg, tok, s);
  const maxLen = cfg.llm.maxPositions;
  const captionTokens = (s: Sample) => Math.max(...toPairs(s).map((p) => tok.encode(p.caption).length + 1));
  switch (name) {
    case 'clip':
      return clipStage(ctx, loaderSource(ctx, clipSources(), CLIP_CONTEXT, captionTokens, (b) => b.flatMap(toPairs))) as StageSpec<unknown>;
    case 'lm': {
      const text = pretrainSources(r).map((e) => ({ source: textOnly(e.source), ratio: e.ratio }));
      return lmStage(ctx, loaderSource(ctx, text, maxLen, tokens, (b) => b)) as StageSpec<unknown>;
    }
    case 'pretrain': {
      // Captioning pairs first (CE only, see stages/pretrain.ts), then the full mixture.
      const captions = loaderSource(ctx, captionSources(), maxLen, tokens, (b) => b);
      const mixture = loaderSource(ctx, pretrainSources(r), maxLen, tokens, (b) => b);
      return pretrainStage(ctx, phasedBatches(captions, mixture, Math.round(CAPTION_WARMUP * ctx.options.steps)), r.pretrainRatio) as StageSpec<unknown>;
    }
    case 'vae':
      return vaeStage(ctx, loaderSource(ctx, vaeSources(), 1, () => 1, (b) => b.map((s) => toPair(s).image))) as StageSpec<unknown>;
    case 'decoder': {
      const pool = new DataLoader({ sources: pairSources(), batchSize: r.decoderPool, seed: ctx.seed, maxLen: 1, measure: () => 1 });
      return decoderStage(ctx, pool.next().samples.map(toPair)) as StageSpec<unknown>;
    }
    case 'instruct':
      return instructStage(ctx, loaderSource(ctx, instructSources(), maxLen, tokens, (b) => b)) as StageSpec<unknown>;
  }
}
