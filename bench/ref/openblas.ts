// openblas.ts: the OpenBLAS reference runner: times our matmul/bmm rows with cblas_sgemm, through
// the C driver bench/ref/openblas_gemm.c, compiled here with cc on first use (into runs/bench/).
// Where cc, cblas.h or libopenblas is missing it says which apt packages bring them and the
// bench goes on without it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReferenceRunner, RefSpec } from '../harness.ts';
import { referenceEnv } from './openblas_env.ts';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'openblas_gemm.c');

export const OPENBLAS_PACKAGES = 'apt-get install -y build-essential libopenblas-dev';

/** Compiles the driver if needed; returns its path, or why it could not. */
function buildDriver(outDir: string): { path?: string; why?: string } {
  mkdirSync(outDir, { recursive: true });
  const exe = join(outDir, 'openblas_gemm');
  if (existsSync(exe) && statSync(exe).mtimeMs >= statSync(source).mtimeMs) return { path: exe };
  // Debian keeps cblas.h per OpenBLAS flavour; pkg-config knows which one is selected.
  const pc = spawnSync('pkg-config', ['--cflags', 'openblas'], { encoding: 'utf8' });
  const cflags = pc.status === 0 ? pc.stdout.trim().split(/\s+/).filter(Boolean) : [];
  const cc = spawnSync('cc', ['-O2', ...cflags, '-o', exe, source, '-lopenblas'], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) return { why: (cc.error?.message ?? cc.stderr).trim().split('\n').slice(0, 3).join(' | ') };
  return { path: exe };
}

/** The runner, or null (with a message on stderr saying how to get it). */
export function openblasRunner(outDir: string, ourIsa: string, threads: number): { runner: ReferenceRunner; note: string } | null {
  const built = buildDriver(outDir);
  if (!built.path) {
    console.error(`openblas reference: not available (${built.why}); ${OPENBLAS_PACKAGES} brings it`);
    return null;
  }
  const exe = built.path;
  const { env, note } = referenceEnv(ourIsa, threads, [exe]);
  const runner: ReferenceRunner = {
    name: 'openblas',
    // sgemm only: Debian's OpenBLAS is built without its bf16 GEMM (sbgemm).
    supports: (spec: RefSpec) => (spec.op === 'matmul' || spec.op === 'bmm') && spec.params?.dtype === undefined,
    run(specs) {
      const lines = specs.map(({ key, spec }) => {
        const [a, b] = spec.inputs;
        const batch = a.length === 3 ? a[0] : 1;
        const [M, K] = a.slice(-2), N = b[b.length - 1];
        return `${key.replace(/\s+/g, '_')} ${batch} ${M} ${N} ${K} ${spec.params?.ta ? 1 : 0} ${spec.params?.tb ? 1 : 0}`;
      });
      const r = spawnSync(exe, [], { input: lines.join('\n') + '\n', env, encoding: 'utf8', maxBuffer: 1 << 24 });
      if (r.status !== 0) console.error(`openblas reference failed: ${(r.error?.message ?? r.stderr).trim()}`);
      const times = new Map<string, number>();
      const byLine = new Map(specs.map(({ key }) => [key.replace(/\s+/g, '_'), key]));
      for (const line of (r.stdout ?? '').split('\n')) {
        const [k, s] = line.trim().split(' ');
        const key = byLine.get(k);
        if (key !== undefined && Number.isFinite(Number(s))) times.set(key, Number(s));
      }
      return times;
    },
  };
  return { runner, note };
}
