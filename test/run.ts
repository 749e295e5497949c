// run.ts: the test runner behind `npm test`.
//
// Loads every test/**/*.test.ts into uvu's queue, runs them, and ends with the line
// `N passed, N failed` that CI reads. `npm test -- PATTERN` runs only files whose path
// contains PATTERN.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];

function find(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return find(p);
    return name.endsWith('.test.ts') ? [p] : [];
  });
}

const files = find(here).filter((f) => !filter || f.includes(filter));

// uvu prints "Total:" and "Passed:" through process.stdout; count from its own summary lines.
let captured = '';
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;

(globalThis as Record<string, unknown>).UVU_DEFER = 1;
const uvu = await import('uvu');
const queue = (globalThis as unknown as { UVU_QUEUE: unknown[][] }).UVU_QUEUE;
for (const [i, file] of files.entries()) {
  (globalThis as Record<string, unknown>).UVU_INDEX = i;
  queue.push([relative(here, file)]);
  await import(pathToFileURL(file).href);
}
await uvu.exec(false);

process.stdout.write = write;
// eslint-disable-next-line no-control-regex
const plain = captured.replace(/\x1b\[[0-9;]*m/g, '');
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const failed = total - passed;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (failed > 0 || files.length === 0) process.exitCode = 1;
