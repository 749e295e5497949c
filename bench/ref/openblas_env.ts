// openblas_env.ts: the environment both references (the OpenBLAS driver and PyTorch, which calls
// the same Debian OpenBLAS) run in, so that each is measured at the best it can do here.
//
// This kind of machine sets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which force an older
// kernel: both are removed. Then OpenBLAS picks its kernel from CPUID, and 0.3.21 does not know
// every CPU it runs on (on this Xeon it falls back to "Prescott", SSE3 kernels, 4x slower than
// its AVX-512 ones). So the core it detects is read (OPENBLAS_VERBOSE=2 makes it print
// "Core: NAME" when it loads), and when that core lacks instructions our own kernels use, the
// best kernel set OpenBLAS has for our ISA is forced instead: SkylakeX for AVX-512, Haswell for
// AVX2. The note says what was done, for the bench's output.
import { spawnSync } from 'node:child_process';

const AVX512_CORES = ['SkylakeX', 'Cooperlake', 'SapphireRapids'];
const AVX2_CORES = [...AVX512_CORES, 'Haswell', 'Zen'];

export interface RefEnv {
  env: NodeJS.ProcessEnv;
  note: string;
}

/** The environment for a reference process on `threads` threads, given our kernels' ISA.
 *  `probe` is a command (argv) that loads OpenBLAS and exits, used to read the detected core. */
export function referenceEnv(ourIsa: string, threads: number, probe: string[]): RefEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(probe[0], probe.slice(1), { env: { ...env, OPENBLAS_VERBOSE: '2' }, input: '', encoding: 'utf8', timeout: 60_000 });
  const core = /Core: (\w+)/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1];
  if (!core) return { env, note: 'OpenBLAS core: not reported' };
  const wanted = ourIsa === 'avx512' ? { cores: AVX512_CORES, force: 'SkylakeX' }
    : ourIsa === 'avx2' ? { cores: AVX2_CORES, force: 'Haswell' } : null;
  if (!wanted || wanted.cores.includes(core)) return { env, note: `OpenBLAS core: ${core} (detected)` };
  env.OPENBLAS_CORETYPE = wanted.force;
  return { env, note: `OpenBLAS core: detected ${core}, which lacks ${ourIsa}; forced OPENBLAS_CORETYPE=${wanted.force}` };
}
