// train_command.ts: `emu train`: runs a recipe's stages (src/emu/train/train.ts) with a progress
// bar per stage on a terminal (plain log lines otherwise), the metrics in each stage's
// metrics.jsonl and its loss curves in loss.png.
import { readFileSync } from 'node:fs';
import { Progress } from '../io/progress.ts';
import { STAGES, type StageName } from '../train/run_dir.ts';
import { RECIPES, type RecipeOverrides } from '../train/recipe.ts';
import { train } from '../train/train.ts';
import type { StageOptions } from '../train/stage.ts';
import { UsageError, choiceFlag, numberFlag, stringFlag, type Command } from './command.ts';

export const TRAIN_COMMAND: Command = {
  name: 'train',
  summary: 'train Emu on the built-in data: every stage of a recipe, or the stages named',
  usage: ['train [--recipe tiny|quick|micro] [--stage NAME]... [--out DIR] [--resume] [--seed N] [--steps N] [--batch N] [--lr X] [--config FILE] [--device cpu|sim|cuda]'],
  details: [
    `Stages, in order: ${STAGES.join(', ')}. Each starts from the checkpoints of the earlier ones in --out.`,
    'A killed run continues with --resume, reproducing the uninterrupted run bit for bit on the same device.',
    'The config file is JSON: {"stages": {"pretrain": {"steps": 800, "lr": 0.001}}, "mixture": [4,4,2,1,1], "decoderPool": 512, "checkpointEvery": 100}.',
  ],
  options: {
    recipe: { type: 'string', default: 'tiny', value: Object.keys(RECIPES).join('|'), help: 'the recipe (default tiny)' },
    stage: { type: 'string', multiple: true, value: 'NAME', help: 'train only this stage' },
    out: { type: 'string', value: 'DIR', help: 'the run folder (default runs/RECIPE)' },
    resume: { type: 'boolean', help: 'continue from the checkpoints in --out' },
    seed: { type: 'string', value: 'N', help: 'the run seed (default 0)' },
    steps: { type: 'string', value: 'N', help: 'steps of every selected stage' },
    batch: { type: 'string', value: 'N', help: 'batch size of every selected stage' },
    lr: { type: 'string', value: 'X', help: 'peak learning rate of every selected stage' },
    config: { type: 'string', value: 'FILE', help: 'JSON overrides of the recipe' },
    device: { type: 'string', default: 'cpu', value: 'cpu|sim|cuda', help: 'where to train (default cpu; sim is the CUDA emulator: correct but slow)' },
  },
  run(args, io) {
    const recipe = choiceFlag(args, 'recipe', Object.keys(RECIPES)) ?? 'tiny';
    const device = choiceFlag(args, 'device', ['cpu', 'sim', 'cuda'] as const) ?? 'cpu';
    const stageFlags = args.values.stage as string[] | undefined;
    for (const s of stageFlags ?? []) if (!STAGES.includes(s as StageName)) throw new UsageError(`--stage must be one of ${STAGES.join(', ')}, got '${s}'`);
    const overrides: Partial<StageOptions> = {};
    const steps = numberFlag(args, 'steps', { integer: true, min: 1 });
    const batch = numberFlag(args, 'batch', { integer: true, min: 1 });
    const lr = numberFlag(args, 'lr');
    if (steps !== undefined) overrides.steps = steps;
    if (batch !== undefined) overrides.batch = batch;
    if (lr !== undefined) overrides.lr = lr;
    const config = stringFlag(args, 'config');
    let recipeOverrides: RecipeOverrides | undefined;
    if (config) {
      try {
        recipeOverrides = JSON.parse(readFileSync(config, 'utf8')) as RecipeOverrides;
      } catch (e) {
        throw new UsageError(`--config ${config}: ${(e as Error).message}`);
      }
    }
    const out = stringFlag(args, 'out') ?? `runs/${recipe}`;
    let bar: Progress | null = null;
    const t0 = performance.now();
    train({
      recipe, out, device, resume: args.values.resume === true, seed: numberFlag(args, 'seed', { integer: true, min: 0 }),
      stages: stageFlags as StageName[] | undefined, overrides, recipeOverrides,
      onStage: (stage, event, detail) => {
        if (event === 'end') { bar?.done(); bar = null; }
        io.err(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${stage}: ${event === 'start' ? 'training' : event === 'skip' ? 'skipped' : 'done'} (${detail})`);
      },
      onStep: (stage, rec, total) => {
        bar ??= new Progress({ total, label: stage, unit: rec.unit, startStep: rec.step });
        bar.update(rec.step + 1, rec.losses, rec.items);
      },
    });
    io.out(`trained: ${out}`);
  },
};
