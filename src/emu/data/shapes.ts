// shapes.ts: the built-in synthetic "shapes world" used by the end-to-end demo and its evaluation.
//
// Everything is a pure function of a seed: `scene(seed)` draws 1-3 non-overlapping shapes
// (circle, square, triangle) in one of six palette colours, two sizes, on a neutral background;
// `render` rasterises it to an HxWx3 Float32Array in [0,1] (no anti-aliasing: circles by
// distance, squares by box, triangles by half-plane tests, sampled at pixel centres);
// `caption` writes a true description from varied templates; `vqa` writes question/answer pairs
// (colour, shape, size, count, position, yes/no existence) with single-word answers; and
// `readBack` recovers the shapes from pixels (palette segmentation + connected components +
// bounding-box fill ratio), which is what later scores generated images.
//
// Geometry (32x32): a shape of half-extent r occupies the pixel box [cx-r, cx+r) x [cy-r, cy+r);
// small r = 4 (8 px), large r = 7 (14 px); cx, cy are integers. The triangle points up with its
// apex at (cx, cy-r) and base corners (cx-r, cy+r), (cx+r, cy+r), so every kind's bounding box is
// centred on (cx, cy). Boxes of different shapes are at least GAP pixels apart. At other image
// sizes the radii scale with size/32.
//
// Centres lie on a GRID-pixel lattice. The tiny ViT sees 8x8 patches; with centres anywhere, a
// small shape falls across the patch grid at 64 different offsets, and the tower must learn the
// kind separately at each: trained on kind alone (800 steps of 32, lr 3e-4), a linear head on its
// CLS token was right 59% of the time with 1-pixel centres, 66% with a 2-pixel grid and 96%
// with 4 (100% with 8, which leaves too few positions). After CLIP and pretraining on 1-pixel
// centres the shape could not be read from the visual embeddings (linear probe 45%, chance 33%),
// and captions, answers and pictures got colours right and shapes wrong. Positions and relations
// stay varied (7 centres per axis for small shapes, 5 for large).

export type Kind = 'circle' | 'square' | 'triangle';
export type ColorName = 'red' | 'green' | 'blue' | 'yellow' | 'purple' | 'orange';
export type SizeName = 'small' | 'large';
export type Background = 'white' | 'black' | 'gray';

export const KINDS: readonly Kind[] = ['circle', 'square', 'triangle'];
export const COLORS: readonly ColorName[] = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
export const SIZES: readonly SizeName[] = ['small', 'large'];
export const BACKGROUNDS: readonly Background[] = ['white', 'black', 'gray'];

/** Fixed RGB values in [0,1]; pairwise far apart (and from the backgrounds) for robust read-back. */
export const PALETTE: Record<ColorName, [number, number, number]> = {
  red: [0.9, 0.1, 0.1],
  green: [0.1, 0.75, 0.2],
  blue: [0.15, 0.3, 0.95],
  yellow: [0.95, 0.85, 0.1],
  purple: [0.6, 0.2, 0.8],
  orange: [1.0, 0.55, 0.05],
};
export const BACKGROUND_RGB: Record<Background, [number, number, number]> = {
  white: [1, 1, 1],
  black: [0, 0, 0],
  gray: [0.5, 0.5, 0.5],
};

/** Half-extent in pixels at the reference size 32. */
export const RADIUS: Record<SizeName, number> = { small: 4, large: 7 };
/** Minimum empty pixels between two shapes' bounding boxes. */
export const GAP = 2;
/** Shape centres are multiples of GRID pixels (reference size 32); see the header. */
export const GRID = 4;

export interface Shape {
  kind: Kind;
  color: ColorName;
  size: SizeName;
  /** Pixel centre (integer) at the reference size 32. */
  cx: number;
  cy: number;
}

export interface Scene {
  shapes: Shape[];
  background: Background;
}

export interface QA {
  question: string;
  answer: string;
}

// ---------------------------------------------------------------------------------------------
// PRNG

/** mulberry32: a 32-bit seeded generator returning floats in [0,1). Pure function of the seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rng = () => number;

/** Integer in [lo, hi] inclusive. */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)];
}

// ---------------------------------------------------------------------------------------------
// Scenes

/** Half-extent of a shape, in pixels of the reference 32x32 grid. */
export function radius(s: Shape): number {
  return RADIUS[s.size];
}

/** True if the bounding boxes of a and b (grown by GAP) intersect. */
export function overlaps(a: Shape, b: Shape): boolean {
  const ra = radius(a), rb = radius(b);
  const sepX = Math.abs(a.cx - b.cx) >= ra + rb + GAP;
  const sepY = Math.abs(a.cy - b.cy) >= ra + rb + GAP;
  return !(sepX || sepY);
}

/** 1-3 shapes with random kind/colour/size, placed without overlap (retrying positions). */
export function randomScene(rng: Rng): Scene {
  const background = pick(rng, BACKGROUNDS);
  const n = randInt(rng, 1, 3);
  const shapes: Shape[] = [];
  for (let i = 0; i < n; i++) {
    const kind = pick(rng, KINDS);
    const color = pick(rng, COLORS);
    let size = pick(rng, SIZES);
    let placed: Shape | null = null;
    for (let attempt = 0; attempt < 200 && !placed; attempt++) {
      if (attempt === 100) size = 'small'; // crowded: fall back to a small one
      const r = RADIUS[size];
      const lo = Math.ceil(r / GRID), hi = Math.floor((32 - r) / GRID);
      const s: Shape = { kind, color, size, cx: GRID * randInt(rng, lo, hi), cy: GRID * randInt(rng, lo, hi) };
      if (shapes.every((o) => !overlaps(o, s))) placed = s;
    }
    if (placed) shapes.push(placed); // otherwise the scene simply has fewer shapes (never 0)
  }
  return { shapes, background };
}

/**
 * The scene with every shape turned into one of the other two kinds (drawn by rng); background,
 * colours, sizes and positions kept. Every kind fills the same box, so the twin never overlaps.
 * The clip stage contrasts a scene with its twin, whose caption differs only in the shape words.
 */
export function kindTwin(sc: Scene, rng: Rng): Scene {
  return {
    background: sc.background,
    shapes: sc.shapes.map((s) => ({ ...s, kind: pick(rng, KINDS.filter((k) => k !== s.kind)) })),
  };
}

/** The scene of a seed: a pure function. */
export function scene(seed: number): Scene {
  return randomScene(mulberry32(seed));
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Whether the point (px, py) (reference-grid units) lies inside the shape. */
function inside(s: Shape, px: number, py: number): boolean {
  const r = radius(s);
  const dx = px - s.cx, dy = py - s.cy;
  if (s.kind === 'square') return dx >= -r && dx < r && dy >= -r && dy < r;
  if (s.kind === 'circle') return dx * dx + dy * dy <= r * r;
  // triangle: apex A=(0,-r), B=(-r,r), C=(r,r), relative to the centre; inside all three edges.
  if (dy > r) return false;
  // Edges A->C and B->A: the point must be below both slanted sides (|dx| <= (dy + r) / 2).
  return Math.abs(dx) * 2 <= dy + r;
}

/** Rasterise to a row-major HxWx3 Float32Array in [0,1]; pixels sampled at their centres. */
export function render(sc: Scene, size = 32): Float32Array {
  const out = new Float32Array(size * size * 3);
  const scale = 32 / size;
  const bg = BACKGROUND_RGB[sc.background];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const px = (x + 0.5) * scale, py = (y + 0.5) * scale;
      let rgb = bg;
      for (const s of sc.shapes) if (inside(s, px, py)) rgb = PALETTE[s.color];
      const o = (y * size + x) * 3;
      out[o] = rgb[0]; out[o + 1] = rgb[1]; out[o + 2] = rgb[2];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Language

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
export function numberWord(n: number): string {
  return NUMBER_WORDS[n] ?? String(n);
}

export type Relation = 'left of' | 'right of' | 'above' | 'below';

/** The relation of a to b along the axis where their centres differ most (y grows downwards). */
export function relation(a: Shape, b: Shape): Relation {
  const dx = a.cx - b.cx, dy = a.cy - b.cy;
  if (Math.abs(dx) >= Math.abs(dy)) return dx < 0 ? 'left of' : 'right of';
  return dy < 0 ? 'above' : 'below';
}

/** Whether "a <rel> b" holds, judged from centres. */
export function holds(a: Shape, rel: Relation, b: Shape): boolean {
  switch (rel) {
    case 'left of': return a.cx < b.cx;
    case 'right of': return a.cx > b.cx;
    case 'above': return a.cy < b.cy;
    case 'below': return a.cy > b.cy;
  }
}

/** How captions say each relation ("to the left of"). */
export const REL_PHRASE: Record<Relation, string> = {
  'left of': 'to the left of', 'right of': 'to the right of', above: 'above', below: 'below',
};

/** "a" or "an" for the word that follows. */
export function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

/** "small red circle", "red circle", "circle" etc. (withSize / withColor pick the words). */
export function phrase(s: Shape, withSize: boolean, withColor = true): string {
  return [withSize ? s.size : '', withColor ? s.color : '', s.kind].filter(Boolean).join(' ');
}

/** The shortest of "kind", "colour kind", "size colour kind" that picks s out uniquely, or null. */
export function referent(sc: Scene, s: Shape): string | null {
  const others = sc.shapes.filter((o) => o !== s);
  if (others.every((o) => o.kind !== s.kind)) return s.kind;
  if (others.every((o) => o.kind !== s.kind || o.color !== s.color)) return `${s.color} ${s.kind}`;
  if (others.every((o) => o.kind !== s.kind || o.color !== s.color || o.size !== s.size)) {
    return `${s.size} ${s.color} ${s.kind}`;
  }
  return null;
}

/** A true caption from one of several templates (varies with rng). */
export function caption(sc: Scene, rng: Rng): string {
  const shapes = sc.shapes;
  const np = (s: Shape): string => { const p = phrase(s, rng() < 0.6); return `${article(p)} ${p}`; };
  if (shapes.length === 1) {
    const p = np(shapes[0]);
    return pick(rng, [
      () => p,
      () => `there is ${p} in the picture`,
      () => `a picture of ${p}`,
      () => `${p} on a ${sc.background} background`,
    ])();
  }
  const count = numberWord(shapes.length);
  const list = (xs: Shape[]): string => {
    const ps = xs.map(np);
    return ps.length === 2 ? `${ps[0]} and ${ps[1]}` : `${ps.slice(0, -1).join(', ')} and ${ps[ps.length - 1]}`;
  };
  // Pick an ordered pair for a relation.
  const i = randInt(rng, 0, shapes.length - 1);
  let j = randInt(rng, 0, shapes.length - 2);
  if (j >= i) j++;
  const a = shapes[i], b = shapes[j];
  const rel = `${np(a)} ${REL_PHRASE[relation(a, b)]} ${np(b)}`;
  const rest = shapes.filter((s) => s !== a && s !== b);
  const relFull = rest.length ? `${rel}, and ${np(rest[0])}` : rel;
  return pick(rng, [
    () => relFull,
    () => `${count} shapes: ${list(shapes)}`,
    () => `there are ${count} shapes in the picture: ${list(shapes)}`,
    () => `${relFull} on a ${sc.background} background`,
  ])();
}

/** Question/answer pairs with single-word answers, all true of the scene. */
export function vqa(sc: Scene, rng: Rng): QA[] {
  const qs: QA[] = [];
  const shapes = sc.shapes;
  qs.push({ question: 'how many shapes are there?', answer: numberWord(shapes.length) });
  for (const k of KINDS) {
    const ofKind = shapes.filter((s) => s.kind === k);
    if (ofKind.length === 1) {
      qs.push({ question: `what colour is the ${k}?`, answer: ofKind[0].color });
      qs.push({ question: `what size is the ${k}?`, answer: ofKind[0].size });
    }
    if (ofKind.length > 0 && rng() < 0.5) {
      qs.push({ question: `how many ${k}s are there?`, answer: numberWord(ofKind.length) });
    }
  }
  for (const c of COLORS) {
    const ofColor = shapes.filter((s) => s.color === c);
    if (ofColor.length === 1) qs.push({ question: `what shape is ${c}?`, answer: ofColor[0].kind });
  }
  // Position: one question per ordered pair with unique referents, asking the true or a false relation.
  for (let i = 0; i < shapes.length; i++) {
    for (let j = i + 1; j < shapes.length; j++) {
      const [a, b] = rng() < 0.5 ? [shapes[i], shapes[j]] : [shapes[j], shapes[i]];
      const ra = referent(sc, a), rb = referent(sc, b);
      if (!ra || !rb) continue;
      const horizontal = Math.abs(a.cx - b.cx) >= Math.abs(a.cy - b.cy);
      const rel: Relation = horizontal ? pick(rng, ['left of', 'right of'] as const) : pick(rng, ['above', 'below'] as const);
      qs.push({ question: `is the ${ra} ${rel} the ${rb}?`, answer: holds(a, rel, b) ? 'yes' : 'no' });
    }
  }
  // Existence: one that is present and one random colour+kind (answered from the scene).
  const present = pick(rng, shapes);
  const probes: [ColorName, Kind][] = [[present.color, present.kind], [pick(rng, COLORS), pick(rng, KINDS)]];
  for (const [c, k] of probes) {
    const yes = shapes.some((s) => s.color === c && s.kind === k);
    qs.push({ question: `is there ${article(c)} ${c} ${k}?`, answer: yes ? 'yes' : 'no' });
  }
  return qs;
}

// ---------------------------------------------------------------------------------------------
// Read-back

export interface FoundShape extends Shape {
  /** Pixels in the component and its bounding-box fill ratio (diagnostics). */
  area: number;
  fill: number;
}

/** Min component area (in pixels at size 32) kept; smaller blobs are noise. */
const MIN_AREA = 12;

/**
 * Reads the shapes back from an HxWx3 image in [0,1]: each pixel goes to the nearest of the six
 * palette colours or three backgrounds; 4-connected same-colour components are shapes; kind from
 * the bounding-box fill ratio (square ~1, circle ~0.79, triangle ~0.5), size from the box's
 * extent, centre from the box's centre; all in reference 32-grid units. Sorted by (cy, cx).
 */
export function readBack(pixels: Float32Array | number[], size = 32): FoundShape[] {
  const classes: [number, number, number][] = [...COLORS.map((c) => PALETTE[c]), ...BACKGROUNDS.map((b) => BACKGROUND_RGB[b])];
  const label = new Int8Array(size * size);
  for (let p = 0; p < size * size; p++) {
    let best = 0, bestD = Infinity;
    for (let k = 0; k < classes.length; k++) {
      const d0 = pixels[3 * p] - classes[k][0], d1 = pixels[3 * p + 1] - classes[k][1], d2 = pixels[3 * p + 2] - classes[k][2];
      const d = d0 * d0 + d1 * d1 + d2 * d2;
      if (d < bestD) { bestD = d; best = k; }
    }
    label[p] = best < COLORS.length ? best : -1;
  }
  const scale = 32 / size;
  const seen = new Uint8Array(size * size);
  const found: FoundShape[] = [];
  const stack: number[] = [];
  for (let start = 0; start < size * size; start++) {
    if (label[start] < 0 || seen[start]) continue;
    const col = label[start];
    let area = 0, x0 = size, x1 = -1, y0 = size, y1 = -1;
    seen[start] = 1; stack.push(start);
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % size, y = (p - x) / size;
      area++;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      const nb = [x > 0 ? p - 1 : -1, x < size - 1 ? p + 1 : -1, y > 0 ? p - size : -1, y < size - 1 ? p + size : -1];
      for (const q of nb) if (q >= 0 && !seen[q] && label[q] === col) { seen[q] = 1; stack.push(q); }
    }
    if (area * scale * scale < MIN_AREA) continue;
    const w = x1 - x0 + 1, h = y1 - y0 + 1;
    const fill = area / (w * h);
    const kind: Kind = fill > 0.9 ? 'square' : fill > 0.65 ? 'circle' : 'triangle';
    const extent = Math.max(w, h) * scale; // ~8 small, ~14 large
    found.push({
      kind, color: COLORS[col], size: extent >= 11 ? 'large' : 'small',
      cx: (x0 + x1 + 1) / 2 * scale, cy: (y0 + y1 + 1) / 2 * scale, area, fill,
    });
  }
  return found.sort((a, b) => a.cy - b.cy || a.cx - b.cx);
}
