// build-addon.mjs: builds native/ into build/Release/emu_native.node (run by `npm install`).
//
// CMake (through cmake-js) is the main builder: it also compiles native/cuda when nvcc is
// found. Where CMake is not installed, node-gyp builds the CPU and sim parts from binding.gyp
// and we say so (EMU_BUILDER=gyp forces that path, to test it). EMU_CUDA=OFF forces a build
// without CUDA. Both builders read native/sources.json, so they compile the same files.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const jobs = String(availableParallelism());

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const hasCmake = process.env.EMU_BUILDER !== 'gyp' && spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
let status;
if (hasCmake) {
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const args = [cmakeJs, 'compile', '--out', 'build', '--parallel', jobs];
  if (process.env.EMU_CUDA === 'OFF') args.push('--CDEMU_CUDA=OFF');
  status = run(process.execPath, args, { CMAKE_BUILD_PARALLEL_LEVEL: jobs });
} else {
  console.log('emu-engine: CMake not found, building with node-gyp (CPU and sim only, no CUDA).');
  const nodeGyp = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
  status = run(process.execPath, [nodeGyp, 'rebuild', '--jobs', jobs]);
}
process.exit(status);
