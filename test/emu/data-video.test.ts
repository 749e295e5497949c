// data-video.test.ts: the moving-shapes clips of src/emu/data/video.ts: determinism; every frame
// in bounds with the shapes apart; the motion read back from the rendered pixels (readBack on
// every frame) agrees with the caption (parsed back) and with every video-QA answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValueError } from '../../src/tensor/errors.ts';
import { COLORS, GAP, KINDS, RADIUS, mulberry32, readBack, type FoundShape } from '../../src/emu/data/shapes.ts';
import { clip, clipScene, motionCaption, renderClip, videoQA, type Direction } from '../../src/emu/data/video.ts';

interface Motion { color: string; kind: string; size: string; direction: Direction }

/** Motion of each shape measured from pixels: readBack every frame, match by colour (unique per clip). */
function motionFromPixels(frames: Float32Array[], size = 32): Motion[] {
  const found = frames.map((f) => readBack(f, size));
  const first = found[0], last = found[found.length - 1];
  return first.map((a) => {
    const track = found.map((fs) => fs.filter((f) => f.color === a.color));
    for (const t of track) assert.is(t.length, 1, `${a.color} ${a.kind} not seen exactly once in every frame`);
    const steps = track.map((t) => t[0] as FoundShape);
    const b = last.find((f) => f.color === a.color)!;
    const dx = b.cx - a.cx, dy = b.cy - a.cy;
    assert.ok(Math.max(Math.abs(dx), Math.abs(dy)) >= 6, `${a.color} ${a.kind} barely moves (${dx}, ${dy})`);
    // Monotone along the way, and straight (the other axis stays put within read-back jitter).
    for (let t = 1; t < steps.length; t++) {
      const sx = steps[t].cx - steps[t - 1].cx, sy = steps[t].cy - steps[t - 1].cy;
      assert.ok(sx * dx >= 0 && sy * dy >= 0, 'motion reverses');
    }
    const direction: Direction = Math.abs(dx) > Math.abs(dy) ? (dx > 0 ? 'right' : 'left') : (dy > 0 ? 'down' : 'up');
    assert.ok(Math.min(Math.abs(dx), Math.abs(dy)) <= 1, `not a straight line: (${dx}, ${dy})`);
    return { color: a.color, kind: a.kind, size: a.size, direction };
  });
}

const DIRECTION_OF: Record<string, Direction> = {
  'to the left': 'left', 'to the right': 'right', up: 'up', down: 'down', left: 'left', right: 'right',
  'from left to right': 'right', 'from right to left': 'left', 'from bottom to top': 'up', 'from top to bottom': 'down',
};
const CLAUSE = new RegExp(`\\ban? (?:(small|large) )?(${COLORS.join('|')}) (${KINDS.join('|')}) (?:moves|moving|slides) `
  + `(from left to right|from right to left|from bottom to top|from top to bottom|to the left|to the right|up|down|left|right)\\b`, 'g');

test('same seed gives the same clip, frames and texts; seeds differ', () => {
  for (const seed of [0, 5, 2 ** 31 + 9]) {
    assert.equal(clip(seed), clip(seed));
    assert.equal(renderClip(clip(seed)).map((f) => Array.from(f)), renderClip(clip(seed)).map((f) => Array.from(f)));
    assert.is(motionCaption(clip(seed), mulberry32(1)), motionCaption(clip(seed), mulberry32(1)));
    assert.equal(videoQA(clip(seed), mulberry32(2)), videoQA(clip(seed), mulberry32(2)));
  }
  const distinct = new Set(Array.from({ length: 50 }, (_, s) => JSON.stringify(clip(s))));
  assert.ok(distinct.size >= 49);
});

test('every frame keeps every shape in bounds, GAP apart; 1-2 shapes of distinct colours; all directions occur', () => {
  const counts = [0, 0, 0];
  const directions = new Set<string>();
  for (let seed = 0; seed < 500; seed++) {
    const c = clip(seed);
    assert.is(c.frames, 8);
    counts[c.shapes.length]++;
    assert.ok(c.shapes.length >= 1 && c.shapes.length <= 2);
    assert.is(new Set(c.shapes.map((s) => s.color)).size, c.shapes.length, 'colours repeat');
    for (const s of c.shapes) directions.add(s.direction);
    for (let t = 0; t < c.frames; t++) {
      const shapes = clipScene(c, t).shapes;
      for (const s of shapes) {
        const r = RADIUS[s.size];
        assert.ok(s.cx - r >= 0 && s.cx + r <= 32 && s.cy - r >= 0 && s.cy + r <= 32, `seed ${seed} frame ${t} out of bounds`);
      }
      if (shapes.length === 2) {
        const [a, b] = shapes, d = RADIUS[a.size] + RADIUS[b.size] + GAP;
        assert.ok(Math.abs(a.cx - b.cx) >= d || Math.abs(a.cy - b.cy) >= d, `seed ${seed} frame ${t} overlap`);
      }
    }
  }
  assert.ok(counts[1] > 150 && counts[2] > 150, `shape counts ${counts}`);
  assert.is(directions.size, 4);
});

test('the motion read back from the pixels is the motion the caption states (300 clips)', () => {
  const templates = new Set<string>();
  for (let seed = 1000; seed < 1300; seed++) {
    const c = clip(seed);
    const measured = motionFromPixels(renderClip(c));
    assert.is(measured.length, c.shapes.length, `seed ${seed}: read back ${measured.length} shapes`);
    const cap = motionCaption(c, mulberry32(seed));
    const clauses = [...cap.matchAll(CLAUSE)];
    assert.is(clauses.length, c.shapes.length, `seed ${seed}: "${cap}"`);
    for (const m of clauses) {
      const [, size, color, kind, dir] = m;
      const seen = measured.find((x) => x.color === color);
      assert.ok(seen, `"${cap}": no ${color} shape in the pixels`);
      assert.is(seen!.kind, kind, cap);
      if (size) assert.is(seen!.size, size, cap);
      assert.is(seen!.direction, DIRECTION_OF[dir], `seed ${seed}: "${cap}"`);
      templates.add(m[0].replace(/.* (moves|moving|slides) .*/, '$1'));
    }
    const bg = /on an? (\w+) background/.exec(cap);
    if (bg) assert.is(bg[1], c.background);
  }
  assert.is(templates.size, 3);
});

test('video QA answers agree with the motion read back from the pixels', () => {
  const kinds = new Set<string>();
  for (let seed = 2000; seed < 2200; seed++) {
    const c = clip(seed);
    const measured = motionFromPixels(renderClip(c));
    const named = (name: string) => measured.filter((x) => `${x.color} ${x.kind}` === name);
    for (const { question: q, answer } of videoQA(c, mulberry32(seed))) {
      assert.ok(/^\w+$/.test(answer), `not one word: ${answer}`);
      let m: RegExpExecArray | null;
      let expected: string;
      if (q === 'how many shapes are moving?') expected = ['zero', 'one', 'two'][measured.length];
      else if ((m = /^which way does the (\w+ \w+) move\?$/.exec(q))) expected = named(m[1])[0].direction;
      else if ((m = /^is the (\w+ \w+) moving (\w+)\?$/.exec(q))) expected = named(m[1])[0].direction === m[2] ? 'yes' : 'no';
      else if ((m = /^what colour is the shape moving (\w+)\?$/.exec(q))) {
        const movers = measured.filter((x) => x.direction === m![1]);
        assert.is(movers.length, 1, q);
        expected = movers[0].color;
      } else if ((m = /^what shape is moving (\w+)\?$/.exec(q))) {
        const movers = measured.filter((x) => x.direction === m![1]);
        assert.is(movers.length, 1, q);
        expected = movers[0].kind;
      } else throw new Error(`unknown question: ${q}`);
      assert.is(answer, expected, `seed ${seed}: ${q}`);
      kinds.add(q.split(' ').slice(0, 2).join(' '));
    }
  }
  assert.is(kinds.size, 5);
});

test('clips at other frame counts and sizes; bad frame counts are ValueErrors', () => {
  const c = clip(3, 4);
  assert.is(renderClip(c, 16).length, 4);
  assert.is(renderClip(c, 16)[0].length, 16 * 16 * 3);
  assert.is(motionFromPixels(renderClip(clip(11, 16), 64), 64).length, clip(11, 16).shapes.length);
  for (const bad of [1, 17, 2.5]) assert.throws(() => clip(0, bad), (e: unknown) => e instanceof ValueError && /frames/.test((e as Error).message));
});

test.run();
