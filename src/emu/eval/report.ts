// report.ts: runs/<name>/report.md from an evaluation: the paper-shaped tables, each stage's
// loss curves, the generated images in grids with their prompts, and sample captions and answers
// beside the ground truth, with every picture written as a PNG next to it (report/) and the
// numbers as JSON (results.json) for scripts.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../nn/atomic_write.ts';
import { imageGrid, writeImage } from '../io/image.ts';
import type { Device } from '../../tensor/device.ts';
import { loadForInference } from '../infer/tasks.ts';
import { STAGES } from '../train/run_dir.ts';
import { EVAL_SIZES, classifierPathFor, evaluate, type EvalOptions, type EvalResults, type TextSample } from './suite.ts';
import { fewShotTable, TEXT_TO_IMAGE_COLUMNS, ZERO_SHOT_COLUMNS, zeroShotTable, type TableColumn } from './tables.ts';

const FEW_SHOT_CAPTION: TableColumn[] = [{ key: 'caption', title: 'Shapes caption (CIDEr)', metric: 'cider' }];

export interface ReportInfo {
  title: string;
  /** Lines about how the run was made (recipe, seed, time). */
  about: string[];
}

/** Writes report.md, report/*.png and results.json into the run folder; returns report.md's path. */
export function writeReport(root: string, results: EvalResults, info: ReportInfo): string {
  const dir = join(root, 'report');
  mkdirSync(dir, { recursive: true });
  const png = (name: string, images: Float32Array[], cols: number, upscale = 3): string => {
    const g = imageGrid(images, cols, { upscale, pad: 2 });
    writeImage(join(dir, name), g.pixels, g.width, g.height);
    return `report/${name}`;
  };
  const md: string[] = [`# ${info.title}`, '', ...info.about, ''];

  md.push('## Zero-shot (the shape of the paper\'s Table 1)', '',
    'Held-out scenes, clips and digits never seen in training. CIDEr-D x 100, accuracies in percent.', '',
    zeroShotTable(results.zeroShot, ZERO_SHOT_COLUMNS), '');
  if (results.vqaByType.length) {
    md.push('### VQA by question type (Emu-I)', '',
      'A type answered no better than its majority answer is not grounded in the picture.', '',
      '| question type | questions | Emu-I | majority answer |', '|---|---:|---:|---:|',
      ...results.vqaByType.map((r) => `| ${r.type} ... | ${r.questions} | ${(100 * r.accuracy).toFixed(1)} | ${(100 * r.majority).toFixed(1)} |`), '');
  }
  const v = results.visual;
  const pc = (x: number) => (100 * x).toFixed(1);
  md.push('## Visual embeddings (pretrained Emu)', '',
    `Linear probes (ridge) of the N visual embeddings an image gives the LLM, fitted on training scenes and scored on ${v.counts.all} held-out ones ` +
    `(kind, colour and size of the ${v.counts.single} with one shape; count of all), from the N flattened and from their mean; ` +
    `and what the LLM reads: on ${v.counts.read} held-out scenes of one shape, whether the caption "a picture of a {size} {colour} {kind}" ` +
    'has its lowest loss with the true kind (colour). Found by the flattened probe but not the mean: carried position-specifically. ' +
    'Found by the probes but not read: lost between the embeddings and the LLM.', '',
    '| | kind | colour | size | count |', '|---|---:|---:|---:|---:|',
    `| probe, N embeddings flattened | ${pc(v.flattened.kind)} | ${pc(v.flattened.colour)} | ${pc(v.flattened.size)} | ${pc(v.flattened.count)} |`,
    `| probe, mean of the N | ${pc(v.mean.kind)} | ${pc(v.mean.colour)} | ${pc(v.mean.size)} | ${pc(v.mean.count)} |`,
    `| read by the LLM (caption loss) | ${pc(v.reading.kind)} | ${pc(v.reading.colour)} | - | - |`,
    `| chance | ${pc(v.chance.kind)} | ${pc(v.chance.colour)} | ${pc(v.chance.size)} | ${pc(v.chance.count)} (majority) |`, '',
    `Binding: on ${v.counts.pairs} held-out scenes of two shapes that differ in colour and in kind, "a picture of a {colour} {kind}" ` +
    `has a lower loss with the named colour's own kind than with the other shape's in ${pc(v.reading.binding)}% of cases (chance 50%; ` +
    'both kinds are in the picture, so only pairing colours with kinds beats it).', '');
  md.push('## Few-shot captioning with the pretrained model (the shape of Table 3)', '',
    'k in-context (image, caption) examples from the training split, then the held-out query image.', '',
    fewShotTable(results.fewShot, FEW_SHOT_CAPTION, [0, 2, 4, 8]), '');
  if (results.textToImage.length) {
    md.push('## Text-to-image', '',
      'Shapes: the picture generated from a description of a held-out scene, read back by the pixel checker. ' +
      'Digits: "a handwritten seven" etc., read by a classifier trained with the engine on MNIST; FID on its features against held-out real digits. ' +
      'The ceiling row passes clean drawings of the same scenes (and other held-out real digits) through the VAE alone: no UNet over its latents can do better.', '',
      zeroShotTable(results.textToImage, TEXT_TO_IMAGE_COLUMNS), '');
    const shapes = results.images.filter((x) => x.scene);
    const digits = results.images.filter((x) => x.label !== undefined);
    md.push(`![generated shapes](${png('generated-shapes.png', shapes.map((x) => x.pixels), 6, 4)})`, '',
      'Prompts, left to right, top to bottom:', '', ...shapes.map((x, i) => `${i + 1}. ${x.prompt}`), '');
    md.push(`![generated digits](${png('generated-digits.png', digits.map((x) => x.pixels), 10, 4)})`, '',
      'Each column is one digit, 0 to 9 ("a handwritten zero", ...).', '');
  }
  md.push('## Loss curves', '');
  for (const s of STAGES) if (existsSync(join(root, s, 'loss.png'))) md.push(`### ${s}`, '', `![${s} loss](${s}/loss.png)`, '');

  const sampleTable = (title: string, name: string, rows: TextSample[], n: number, withPrompt: boolean) => {
    if (!rows.length) return;
    md.push(`## ${title}`, '', `| # | image | ${withPrompt ? 'question | ' : ''}generated | ground truth |`, `|---|---|${withPrompt ? '---|' : ''}---|---|`);
    rows.slice(0, n).forEach((r, i) => {
      const pic = png(`${name}-${i}.png`, Array.isArray(r.image) ? r.image : [r.image], Array.isArray(r.image) ? r.image.length : 1);
      md.push(`| ${i + 1} | ![](${pic}) | ${withPrompt ? `${r.prompt} | ` : ''}${r.generated || '(empty)'} | ${r.truth} |`);
    });
    md.push('');
  };
  sampleTable('Sample captions (Emu-I)', 'caption', results.samples.captions, 8, false);
  sampleTable('Sample answers (Emu-I)', 'vqa', results.samples.answers, 10, true);
  sampleTable('Sample video answers (Emu-I)', 'video', results.samples.videoAnswers, 6, true);
  sampleTable('Sample digit captions (Emu-I)', 'digit', results.samples.digitCaptions, 6, false);
  sampleTable('Sample 2-shot captions (pretrained Emu)', 'fewshot', results.samples.fewShot, 6, false);
  md.push(`Evaluation took ${results.seconds.toFixed(0)} s.`, '');

  const path = join(root, 'report.md');
  writeFileAtomic(path, [Buffer.from(md.join('\n'))]);
  const numbers = { zeroShot: results.zeroShot, fewShot: results.fewShot, textToImage: results.textToImage, options: results.options, seconds: results.seconds };
  writeFileAtomic(join(root, 'results.json'), [Buffer.from(JSON.stringify(numbers, null, 2) + '\n')]);
  return path;
}

/**
 * Loads a run, evaluates it at one of the EVAL_SIZES and writes its report: what `emu eval` and
 * the demo do. Returns the results and the report's path.
 */
export function evaluateRun(root: string, size: keyof typeof EVAL_SIZES,
  opts: { about?: string[]; onProgress?: EvalOptions['onProgress']; device?: Device } = {}): { results: EvalResults; path: string } {
  const trained = loadForInference(root, opts.device ?? 'cpu');
  const meta = trained.meta;
  const recipe = (meta.recipe as { name?: string } | null)?.name ?? '?';
  const results = evaluate(trained, { ...EVAL_SIZES[size], classifierPath: classifierPathFor(root), onProgress: opts.onProgress });
  const about = [
    `Run \`${root}\`: recipe \`${recipe}\`, preset \`${meta.config.name}\`, seed ${meta.seed}; evaluation size \`${size}\`.`,
    ...(opts.about ?? []),
  ];
  return { results, path: writeReport(root, results, { title: `Emu (${meta.config.name}) trained on built-in data: evaluation`, about }) };
}

/** The headline figures of an evaluation, one line each, for a terminal. */
export function headline(results: EvalResults): string[] {
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
  const cider = (x: number | null | undefined) => (x === null || x === undefined ? '-' : (100 * x).toFixed(1));
  const [pre, emuI, chance] = results.zeroShot;
  const lines = [
    `captioning CIDEr-D: Emu-I ${cider(emuI.results.caption)}, pretrained ${cider(pre.results.caption)} (wrong-scene captions ${cider(chance.results.caption)})`,
    `VQA accuracy: ${pct(emuI.results.vqa)} (majority answer ${pct(chance.results.vqa)}); video QA ${pct(emuI.results.videoQa)} (majority ${pct(chance.results.videoQa)})`,
  ];
  const [t2i, base, ceiling] = results.textToImage;
  if (t2i) {
    const three = (r: typeof t2i) => `${pct(r.results.color)}, ${pct(r.results.shape)}, ${pct(r.results.position)}`;
    lines.push(`text-to-image read back: colour ${pct(t2i.results.color)}, shape ${pct(t2i.results.shape)}, position ${pct(t2i.results.position)} ` +
      `(wrong scene ${three(base)}; VAE ceiling ${three(ceiling)}); digits ${pct(t2i.results.digit)} (chance 10%, ceiling ${pct(ceiling.results.digit)})`);
  }
  return lines;
}
