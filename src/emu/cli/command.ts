// command.ts: what a subcommand of the `emu` CLI is, and the argument helpers every command shares.
//
// A command is one table entry (name, summary, usage, options, run); main.ts dispatches on the
// name and prints the help from the same entries, so adding a subcommand is adding an entry.
// Arguments are parsed by node:util parseArgs in strict mode with tokens, so a command can read
// options and positionals in the order they were typed (generate --context, fewshot --example).
// Bad usage is a UsageError: main prints its message on one line and exits with status 2.
import { parseArgs } from 'node:util';
import { ValueError } from '../../tensor/errors.ts';
import type { Device } from '../../tensor/device.ts';

/** Wrong flags or arguments on the command line. */
export class UsageError extends ValueError {}

/** Where a command reads and writes: the process's streams, or a test's capture. */
export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  /** Lines of standard input, read lazily (chat). */
  lines(): AsyncIterable<string>;
  /** Shows a prompt without a newline; present only when standard input is a terminal. */
  prompt?(text: string): void;
}

/** One option as node:util parseArgs describes it, with its help text and value name. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** Shown in the help, e.g. `--steps N`. */
  value?: string;
  help: string;
}

/** A parsed command line: values by option name, positionals, and everything in typed order. */
export interface CommandArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  /** Options and positionals in the order they appeared. */
  ordered: ({ kind: 'option'; name: string; value: string | undefined } | { kind: 'positional'; value: string })[];
}

export interface Command {
  name: string;
  /** One line for `emu --help`. */
  summary: string;
  /** Synopsis lines after `emu `, e.g. `caption IMG`. */
  usage: string[];
  /** More help: examples and syntax notes (optional). */
  details?: string[];
  options: Record<string, OptionSpec>;
  /** Runs the command; the exit status is 0 unless it returns another (errors are thrown, main prints them). */
  run(args: CommandArgs, io: CliIO): Promise<number | void> | number | void;
}

/** The options of every command that loads a trained run. */
export const RUN_OPTIONS: Record<string, OptionSpec> = {
  run: { type: 'string', default: 'runs/tiny', value: 'DIR', help: 'the training run to load (default runs/tiny)' },
  device: { type: 'string', default: 'cpu', value: 'cpu|sim|cuda', help: 'where the model runs (default cpu)' },
};

export const HELP_OPTION: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** Parses a command's arguments; unknown flags, missing values and stray arguments are UsageErrors. */
export function parseCommandArgs(cmd: Command, argv: string[]): CommandArgs {
  const options = { ...cmd.options, ...HELP_OPTION };
  const config = Object.fromEntries(Object.entries(options).map(([name, o]) => [name, {
    type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}),
    ...(o.default !== undefined ? { default: o.default } : {}),
  }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: config, allowPositionals: true, strict: true, tokens: true });
  } catch (e) {
    // parseArgs' messages are clear but long ("... To specify a positional argument starting with a '-', ..."): keep the first sentence.
    const first = (e as Error).message.split(/\.\s/)[0].replace(/\.$/, '');
    throw new UsageError(`${cmd.name}: ${first}`);
  }
  const ordered: CommandArgs['ordered'] = [];
  for (const t of parsed.tokens ?? []) {
    if (t.kind === 'option') ordered.push({ kind: 'option', name: t.name, value: t.value });
    else if (t.kind === 'positional') ordered.push({ kind: 'positional', value: t.value });
  }
  return { values: parsed.values as CommandArgs['values'], positionals: parsed.positionals, ordered };
}

/** A string option's value (the last one if repeated), or undefined. */
export function stringFlag(args: CommandArgs, name: string): string | undefined {
  const v = args.values[name];
  const last = Array.isArray(v) ? v[v.length - 1] : v;
  return typeof last === 'string' ? last : undefined;
}

/** A numeric option: undefined when absent, a UsageError when it is not a number in range. */
export function numberFlag(args: CommandArgs, name: string, opts: { integer?: boolean; min?: number } = {}): number | undefined {
  const raw = stringFlag(args, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const ok = raw.trim() !== '' && Number.isFinite(v) && (!opts.integer || Number.isInteger(v)) && (opts.min === undefined || v >= opts.min);
  if (!ok) {
    const what = `${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}`;
    throw new UsageError(`--${name} must be ${what}, got '${raw}'`);
  }
  return v;
}

/** A choice option: undefined when absent, a UsageError for a value outside `choices`. */
export function choiceFlag<T extends string>(args: CommandArgs, name: string, choices: readonly T[]): T | undefined {
  const raw = stringFlag(args, name);
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${raw}'`);
  return raw as T;
}

/** The --run and --device of a command with RUN_OPTIONS. */
export function runFlags(args: CommandArgs): { run: string; device: Device } {
  const run = stringFlag(args, 'run');
  if (!run) throw new UsageError('--run must name a folder');
  return { run, device: choiceFlag(args, 'device', ['cpu', 'sim', 'cuda'] as const) ?? 'cpu' };
}

/** Exactly `n` positionals, named for the error message. */
export function expectPositionals(cmd: Command, args: CommandArgs, names: string[]): string[] {
  if (args.positionals.length !== names.length) {
    throw new UsageError(`${cmd.name}: expected ${names.join(' ')}, got ${args.positionals.length} argument${args.positionals.length === 1 ? '' : 's'} (see emu ${cmd.name} --help)`);
  }
  return args.positionals;
}

/** Help text of one command. */
export function commandHelp(cmd: Command): string {
  const lines = ['Usage:', ...cmd.usage.map((u) => `  emu ${u}`), '', cmd.summary];
  if (cmd.details?.length) lines.push('', ...cmd.details);
  const opts = Object.entries({ ...cmd.options, ...HELP_OPTION }).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.value ? ` ${o.value}` : ''}`;
    return [flag, o.help + (o.multiple ? ' (repeatable)' : '')];
  });
  const width = Math.max(...opts.map(([f]) => f.length));
  lines.push('', 'Options:', ...opts.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`));
  return lines.join('\n');
}
