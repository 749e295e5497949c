// atomic_write.ts: write a whole file so that readers see either the old file or the new one.
//
// The bytes go to a temporary file in the same directory (so the rename stays on one file
// system), are fsynced, and the temporary file is renamed over the target; then the directory is
// fsynced so the rename itself survives a crash. This is the sequence src/nn/safetensors.ts uses
// for checkpoints. Errors are the raw fs errors (after removing our temporary file): each caller
// wraps them in its own typed error naming what it was writing.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Writes `chunks` (in order) to `path` atomically. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd = -1, created = false;
  try {
    fd = openSync(tmp, 'w');
    created = true;
    for (const b of chunks) {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
    const dfd = openSync(dirname(path), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    // Only our own temp file: whatever already sat at that path (it made openSync fail) stays.
    if (created) rmSync(tmp, { force: true });
    throw e;
  }
}
