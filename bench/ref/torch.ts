// torch.ts: the PyTorch CPU reference runner: replays the rows' RefSpecs in bench/ref/torch_ref.py
// (one python process for all of them), on our thread count, with AVX-512 kernels allowed
// (ATEN_CPU_CAPABILITY) and OpenBLAS's best kernel for this CPU (openblas_env.ts). Where python3
// or its torch module is missing it says which apt packages bring them.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReferenceRunner, RefSpec } from '../harness.ts';
import { referenceEnv } from './openblas_env.ts';

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, 'torch_ref.py');

export const TORCH_PACKAGES = 'apt-get install -y python3-torch (Debian; libopenblas0-openmp optional)';
const TORCH_OPS = new Set(['matmul', 'bmm', 'conv2d', 'attention', 'rms_norm', 'cross_entropy', 'adamw', 'llama_step', 'vit_fwd_bwd']);

/** Debian's python3 (which has python3-torch), before whatever python3 comes first on PATH. */
function findPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

export function torchRunner(ourIsa: string, threads: number, seconds: number): { runner: ReferenceRunner; note: string } | null {
  const py = findPython();
  if (!py) {
    console.error(`torch reference: no python3 with torch; ${TORCH_PACKAGES} brings it`);
    return null;
  }
  const { env, note } = referenceEnv(ourIsa, threads, [py, '-c', 'import torch; torch.ones(2, 2) @ torch.ones(2, 2)']);
  env.ATEN_CPU_CAPABILITY = ourIsa === 'avx512' ? 'avx512' : ourIsa === 'avx2' ? 'avx2' : 'default';
  const runner: ReferenceRunner = {
    name: 'torch',
    supports: (spec: RefSpec) => TORCH_OPS.has(spec.op),
    run(specs) {
      const r = spawnSync(py, [script, '--threads', String(threads), '--seconds', String(seconds)], {
        input: JSON.stringify(specs), env, encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['pipe', 'pipe', 'inherit'],
      });
      const times = new Map<string, number>();
      if (r.status !== 0) {
        console.error(`torch reference failed (exit ${r.status}): ${r.error?.message ?? ''}`);
        return times;
      }
      for (const [k, s] of Object.entries(JSON.parse(r.stdout) as Record<string, number>)) times.set(k, s);
      return times;
    },
  };
  return { runner, note: `${note}; ATEN_CPU_CAPABILITY=${env.ATEN_CPU_CAPABILITY}` };
}
