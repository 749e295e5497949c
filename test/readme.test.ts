// readme.test.ts: the README's TypeScript example runs as written (importing 'emu-engine' by
// name, which resolves to this package through its own "exports").
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = join(import.meta.dirname, '..');

test("the README's example runs as written", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, 'README has a ```ts block');
  assert.match(code!, /from 'emu-engine'/);
  const dir = mkdtempSync(join(root, '.readme-example-'));
  try {
    const file = join(dir, 'example.ts');
    writeFileSync(file, code!);
    const tsx = join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
    const out = execFileSync(process.execPath, [tsx, file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    assert.match(out, /tensor\(/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
