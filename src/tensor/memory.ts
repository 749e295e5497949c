// memory.ts: tidy scopes, live-tensor accounting and memoryStats.
//
// tidy(fn) opens a scope; every tensor created inside is recorded in it, and when fn returns,
// all of them are disposed except the tensors fn returns (found in arrays and plain objects),
// which move to the enclosing scope. Scopes nest. This is the same contract as TensorFlow.js's
// tidy, and with `using` and dispose() it lets a training loop run for hours in flat memory.
import type { Device } from './device.ts';
import { ValueError } from './errors.ts';
import { native } from './native.ts';
import { DEVICE_CODE } from './storage.ts';

/** What memory.ts needs of a tensor (tensor.ts implements it; no import cycle). */
export interface Tracked {
  readonly isDisposed: boolean;
  dispose(): void;
}

const scopes: Set<Tracked>[] = [];
const live: Record<Device, number> = { cpu: 0, meta: 0, sim: 0, cuda: 0 };

export function trackCreated(t: Tracked, device: Device): void {
  live[device]++;
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

export function trackReleased(t: Tracked | undefined, device: Device): void {
  live[device]--;
  if (t && scopes.length) scopes[scopes.length - 1].delete(t);
}

function collect(value: unknown, into: Set<Tracked>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Tracked).dispose === 'function' && 'isDisposed' in (value as object)) {
    into.add(value as Tracked);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, seen);
  }
}

/**
 * Runs fn and disposes every tensor it created except those it returns. fn must be synchronous
 * (a scope cannot follow an await).
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('tidy: expected a function');
  const scope = new Set<Tracked>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new ValueError('tidy: fn returned a Promise; tidy scopes are synchronous');
  }
  // (A result that holds no object, the common case of a timed or side-effect block, needs no walk.)
  const kept = new Set<Tracked>();
  if (result !== null && typeof result === 'object') collect(result, kept, new Set());
  const parent = scopes.length ? scopes[scopes.length - 1] : undefined;
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Takes t out of the current tidy scope so it survives it. */
export function keep<T extends Tracked>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

export interface MemoryStats {
  device: Device;
  /** Tensors (views included) not yet disposed or collected. */
  liveTensors: number;
  /** Bytes in live storages, as rounded by the caching allocator. */
  allocated: number;
  /** allocated plus the bytes the cache holds for reuse. */
  reserved: number;
  /** The high-water mark of `allocated` since start or resetPeakMemory(). */
  peak: number;
  /** Allocations that had to go to the OS (a steady training loop keeps this constant). */
  freshAllocations: number;
}

/** The native allocator of `device`, or undefined for meta and for cuda before a tensor was made there. */
function allocatorOf(device: Device, op: string): number | undefined {
  if (device === 'cpu' || device === 'sim') return DEVICE_CODE[device];
  if (device === 'meta') return undefined;
  if (device === 'cuda') return live.cuda > 0 ? DEVICE_CODE.cuda : undefined;
  throw new ValueError(`${op}: unknown device ${String(device)}`);
}

/** The memory counters of a device's caching allocator (sim and cuda: device memory). */
export function memoryStats(device: Device = 'cpu'): MemoryStats {
  const code = allocatorOf(device, 'memoryStats');
  if (code === undefined) return { device, liveTensors: live[device], allocated: 0, reserved: 0, peak: 0, freshAllocations: 0 };
  const s = native.memoryStats(code);
  return { device, liveTensors: live[device], allocated: s.allocated, reserved: s.reserved, peak: s.peak, freshAllocations: s.freshAllocations };
}

/** Returns a device's cached blocks (the CPU's by default) to the OS or the device. */
export function emptyCache(device: Device = 'cpu'): void {
  const code = allocatorOf(device, 'emptyCache');
  if (code !== undefined) native.emptyCache(code);
}

export function resetPeakMemory(device: Device = 'cpu'): void {
  const code = allocatorOf(device, 'resetPeakMemory');
  if (code !== undefined) native.resetPeak(code);
}
