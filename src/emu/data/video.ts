// video.ts: short clips of the shapes world: 1-2 shapes sliding in straight lines, a caption of
// the motion, and video-QA pairs, all true by construction.
//
// A clip is its shapes' first-frame positions plus, per shape, a direction (left, right, up,
// down; y grows downwards) and a speed of 1 or 2 pixels per frame on the reference 32 grid.
// Start positions are drawn so that every frame keeps every shape inside the image and the
// shapes' boxes GAP apart (checked at every frame), so readBack separates them in each frame and
// the displacement it measures between the first and last frame has the captioned direction. Two
// shapes always have different colours, so "the red circle" names one shape.
import { ValueError } from '../../tensor/errors.ts';
import {
  BACKGROUNDS, COLORS, KINDS, RADIUS, SIZES, article, mulberry32, numberWord, overlaps, phrase, pick, randInt, render,
  type Background, type QA, type Rng, type Scene, type Shape,
} from './shapes.ts';

export type Direction = 'left' | 'right' | 'up' | 'down';
export const DIRECTIONS: readonly Direction[] = ['left', 'right', 'up', 'down'];

export interface MovingShape extends Shape {
  direction: Direction;
  /** Pixels per frame on the reference 32 grid. */
  speed: number;
}

export interface Clip {
  /** Shapes with their positions in frame 0. */
  shapes: MovingShape[];
  background: Background;
  frames: number;
}

const STEP: Record<Direction, [number, number]> = { left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1] };
const MAX_FRAMES = 16;

/** The shape as it stands in frame t. */
export function shapeAt(s: MovingShape, t: number): Shape {
  const [dx, dy] = STEP[s.direction];
  return { kind: s.kind, color: s.color, size: s.size, cx: s.cx + dx * s.speed * t, cy: s.cy + dy * s.speed * t };
}

/** The still scene of frame t. */
export function clipScene(c: Clip, t: number): Scene {
  return { shapes: c.shapes.map((s) => shapeAt(s, t)), background: c.background };
}

/** A random first-frame centre range for a shape moving `travel` pixels in direction d. */
function startRange(d: Direction, r: number, travel: number): { x: [number, number]; y: [number, number] } {
  const full: [number, number] = [r, 32 - r];
  switch (d) {
    case 'right': return { x: [r, 32 - r - travel], y: full };
    case 'left': return { x: [r + travel, 32 - r], y: full };
    case 'down': return { x: full, y: [r, 32 - r - travel] };
    case 'up': return { x: full, y: [r + travel, 32 - r] };
  }
}

function apartInEveryFrame(a: MovingShape, b: MovingShape, frames: number): boolean {
  for (let t = 0; t < frames; t++) if (overlaps(shapeAt(a, t), shapeAt(b, t))) return false;
  return true;
}

/** 1-2 moving shapes of different colours that stay in bounds and apart in every frame. */
export function randomClip(rng: Rng, frames = 8): Clip {
  if (!Number.isInteger(frames) || frames < 2 || frames > MAX_FRAMES) {
    throw new ValueError(`randomClip: frames must be an integer in [2, ${MAX_FRAMES}], got ${frames}`);
  }
  const background = pick(rng, BACKGROUNDS);
  const n = randInt(rng, 1, 2);
  const shapes: MovingShape[] = [];
  for (let i = 0; i < n; i++) {
    const kind = pick(rng, KINDS);
    const color = pick(rng, COLORS.filter((c) => shapes.every((s) => s.color !== c)));
    const direction = pick(rng, DIRECTIONS);
    let size = pick(rng, SIZES);
    let speed = randInt(rng, 1, 2);
    let placed: MovingShape | null = null;
    for (let attempt = 0; attempt < 200 && !placed; attempt++) {
      if (attempt === 100) { size = 'small'; speed = 1; } // crowded: fall back to a small, slow one
      const r = RADIUS[size];
      const travel = speed * (frames - 1);
      const range = startRange(direction, r, travel);
      if (range.x[0] > range.x[1] || range.y[0] > range.y[1]) continue; // too long a trip at this speed
      const s: MovingShape = {
        kind, color, size, direction, speed, cx: randInt(rng, range.x[0], range.x[1]), cy: randInt(rng, range.y[0], range.y[1]),
      };
      if (shapes.every((o) => apartInEveryFrame(o, s, frames))) placed = s;
    }
    if (placed) shapes.push(placed); // the first shape always fits, so a clip is never empty
  }
  return { shapes, background, frames };
}

/** The clip of a seed: a pure function. */
export function clip(seed: number, frames = 8): Clip {
  return randomClip(mulberry32(seed), frames);
}

/** The frames, each an HxWx3 Float32Array in [0,1]. */
export function renderClip(c: Clip, size = 32): Float32Array[] {
  return Array.from({ length: c.frames }, (_, t) => render(clipScene(c, t), size));
}

// ---------------------------------------------------------------------------------------------
// Language

const TOWARDS: Record<Direction, string> = { left: 'to the left', right: 'to the right', up: 'up', down: 'down' };
const ACROSS: Record<Direction, string> = {
  left: 'from right to left', right: 'from left to right', up: 'from bottom to top', down: 'from top to bottom',
};

/** "a red circle moves to the right" and variants, for one shape. */
function motionClause(s: MovingShape, rng: Rng): string {
  const p = phrase(s, rng() < 0.4);
  const np = `${article(p)} ${p}`;
  return pick(rng, [
    () => `${np} moves ${TOWARDS[s.direction]}`,
    () => `${np} moving ${s.direction}`,
    () => `${np} slides ${TOWARDS[s.direction]}`,
    () => `${np} moves ${ACROSS[s.direction]}`,
  ])();
}

/** A true caption of the clip's motion. */
export function motionCaption(c: Clip, rng: Rng): string {
  const clauses = c.shapes.map((s) => motionClause(s, rng));
  const body = clauses.length === 1 ? clauses[0] : `${clauses[0]}${pick(rng, [' and ', ' while '])}${clauses[1]}`;
  return rng() < 0.25 ? `${body} on a ${c.background} background` : body;
}

/** "red circle": colours are unique within a clip, so colour + kind names one shape. */
export function movingName(s: MovingShape): string {
  return `${s.color} ${s.kind}`;
}

/** Video QA with single-word answers: direction, colour and shape of movers, count, yes/no. */
export function videoQA(c: Clip, rng: Rng): QA[] {
  const qs: QA[] = [];
  qs.push({ question: 'how many shapes are moving?', answer: numberWord(c.shapes.length) });
  for (const s of c.shapes) {
    qs.push({ question: `which way does the ${movingName(s)} move?`, answer: s.direction });
    const probe = pick(rng, DIRECTIONS);
    qs.push({ question: `is the ${movingName(s)} moving ${probe}?`, answer: probe === s.direction ? 'yes' : 'no' });
  }
  for (const d of DIRECTIONS) {
    const movers = c.shapes.filter((s) => s.direction === d);
    if (movers.length !== 1) continue;
    qs.push({ question: `what colour is the shape moving ${d}?`, answer: movers[0].color });
    qs.push({ question: `what shape is moving ${d}?`, answer: movers[0].kind });
  }
  return qs;
}
