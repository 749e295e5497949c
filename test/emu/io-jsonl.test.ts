// io-jsonl.test.ts: the metrics log (src/emu/io/jsonl.ts): append and read back, a torn last line
// (a crash mid-append) skipped and counted on read and cut off on reopen, resuming drops the
// records after the checkpoint step, damage anywhere else is an error naming the line.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MetricsLog, readJsonl } from '../../src/emu/io/jsonl.ts';
import { ValueError } from '../../src/tensor/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'emu-io-jsonl-'));
let n = 0;
const fresh = () => join(dir, `m${n++}.jsonl`);

function throwsValue(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => e instanceof ValueError && pattern.test(e.message));
}

test('append then read back, one line per record; reopening appends after', () => {
  const path = fresh();
  const log = new MetricsLog(path);
  log.append({ step: 1, loss: 2.5, stage: 'lm' });
  log.append({ step: 2, loss: 2.25, lr: 1e-4 });
  log.close();
  assert.is(readFileSync(path, 'utf8'), '{"step":1,"loss":2.5,"stage":"lm"}\n{"step":2,"loss":2.25,"lr":0.0001}\n');
  {
    using again = new MetricsLog(path);
    assert.equal(again.repaired, { torn: 0, dropped: 0 });
    again.append({ step: 3, loss: NaN });
  }
  assert.equal(readJsonl(path), {
    records: [{ step: 1, loss: 2.5, stage: 'lm' }, { step: 2, loss: 2.25, lr: 1e-4 }, { step: 3, loss: null }],
    torn: 0,
  });
});

test('a torn last line is skipped and counted on read, and cut off when the log is reopened', () => {
  const path = fresh();
  writeFileSync(path, '{"step":1,"loss":3}\n{"step":2,"loss":2}\n{"step":3,"lo');
  assert.equal(readJsonl(path), { records: [{ step: 1, loss: 3 }, { step: 2, loss: 2 }], torn: 1 });
  const log = new MetricsLog(path);
  assert.equal(log.repaired, { torn: 1, dropped: 0 });
  log.append({ step: 3, loss: 1 });
  log.close();
  assert.equal(readJsonl(path), { records: [{ step: 1, loss: 3 }, { step: 2, loss: 2 }, { step: 3, loss: 1 }], torn: 0 });
  // A complete last record that only lost its newline is kept, and the newline restored.
  writeFileSync(path, '{"step":1}\n{"step":2}');
  assert.equal(readJsonl(path), { records: [{ step: 1 }, { step: 2 }], torn: 0 });
  new MetricsLog(path).close();
  assert.is(readFileSync(path, 'utf8'), '{"step":1}\n{"step":2}\n');
});

test('resumeStep drops the records after the checkpoint being resumed', () => {
  const path = fresh();
  const log = new MetricsLog(path);
  for (let s = 1; s <= 10; s++) log.append({ step: s, loss: 1 / s });
  log.append({ event: 'checkpoint' });
  log.close();
  appendFileSync(path, '{"step":11,"lo');
  const resumed = new MetricsLog(path, { resumeStep: 6 });
  assert.equal(resumed.repaired, { torn: 1, dropped: 4 });
  resumed.append({ step: 7, loss: 1 / 7 });
  resumed.close();
  const { records } = readJsonl(path);
  assert.equal(records.map((r) => r.step ?? r.event), [1, 2, 3, 4, 5, 6, 'checkpoint', 7]);
});

test('damage other than a torn last line, missing files and bad arguments are ValueErrors', () => {
  const path = fresh();
  writeFileSync(path, '{"step":1}\n{"step":2,\n{"step":3}\n');
  throwsValue(() => readJsonl(path), /readJsonl: .*m\d+\.jsonl line 2 is not valid JSON/);
  throwsValue(() => new MetricsLog(path), /MetricsLog: .* line 2 is not valid JSON/);
  writeFileSync(path, '{"step":1}\n[1,2]\n{"step":3}\n');
  throwsValue(() => readJsonl(path), /line 2 is not a JSON object/);
  // Blank lines are harmless.
  writeFileSync(path, '{"step":1}\n\n{"step":2}\n');
  assert.is(readJsonl(path).records.length, 2);
  throwsValue(() => readJsonl(join(dir, 'missing.jsonl')), /readJsonl: file not found: .*missing\.jsonl/);
  throwsValue(() => readJsonl(dir), /readJsonl: cannot read/);
  throwsValue(() => readJsonl(''), /path must be a non-empty string/);
  throwsValue(() => new MetricsLog(join(dir, 'no', 'such', 'dir.jsonl')), /MetricsLog: cannot open .*no\/such/);
  throwsValue(() => new MetricsLog(fresh(), { resumeStep: -1 }), /resumeStep must be a non-negative integer/);
  const log = new MetricsLog(fresh());
  throwsValue(() => log.append([1] as never), /record must be an object/);
  log.close();
  throwsValue(() => log.append({ step: 1 }), /is closed/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
