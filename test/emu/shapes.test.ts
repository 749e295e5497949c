// shapes.test.ts: the synthetic shapes world of src/emu/data/shapes.ts: determinism of scenes,
// pixels, captions and VQA; scene constraints (1-3 shapes, in bounds, no overlap); render ->
// readBack recovery (clean and with +-0.05 noise); captions only state true facts (parsed back
// and checked against the scene); VQA answers recomputed independently; coverage of all kinds
// and colours over 1,000 scenes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BACKGROUNDS, COLORS, GAP, KINDS, RADIUS, caption, holds, mulberry32, readBack, render, scene, vqa,
  type Relation, type Scene, type Shape,
} from '../../src/emu/data/shapes.ts';

const WORDS = ['zero', 'one', 'two', 'three'];

test('same seed gives identical scene, pixels, captions and VQA; different seeds differ', () => {
  for (const seed of [0, 1, 42, 123456789, 0xffffffff]) {
    const a = scene(seed), b = scene(seed);
    assert.equal(a, b);
    assert.equal(Array.from(render(a)), Array.from(render(b)));
    assert.is(caption(a, mulberry32(seed)), caption(b, mulberry32(seed)));
    assert.equal(vqa(a, mulberry32(seed)), vqa(b, mulberry32(seed)));
  }
  const distinct = new Set(Array.from({ length: 50 }, (_, s) => JSON.stringify(scene(s))));
  assert.ok(distinct.size >= 49, `only ${distinct.size} distinct scenes of 50`);
  assert.not.equal(Array.from(render(scene(1))), Array.from(render(scene(2))));
});

test('scenes have 1-3 shapes, in bounds, not overlapping', () => {
  const counts = [0, 0, 0, 0];
  for (let seed = 0; seed < 1000; seed++) {
    const sc = scene(seed);
    assert.ok(sc.shapes.length >= 1 && sc.shapes.length <= 3, `seed ${seed}`);
    counts[sc.shapes.length]++;
    for (const s of sc.shapes) {
      const r = RADIUS[s.size];
      assert.ok(s.cx - r >= 0 && s.cx + r <= 32 && s.cy - r >= 0 && s.cy + r <= 32, `seed ${seed} out of bounds`);
      assert.ok(Number.isInteger(s.cx) && Number.isInteger(s.cy));
    }
    for (let i = 0; i < sc.shapes.length; i++) {
      for (let j = i + 1; j < sc.shapes.length; j++) {
        const a = sc.shapes[i], b = sc.shapes[j], d = RADIUS[a.size] + RADIUS[b.size] + GAP;
        assert.ok(Math.abs(a.cx - b.cx) >= d || Math.abs(a.cy - b.cy) >= d, `seed ${seed} overlap`);
      }
    }
  }
  for (const n of [1, 2, 3]) assert.ok(counts[n] > 200, `count ${n}: ${counts[n]}`);
});

test('render: shape of the array, values in [0,1], background where no shape', () => {
  const sc = scene(7);
  for (const size of [32, 16, 64]) {
    const px = render(sc, size);
    assert.is(px.length, size * size * 3);
    assert.ok(px.every((v) => v >= 0 && v <= 1));
  }
  const empty: Scene = { shapes: [], background: 'gray' };
  assert.ok(render(empty).every((v) => v === 0.5));
});

/** Scene shapes matched one-to-one with found shapes (kind, colour, size, centre within tol). */
function recovered(sc: Scene, found: ReturnType<typeof readBack>, tol = 1.0): boolean {
  if (found.length !== sc.shapes.length) return false;
  const used = new Set<number>();
  for (const s of sc.shapes) {
    const k = found.findIndex((f, i) => !used.has(i) && f.kind === s.kind && f.color === s.color && f.size === s.size
      && Math.abs(f.cx - s.cx) <= tol && Math.abs(f.cy - s.cy) <= tol);
    if (k < 0) return false;
    used.add(k);
  }
  return true;
}

test('readBack recovers kinds, colours, sizes and positions of 200 scenes (>= 98%)', () => {
  let ok = 0;
  const bad: number[] = [];
  for (let seed = 1000; seed < 1200; seed++) {
    const sc = scene(seed);
    if (recovered(sc, readBack(render(sc)))) ok++; else bad.push(seed);
  }
  assert.ok(ok >= 196, `recovered ${ok}/200; failures at seeds ${bad.join(',')}`);
});

test('readBack tolerates +-0.05 uniform noise', () => {
  let ok = 0;
  const rng = mulberry32(99);
  for (let seed = 2000; seed < 2200; seed++) {
    const sc = scene(seed);
    const px = render(sc);
    for (let i = 0; i < px.length; i++) px[i] = Math.min(1, Math.max(0, px[i] + (rng() * 2 - 1) * 0.05));
    if (recovered(sc, readBack(px))) ok++;
  }
  assert.ok(ok >= 196, `recovered ${ok}/200 with noise`);
});

test('readBack works at 64x64 too', () => {
  let ok = 0;
  for (let seed = 3000; seed < 3050; seed++) {
    const sc = scene(seed);
    if (recovered(sc, readBack(render(sc, 64), 64))) ok++;
  }
  assert.ok(ok >= 49, `recovered ${ok}/50 at 64x64`);
});

// --- caption checking: parse the noun phrases and relations back and test them against the scene.
const NP = `(?:(small|large) )?(?:(${COLORS.join('|')}) )?(${KINDS.join('|')})`;
const REL: Record<string, Relation> = {
  'to the left of': 'left of', 'to the right of': 'right of', above: 'above', below: 'below',
};

function matches(s: Shape, size?: string, color?: string, kind?: string): boolean {
  return (!size || s.size === size) && (!color || s.color === color) && (!kind || s.kind === kind);
}

function checkCaption(sc: Scene, cap: string): void {
  let phrases = 0;
  for (const m of cap.matchAll(new RegExp(`\\b${NP}\\b`, 'g'))) {
    phrases++;
    assert.ok(sc.shapes.some((s) => matches(s, m[1], m[2], m[3])), `"${cap}": no ${m[0]} in ${JSON.stringify(sc)}`);
  }
  assert.ok(phrases >= 1, `"${cap}" names no shape`);
  const rel = new RegExp(`${NP} (to the left of|to the right of|above|below) an? ${NP}`).exec(cap);
  if (rel) {
    const ok = sc.shapes.some((a) => matches(a, rel[1], rel[2], rel[3])
      && sc.shapes.some((b) => b !== a && matches(b, rel[5], rel[6], rel[7]) && holds(a, REL[rel[4]], b)));
    assert.ok(ok, `"${cap}": relation false in ${JSON.stringify(sc)}`);
  }
  const count = /\b(one|two|three) shapes?\b/.exec(cap);
  if (count) assert.is(WORDS.indexOf(count[1]), sc.shapes.length, cap);
  if (sc.shapes.length >= 2) assert.ok(rel || count, `"${cap}" states neither relation nor count`);
  const bg = /on an? (\w+) background/.exec(cap);
  if (bg) assert.is(bg[1], sc.background, cap);
}

test('every caption states only true facts, and captions vary', () => {
  const seen = new Set<string>();
  const shapesOf = new Set<string>();
  for (let seed = 0; seed < 500; seed++) {
    const sc = scene(seed);
    const rng = mulberry32(seed + 77);
    for (let k = 0; k < 4; k++) {
      const cap = caption(sc, rng);
      checkCaption(sc, cap);
      seen.add(cap);
      shapesOf.add(cap.replace(new RegExp(NP, 'g'), 'X').replace(/\b(one|two|three)\b/g, 'N').replace(/(white|black|gray) background/, 'B background'));
    }
  }
  assert.ok(seen.size > 1500, `only ${seen.size} distinct captions`);
  assert.ok(shapesOf.size >= 8, `only ${shapesOf.size} templates seen: ${[...shapesOf].join(' | ')}`);
});

// --- VQA checking: answer each question again from the scene, independently of vqa().
function answer(sc: Scene, q: string): string {
  const S = sc.shapes;
  let m: RegExpExecArray | null;
  if (q === 'how many shapes are there?') return WORDS[S.length];
  if ((m = /^how many (\w+)s are there\?$/.exec(q))) return WORDS[S.filter((s) => s.kind === m![1]).length];
  if ((m = /^what colour is the (\w+)\?$/.exec(q))) {
    const xs = S.filter((s) => s.kind === m![1]);
    assert.is(xs.length, 1, `ambiguous: ${q}`);
    return xs[0].color;
  }
  if ((m = /^what size is the (\w+)\?$/.exec(q))) {
    const xs = S.filter((s) => s.kind === m![1]);
    assert.is(xs.length, 1, `ambiguous: ${q}`);
    return xs[0].size;
  }
  if ((m = /^what shape is (\w+)\?$/.exec(q))) {
    const xs = S.filter((s) => s.color === m![1]);
    assert.is(xs.length, 1, `ambiguous: ${q}`);
    return xs[0].kind;
  }
  if ((m = new RegExp(`^is there an? ${NP}\\?$`).exec(q))) {
    return S.some((s) => matches(s, m![1], m![2], m![3])) ? 'yes' : 'no';
  }
  if ((m = new RegExp(`^is the ${NP} (left of|right of|above|below) the ${NP}\\?$`).exec(q))) {
    const as = S.filter((s) => matches(s, m![1], m![2], m![3]));
    const bs = S.filter((s) => matches(s, m![5], m![6], m![7]));
    assert.is(as.length, 1, `ambiguous: ${q}`);
    assert.is(bs.length, 1, `ambiguous: ${q}`);
    assert.ok(as[0] !== bs[0]);
    return holds(as[0], m[4] as Relation, bs[0]) ? 'yes' : 'no';
  }
  throw new Error(`unknown question: ${q}`);
}

test('VQA answers are single words and correct (recomputed from the scene)', () => {
  const types = new Map<string, number>();
  const answers = new Set<string>();
  for (let seed = 0; seed < 500; seed++) {
    const sc = scene(seed);
    const qas = vqa(sc, mulberry32(seed + 5));
    assert.ok(qas.length >= 3);
    for (const { question, answer: a } of qas) {
      assert.ok(/^\w+$/.test(a), `not one word: ${a}`);
      assert.is(a, answer(sc, question), `${question} in ${JSON.stringify(sc)}`);
      const t = question.split(' ').slice(0, 2).join(' ');
      types.set(t, (types.get(t) ?? 0) + 1);
      answers.add(a);
    }
  }
  for (const t of ['how many', 'what colour', 'what shape', 'what size', 'is the', 'is there']) {
    assert.ok((types.get(t) ?? 0) > 50, `few "${t}" questions: ${types.get(t)}`);
  }
  for (const a of ['yes', 'no', 'one', 'two', 'three', ...COLORS, ...KINDS]) assert.ok(answers.has(a), `answer ${a} never seen`);
});

test('over 1,000 scenes every kind, colour, size and background appears', () => {
  const seen = new Map<string, number>();
  for (let seed = 0; seed < 1000; seed++) {
    const sc = scene(seed);
    seen.set(sc.background, (seen.get(sc.background) ?? 0) + 1);
    for (const s of sc.shapes) for (const v of [s.kind, s.color, s.size]) seen.set(v, (seen.get(v) ?? 0) + 1);
  }
  for (const v of [...KINDS, ...COLORS, 'small', 'large', ...BACKGROUNDS]) {
    assert.ok((seen.get(v) ?? 0) > 100, `${v}: ${seen.get(v)}`);
  }
});

test.run();
