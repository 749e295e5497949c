// io-progress.test.ts: the progress reporter (src/emu/io/progress.ts) driven by a fake stream and
// clock: the redrawn terminal line (bar, counts, metrics, rate, ETA, throttling, width), plain log
// lines at most every N seconds plus the final one, resumed runs, log() around the bar, number
// and duration formatting, and argument errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatCount, formatDuration, formatMetric, Progress } from '../../src/emu/io/progress.ts';
import { ValueError } from '../../src/tensor/errors.ts';

/** A stream that records writes, and a clock set by hand (seconds). */
function fake(isTTY: boolean, columns?: number) {
  const writes: string[] = [];
  let seconds = 0;
  return {
    writes,
    stream: { write: (s: string) => writes.push(s), isTTY, columns },
    now: () => seconds * 1000,
    at: (s: number) => { seconds = s; },
    /** What a terminal would show: apply '\r' and erase-line to the written text. */
    screen: () => {
      const lines: string[] = [''];
      for (const part of writes.join('').split(/(\r\x1b\[K|\n)/)) {
        if (part === '\r\x1b[K') lines[lines.length - 1] = '';
        else if (part === '\n') lines.push('');
        else lines[lines.length - 1] += part;
      }
      return lines;
    },
  };
}

test('terminal: one line redrawn in place with bar, step, metrics, rate and ETA', () => {
  const f = fake(true);
  const p = new Progress({ total: 100, label: 'pretrain', unit: 'tok', stream: f.stream, now: f.now });
  f.at(10);
  p.update(25, { loss: 2.3104, ce: 1.2 }, 5000);
  assert.equal(f.screen(), ['pretrain [=====>              ] 25/100  25% | loss 2.310 ce 1.200 | 500 tok/s | 0:10 < 0:30']);
  f.at(20);
  p.update(50, { loss: 2.0 }, 5000);
  assert.equal(f.screen(), ['pretrain [==========>         ] 50/100  50% | loss 2.000 | 500 tok/s | 0:20 < 0:20']);
  f.at(40);
  p.update(100, { loss: 1.5 }, 20000);
  p.done();
  assert.equal(f.screen(), ['pretrain [====================] 100/100 100% | loss 1.500 | 750 tok/s | 0:40 < 0:00', '']);
  // Every redraw after the first starts by returning to the line start and erasing it.
  assert.ok(f.writes.slice(1).every((w) => w.startsWith('\r\x1b[K')));
});

test('terminal: redraws are throttled, the final step always shows, and the line fits the width', () => {
  const f = fake(true, 40);
  const p = new Progress({ total: 10, stream: f.stream, now: f.now, redrawEvery: 1 });
  for (let s = 1; s <= 9; s++) { f.at(s * 0.3); p.update(s); }
  // Shown at t = 0.3, 1.5 (>= 1 s later), 2.7 only.
  assert.is(f.writes.length, 3);
  f.at(2.8);
  p.update(10);
  assert.is(f.writes.length, 4);
  p.done();
  for (const line of f.screen()) assert.ok(line.length <= 39, `line of ${line.length}: ${line}`);
  // Cut to 39 columns: the rate (3.57 step/s) loses its tail.
  assert.is(f.screen()[0], '[====================] 10/10 100% | 3.5');
});

test('terminal: log() prints above the bar and redraws it', () => {
  const f = fake(true);
  const p = new Progress({ total: 4, label: 'vae', stream: f.stream, now: f.now });
  f.at(1);
  p.update(1, { mse: 0.25 });
  p.log('checkpoint saved');
  const screen = f.screen();
  assert.is(screen[0], 'checkpoint saved');
  assert.match(screen[1], /^vae \[=====>\s+\] 1\/4  25% \| mse 0.2500 \| 1 step\/s \| 0:01 < 0:03$/);
  // Before any bar is drawn, log() is just a line.
  const g = fake(true);
  new Progress({ total: 4, stream: g.stream, now: g.now }).log('hello');
  assert.equal(g.writes, ['hello\n']);
});

test('plain: the first update, then at most one line per logEvery seconds, then the final one', () => {
  const f = fake(false);
  const p = new Progress({ total: 100, label: 'lm', unit: 'tok', stream: f.stream, now: f.now, logEvery: 10 });
  for (let s = 1; s <= 100; s++) {
    f.at(s * 0.5);
    p.update(s, { loss: 10 - s / 20 }, 100);
  }
  p.done();
  // t = 0.5 (first), 10.5, 20.5, 30.5, 40.5, and step 100 at t = 50.
  assert.is(f.writes.length, 6);
  assert.ok(f.writes.every((w) => w.endsWith('\n') && !w.includes('\r')));
  assert.is(f.writes[0], 'lm step 1/100 (1%) loss 9.950 200 tok/s elapsed 0:01 eta 0:50\n');
  assert.is(f.writes[5], 'lm step 100/100 (100%) loss 5.000 200 tok/s elapsed 0:50 eta 0:00\n');
  // done() after an unshown step writes the final line once.
  const g = fake(false);
  const q = new Progress({ total: 10, stream: g.stream, now: g.now, logEvery: 100 });
  g.at(1); q.update(1);
  g.at(2); q.update(5);
  q.done();
  q.done();
  assert.is(g.writes.length, 2);
  assert.match(g.writes[1], /^step 5\/10 \(50%\) 2.50 step\/s elapsed 0:02 eta 0:02\n$/);
});

test('resumed runs count rate and ETA from startStep', () => {
  const f = fake(false);
  const p = new Progress({ total: 1000, startStep: 900, stream: f.stream, now: f.now });
  f.at(10);
  p.update(950);
  assert.match(f.writes[0], /step 950\/1000 \(95%\) 5 step\/s elapsed 0:10 eta 0:10/);
  assert.throws(() => p.update(899), (e: Error) => e instanceof ValueError && /\[900, 1000\], got 899/.test(e.message));
});

test('non-finite metrics show as nan/inf; no rate before time has passed', () => {
  const f = fake(false);
  const p = new Progress({ total: 2, stream: f.stream, now: f.now });
  p.update(0, { loss: NaN, grad: Infinity });
  assert.is(f.writes[0], 'step 0/2 (0%) loss nan grad inf elapsed 0:00 eta ?\n');
});

test('formatMetric, formatCount, formatDuration', () => {
  assert.is(formatMetric(2.31049), '2.310');
  assert.is(formatMetric(0), '0');
  assert.is(formatMetric(12345.6), '1.235e+4');
  assert.is(formatMetric(0.00012), '1.200e-4');
  assert.is(formatMetric(-Infinity), '-inf');
  assert.is(formatCount(950), '950');
  assert.is(formatCount(1234), '1.23k');
  assert.is(formatCount(45_600_000), '45.6M');
  assert.is(formatCount(123_456), '123k');
  assert.is(formatCount(12.345), '12.3');
  assert.is(formatDuration(0), '0:00');
  assert.is(formatDuration(83), '1:23');
  assert.is(formatDuration(3723), '1:02:03');
  assert.is(formatDuration(Infinity), '?');
});

test('bad arguments are ValueErrors', () => {
  const f = fake(false);
  const bad: [() => unknown, RegExp][] = [
    [() => new Progress({ total: 0, stream: f.stream }), /total must be a positive integer/],
    [() => new Progress({ total: 5, startStep: 6, stream: f.stream }), /startStep must be an integer in \[0, 5\]/],
    [() => new Progress({ total: 5, logEvery: -1, stream: f.stream }), /non-negative seconds/],
    [() => new Progress({ total: 5, stream: {} as never }), /write\(string\) method/],
    [() => new Progress({ total: 5, stream: f.stream }).update(6), /step must be an integer in \[0, 5\], got 6/],
    [() => new Progress({ total: 5, stream: f.stream }).update(1, { loss: '1' as never }), /metric loss must be a number/],
    [() => new Progress({ total: 5, stream: f.stream }).update(1, {}, -3), /units must be a non-negative number/],
    [() => { const p = new Progress({ total: 5, stream: f.stream }); p.done(); p.update(1); }, /after done\(\)/],
  ];
  for (const [fn, pattern] of bad) assert.throws(fn, (e: Error) => e instanceof ValueError && pattern.test(e.message));
});

test.run();
