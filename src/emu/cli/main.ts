// main.ts: the `emu` command line: dispatch to a subcommand from the command table, help, and
// the one rule for failures: a typed error (bad flag, missing run or checkpoint, unreadable
// image, ...) prints `emu: <message>` on one line and exits non-zero, never a stack trace
// (EMU_DEBUG=1 adds the stack for errors that are bugs).
//
// bin/emu.mjs runs main() through tsx, so `npx emu ...` works from the repository. To add a
// subcommand, add its Command entry to COMMANDS.
import { createInterface } from 'node:readline';
import { EmuError } from '../../tensor/errors.ts';
import { UsageError, commandHelp, parseCommandArgs, type CliIO, type Command } from './command.ts';
import { INFERENCE_COMMANDS } from './commands.ts';
import { TRAIN_COMMAND } from './train_command.ts';
import { EVAL_COMMAND } from './eval_command.ts';

export const COMMANDS: Command[] = [TRAIN_COMMAND, EVAL_COMMAND, ...INFERENCE_COMMANDS];

/** The standard streams as a CliIO. */
export function processIO(): CliIO {
  const io: CliIO = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    lines: () => createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false }),
  };
  if (process.stdin.isTTY) io.prompt = (text) => process.stdout.write(text);
  return io;
}

/** `emu --help`: every command with its summary. */
export function overallHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'emu: run a trained Emu (shared/reference/emu-architecture.md) from the command line.',
    '',
    'Usage: emu COMMAND [options]    (emu COMMAND --help for its options)',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Commands that load a model take --run DIR (default runs/tiny) and --device cpu|sim|cuda.',
    'Images are PNG files; errors print one line and exit with status 1 (2 for bad usage).',
  ].join('\n');
}

/** Runs the CLI on argv (without node and the script) and returns the exit status. */
export async function main(argv: string[], io: CliIO = processIO(), commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      const topic = name === 'help' ? rest[0] : undefined;
      const cmd = topic === undefined ? undefined : commands.find((c) => c.name === topic);
      if (topic !== undefined && !cmd) throw new UsageError(`unknown command '${topic}' (emu --help lists them)`);
      io.out(cmd ? commandHelp(cmd) : overallHelp(commands));
      return name === undefined ? 2 : 0;
    }
    const cmd = commands.find((c) => c.name === name);
    if (!cmd) throw new UsageError(`unknown command '${name}' (emu --help lists them)`);
    const args = parseCommandArgs(cmd, rest);
    if (args.values.help) {
      io.out(commandHelp(cmd));
      return 0;
    }
    return (await cmd.run(args, io)) ?? 0;
  } catch (e) {
    if (e instanceof EmuError) {
      io.err(`emu: ${e.message}`);
      return e instanceof UsageError ? 2 : 1;
    }
    const err = e as Error;
    io.err(`emu: internal error: ${err?.message ?? String(e)}${process.env.EMU_DEBUG ? `\n${err?.stack ?? ''}` : ' (EMU_DEBUG=1 shows where)'}`);
    return 1;
  }
}
