// eval-attributes.test.ts: text-to-image attribute accuracy (src/emu/eval/attributes.ts). Clean
// renderings of the prompt's scene score 100%; pictures with one thing wrong (a colour, a size,
// mirrored positions, a missing shape) lose exactly that; the wrong-scene baseline is far below
// 100%; bad input is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { attributeAccuracy, attributeBaseline, scoreGeneratedScene } from '../../src/emu/eval/attributes.ts';
import { render, scene, type Scene, type Shape } from '../../src/emu/data/shapes.ts';
import { ValueError } from '../../src/tensor/errors.ts';

const circle: Shape = { kind: 'circle', color: 'red', size: 'large', cx: 8, cy: 16 };
const square: Shape = { kind: 'square', color: 'blue', size: 'small', cx: 24, cy: 16 };
const prompt: Scene = { background: 'white', shapes: [circle, square] };  // "a red circle to the left of a blue square"
const drawn = (...shapes: Shape[]): Float32Array => render({ background: 'white', shapes });
const tallies = (s: ReturnType<typeof scoreGeneratedScene>) =>
  [s.color, s.shape, s.size, s.position].map((t) => `${t.correct}/${t.total}`).join(' ') + ` count=${s.count} exact=${s.exact}`;

test('a clean rendering of the prompt scene is right on every attribute', () => {
  assert.is(tallies(scoreGeneratedScene({ scene: prompt, pixels: drawn(circle, square) })), '2/2 2/2 2/2 1/1 count=true exact=true');
  // Positions are judged by relation only: the same layout moved down by 3 pixels is still right.
  const moved = drawn({ ...circle, cy: 19 }, { ...square, cy: 19 });
  assert.is(tallies(scoreGeneratedScene({ scene: prompt, pixels: moved })), '2/2 2/2 2/2 1/1 count=true exact=true');
  // 300 random scenes of the shapes world, at 32 and at 64 pixels.
  const scenes = Array.from({ length: 300 }, (_, i) => scene(1000 + i));
  for (const size of [32, 64]) {
    const acc = attributeAccuracy(scenes.map((sc) => ({ scene: sc, pixels: render(sc, size), size })));
    assert.equal(acc, { color: 1, shape: 1, size: 1, position: 1, count: 1, exact: 1, images: 300 });
  }
});

test('each kind of mistake costs exactly its attribute', () => {
  const score = (...shapes: Shape[]) => tallies(scoreGeneratedScene({ scene: prompt, pixels: drawn(...shapes) }));
  assert.is(score({ ...circle, color: 'green' }, square), '1/2 2/2 2/2 1/1 count=true exact=false');
  assert.is(score({ ...circle, kind: 'triangle' }, square), '2/2 1/2 2/2 1/1 count=true exact=false');
  assert.is(score({ ...circle, size: 'small' }, square), '2/2 2/2 1/2 1/1 count=true exact=false');
  assert.is(score({ ...circle, cx: 24 }, { ...square, cx: 8 }), '2/2 2/2 2/2 0/1 count=true exact=false');  // mirrored
  assert.is(score(circle), '1/2 1/2 1/2 0/1 count=false exact=false');                                       // square missing
  assert.is(score(), '0/2 0/2 0/2 0/1 count=false exact=false');                                             // blank
  // An extra shape breaks only the count.
  assert.is(score(circle, square, { kind: 'triangle', color: 'yellow', size: 'small', cx: 16, cy: 4 }), '2/2 2/2 2/2 1/1 count=false exact=false');
});

test('only the relations the prompt stated are checked when it lists them', () => {
  const third: Shape = { kind: 'triangle', color: 'yellow', size: 'small', cx: 16, cy: 4 };
  const three: Scene = { background: 'white', shapes: [circle, square, third] };
  // Drawn with the triangle below the others instead of above: the scene's own relations
  // (circle-square, circle-triangle, square-triangle) then fail twice out of three.
  const pixels = drawn(circle, square, { ...third, cy: 28 });
  assert.is(tallies(scoreGeneratedScene({ scene: three, pixels })).split(' ')[3], '1/3');
  // A prompt that only said "a red circle to the left of a blue square" is right.
  const stated = scoreGeneratedScene({ scene: three, pixels, relations: [{ a: 0, relation: 'left of', b: 1 }] });
  assert.is(`${stated.position.correct}/${stated.position.total}`, '1/1');
  const wrong = scoreGeneratedScene({ scene: three, pixels, relations: [{ a: 1, relation: 'left of', b: 0 }] });
  assert.is(`${wrong.position.correct}/${wrong.position.total}`, '0/1');
});

test('attributeAccuracy pools the tallies over images', () => {
  const acc = attributeAccuracy([
    { scene: prompt, pixels: drawn(circle, square) },
    { scene: prompt, pixels: drawn({ ...circle, cx: 24 }, { ...square, cx: 8 }) },
    { scene: prompt, pixels: drawn() },
    { scene: { background: 'black', shapes: [circle] }, pixels: render({ background: 'black', shapes: [{ ...circle, color: 'orange' }] }) },
  ]);
  assert.equal(acc, { color: 4 / 7, shape: 5 / 7, size: 5 / 7, position: 1 / 3, count: 3 / 4, exact: 1 / 4, images: 4 });
  assert.is(attributeAccuracy([{ scene: { background: 'gray', shapes: [circle] }, pixels: drawn(circle) }]).position, null);
});

test('attributeBaseline: perfect drawings of the wrong scenes score far below 100%', () => {
  const scenes = Array.from({ length: 300 }, (_, i) => scene(5000 + i));
  const base = attributeBaseline(scenes);
  console.log(`    attributes: wrong-scene baseline colour ${base.color.toFixed(3)} shape ${base.shape.toFixed(3)} size ${base.size.toFixed(3)} position ${base.position?.toFixed(3)} count ${base.count.toFixed(3)} exact ${base.exact.toFixed(3)}`);
  assert.ok(base.color < 0.5 && base.shape < 0.75 && base.size < 0.85 && base.exact < 0.1, JSON.stringify(base));
  assert.ok(base.color > 1 / 6, 'the best-partner pairing lifts the floor above uniform guessing');
});

test('bad input gives a ValueError naming the function', () => {
  const isValue = (re: RegExp) => (e: Error) => e instanceof ValueError && re.test(e.message);
  assert.throws(() => scoreGeneratedScene({ scene: prompt, pixels: new Float32Array(10) }), isValue(/scoreGeneratedScene: pixels must be .* 3072/));
  assert.throws(() => scoreGeneratedScene({ scene: { background: 'white', shapes: [] }, pixels: drawn() }), isValue(/at least one shape/));
  assert.throws(() => scoreGeneratedScene({ scene: prompt, pixels: drawn(), size: 0 }), isValue(/size must be/));
  assert.throws(() => attributeAccuracy([]), isValue(/attributeAccuracy: no images/));
  assert.throws(() => scoreGeneratedScene({ scene: prompt, pixels: drawn(), relations: [{ a: 0, relation: 'left of', b: 2 }] }), isValue(/relation 0 must name two different shapes/));
  assert.throws(() => scoreGeneratedScene({ scene: prompt, pixels: drawn(), relations: [{ a: 0, relation: 'near' as 'above', b: 1 }] }), isValue(/relation 0 is 'near'/));
  assert.throws(() => attributeBaseline([prompt]), isValue(/at least 2 scenes/));
});

test.run();
