// eval_command.ts: `emu eval`: evaluates a trained run on held-out data and writes its report
// (src/emu/eval/suite.ts and report.ts).
import { Progress } from '../io/progress.ts';
import { evaluateRun, headline } from '../eval/report.ts';
import { EVAL_SIZES } from '../eval/suite.ts';
import { choiceFlag, runFlags, RUN_OPTIONS, type Command } from './command.ts';

export const EVAL_COMMAND: Command = {
  name: 'eval',
  summary: 'evaluate a trained run on held-out data and write RUN/report.md',
  usage: ['eval [--run DIR] [--size quick|full] [--device cpu|sim|cuda]'],
  details: ['Captioning CIDEr-D, VQA and video QA accuracy, few-shot captioning, text-to-image read-back and digit FID, beside chance levels.'],
  options: {
    ...RUN_OPTIONS,
    size: { type: 'string', default: 'full', value: Object.keys(EVAL_SIZES).join('|'), help: 'how many held-out items (default full)' },
  },
  run(args, io) {
    const { run, device } = runFlags(args);
    const size = choiceFlag(args, 'size', ['quick', 'full'] as const) ?? 'full';
    let bar: Progress | null = null;
    let task = '';
    const { results, path } = evaluateRun(run, size, {
      device,
      onProgress: (t, done, total) => {
        if (t !== task) { bar?.done(); bar = new Progress({ total, label: t }); task = t; }
        bar!.update(done);
      },
    });
    (bar as Progress | null)?.done();
    for (const line of headline(results)) io.out(line);
    io.out(`report: ${path}`);
  },
};
