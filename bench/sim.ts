// sim.ts: `npx tsx bench/sim.ts` — the SIMT emulator's scheduling cost.
//
// Launches blocks whose threads only pass __syncthreads in a loop (native/sim/selftest.cu's
// barrier_loop_kernel) on one pool thread, and reports the cost of resuming one emulated thread
// (two fiber switches plus the scheduler's bookkeeping). CPU time (process.cpuUsage) is the
// figure to quote on a shared machine; wall time is printed beside it.
import { setNumThreads } from '../src/index.ts';
import { native } from '../src/tensor/native.ts';

setNumThreads(1);
const rounds = 2000, blocks = 4;
console.log('threads/block  ns per resume (cpu)  ns per resume (wall)');
for (const threads of [32, 128, 256, 1024]) {
  native.simBarrierResumeNs(threads, 10, 1);  // warm: stacks mapped and touched
  let best = Infinity, bestWall = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const before = process.cpuUsage();
    const wall = native.simBarrierResumeNs(threads, rounds, blocks);
    const used = process.cpuUsage(before);
    best = Math.min(best, ((used.user + used.system) * 1e3) / (threads * (rounds + 1) * blocks));
    bestWall = Math.min(bestWall, wall);
  }
  console.log(`${String(threads).padStart(13)}  ${best.toFixed(1).padStart(19)}  ${bestWall.toFixed(1).padStart(20)}`);
}
