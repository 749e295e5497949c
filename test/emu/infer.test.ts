// infer.test.ts: src/emu/infer: the prompts (exact system messages, token layouts that match the
// training dialogues token for token), the reference's frame sampling, and every task end to end
// on a randomly initialised micro run (shapes, determinism, error paths).
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runtimeInfo } from '../../src/tensor/device.ts';
import { memoryStats, tidy } from '../../src/tensor/memory.ts';
import { Generator, randn } from '../../src/tensor/random.ts';
import { CheckpointError, DeviceError, ShapeError, ValueError } from '../../src/tensor/errors.ts';
import { formatDialogue, imageDialogue, videoDialogue } from '../../src/emu/data/dialogue.ts';
import { Emu, emuGenerate, type Part } from '../../src/emu/emu.ts';
import { Tokenizer } from '../../src/emu/tokenizer.ts';
import { RunDir } from '../../src/emu/train/run_dir.ts';
import { imageTensor, toParts } from '../../src/emu/train/samples.ts';
import { vaeInput } from '../../src/emu/vae.ts';
import { noGrad } from '../../src/autograd/grad_mode.ts';
import {
  IMAGE_SYSTEM_MESSAGE, VIDEO_SYSTEM_MESSAGE, blendPrompt, captionPrompt, chatPrompt, fewShotPrompt, inContextImagePrompt,
  joinParts, textToImagePrompt, videoQAPrompt, vqaPrompt,
} from '../../src/emu/infer/prompts.ts';
import {
  Chat, blend, caption, fewShot, generate, inContextGenerate, loadForInference, reconstruct, sampleFrameIndices, textToImage, videoQA, vqa,
} from '../../src/emu/infer/tasks.ts';
import { MICRO, testImage, writeMicroRun } from './infer_fixture.ts';

const root = writeMicroRun();
const trained = loadForInference(root);
const tok: Tokenizer = trained.tok;
const S = MICRO.vision.imageSize;
const N = MICRO.cformer.numQueries;
const model = new Emu(MICRO, { generator: new Generator(1) });
const img = () => randn([3, S, S], { generator: new Generator(2) });
const ids = (parts: Part[]) => model.tokenize(tok, parts).ids;
const block = [model.ids.img, ...new Array<number>(N).fill(model.ids.image), model.ids.imgEnd];
const text = (s: string) => tok.encode(s, { bos: false });
const quick = { decoding: { strategy: 'beam' as const, numBeams: 2, maxNewTokens: 4 } };

// ---- prompts --------------------------------------------------------------------------------

test('system messages are the reference strings, word for word', () => {
  assert.is(IMAGE_SYSTEM_MESSAGE, 'You will be presented with an image: [IMG]ImageContent[/IMG]. You will be able to see the image after I provide it to you. Please answer my questions based on the given image.');
  assert.ok(VIDEO_SYSTEM_MESSAGE.startsWith('You are a helpful assistant and you will be presented with a video consisting of multiple chronological images: [IMG]ImageContent[/IMG]. '));
});

test('joinParts merges adjacent text, drops empty text and keeps images in place', () => {
  const x = img();
  const parts = joinParts(['a', '', { text: 'b' }, { image: x }, 'c', 'd']);
  assert.equal(parts.map((p) => ('text' in p ? p.text : 'IMG')), ['ab', 'IMG', 'cd']);
  assert.throws(() => joinParts([{} as Part]), (e: unknown) => e instanceof ValueError);
  x.dispose();
});

test('caption and VQA prompts: the Emu-I template, the image inside the first user turn', () => {
  const x = img();
  const c = captionPrompt(x);
  assert.is((c[0] as { text: string }).text, `${IMAGE_SYSTEM_MESSAGE} [USER]: `);
  assert.is((c[1] as { image: unknown }).image, x);
  assert.is((c[2] as { text: string }).text, 'please provide an accurate and concise description of the given image. [ASSISTANT]:');
  const r = captionPrompt(x, { wording: 'reference' });
  assert.ok((r[2] as { text: string }).text.endsWith('[ASSISTANT]: the image depicts a photo of'));
  const v = vqaPrompt(x, 'what colour is the circle?', { wording: 'reference' });
  assert.is((v[2] as { text: string }).text, 'based on the content of the image and common sense, please provide an accurate answer consisting of only one word or phrase. what colour is the circle? [ASSISTANT]: the answer is:');
  assert.is((vqaPrompt(x, 'how many?')[2] as { text: string }).text, 'how many? [ASSISTANT]:');
  assert.throws(() => vqaPrompt(x, 'q', { wording: 'other' as 'data' }), (e: unknown) => e instanceof ValueError && /wording/.test(e.message));
  // [IMG] and [/IMG] in the system message are the special tokens themselves.
  const id = ids(c);
  assert.ok(id.filter((t) => t === model.ids.img).length === 2 && id.filter((t) => t === model.ids.imgEnd).length === 2);
  assert.is(id.filter((t) => t === model.ids.image).length, N);
  x.dispose();
});

/** Ids of a training dialogue up to (not including) the tokens of turn `k`'s answer. */
function dialoguePrefix(d: ReturnType<typeof imageDialogue>, k: number): { ids: number[]; parts: Part[] } {
  const sample = { kind: 'dialogue' as const, parts: formatDialogue(d), loss: 'all' as const };
  const parts = toParts(sample, S);
  let answers = 0, cut = parts.length;
  for (const [i, p] of sample.parts.entries()) {
    if ('text' in p && p.answer && p.text !== '</s>' && answers++ === k) { cut = i; break; }
  }
  return { ids: ids(parts.slice(0, cut)), parts };
}

function dispose(parts: Part[]): void {
  for (const p of parts) {
    if ('image' in p) p.image.dispose();
    else if ('video' in p) for (const f of p.video) f.dispose();
  }
}

test('a chat prompt tokenizes exactly as the training dialogue up to the answer, turn after turn', () => {
  for (const seed of [3, 4, 5]) {
    const d = imageDialogue(seed, { turns: 3 });
    for (let k = 0; k < 3; k++) {
      const want = dialoguePrefix(d, k);
      const x = img();
      const history = d.turns.slice(0, k).map((t, i) => ({
        user: t.user.map((p): Part => ('text' in p ? { text: p.text } : { image: x })).filter((p) => i === 0 || 'text' in p),
        assistant: t.assistant,
      }));
      const user = d.turns[k].user.map((p): Part => ('text' in p ? { text: p.text } : { image: x }));
      assert.equal(ids(chatPrompt(d.system, history, user)), want.ids, `seed ${seed} turn ${k}`);
      dispose(want.parts);
      x.dispose();
    }
  }
});

test('a video QA prompt tokenizes as the training video dialogue: the video system message, 8 frame blocks, the question', () => {
  const d = videoDialogue(7, { turns: 1 });
  const want = dialoguePrefix(d, 0);
  const frames = Array.from({ length: 8 }, () => img());
  const question = (d.turns[0].user[1] as { text: string }).text;
  const got = ids(videoQAPrompt(frames, question));
  assert.equal(got, want.ids);
  assert.is(got.filter((t) => t === model.ids.image).length, 8 * N);
  dispose(want.parts);
  for (const f of frames) f.dispose();
});

test('pretrained prompts: few-shot examples, text-to-image, blending and in-context generation layouts', () => {
  const a = img(), b = img(), q = img();
  assert.equal(ids(fewShotPrompt([{ image: a, text: 'There are two dogs.' }, { image: b, text: 'There are three pandas.' }], q)),
    [tok.bos, ...block, ...text('There are two dogs.'), ...block, ...text('There are three pandas.'), ...block]);
  assert.equal(ids(fewShotPrompt([], q)), [tok.bos, ...block]);
  assert.equal(ids(textToImagePrompt('a red circle')), [tok.bos, ...text('a red circle')]);
  assert.equal(ids(blendPrompt(a, b)), [tok.bos, ...block, ...block]);
  assert.equal(ids(inContextImagePrompt(['This is the first image: ', a, 'An image like it: '])),
    [tok.bos, ...text('This is the first image: '), ...block, ...text('An image like it: ')]);
  assert.throws(() => inContextImagePrompt([]), (e: unknown) => e instanceof ValueError);
  assert.throws(() => fewShotPrompt([{ image: a, text: 3 as unknown as string }], q), (e: unknown) => e instanceof ValueError);
  for (const t of [a, b, q]) t.dispose();
});

// ---- frame sampling -------------------------------------------------------------------------

test("frame indices match the reference's int(s/2) + np.round(s*k), s = (F-1)/8 (round half to even)", () => {
  // Expected values computed with numpy (np.round rounds half to even).
  assert.equal(sampleFrameIndices(9), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(sampleFrameIndices(17), [1, 3, 5, 7, 9, 11, 13, 15]);
  assert.equal(sampleFrameIndices(5), [0, 0, 1, 2, 2, 2, 3, 4]);
  assert.equal(sampleFrameIndices(8), [0, 1, 2, 3, 4, 4, 5, 6]);
  assert.equal(sampleFrameIndices(100), [6, 18, 31, 43, 56, 68, 80, 93]);
  assert.equal(sampleFrameIndices(1), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => sampleFrameIndices(0), (e: unknown) => e instanceof ValueError);
  assert.throws(() => sampleFrameIndices(10, 0), (e: unknown) => e instanceof ValueError);
});

// ---- tasks on the micro run -----------------------------------------------------------------

test('caption: text from Emu-I with the default decoding (beam 5), deterministic, no tensors left behind', () => {
  const before = memoryStats().liveTensors;
  const a = caption(trained, testImage(1));
  const b = caption(trained, testImage(1));
  assert.type(a.text, 'string');
  assert.ok(a.tokens.length >= 1 && a.tokens.length <= 48);
  assert.equal(a, b);
  assert.is(a.text, a.raw.trim());
  assert.is(memoryStats().liveTensors, before);
});

test('vqa: the short answer is the post-processed generation; input checks', () => {
  const r = vqa(trained, testImage(2), 'what colour is the circle?', quick);
  assert.ok(r.tokens.length <= 4);
  assert.is(r.text, r.raw.trim().toLowerCase().split(/[,;!?\n]|\.(?!\d)/)[0].trim().replace(/^(it is|it's)\s+/, '').replace(/^(a|an|the)\s+/, '').trim());
  assert.throws(() => vqa(trained, testImage(2), '  '), (e: unknown) => e instanceof ValueError);
  assert.throws(() => vqa(trained, new Float32Array(10), 'q?'), (e: unknown) => e instanceof ShapeError && /square/.test(e.message));
  assert.throws(() => vqa(trained, [1, 2, 3] as unknown as Float32Array, 'q?'), (e: unknown) => e instanceof ValueError);
});

test('an image of another size is resized to the model size', () => {
  const r = caption(trained, testImage(3, 40), quick);
  assert.ok(r.tokens.length >= 1);
});

test('videoQA samples 8 frames as the reference and answers', () => {
  const frames = Array.from({ length: 17 }, (_, i) => testImage(10 + i));
  const r = videoQA(trained, frames, 'where does the circle move?', quick);
  assert.equal(r.frameIndices, [1, 3, 5, 7, 9, 11, 13, 15]);
  assert.ok(r.tokens.length >= 1 && r.tokens.length <= 4);
  assert.equal(videoQA(trained, frames.slice(0, 3), 'where?', { ...quick, allFrames: true }).frameIndices, [0, 1, 2]);
  // A clip of at most 8 frames is fed whole by default (sampling 8 of 8 would repeat frame 4).
  assert.equal(videoQA(trained, frames.slice(0, 8), 'where?', quick).frameIndices, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(videoQA(trained, frames.slice(0, 8), 'where?', { ...quick, allFrames: false }).frameIndices, [0, 1, 2, 3, 4, 4, 5, 6]);
  assert.throws(() => videoQA(trained, [], 'q?'), (e: unknown) => e instanceof ValueError);
});

test('Chat: the second turn is generated after the first turn and its answer (chatPrompt); reset forgets', () => {
  const chat = new Chat(trained, quick);
  const first = chat.ask([testImage(4), 'what colour is the circle?']);
  const second = chat.ask(['and the square?']);
  assert.is(chat.history.length, 2);
  assert.is(chat.history[0].assistant, first.text);
  const expected = tidy(() => emuGenerate(trained.emuI!, tok, chatPrompt(IMAGE_SYSTEM_MESSAGE,
    [{ user: [{ image: imageTensor(testImage(4), S) }, { text: 'what colour is the circle?' }], assistant: first.text }],
    [{ text: 'and the square?' }]), { ...quick.decoding, eos: tok.eos }));
  assert.equal(second.tokens, expected.tokens);
  chat.reset();
  assert.is(chat.history.length, 0);
  // A fresh session holds no state from another.
  const fresh1 = new Chat(trained, quick).ask(['and the square?']);
  const fresh2 = new Chat(trained, quick).ask(['and the square?']);
  assert.equal(fresh1, fresh2);
  assert.throws(() => chat.ask([]), (e: unknown) => e instanceof ValueError);
  assert.throws(() => chat.ask([new Float32Array(7)]), (e: unknown) => e instanceof ShapeError);
});

test('fewShot continues k in-context examples with the pretrained model', () => {
  const r = fewShot(trained, [{ image: testImage(5), text: 'a red circle' }, { image: testImage(6), text: 'a blue square' }], testImage(7), quick);
  assert.ok(r.tokens.length >= 1 && r.tokens.length <= 4);
  const zeroShot = fewShot(trained, [], testImage(7), quick);
  assert.ok(zeroShot.tokens.length >= 1);
});

const gen = { steps: 2, sampler: 'ddim' as const, seed: 3 };

test('generate: HxWx3 pixels in [0,1] at the model size; the same seed gives the same image, another seed another', () => {
  const a = textToImage(trained, 'a red circle', gen);
  const b = generate(trained, ['a red circle'], gen);
  const c = textToImage(trained, 'a red circle', { ...gen, seed: 4 });
  assert.is(a.size, S);
  assert.is(a.pixels.length, S * S * 3);
  assert.ok(a.pixels.every((v) => v >= 0 && v <= 1));
  assert.equal(Array.from(a.pixels), Array.from(b.pixels));
  assert.ok(a.pixels.some((v, i) => v !== c.pixels[i]));
  const big = textToImage(trained, 'a red circle', { ...gen, size: 2 * S, sampler: 'pndm' });
  assert.is(big.pixels.length, 4 * S * S * 3);
});

test('blend and in-context generation run from images (guidance 10 by default for in-context)', () => {
  const a = blend(trained, testImage(8), testImage(9), gen);
  assert.is(a.pixels.length, S * S * 3);
  const ic = inContextGenerate(trained, ['This is the first image: ', testImage(8), 'An image like it: '], gen);
  const ic10 = generate(trained, ['This is the first image: ', testImage(8), 'An image like it: '], { ...gen, guidanceScale: 10 });
  assert.equal(Array.from(ic.pixels), Array.from(ic10.pixels));
});

test('reconstruct: the VAE round trip of an image (posterior mean), checked like every image input', () => {
  const img = testImage(8);
  const r = reconstruct(trained, img);
  assert.is(r.size, S);
  const expected = noGrad(() => tidy(() => trained.vae!.forward(vaeInput([img]), { useMode: true }).data() as Float32Array));
  const n = S * S;
  r.pixels.forEach((v, i) => {
    const want = Math.min(1, Math.max(0, (expected[(i % 3) * n + Math.floor(i / 3)] + 1) / 2));
    assert.ok(Math.abs(v - want) < 1e-6, `pixel ${i}: ${v} vs ${want}`);
  });
  assert.throws(() => reconstruct(trained, new Float32Array(7)), (e: unknown) => e instanceof ShapeError);
  const factor = trained.vae!.factor;
  if (factor > 1) assert.throws(() => reconstruct(trained, new Float32Array(3 * (factor + 1) ** 2)), (e: unknown) => e instanceof ValueError && /factor/.test(e.message));
  const partial = loadForInference(writeMicroRun(['pretrain']));
  assert.throws(() => reconstruct(partial, img), (e: unknown) => e instanceof CheckpointError && /vae/.test(e.message));
});

test('generation options are checked', () => {
  const bad = (o: object, re: RegExp) => assert.throws(() => textToImage(trained, 'x', o), (e: unknown) => e instanceof ValueError && re.test(e.message));
  bad({ steps: 0 }, /steps/);
  bad({ sampler: 'euler' }, /sampler/);
  bad({ seed: -1 }, /seed/);
  bad({ guidanceScale: Number.NaN }, /guidanceScale/);
  bad({ size: 3 }, /size/);
});

test('a run without the instruct or decoder stage gives a CheckpointError naming the missing stage', () => {
  const partial = loadForInference(writeMicroRun(['pretrain']));
  assert.is(partial.emuI, null);
  assert.throws(() => caption(partial, testImage(1)), (e: unknown) => e instanceof CheckpointError && /instruct/.test(e.message));
  assert.throws(() => new Chat(partial), (e: unknown) => e instanceof CheckpointError);
  assert.throws(() => textToImage(partial, 'x', gen), (e: unknown) => e instanceof CheckpointError && /decoder/.test(e.message));
  assert.ok(fewShot(partial, [], testImage(1), quick).tokens.length >= 1, 'the pretrained model alone still does few-shot');
});

test('loadForInference: missing run, corrupt checkpoint, bad device', () => {
  assert.throws(() => loadForInference(`${root}-missing`), (e: unknown) => e instanceof CheckpointError && /run\.json/.test(e.message));
  assert.throws(() => loadForInference(root, 'meta'), (e: unknown) => e instanceof DeviceError);
  assert.throws(() => loadForInference(root, 'tpu' as 'cpu'), (e: unknown) => e instanceof ValueError);
  const broken = writeMicroRun(['pretrain']);
  const path = new RunDir(broken).checkpoint('pretrain');
  writeFileSync(path, readFileSync(path).subarray(0, 200));
  assert.throws(() => loadForInference(broken), (e: unknown) => e instanceof CheckpointError);
});

test('--device sim runs the same greedy caption as the CPU when this build has the emulator, else a DeviceError', () => {
  const greedy = { decoding: { strategy: 'greedy' as const, numBeams: 1, maxNewTokens: 3 } };
  if (!runtimeInfo().simAvailable) {
    assert.throws(() => loadForInference(root, 'sim'), (e: unknown) => e instanceof DeviceError && /sim/.test(e.message));
    return;
  }
  const sim = loadForInference(root, 'sim');
  assert.is(sim.emu.lm.lm_head.weight.device, 'sim');
  assert.equal(caption(sim, testImage(1), greedy).tokens, caption(trained, testImage(1), greedy).tokens);
});

test.run();
