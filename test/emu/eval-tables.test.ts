// eval-tables.test.ts: the markdown tables of src/emu/eval/tables.ts, shaped like the Emu paper's
// Table 1 (zero-shot) and Table 3 (few-shot, k = 2, 4, 8), compared character for character.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TEXT_TO_IMAGE_COLUMNS, fewShotTable, formatTableMetric, zeroShotTable } from '../../src/emu/eval/tables.ts';
import { ValueError } from '../../src/tensor/errors.ts';

test('formatTableMetric: CIDEr x 100 and accuracies in percent with one decimal, FID with two, "-" when missing', () => {
  assert.is(formatTableMetric(1.1243, 'cider'), '112.4');
  assert.is(formatTableMetric(0.5, 'accuracy'), '50.0');
  assert.is(formatTableMetric(0.98765, 'accuracy'), '98.8');
  assert.is(formatTableMetric(11.657, 'fid'), '11.66');
  assert.is(formatTableMetric(undefined, 'cider'), '-');
  assert.is(formatTableMetric(null, 'fid'), '-');
});

test('zeroShotTable: Table 1 layout, one row per model, one column per benchmark', () => {
  const table = zeroShotTable([
    { name: 'Emu (tiny)', results: { caption: 0.8123, digitCaption: 1.5, vqa: 0.6234, videoQa: 0.41 } },
    { name: 'Emu-I | LoRA', results: { caption: 0.9, vqa: 0.7 } },
    { name: 'chance', results: { vqa: 0.25, videoQa: 0.25 } },
  ]);
  assert.is(table, [
    '| Model | Shapes caption (CIDEr) | Digits caption (CIDEr) | Shapes VQA (acc) | Video QA (acc) |',
    '| --- | ---: | ---: | ---: | ---: |',
    '| Emu (tiny) | 81.2 | 150.0 | 62.3 | 41.0 |',
    '| Emu-I \\| LoRA | 90.0 | - | 70.0 | - |',
    '| chance | - | - | 25.0 | 25.0 |',
    '',
  ].join('\n'));
  const t2i = zeroShotTable([{ name: 'Emu', results: { color: 0.9, shape: 0.8, size: 0.7, position: 0.6, count: 0.95, digit: 0.5, fid: 12.345 } }], TEXT_TO_IMAGE_COLUMNS);
  assert.is(t2i.split('\n')[2], '| Emu | 90.0 | 80.0 | 70.0 | 60.0 | 95.0 | 50.0 | 12.35 |');
});

test('fewShotTable: Table 3 layout, one column per benchmark and k', () => {
  const table = fewShotTable([
    { name: 'Emu (tiny)', results: { vqa: { 2: 0.5, 4: 0.55, 8: 0.6 }, videoQa: { 2: 0.3, 8: 0.35 } } },
    { name: 'Emu-I', results: {} },
  ]);
  assert.is(table, [
    '| Model | Shapes VQA k=2 | Shapes VQA k=4 | Shapes VQA k=8 | Video QA k=2 | Video QA k=4 | Video QA k=8 |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    '| Emu (tiny) | 50.0 | 55.0 | 60.0 | 30.0 | - | 35.0 |',
    '| Emu-I | - | - | - | - | - | - |',
    '',
  ].join('\n'));
  const custom = fewShotTable([{ name: 'm', results: { caption: { 0: 1.2, 1: 1.3 } } }], [{ key: 'caption', title: 'Caption', metric: 'cider' }], [0, 1]);
  assert.is(custom.split('\n')[2], '| m | 120.0 | 130.0 |');
});

test('bad input gives a ValueError naming the function', () => {
  const isValue = (re: RegExp) => (e: Error) => e instanceof ValueError && re.test(e.message);
  assert.throws(() => zeroShotTable([]), isValue(/zeroShotTable: no rows/));
  assert.throws(() => zeroShotTable([{ name: 'x', results: {} }], []), isValue(/zeroShotTable: no columns/));
  assert.throws(() => zeroShotTable([{ name: 'x', results: { vqa: NaN } }]), isValue(/formatTableMetric: expected a finite number/));
  assert.throws(() => fewShotTable([{ name: 'x', results: {} }], undefined, [2, 2.5]), isValue(/fewShotTable: ks/));
  assert.throws(() => fewShotTable([{ results: {} } as unknown as { name: string; results: {} }]), isValue(/row 0 has no name/));
});

test.run();
