// cli.test.ts: the `emu` command line on a randomly initialised micro run: every inference
// command in-process through main() (outputs, files, exit statuses), the chat line syntax, the
// frame ordering of video-qa, and, by spawning bin/emu.mjs, that failures print one line (no
// stack trace) and exit non-zero.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cudaAvailable } from '../../src/index.ts';
import { readImage, writeImage } from '../../src/emu/io/image.ts';
import { RunDir } from '../../src/emu/train/run_dir.ts';
import { ChatSyntaxError, parseChatLine } from '../../src/emu/cli/chat.ts';
import { framePaths } from '../../src/emu/cli/commands.ts';
import { COMMANDS, main } from '../../src/emu/cli/main.ts';
import type { CliIO } from '../../src/emu/cli/command.ts';
import { MICRO, testImage, writeMicroRun } from './infer_fixture.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = writeMicroRun();
const work = join(dirname(run), 'files');
mkdirSync(work);
const S = MICRO.vision.imageSize;
const png = (name: string, seed: number) => {
  const p = join(work, name);
  writeImage(p, testImage(seed), S);
  return p;
};
const a = png('a.png', 1), b = png('b.png', 2);
const frames = join(work, 'frames');
mkdirSync(frames);
for (let i = 0; i < 12; i++) writeImage(join(frames, `frame${i}.png`), testImage(20 + i), S);
const notPng = join(work, 'bad.png');
writeFileSync(notPng, 'this is not a PNG');

/** Runs main() in-process with captured output and the given stdin lines. */
async function cli(argv: string[], stdin: string[] = []): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [], err: string[] = [];
  const io: CliIO = {
    out: (l) => out.push(l), err: (l) => err.push(l),
    lines: async function* () { yield* stdin; },
  };
  const code = await main(argv, io);
  return { code, out, err };
}

const R = ['--run', run];
const FAST = ['--beams', '2', '--max-tokens', '3'];
const GEN = ['--steps', '2', '--sampler', 'ddim'];

test('help: the command list, per-command help with its options, help TOPIC', async () => {
  const all = await cli(['--help']);
  assert.is(all.code, 0);
  for (const c of COMMANDS) assert.ok(all.out[0].includes(`  ${c.name}`), c.name);
  const gen = await cli(['generate', '--help']);
  assert.is(gen.code, 0);
  for (const flag of ['--guidance', '--steps', '--sampler', '--seed', '--context', '--output', '--run', '--device']) assert.ok(gen.out[0].includes(flag), flag);
  assert.equal((await cli(['help', 'generate'])).out, gen.out);
  assert.ok((await cli(['chat', '--help'])).out[0].includes('<img:PATH>'));
  assert.is((await cli([])).code, 2);
});

test('caption, vqa, video-qa and fewshot print one answer line', async () => {
  for (const argv of [['caption', a], ['vqa', a, 'what colour is the circle?'], ['video-qa', frames, 'where does it move?'],
    ['video-qa', frames, 'where does it move?', '--all-frames'], ['fewshot', '--example', a, 'a red circle', '--example', b, 'a blue square', a]]) {
    const r = await cli([...argv, ...R, ...FAST]);
    assert.is(r.code, 0, `${argv[0]}: ${r.err.join(' ')}`);
    assert.is(r.out.length, 1, argv[0]);
    assert.is(r.err.length, 0);
  }
  assert.is((await cli(['caption', a, ...R, '--wording', 'reference', ...FAST])).code, 0);
});

test('generate writes a PNG of the model size; the same seed writes the same file; --context and blend', async () => {
  const out1 = join(work, 'g1.png'), out2 = join(work, 'g2.png'), out3 = join(work, 'g3.png');
  const r = await cli(['generate', 'a red circle', '-o', out1, '--seed', '5', ...R, ...GEN]);
  assert.is(r.code, 0, r.err.join(' '));
  assert.equal(r.out, [`wrote ${out1} (${S}x${S})`]);
  await cli(['generate', 'a red circle', '--output', out2, '--seed', '5', ...R, ...GEN]);
  assert.ok(readFileSync(out1).equals(readFileSync(out2)));
  assert.is(readImage(out1, S).length, S * S * 3);
  const ic = await cli(['generate', 'This is the first image: ', '--context', a, 'An image like it: ', '-o', out3, '--guidance', '3', ...R, ...GEN]);
  assert.is(ic.code, 0, ic.err.join(' '));
  assert.ok(existsSync(out3));
  const bl = await cli(['blend', a, b, '-o', join(work, 'blend.png'), ...R, ...GEN]);
  assert.is(bl.code, 0, bl.err.join(' '));
  assert.ok(existsSync(join(work, 'blend.png')));
});

test('chat: one answer per message, images inline or by /image, /reset, and a failed message sets exit status 1', async () => {
  const ok = await cli(['chat', ...R, ...FAST], [`<img:${a}> what colour is the circle?`, 'and the square?', `/image ${b}`, 'this one?', '/reset', '', '/quit', 'never read']);
  assert.is(ok.code, 0, ok.err.join(' '));
  assert.equal(ok.out.length, 5); // 3 answers, "(attached ...)", "(conversation cleared)"
  assert.is(ok.out[2], `(attached ${b})`);
  assert.is(ok.out[4], '(conversation cleared)');
  const bad = await cli(['chat', ...R, ...FAST], [`<img:${join(work, 'missing.png')}> hi`, '/frobnicate', 'hello']);
  assert.is(bad.code, 1);
  assert.is(bad.err.length, 2);
  assert.ok(/file not found/.test(bad.err[0]) && /unknown chat command/.test(bad.err[1]));
  assert.is(bad.out.length, 1, 'the session goes on after a failed message');
});

test('train and eval: a stage of the micro recipe, a config file, the report; bad flags and devices are errors', async () => {
  const out = join(work, 'trained');
  const config = join(work, 'recipe.json');
  writeFileSync(config, JSON.stringify({ stages: { clip: { batch: 2 } }, checkpointEvery: 2 }));
  const r = await cli(['train', '--recipe', 'micro', '--stage', 'clip', '--steps', '3', '--config', config, '--out', out]);
  assert.is(r.code, 0, r.err.join(' '));
  assert.equal(r.out, [`trained: ${out}`]);
  assert.ok(r.err.some((l) => /clip: done/.test(l)));
  assert.is(readFileSync(join(out, 'clip', 'metrics.jsonl'), 'utf8').trim().split('\n').length, 3);
  const again = await cli(['train', '--recipe', 'micro', '--stage', 'clip', '--steps', '3', '--config', config, '--out', out, '--resume']);
  assert.ok(again.err.some((l) => /clip: skipped/.test(l)), again.err.join(' '));
  const bad: [string[], RegExp, number][] = [
    [['train', '--stage', 'dream', '--out', out], /--stage must be one of clip, lm, pretrain/, 2],
    [['train', '--recipe', 'micro', '--device', 'tpu', '--out', out], /--device must be one of cpu, sim, cuda/, 2],
    [['train', '--recipe', 'micro', '--config', join(work, 'none.json'), '--out', out], /--config/, 2],
    [['eval', '--run', join(work, 'nowhere')], /not a training run/, 1],
  ];
  if (!cudaAvailable()) bad.push([['train', '--recipe', 'micro', '--device', 'cuda', '--out', join(work, 'gpu')], /device cuda is not available/, 1]);
  writeFileSync(join(work, 'bad.json'), JSON.stringify({ stages: { clip: { epochs: 3 } } }));
  bad.push([['train', '--recipe', 'micro', '--config', join(work, 'bad.json'), '--out', join(work, 'other')], /stages.clip: unknown option epochs/, 1]);
  for (const [argv, re, code] of bad) {
    const e = await cli(argv);
    assert.is(e.code, code, argv.join(' '));
    assert.ok(re.test(e.err.join(' ')), `${argv.join(' ')}: ${e.err.join(' ')}`);
  }
});

test('parseChatLine: text and <img:PATH> in order, commands, syntax errors', () => {
  assert.equal(parseChatLine(' <img:x.png> what is it? <img:y.png>'), { kind: 'message', items: [{ path: 'x.png' }, 'what is it?', { path: 'y.png' }] });
  assert.equal(parseChatLine('hello'), { kind: 'message', items: ['hello'] });
  assert.equal(parseChatLine('/image  my pic.png '), { kind: 'image', path: 'my pic.png' });
  assert.equal(parseChatLine('/exit'), { kind: 'quit' });
  assert.equal(parseChatLine('   '), { kind: 'empty' });
  assert.throws(() => parseChatLine('/image'), (e: unknown) => e instanceof ChatSyntaxError);
  assert.throws(() => parseChatLine('look <img:> here'), (e: unknown) => e instanceof ChatSyntaxError);
  assert.throws(() => parseChatLine('/reset now'), (e: unknown) => e instanceof ChatSyntaxError);
});

test('video-qa frames: .png files sorted by name with numbers as numbers; a missing or empty folder is an error', () => {
  const paths = framePaths(frames);
  assert.is(paths.length, 12);
  assert.equal(paths.slice(0, 3).map((p) => p.slice(frames.length + 1)), ['frame0.png', 'frame1.png', 'frame2.png']);
  assert.is(paths[11].slice(frames.length + 1), 'frame11.png');
  assert.throws(() => framePaths(join(work, 'nope')), /frames folder not found/);
  assert.throws(() => framePaths(work + '/a.png'), /not a folder/);
  const empty = join(work, 'empty');
  mkdirSync(empty);
  assert.throws(() => framePaths(empty), /no \.png frames/);
});

test('usage errors exit 2 with one line naming the problem', async () => {
  const cases: [string[], RegExp][] = [
    [['caption', a, '--frobnicate', ...R], /Unknown option '--frobnicate'/],
    [['caption', ...R], /expected IMG, got 0 arguments/],
    [['vqa', a, ...R], /expected IMG QUESTION/],
    [['generate', 'x', '--steps', 'many', ...R], /--steps must be an integer >= 1, got 'many'/],
    [['generate', 'x', '--sampler', 'euler', ...R], /--sampler must be one of pndm, ddim/],
    [['caption', a, '--device', 'tpu', ...R], /--device must be one of cpu, sim, cuda/],
    [['fewshot', '--example', a, ...R], /needs its text/],
    [['fewshot', '--example', a, 'text', ...R], /query image/],
    [['generate', ...R], /expected a text prompt/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ];
  for (const [argv, re] of cases) {
    const r = await cli(argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.is(r.err.length, 1);
    assert.ok(re.test(r.err[0]), `${argv.join(' ')}: ${r.err[0]}`);
  }
});

/** Spawns bin/emu.mjs as a user would. */
function spawn(argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'emu.mjs'), ...argv], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('spawned: bin/emu.mjs runs --help and a caption', () => {
  const help = spawn(['--help']);
  assert.is(help.code, 0, help.stderr);
  assert.ok(help.stdout.includes('video-qa'));
  const r = spawn(['caption', a, ...R, ...FAST]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.split('\n').length, 2, 'one line of output');
});

test('spawned: a missing run, a corrupt checkpoint, a missing or corrupt image and a bad flag print one line, no stack, and exit non-zero', () => {
  const corrupt = writeMicroRun(['pretrain']);
  const ckpt = new RunDir(corrupt).checkpoint('pretrain');
  writeFileSync(ckpt, readFileSync(ckpt).subarray(0, 300));
  const cases: [string[], number, RegExp][] = [
    [['caption', a, '--run', join(work, 'no-such-run')], 1, /not a training run \(no run\.json\)/],
    [['fewshot', a, '--run', corrupt], 1, /checkpoint\.safetensors/],
    [['caption', join(work, 'missing.png'), ...R], 1, /file not found: .*missing\.png/],
    [['vqa', notPng, 'q?', ...R], 1, /bad\.png/],
    [['generate', 'x', '--seed', '-1', ...R], 2, /--seed/],
  ];
  for (const [argv, code, re] of cases) {
    const r = spawn(argv);
    assert.is(r.code, code, `${argv.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, r.stderr);
    assert.ok(lines[0].startsWith('emu: ') && re.test(lines[0]), lines[0]);
    assert.not.match(r.stderr, /\n\s+at /);
    assert.is(r.stdout, '');
  }
});

test.run();
