// suite.ts: `emu eval`: a trained run measured on held-out data it never saw (seeds of the
// heldOut split, MNIST's held-out fifth), in the shape of the paper's tables:
//
//   Table 1 (zero-shot)  Emu-I captioning (CIDEr-D on shapes scenes and on digits), VQA
//                        accuracy, video QA accuracy; the pretrained Emu's captioning with no
//                        examples; and the chance rows: a wrong scene's caption, the majority
//                        training answer of each question type; and VQA accuracy by question
//                        type beside that type's majority answer (where grounding is missing,
//                        a type sits at its majority).
//   Visual embeddings    linear probes of the pretrained Emu's visual embeddings for a lone
//                        shape's kind, colour and size and the shape count, and what its LLM
//                        reads of kind and colour (probe.ts).
//   Table 3 (few-shot)   the pretrained Emu captioning after k = 2, 4, 8 in-context examples.
//   Text-to-image        shapes generated from a description and read back (colour, shape,
//                        size, position, count) against a wrong-scene baseline; digits generated
//                        from "a handwritten seven" scored by an engine-trained classifier
//                        (accuracy, and FID on its features against held-out real digits); and
//                        the ceiling: the targets drawn cleanly and passed through the VAE alone.
// Every number is computed from these items alone; the items themselves are kept for the report.
import { join } from 'node:path';
import { ValueError } from '../../tensor/errors.ts';
import { scene, render, caption as sceneCaptions, vqa as sceneQuestions, phrase, article, relation, numberWord, REL_PHRASE, type Scene } from '../data/shapes.ts';
import { clip, renderClip, videoQA as clipQuestions } from '../data/video.ts';
import { mnistEntries, mnistImage, digitCaption } from '../data/mnist.ts';
import { rngFor, splitSeed } from '../data/splits.ts';
import type { Trained } from '../train/run_dir.ts';
import { DECODING, caption, fewShot, reconstruct, textToImage, videoQA, vqa, type Decoding } from '../infer/tasks.ts';
import { ciderD } from './cider.ts';
import { emuShortAnswer, vqaCorpusAccuracy } from './vqa.ts';
import { attributeAccuracy, attributeBaseline, type AttributeAccuracy, type GeneratedScene } from './attributes.ts';
import { digitAccuracy, digitFid, loadOrTrainDigitClassifier } from './digits.ts';
import { probeVisualEmbeddings, type VisualProbes } from './probe.ts';

export interface EvalOptions {
  /** Held-out scenes captioned and questioned. */
  scenes: number;
  /** Held-out clips questioned. */
  clips: number;
  /** Held-out digits captioned. */
  digits: number;
  /** Queries per few-shot setting. */
  fewShotQueries: number;
  /** Images generated from descriptions of held-out scenes, and digits generated per label. */
  images: number;
  digitsPerLabel: number;
  /** Sampler steps and guidance of image generation. */
  steps: number;
  guidance: number;
  /** Beam width of text generation. */
  beams: number;
  /** Held-out scenes the visual-embedding probes are scored on (fitted on 5x as many training scenes). */
  probeScenes: number;
  /** Held-out scenes of one shape whose captions are scored for what the LLM reads (probe.ts). */
  readScenes: number;
  /** Where the digit classifier is cached (trained once, on MNIST's training split). */
  classifierPath: string;
  onProgress?: (task: string, done: number, total: number) => void;
}

export const EVAL_SIZES: Record<'quick' | 'full', Omit<EvalOptions, 'classifierPath' | 'onProgress'>> = {
  quick: { scenes: 12, clips: 8, digits: 10, fewShotQueries: 6, images: 8, digitsPerLabel: 1, steps: 20, guidance: 3, beams: 2, probeScenes: 100, readScenes: 12 },
  full: { scenes: 60, clips: 32, digits: 40, fewShotQueries: 20, images: 36, digitsPerLabel: 3, steps: 25, guidance: 3, beams: 3, probeScenes: 600, readScenes: 60 },
};

/** One text answer beside the truth, for the report. */
export interface TextSample {
  image: Float32Array | Float32Array[];
  prompt?: string;
  generated: string;
  truth: string;
}

export interface ImageSample {
  prompt: string;
  pixels: Float32Array;
  /** The intended scene (shapes) or digit label. */
  scene?: Scene;
  label?: number;
}

export interface EvalResults {
  options: Omit<EvalOptions, 'onProgress'>;
  zeroShot: { name: string; results: Record<string, number | null> }[];
  fewShot: { name: string; results: Record<string, Record<number, number | null>> }[];
  textToImage: { name: string; results: Record<string, number | null> }[];
  samples: { captions: TextSample[]; answers: TextSample[]; videoAnswers: TextSample[]; digitCaptions: TextSample[]; fewShot: TextSample[] };
  images: ImageSample[];
  /** Emu-I's VQA accuracy per question type ("what shape", "is there", ...), with the type's majority-answer accuracy. */
  vqaByType: { type: string; questions: number; accuracy: number; majority: number }[];
  /** What the pretrained Emu's visual embeddings carry and what its LLM reads (probe.ts). */
  visual: VisualProbes;
  seconds: number;
}

const heldOutScenes = (n: number, from = 0): Scene[] => Array.from({ length: n }, (_, i) => scene(splitSeed('heldOut', from + i)));

/** Five reference captions of a scene (different templates, as COCO has five per image). */
function references(sc: Scene, seed: number): string[] {
  return Array.from({ length: 5 }, (_, k) => sceneCaptions(sc, rngFor(seed, 100 + k)));
}

/** Questions asked per held-out scene (a scene has 4-14; 2 gave too few per type to compare types). */
export const QUESTIONS_PER_SCENE = 4;

/** n of a scene's questions, evenly spread over the list and rotating with the scene's index. */
function pickSpread<T>(qs: T[], i: number, n: number): T[] {
  if (qs.length <= n) return qs;
  return Array.from({ length: n }, (_, k) => qs[(i + Math.floor((k * qs.length) / n)) % qs.length]);
}

/** The kind of a question: its first two words ("what colour", "how many", "is there"). */
const questionType = (q: string) => q.split(' ').slice(0, 2).join(' ');

/** Majority training answer of each question type: the chance level a model must beat. */
function majorityAnswers(questions: { question: string; answer: string }[]): Map<string, string> {
  const counts = new Map<string, Map<string, number>>();
  for (const { question, answer } of questions) {
    const t = questionType(question);
    const m = counts.get(t) ?? new Map<string, number>();
    m.set(answer, (m.get(answer) ?? 0) + 1);
    counts.set(t, m);
  }
  return new Map([...counts].map(([t, m]) => [t, [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0][0]]));
}

/** Accuracy on `test` of answering each question with its type's majority answer in `major`. */
function majorityMapAccuracy(major: Map<string, string>, test: { question: string; answer: string }[]): number {
  return vqaCorpusAccuracy(test.map((q) => ({ prediction: major.get(questionType(q.question)) ?? '', answers: [q.answer] }))).accuracy;
}

function majorityAccuracy(train: { question: string; answer: string }[], test: { question: string; answer: string }[]): number {
  return majorityMapAccuracy(majorityAnswers(train), test);
}

/** Accuracy of `answers` per question type, beside the majority training answer's on the same questions. */
function accuracyByType(train: { question: string; answer: string }[], test: { question: string; answer: string }[], answers: string[]): EvalResults['vqaByType'] {
  const types = [...new Set(test.map((q) => questionType(q.question)))];
  const major = majorityAnswers(train);
  return types.map((type) => {
    const idx = test.flatMap((q, i) => (questionType(q.question) === type ? [i] : []));
    const qs = idx.map((i) => test[i]);
    return {
      type, questions: idx.length,
      accuracy: vqaCorpusAccuracy(idx.map((i) => ({ prediction: answers[i], answers: [test[i].answer] }))).accuracy,
      majority: majorityMapAccuracy(major, qs),
    };
  });
}

/** A description of a held-out scene in the training captions' words, and the relation it states. */
export function describeScene(sc: Scene): GeneratedScene & { prompt: string } {
  const np = (i: number) => { const p = phrase(sc.shapes[i], true); return `${article(p)} ${p}`; };
  if (sc.shapes.length === 1) return { scene: sc, pixels: new Float32Array(0), prompt: np(0), relations: [] };
  const rel = relation(sc.shapes[0], sc.shapes[1]);
  return { scene: sc, pixels: new Float32Array(0), prompt: `${np(0)} ${REL_PHRASE[rel]} ${np(1)}`, relations: [{ a: 0, relation: rel, b: 1 }] };
}

/**
 * The chance row's wrong digit for item i: the next item (cyclically) of another label. The
 * entries are sorted by label, so the plain next item is usually the same digit, whose caption
 * would be right, not chance. With a single label there is none: i + 1.
 */
export function wrongLabelIndex(labels: readonly number[], i: number): number {
  for (let k = 1; k < labels.length; k++) if (labels[(i + k) % labels.length] !== labels[i]) return (i + k) % labels.length;
  return (i + 1) % labels.length;
}

export function evaluate(trained: Trained, opts: EvalOptions): EvalResults {
  const t0 = performance.now();
  for (const k of ['scenes', 'clips', 'digits', 'fewShotQueries', 'images', 'digitsPerLabel', 'steps', 'beams', 'probeScenes', 'readScenes'] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new ValueError(`evaluate: ${k} must be a positive integer, got ${String(opts[k])}`);
  }
  const progress = opts.onProgress ?? (() => {});
  const text: Decoding = { strategy: 'beam', numBeams: opts.beams };
  const samples: EvalResults['samples'] = { captions: [], answers: [], videoAnswers: [], digitCaptions: [], fewShot: [] };
  const zero: Record<string, number | null> = {}, chance: Record<string, number | null> = {}, pretrainedRow: Record<string, number | null> = {};
  let vqaByType: EvalResults['vqaByType'] = [];

  // Captioning and VQA on held-out scenes (Emu-I).
  const scenes = heldOutScenes(opts.scenes);
  const seeds = scenes.map((_, i) => splitSeed('heldOut', i));
  const refs = scenes.map((sc, i) => references(sc, seeds[i]));
  const images = scenes.map((sc) => render(sc));
  // QUESTIONS_PER_SCENE per scene, of different kinds across scenes (vqa() lists the count question first).
  const asked = scenes.map((sc, i) => pickSpread(sceneQuestions(sc, rngFor(seeds[i], 7)), i, QUESTIONS_PER_SCENE));
  const questions = asked.flat();
  const questionImage = asked.flatMap((qs, i) => qs.map(() => i));
  const trainQuestions = Array.from({ length: 400 }, (_, i) => sceneQuestions(scene(splitSeed('train', i)), rngFor(splitSeed('train', i), 7))).flat();
  chance.caption = ciderD(refs.map((_, i) => refs[(i + 1) % refs.length][0]), refs).score;
  chance.vqa = majorityAccuracy(trainQuestions, questions);
  if (trained.emuI) {
    const generated = images.map((img, i) => {
      progress('caption', i, images.length);
      return caption(trained, img, { decoding: { ...text, maxNewTokens: 32 } }).text;
    });
    zero.caption = ciderD(generated, refs).score;
    generated.forEach((g, i) => samples.captions.push({ image: images[i], generated: g, truth: refs[i][0] }));
    const answers = questions.map((q, i) => {
      progress('vqa', i, questions.length);
      return vqa(trained, images[questionImage[i]], q.question, { decoding: { ...text, maxNewTokens: 8 } }).text;
    });
    zero.vqa = vqaCorpusAccuracy(answers.map((a, i) => ({ prediction: a, answers: [questions[i].answer] }))).accuracy;
    vqaByType = accuracyByType(trainQuestions, questions, answers);
    answers.forEach((a, i) => samples.answers.push({ image: images[questionImage[i]], prompt: questions[i].question, generated: a, truth: questions[i].answer }));
  }

  // Video QA on held-out clips (Emu-I).
  const clips = Array.from({ length: opts.clips }, (_, i) => clip(splitSeed('heldOut', 100000 + i)));
  const clipQs = clips.map((c, i) => {
    const qs = clipQuestions(c, rngFor(splitSeed('heldOut', 100000 + i), 7));
    return qs[i % qs.length];
  });
  const trainClipQs = Array.from({ length: 400 }, (_, i) => clipQuestions(clip(splitSeed('train', i)), rngFor(splitSeed('train', i), 7))).flat();
  chance.videoQa = majorityAccuracy(trainClipQs, clipQs);
  if (trained.emuI) {
    const answers = clips.map((c, i) => {
      progress('video QA', i, clips.length);
      const frames = renderClip(c);
      // Short-answer questions: decoded as VQA is (length penalty -1), not with the video task's
      // default +1, under which beams that run on into a caption outscore " one</s>".
      const a = emuShortAnswer(videoQA(trained, frames, clipQs[i].question, { decoding: { ...text, lengthPenalty: DECODING.vqa.lengthPenalty, maxNewTokens: 8 } }).text);
      samples.videoAnswers.push({ image: frames, prompt: clipQs[i].question, generated: a, truth: clipQs[i].answer });
      return a;
    });
    zero.videoQa = vqaCorpusAccuracy(answers.map((a, i) => ({ prediction: a, answers: [clipQs[i].answer] }))).accuracy;
  }

  // Digit captioning (Emu-I): references are the caption templates of the true label.
  const digits = mnistEntries('heldOut').filter((_, i) => i % Math.floor(1996 / opts.digits) === 0).slice(0, opts.digits);
  const digitRefs = digits.map((d) => Array.from({ length: 6 }, (_, k) => digitCaption(d.label, rngFor(d.label * 1000 + k, 5))));
  const labels = digits.map((d) => d.label);
  chance.digitCaption = ciderD(digitRefs.map((_, i) => digitRefs[wrongLabelIndex(labels, i)][0]), digitRefs).score;
  if (trained.emuI) {
    const generated = digits.map((d, i) => {
      progress('digit caption', i, digits.length);
      const g = caption(trained, mnistImage(d), { decoding: { ...text, maxNewTokens: 32 } }).text;
      samples.digitCaptions.push({ image: mnistImage(d), generated: g, truth: digitRefs[i][0] });
      return g;
    });
    zero.digitCaption = ciderD(generated, digitRefs).score;
  }

  // The pretrained Emu: captioning with k in-context examples from the training split (k = 0 is Table 1's row).
  const ks = [0, 2, 4, 8];
  const fewCaption: Record<number, number | null> = {};
  const queries = heldOutScenes(opts.fewShotQueries, 50000);
  const qRefs = queries.map((sc, i) => references(sc, splitSeed('heldOut', 50000 + i)));
  for (const k of ks) {
    const generated = queries.map((sc, i) => {
      progress(`few-shot k=${k}`, i, queries.length);
      const examples = Array.from({ length: k }, (_, j) => {
        const s = splitSeed('train', 9000 + i * 8 + j);
        // Each example's text is a sentence with its full stop, as in the interleaved documents
        // the pretrained model read: after "caption{I}" without one it has only seen text-first
        // pairs, which end there, and answers with an immediate </s>.
        return { image: render(scene(s)), text: `${sceneCaptions(scene(s), rngFor(s, 1))}.` };
      });
      const g = fewShot(trained, examples, render(sc), { decoding: { ...text, maxNewTokens: 32 } }).text;
      if (k === 2) samples.fewShot.push({ image: render(sc), generated: g, truth: qRefs[i][0] });
      return g;
    });
    fewCaption[k] = ciderD(generated, qRefs).score;
  }
  pretrainedRow.caption = fewCaption[0];

  // What the pretrained Emu's visual embeddings carry, and what its LLM reads of them.
  progress('visual probes', 0, 1);
  const visual = probeVisualEmbeddings(trained.emu, trained.tok, { train: 5 * opts.probeScenes, test: opts.probeScenes, read: opts.readScenes });

  // Text-to-image: descriptions of held-out scenes of one or two shapes, read back from the pixels.
  const imagesOut: ImageSample[] = [];
  const t2i: { name: string; results: Record<string, number | null> }[] = [];
  if (trained.unet) {
    // Images at the data's side (the decoder is trained on 32x32 pictures whatever the vision tower's input size).
    const sampling = { steps: opts.steps, guidanceScale: opts.guidance, sampler: 'ddim' as const, size: 32 };
    const targets = heldOutScenes(opts.images * 3, 70000).filter((sc) => sc.shapes.length <= 2).slice(0, opts.images).map(describeScene);
    const gen = targets.map((t, i) => {
      progress('text-to-image', i, targets.length);
      const { pixels } = textToImage(trained, t.prompt, { ...sampling, seed: i });
      imagesOut.push({ prompt: t.prompt, pixels, scene: t.scene });
      return { ...t, pixels };
    });
    const acc = attributeAccuracy(gen);
    const base = attributeBaseline(targets.map((t) => t.scene));
    const labels = Array.from({ length: 10 * opts.digitsPerLabel }, (_, i) => i % 10);
    const digitImages = labels.map((label, i) => {
      progress('digits', i, labels.length);
      const prompt = `a handwritten ${numberWord(label)}`;
      const { pixels } = textToImage(trained, prompt, { ...sampling, seed: 1000 + i });
      imagesOut.push({ prompt, pixels, label });
      return pixels;
    });
    const classifier = loadOrTrainDigitClassifier(opts.classifierPath);
    const real = mnistEntries('heldOut').filter((_, i) => i % 20 === 0).map((e) => mnistImage(e));
    const row = (a: AttributeAccuracy) => ({ color: a.color, shape: a.shape, size: a.size, position: a.position, count: a.count });
    t2i.push({ name: 'Emu (tiny)', results: { ...row(acc), digit: digitAccuracy(classifier, digitImages, labels), fid: digitFid(classifier, digitImages, real) } });
    t2i.push({ name: 'chance (wrong scene / 1 in 10)', results: { ...row(base), digit: 0.1, fid: null } });
    // The ceiling: the same scenes, and held-out digits other than the FID's, drawn cleanly and
    // passed through the VAE alone. What the checker and classifier read of these bounds what any
    // UNet over this VAE's latents could score.
    const ceiling = attributeAccuracy(targets.map((t) => ({ ...t, pixels: reconstruct(trained, render(t.scene)).pixels })));
    const unused = mnistEntries('heldOut').filter((_, i) => i % 20 === 10);
    const others = Array.from({ length: 10 }, (_, d) => unused.filter((e) => e.label === d).slice(0, opts.digitsPerLabel)).flat();
    const rebuilt = others.map((e) => reconstruct(trained, mnistImage(e)).pixels);
    t2i.push({ name: 'VAE reconstruction of the target (ceiling)', results: {
      ...row(ceiling), digit: digitAccuracy(classifier, rebuilt, others.map((e) => e.label)), fid: digitFid(classifier, rebuilt, real),
    } });
  }

  return {
    options: { ...opts, onProgress: undefined } as EvalResults['options'],
    zeroShot: [
      { name: 'Emu (tiny), pretrained', results: pretrainedRow },
      { name: 'Emu-I (tiny)', results: zero },
      { name: 'chance (wrong scene / majority answer)', results: chance },
    ],
    fewShot: [{ name: 'Emu (tiny), pretrained', results: { caption: fewCaption } }],
    textToImage: t2i,
    samples,
    images: imagesOut,
    vqaByType,
    visual,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Where evaluate() caches the digit classifier for a run folder. */
export const classifierPathFor = (root: string): string => join(root, 'digits.safetensors');

