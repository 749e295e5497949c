// build.test.ts: the two build descriptions (CMakeLists.txt and binding.gyp) cannot drift:
// both read native/sources.json, and every native source file must be listed there.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runtimeInfo } from '../src/index.ts';

const root = join(import.meta.dirname, '..');
const sources = JSON.parse(readFileSync(join(root, 'native/sources.json'), 'utf8'));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [relative(root, p)];
  });
}

test('every native source file is listed in native/sources.json', () => {
  const listed = new Set<string>([...sources.core, ...sources.cpuKernels, ...sources.cuda, ...sources.cudaAbsent]);
  const onDisk = walk(join(root, 'native')).filter((f) => /\.(cpp|cu)$/.test(f));
  for (const f of onDisk) assert.ok(listed.has(f), `${f} is not listed in native/sources.json`);
  for (const f of listed) assert.ok(onDisk.includes(f), `native/sources.json lists ${f}, which does not exist`);
});

test('CMakeLists.txt and binding.gyp both take their sources from native/sources.json', () => {
  const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  const gyp = readFileSync(join(root, 'binding.gyp'), 'utf8');
  assert.ok(cmake.includes('native/sources.json'));
  for (const key of ['core', 'cpuKernels', 'cuda', 'cudaAbsent']) assert.ok(cmake.includes(`emu_json_list(EMU_`) && cmake.includes(` ${key})`), `CMake reads ${key}`);
  assert.ok(gyp.includes("require('./native/sources.json')"));
  for (const key of ['core', 'cpuKernels', 'cudaAbsent']) assert.ok(gyp.includes(`<(emu_sources).${key}`), `binding.gyp reads ${key}`);
  for (const isa of Object.keys(sources.isaFlags)) assert.ok(gyp.includes(`emu_cpu_${isa}`), `binding.gyp builds ${isa}`);
  assert.not.match(cmake + gyp, /march=native/);
});

test('the addon reports its CPU kernels and CUDA status cleanly', () => {
  const info = runtimeInfo();
  assert.ok(['avx512', 'avx2', 'generic'].includes(info.cpuIsa));
  assert.ok(info.threads >= 1);
  if (info.cudaDeviceCount === 0) assert.match(info.cudaUnavailableReason, /no CUDA device/);
});

test.run();
