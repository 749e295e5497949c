// data-dialogue.test.ts: Emu-I dialogues (src/emu/data/dialogue.ts): the template string, the
// answer marking the trainer's target mask is built from, determinism, and truth: every answer
// recomputed from the pixels (readBack on the image, or on the first and last video frames).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/tensor/errors.ts';
import {
  DESCRIBE_IMAGE, DESCRIBE_VIDEO, IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE, WHICH_DIGIT, digitDialogue, formatDialogue, imageDialogue,
  videoDialogue, type Dialogue,
} from '../../src/emu/data/dialogue.ts';
import { EOS, type SamplePart } from '../../src/emu/data/sample.ts';
import { COLORS, KINDS, holds, numberWord, readBack, type FoundShape, type Relation } from '../../src/emu/data/shapes.ts';
import { mnistEntries, mnistImage } from '../../src/emu/data/mnist.ts';

const WORDS = ['zero', 'one', 'two', 'three'];
const NAMED = new RegExp(`\\b(${COLORS.join('|')}) (${KINDS.join('|')})\\b`, 'g');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function flat(parts: SamplePart[]): string {
  return parts.map((p) => ('text' in p ? p.text : '{I}')).join('');
}

/** Shapes matching "kind", "colour kind" or "size colour kind". */
function referred(found: FoundShape[], words: string): FoundShape[] {
  const w = words.split(' ');
  const kind = w[w.length - 1], color = w.length >= 2 ? w[w.length - 2] : undefined, size = w.length === 3 ? w[0] : undefined;
  return found.filter((f) => f.kind === kind && (!color || f.color === color) && (!size || f.size === size));
}

/** The answer to an image question, from the read-back shapes alone. */
function imageAnswer(found: FoundShape[], q: string, a: string): string {
  let m: RegExpExecArray | null;
  const one = (xs: FoundShape[]) => { assert.is(xs.length, 1, `ambiguous: ${q}`); return xs[0]; };
  if (q === DESCRIBE_IMAGE) {
    for (const n of a.matchAll(NAMED)) assert.ok(found.some((f) => f.color === n[1] && f.kind === n[2]), `caption "${a}"`);
    return a;
  }
  if (q === 'how many shapes are there?') return WORDS[found.length];
  if ((m = /^how many (\w+)s are there\?$/.exec(q))) return WORDS[found.filter((f) => f.kind === m![1]).length];
  if ((m = /^what colour is the (\w+)\?$/.exec(q))) return one(referred(found, m[1])).color;
  if ((m = /^what size is the (\w+)\?$/.exec(q))) return one(referred(found, m[1])).size;
  if ((m = /^what shape is (\w+)\?$/.exec(q))) return one(found.filter((f) => f.color === m![1])).kind;
  if ((m = /^is there an? (\w+) (\w+)\?$/.exec(q))) return found.some((f) => f.color === m![1] && f.kind === m![2]) ? 'yes' : 'no';
  if ((m = /^is the ([\w ]+?) (left of|right of|above|below) the ([\w ]+)\?$/.exec(q))) {
    return holds(one(referred(found, m[1])), m[2] as Relation, one(referred(found, m[3]))) ? 'yes' : 'no';
  }
  throw new Error(`unknown question: ${q}`);
}

/** The answer to a video question, from the first and last frames' read-back shapes. */
function videoAnswer(first: FoundShape[], last: FoundShape[], q: string, a: string): string {
  const direction = (color: string): string => {
    const f = first.find((x) => x.color === color)!, l = last.find((x) => x.color === color)!;
    const dx = l.cx - f.cx, dy = l.cy - f.cy;
    return Math.abs(dx) > Math.abs(dy) ? (dx > 0 ? 'right' : 'left') : (dy > 0 ? 'down' : 'up');
  };
  let m: RegExpExecArray | null;
  if (q === DESCRIBE_VIDEO) {
    for (const n of a.matchAll(NAMED)) assert.ok(first.some((f) => f.color === n[1] && f.kind === n[2]), `caption "${a}"`);
    return a;
  }
  if (q === 'how many shapes are moving?') return WORDS[first.length];
  if ((m = /^which way does the (\w+) (\w+) move\?$/.exec(q))) return direction(m[1]);
  if ((m = /^is the (\w+) (\w+) moving (\w+)\?$/.exec(q))) return direction(m[1]) === m[3] ? 'yes' : 'no';
  if ((m = /^what (colour|shape) is the shape moving (\w+)\?$|^what (shape) is moving (\w+)\?$/.exec(q))) {
    const dir = m[2] ?? m[4];
    const movers = first.filter((f) => direction(f.color) === dir);
    assert.is(movers.length, 1, q);
    return m[1] === 'colour' ? movers[0].color : movers[0].kind;
  }
  throw new Error(`unknown question: ${q}`);
}

/** Checks the template and the answer marking; returns the first turn's visual part. */
function checkFormat(d: Dialogue, system: string): SamplePart {
  const parts = formatDialogue(d);
  const turn = ' \\[USER\\]: [^\\[]+ \\[ASSISTANT\\]: [^\\[<]+</s>';
  const re = new RegExp(`^${esc(system)} \\[USER\\]: \\{I\\}[^\\[]+ \\[ASSISTANT\\]: [^\\[<]+</s>(${turn})*$`);
  assert.ok(re.test(flat(parts)), flat(parts));
  // Answer parts: exactly " answer" then "</s>" per turn, in order; nothing else is marked.
  const marked = parts.filter((p) => 'text' in p && p.answer).map((p) => (p as { text: string }).text);
  assert.equal(marked, d.turns.flatMap((t) => [` ${t.assistant}`, EOS]));
  assert.ok(parts.every((p) => !('text' in p) || p.answer || !p.text.includes(EOS)), 'an unmarked part holds </s>');
  assert.is((parts[parts.length - 1] as { text: string }).text, EOS);
  const visual = parts.filter((p) => !('text' in p));
  assert.is(visual.length, 1);
  return visual[0];
}

test('image dialogues: template, answer marks, and every answer true of the pixels', () => {
  const turnCounts = new Set<number>();
  let describes = 0;
  for (let seed = 0; seed < 300; seed++) {
    const d = imageDialogue(seed);
    turnCounts.add(d.turns.length);
    const visual = checkFormat(d, IMAGE_SYSTEM_MESSAGE);
    assert.ok('image' in visual);
    const found = readBack((visual as { image: Float32Array }).image);
    for (const t of d.turns) {
      assert.is(imageAnswer(found, (t.user.find((p) => 'text' in p) as { text: string }).text, t.assistant), t.assistant, `seed ${seed}`);
      if (t.user.some((p) => 'text' in p && p.text === DESCRIBE_IMAGE)) describes++;
    }
  }
  assert.equal([...turnCounts].sort(), [1, 2, 3]);
  assert.ok(describes > 100 && describes < 200, `${describes} description turns in 300`);
});

test('video dialogues: the video variant, and every answer true of the first and last frames', () => {
  for (let seed = 0; seed < 200; seed++) {
    const d = videoDialogue(seed, { turns: 3 });
    assert.is(d.turns.length, 3);
    const visual = checkFormat(d, VIDEO_SYSTEM_MESSAGE);
    assert.ok('video' in visual);
    const frames = (visual as { video: Float32Array[] }).video;
    assert.is(frames.length, 8);
    const first = readBack(frames[0]), last = readBack(frames[7]);
    for (const t of d.turns) {
      assert.is(videoAnswer(first, last, (t.user.find((p) => 'text' in p) as { text: string }).text, t.assistant), t.assistant, `seed ${seed}`);
    }
  }
});

test('digit dialogues: the image template, the digit itself, and answers naming its label', () => {
  const entries = mnistEntries('train');
  const kinds = new Set<string>();
  for (let i = 0; i < entries.length; i += 97) {
    const e = entries[i];
    const d = digitDialogue(e);
    const visual = checkFormat(d, IMAGE_SYSTEM_MESSAGE);
    assert.equal(Array.from((visual as { image: Float32Array }).image), Array.from(mnistImage(e)));
    assert.ok(d.turns.length === 1 || d.turns.length === 2);
    for (const t of d.turns) {
      const q = (t.user.find((p) => 'text' in p) as { text: string }).text;
      kinds.add(q);
      if (q === WHICH_DIGIT) assert.is(t.assistant, numberWord(e.label));
      else {
        assert.is(q, DESCRIBE_IMAGE);
        assert.ok(t.assistant.includes(numberWord(e.label)) || t.assistant.includes(String(e.label)), t.assistant);
      }
    }
  }
  assert.equal([...kinds].sort(), [DESCRIBE_IMAGE, WHICH_DIGIT].sort());
  assert.is(digitDialogue(entries[5], { turns: 2 }).turns[0].assistant, digitDialogue(entries[5], { turns: 2 }).turns[0].assistant);
  assert.throws(() => digitDialogue(entries[0], { turns: 3 }), (e: unknown) => e instanceof ValueError && /turns/.test((e as Error).message));
});

test('dialogues are deterministic; bad turn counts and empty dialogues are ValueErrors', () => {
  const strip = (d: Dialogue) => JSON.stringify(formatDialogue(d).map((p) => ('text' in p ? p : 'image' in p ? Array.from(p.image) : p.video.map((f) => Array.from(f)))));
  assert.is(strip(imageDialogue(9)), strip(imageDialogue(9)));
  assert.is(strip(videoDialogue(9)), strip(videoDialogue(9)));
  assert.is.not(strip(imageDialogue(9)), strip(imageDialogue(10)));
  assert.is(imageDialogue(9, { size: 16 }).turns[0].user.length, 2);
  assert.is((imageDialogue(9, { size: 16 }).turns[0].user[0] as { image: Float32Array }).image.length, 16 * 16 * 3);
  for (const turns of [0, 1.5]) assert.throws(() => imageDialogue(1, { turns }), (e: unknown) => e instanceof ValueError && /turns/.test((e as Error).message));
  assert.throws(() => formatDialogue({ system: IMAGE_SYSTEM_MESSAGE, turns: [] }), (e: unknown) => e instanceof ValueError);
});

test.run();
