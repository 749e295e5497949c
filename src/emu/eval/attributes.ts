// attributes.ts: text-to-image attribute accuracy on the shapes world. A prompt describes a scene
// (src/emu/data/shapes.ts); the generated image is read back with readBack (palette segmentation,
// connected components) and compared with that scene, attribute by attribute.
//
// Matching: each shape of the scene is paired with a different read-back shape (or none), choosing
// the pairing that agrees on the most colour / kind / size attributes, ties broken by the number
// of relations it satisfies; a generated picture has no prescribed positions, so positions only
// count through relations. Only the 8 largest read-back components take part (garbage images can
// fragment into many specks; 8 keeps the search at most 8*7*6 pairings for 3 shapes).
// Then, per scene shape: colour, shape (kind) and size are right when its partner has the same
// one (a shape without a partner is wrong on all three). Per relation the prompt stated ("the red
// circle is left of the blue square"; by default the scene's relation of shape i to shape j for
// every pair i < j, as captions state it), the position is right when it holds between the two
// partners. Per image, the count is right when readBack finds exactly as many shapes as the scene
// has, and the image is exact when everything is right. Accuracies pool the tallies over images
// (a 3-shape scene weighs three times a 1-shape one).
// Because the pairing picks the best partner, an unrelated picture scores above uniform guessing
// (1/6 colours, 1/3 kinds, ...); attributeBaseline measures that floor: clean drawings of the
// wrong scenes.
import { ValueError } from '../../tensor/errors.ts';
import { holds, readBack, relation, render, type FoundShape, type Relation, type Scene } from '../data/shapes.ts';

/** "Shape a is <relation> shape b", with a and b indices into the scene's shapes. */
export interface StatedRelation {
  a: number;
  relation: Relation;
  b: number;
}

/** A generated image and the scene its prompt described. */
export interface GeneratedScene {
  scene: Scene;
  /**
   * The relations the prompt stated, when it did not state them all (a caption names one pair);
   * default: for every pair i < j, the scene's relation of shape i to shape j.
   */
  relations?: StatedRelation[];
  /** Row-major size x size x 3 in [0, 1]. */
  pixels: Float32Array;
  /** Side of the image (default 32). */
  size?: number;
}

export interface AttributeTally {
  correct: number;
  total: number;
}

export interface ImageAttributeScore {
  color: AttributeTally;
  shape: AttributeTally;
  size: AttributeTally;
  position: AttributeTally;
  count: boolean;
  exact: boolean;
  /** What readBack found, for reports. */
  found: FoundShape[];
}

export interface AttributeAccuracy {
  color: number;
  shape: number;
  size: number;
  /** null when no image had a relation to check. */
  position: number | null;
  count: number;
  exact: number;
  images: number;
}

const MAX_CANDIDATES = 8;

/** The relation of shape i to shape j for every pair i < j of the scene. */
function sceneRelations(scene: Scene): StatedRelation[] {
  const out: StatedRelation[] = [];
  for (let a = 0; a < scene.shapes.length; a++) {
    for (let b = a + 1; b < scene.shapes.length; b++) out.push({ a, relation: relation(scene.shapes[a], scene.shapes[b]), b });
  }
  return out;
}

const RELATIONS: readonly Relation[] = ['left of', 'right of', 'above', 'below'];

function checkRelations(relations: StatedRelation[], shapes: number): void {
  if (!Array.isArray(relations)) throw new ValueError('scoreGeneratedScene: relations must be an array of { a, relation, b }');
  relations.forEach((r, i) => {
    const ok = r && Number.isInteger(r.a) && Number.isInteger(r.b) && r.a >= 0 && r.b >= 0 && r.a < shapes && r.b < shapes && r.a !== r.b;
    if (!ok) throw new ValueError(`scoreGeneratedScene: relation ${i} must name two different shapes among the scene's ${shapes}`);
    if (!RELATIONS.includes(r.relation)) throw new ValueError(`scoreGeneratedScene: relation ${i} is '${r.relation}', not one of ${RELATIONS.join(', ')}`);
  });
}

/** Scores one generated image against the scene of its prompt. */
export function scoreGeneratedScene(item: GeneratedScene): ImageAttributeScore {
  const { scene, pixels, size = 32 } = item ?? ({} as GeneratedScene);
  if (!scene || !Array.isArray(scene.shapes) || scene.shapes.length === 0) throw new ValueError('scoreGeneratedScene: scene must have at least one shape');
  if (!Number.isInteger(size) || size < 1) throw new ValueError(`scoreGeneratedScene: size must be a positive integer, got ${size}`);
  if (!(pixels instanceof Float32Array) || pixels.length !== size * size * 3) {
    throw new ValueError(`scoreGeneratedScene: pixels must be a Float32Array of ${size}x${size}x3 = ${size * size * 3} values, got ${pixels?.length}`);
  }
  const shapes = scene.shapes;
  const found = readBack(pixels, size);
  const candidates = [...found].sort((a, b) => b.area - a.area).slice(0, MAX_CANDIDATES);
  const stated = item.relations ?? sceneRelations(scene);
  checkRelations(stated, shapes.length);
  const attrs = (i: number, f: FoundShape | undefined) =>
    f ? Number(f.color === shapes[i].color) + Number(f.kind === shapes[i].kind) + Number(f.size === shapes[i].size) : 0;
  const relationsHeld = (partner: (FoundShape | undefined)[]) =>
    stated.filter((r) => partner[r.a] && partner[r.b] && holds(partner[r.a]!, r.relation, partner[r.b]!)).length;

  // Exhaustive search over injective pairings (scene shape -> candidate or none).
  let best: (FoundShape | undefined)[] = shapes.map(() => undefined);
  let bestKey = [-1, -1];
  const current: (FoundShape | undefined)[] = [];
  const used = new Set<FoundShape>();
  const search = (i: number): void => {
    if (i === shapes.length) {
      const key = [current.reduce((s, f, k) => s + attrs(k, f), 0), relationsHeld(current)];
      if (key[0] > bestKey[0] || (key[0] === bestKey[0] && key[1] > bestKey[1])) {
        bestKey = key;
        best = [...current];
      }
      return;
    }
    for (const f of [...candidates.filter((c) => !used.has(c)), undefined]) {
      current[i] = f;
      if (f) used.add(f);
      search(i + 1);
      if (f) used.delete(f);
    }
  };
  search(0);

  const tally = (right: (i: number) => boolean): AttributeTally => ({ correct: shapes.filter((_, i) => right(i)).length, total: shapes.length });
  const color = tally((i) => best[i]?.color === shapes[i].color);
  const shape = tally((i) => best[i]?.kind === shapes[i].kind);
  const sizeTally = tally((i) => best[i]?.size === shapes[i].size);
  const position = { correct: relationsHeld(best), total: stated.length };
  const count = found.length === shapes.length;
  const exact = count && [color, shape, sizeTally, position].every((t) => t.correct === t.total);
  return { color, shape, size: sizeTally, position, count, exact, found };
}

/** Pooled attribute accuracies of a set of generated images. */
export function attributeAccuracy(items: GeneratedScene[]): AttributeAccuracy {
  if (!Array.isArray(items) || items.length === 0) throw new ValueError('attributeAccuracy: no images to score');
  const sums = { color: [0, 0], shape: [0, 0], size: [0, 0], position: [0, 0] };
  let count = 0, exact = 0;
  for (const item of items) {
    const s = scoreGeneratedScene(item);
    for (const k of ['color', 'shape', 'size', 'position'] as const) {
      sums[k][0] += s[k].correct;
      sums[k][1] += s[k].total;
    }
    count += Number(s.count);
    exact += Number(s.exact);
  }
  const ratio = ([c, t]: number[]) => c / t;
  return {
    color: ratio(sums.color),
    shape: ratio(sums.shape),
    size: ratio(sums.size),
    position: sums.position[1] ? ratio(sums.position) : null,
    count: count / items.length,
    exact: exact / items.length,
    images: items.length,
  };
}

/**
 * The chance level to compare with: every scene scored against a clean rendering of the next
 * scene in the list (a generator that draws well but ignores its prompt). Needs >= 2 scenes.
 */
export function attributeBaseline(scenes: Scene[], size = 32): AttributeAccuracy {
  if (!Array.isArray(scenes) || scenes.length < 2) throw new ValueError('attributeBaseline: need at least 2 scenes');
  return attributeAccuracy(scenes.map((scene, i) => ({ scene, pixels: render(scenes[(i + 1) % scenes.length], size), size })));
}
