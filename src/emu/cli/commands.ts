// commands.ts: the inference subcommands of `emu` (caption, vqa, chat, generate, blend,
// video-qa, fewshot), each a thin layer over src/emu/infer/tasks.ts: parse the flags, load the
// run (--run, --device), read the PNG images at the model's image size, run the task, print the
// text or write the PNG.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Trained } from '../train/run_dir.ts';
import { readImage, writeImage } from '../io/image.ts';
import { ImageError } from '../io/png.ts';
import {
  Chat, blend, caption, fewShot, generate, inContextGenerate, loadForInference, videoQA, vqa,
  type Decoding, type GeneratedImage, type ImageGenOptions, type Pixels, type PixelExample,
} from '../infer/tasks.ts';
import type { Wording } from '../infer/prompts.ts';
import { CHAT_SYNTAX, chatLoop } from './chat.ts';
import {
  RUN_OPTIONS, UsageError, choiceFlag, expectPositionals, numberFlag, runFlags, stringFlag,
  type CliIO, type Command, type CommandArgs, type OptionSpec,
} from './command.ts';

const DECODING_OPTIONS: Record<string, OptionSpec> = {
  beams: { type: 'string', value: 'N', help: 'beam search width (default 5; 1 decodes greedily)' },
  'max-tokens': { type: 'string', value: 'N', help: 'most tokens to generate' },
};

const WORDING_OPTION: Record<string, OptionSpec> = {
  wording: { type: 'string', value: 'data|reference', help: "prompt wording: the training dialogues' (default) or the released evaluation prompts'" },
};

const IMAGE_OPTIONS: Record<string, OptionSpec> = {
  output: { type: 'string', short: 'o', default: 'out.png', value: 'PATH', help: 'where to write the PNG (default out.png)' },
  guidance: { type: 'string', value: 'S', help: 'classifier-free guidance scale (default 7.5; 10 with --context)' },
  steps: { type: 'string', value: 'N', help: 'sampler steps (default 50)' },
  sampler: { type: 'string', value: 'pndm|ddim', help: 'the diffusion sampler (default pndm)' },
  seed: { type: 'string', value: 'N', help: 'seed of the initial noise (default 0)' },
  size: { type: 'string', value: 'PX', help: "image side in pixels (default the model's image size)" },
};

function decodingFlags(args: CommandArgs): Decoding {
  const beams = numberFlag(args, 'beams', { integer: true, min: 1 });
  const maxNewTokens = numberFlag(args, 'max-tokens', { integer: true, min: 1 });
  const d: Decoding = {};
  if (beams !== undefined) Object.assign(d, beams === 1 ? { strategy: 'greedy', numBeams: 1 } : { strategy: 'beam', numBeams: beams });
  if (maxNewTokens !== undefined) d.maxNewTokens = maxNewTokens;
  return d;
}

function wordingFlag(args: CommandArgs): Wording | undefined {
  return choiceFlag(args, 'wording', ['data', 'reference'] as const);
}

function imageFlags(args: CommandArgs): ImageGenOptions {
  const o: ImageGenOptions = {};
  const guidance = numberFlag(args, 'guidance');
  const steps = numberFlag(args, 'steps', { integer: true, min: 1 });
  const sampler = choiceFlag(args, 'sampler', ['pndm', 'ddim'] as const);
  const seed = numberFlag(args, 'seed', { integer: true, min: 0 });
  const size = numberFlag(args, 'size', { integer: true, min: 1 });
  if (guidance !== undefined) o.guidanceScale = guidance;
  if (steps !== undefined) o.steps = steps;
  if (sampler !== undefined) o.sampler = sampler;
  if (seed !== undefined) o.seed = seed;
  if (size !== undefined) o.size = size;
  return o;
}

function load(args: CommandArgs): Trained {
  const { run, device } = runFlags(args);
  return loadForInference(run, device);
}

function loadImage(trained: Trained, path: string): Pixels {
  return readImage(path, trained.emu.cfg.vision.imageSize);
}

function writeResult(args: CommandArgs, io: CliIO, image: GeneratedImage): void {
  const path = stringFlag(args, 'output') ?? 'out.png';
  writeImage(path, image.pixels, image.size);
  io.out(`wrote ${path} (${image.size}x${image.size})`);
}

/** The PNG files of a folder, sorted by name with numbers compared as numbers (frame2 before frame10). */
export function framePaths(dir: string): string[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new ImageError(`video-qa: ${dir} is not a folder`);
    names = readdirSync(dir);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageError(code === 'ENOENT' ? `video-qa: frames folder not found: ${dir}` : `video-qa: cannot read ${dir}: ${(e as Error).message}`);
  }
  const pngs = names.filter((n) => n.toLowerCase().endsWith('.png')).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (pngs.length === 0) throw new ImageError(`video-qa: no .png frames in ${dir}`);
  return pngs.map((n) => join(dir, n));
}

const captionCommand: Command = {
  name: 'caption',
  summary: 'Describe an image (Emu-I).',
  usage: ['caption IMG [options]'],
  options: { ...RUN_OPTIONS, ...DECODING_OPTIONS, ...WORDING_OPTION },
  run(args, io) {
    const [path] = expectPositionals(this, args, ['IMG']);
    const trained = load(args);
    io.out(caption(trained, loadImage(trained, path), { decoding: decodingFlags(args), wording: wordingFlag(args) }).text);
  },
};

const vqaCommand: Command = {
  name: 'vqa',
  summary: 'Answer a question about an image (Emu-I), in a word or a phrase.',
  usage: ['vqa IMG "QUESTION" [options]'],
  options: { ...RUN_OPTIONS, ...DECODING_OPTIONS, ...WORDING_OPTION },
  run(args, io) {
    const [path, question] = expectPositionals(this, args, ['IMG', 'QUESTION']);
    const trained = load(args);
    io.out(vqa(trained, loadImage(trained, path), question, { decoding: decodingFlags(args), wording: wordingFlag(args) }).text);
  },
};

const videoQACommand: Command = {
  name: 'video-qa',
  summary: 'Answer a question about a video given as a folder of PNG frames (Emu-I, 8 frames sampled evenly).',
  usage: ['video-qa FRAMES_DIR "QUESTION" [options]'],
  details: ['Frames are the folder\'s .png files sorted by name (numbers compared as numbers).'],
  options: {
    ...RUN_OPTIONS, ...DECODING_OPTIONS,
    'all-frames': { type: 'boolean', help: 'feed every frame (default only for clips of at most 8 frames; longer ones are sampled to 8 evenly)' },
  },
  run(args, io) {
    const [dir, question] = expectPositionals(this, args, ['FRAMES_DIR', 'QUESTION']);
    const paths = framePaths(dir);
    const trained = load(args);
    const frames = paths.map((p) => loadImage(trained, p));
    io.out(videoQA(trained, frames, question, { decoding: decodingFlags(args), allFrames: args.values['all-frames'] === true ? true : undefined }).text);
  },
};

const chatCommand: Command = {
  name: 'chat',
  summary: 'Talk with Emu-I about images, one message per line of standard input.',
  usage: ['chat [options]'],
  details: CHAT_SYNTAX,
  options: { ...RUN_OPTIONS, ...DECODING_OPTIONS },
  async run(args, io) {
    expectPositionals(this, args, []);
    const trained = load(args);
    const ok = await chatLoop(new Chat(trained, { decoding: decodingFlags(args) }), io, (p) => loadImage(trained, p));
    return ok ? 0 : 1;
  },
};

const generateCommand: Command = {
  name: 'generate',
  summary: 'Draw an image from a text prompt, or from texts and example images (in-context generation).',
  usage: ['generate "PROMPT" [-o out.png] [options]', 'generate "TEXT" --context IMG "TEXT" ... [-o out.png] [options]'],
  details: [
    'Texts and --context images form one prompt in the order they are typed, e.g.',
    '  emu generate "This is the first image: " --context a.png "An image like it: " -o out.png',
  ],
  options: { ...RUN_OPTIONS, ...IMAGE_OPTIONS, context: { type: 'string', multiple: true, value: 'IMG', help: 'an example image at this place in the prompt' } },
  run(args, io) {
    const items = args.ordered.filter((t) => t.kind === 'positional' || t.name === 'context');
    if (args.positionals.length === 0) throw new UsageError('generate: expected a text prompt (see emu generate --help)');
    const trained = load(args);
    const prompt = items.map((t) => (t.kind === 'positional' ? t.value : loadImage(trained, t.value!)));
    const inContext = prompt.some((x) => typeof x !== 'string');
    writeResult(args, io, (inContext ? inContextGenerate : generate)(trained, prompt, imageFlags(args)));
  },
};

const blendCommand: Command = {
  name: 'blend',
  summary: 'Blend two images: the image Emu draws after seeing both, with no text.',
  usage: ['blend A.png B.png [-o out.png] [options]'],
  options: { ...RUN_OPTIONS, ...IMAGE_OPTIONS },
  run(args, io) {
    const [a, b] = expectPositionals(this, args, ['A.png', 'B.png']);
    const trained = load(args);
    writeResult(args, io, blend(trained, loadImage(trained, a), loadImage(trained, b), imageFlags(args)));
  },
};

const fewShotCommand: Command = {
  name: 'fewshot',
  summary: 'Continue k in-context examples (image, text) after a query image, with the pretrained Emu.',
  usage: ['fewshot --example IMG "TEXT" [--example IMG "TEXT" ...] QUERY.png [options]'],
  details: ['Each --example IMG is followed by its text; the last argument is the query image.'],
  options: { ...RUN_OPTIONS, ...DECODING_OPTIONS, example: { type: 'string', multiple: true, value: 'IMG "TEXT"', help: 'an in-context example' } },
  run(args, io) {
    const pairs: { path: string; text?: string }[] = [];
    let query: string | undefined;
    for (const t of args.ordered) {
      if (t.kind === 'option' && t.name === 'example') pairs.push({ path: t.value! });
      else if (t.kind === 'positional') {
        const open = pairs[pairs.length - 1];
        if (open && open.text === undefined) open.text = t.value;
        else if (query === undefined) query = t.value;
        else throw new UsageError(`fewshot: unexpected argument '${t.value}' after the query image`);
      }
    }
    const missing = pairs.find((p) => p.text === undefined);
    if (missing) throw new UsageError(`fewshot: --example ${missing.path} needs its text after the path`);
    if (query === undefined) throw new UsageError('fewshot: expected the query image as the last argument');
    const trained = load(args);
    const examples: PixelExample[] = pairs.map((p) => ({ image: loadImage(trained, p.path), text: p.text! }));
    io.out(fewShot(trained, examples, loadImage(trained, query), { decoding: decodingFlags(args) }).text);
  },
};

export const INFERENCE_COMMANDS: Command[] = [
  captionCommand, vqaCommand, chatCommand, generateCommand, blendCommand, videoQACommand, fewShotCommand,
];
