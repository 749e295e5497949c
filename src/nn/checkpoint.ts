// checkpoint.ts: one training checkpoint in one safetensors file.
//
// Model weights are stored as `model.<name>`, optimizer buffers as `optim.<index>.<buffer>`;
// everything else (optimizer hyper-parameters and step counts, generator states, scheduler
// state, free-form `extra` JSON) goes in __metadata__ under the key `emu.checkpoint`, as JSON.
// The write is atomic (saveSafetensors), so a crash mid-save leaves the previous checkpoint; a
// damaged file gives a CheckpointError naming it.
import { CheckpointError, ValueError } from '../tensor/errors.ts';
import type { GeneratorState } from '../tensor/random.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { flattenStateDict, unflattenStateDict, type OptimizerStateDict } from './optim/optimizer.ts';
import type { SchedulerState } from './schedule.ts';
import { loadSafetensors, saveSafetensors } from './safetensors.ts';

const MODEL = 'model.';
const OPTIM = 'optim.';
const META_KEY = 'emu.checkpoint';
const VERSION = 1;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Checkpoint {
  /** Model tensors by name (a module's stateDict). */
  model: Record<string, Tensor> | Map<string, Tensor>;
  optimizer?: OptimizerStateDict;
  /** Generator states by name, e.g. { default: defaultGenerator.getState() }. */
  rng?: Record<string, GeneratorState>;
  scheduler?: SchedulerState;
  extra?: Json;
}

export interface LoadedCheckpoint {
  model: Map<string, Tensor>;
  optimizer?: OptimizerStateDict;
  rng?: Record<string, GeneratorState>;
  scheduler?: SchedulerState;
  extra?: Json;
}

/** Writes model weights, optimizer state, generator states, scheduler state and extra JSON to `path`, atomically. */
export function saveCheckpoint(path: string, ckpt: Checkpoint): void {
  if (!ckpt || typeof ckpt !== 'object' || !ckpt.model || typeof ckpt.model !== 'object') {
    throw new ValueError('saveCheckpoint: expected { model, optimizer?, rng?, scheduler?, extra? }');
  }
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of ckpt.model instanceof Map ? ckpt.model : Object.entries(ckpt.model)) tensors.set(MODEL + name, t);
  const meta: Record<string, unknown> = { version: VERSION };
  if (ckpt.optimizer) {
    const flat = flattenStateDict(ckpt.optimizer, OPTIM);
    for (const [name, t] of Object.entries(flat.tensors)) tensors.set(name, t);
    meta.optimizer = JSON.parse(flat.metadata);
  }
  if (ckpt.rng !== undefined) {
    for (const [k, s] of Object.entries(ckpt.rng)) {
      if (!s || !Number.isInteger(s.seed) || !Number.isInteger(s.offset)) throw new ValueError(`saveCheckpoint: rng.${k} is not a generator state { seed, offset }`);
    }
    meta.rng = ckpt.rng;
  }
  if (ckpt.scheduler !== undefined) meta.scheduler = ckpt.scheduler;
  if (ckpt.extra !== undefined) meta.extra = ckpt.extra;
  let json: string;
  try {
    json = JSON.stringify(meta);
  } catch (e) {
    throw new ValueError(`saveCheckpoint: extra is not JSON-serialisable (${(e as Error).message})`);
  }
  saveSafetensors(path, tensors, { [META_KEY]: json });
}

/**
 * Reads a file written by saveCheckpoint. The caller owns every tensor returned (model weights
 * and optimizer buffers; Optimizer.loadStateDict copies the buffers, so they can be disposed).
 */
export function loadCheckpoint(path: string): LoadedCheckpoint {
  const { tensors, metadata } = loadSafetensors(path);
  const bad = (what: string): never => {
    for (const t of tensors.values()) t.dispose();
    throw new CheckpointError(`loadCheckpoint: ${path}: ${what}`);
  };
  const raw = metadata[META_KEY];
  if (raw === undefined) bad(`no ${META_KEY} metadata (not a checkpoint written by saveCheckpoint)`);
  let meta: { version?: unknown; optimizer?: unknown; rng?: unknown; scheduler?: unknown; extra?: Json };
  try {
    meta = JSON.parse(raw);
  } catch (e) {
    return bad(`${META_KEY} metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!meta || typeof meta !== 'object') bad(`${META_KEY} metadata is not an object`);
  if (meta.version !== VERSION) bad(`unsupported checkpoint version ${JSON.stringify(meta.version)}`);
  const out: LoadedCheckpoint = { model: new Map() };
  for (const [name, t] of tensors) {
    if (name.startsWith(MODEL)) out.model.set(name.slice(MODEL.length), t);
    else if (!name.startsWith(OPTIM) || meta.optimizer === undefined) bad(`unexpected tensor ${name}`);
  }
  if (meta.optimizer !== undefined) {
    try {
      out.optimizer = unflattenStateDict(tensors, JSON.stringify(meta.optimizer), OPTIM);
    } catch (e) {
      bad((e as Error).message);
    }
  }
  if (meta.rng !== undefined) {
    const rng = meta.rng as Record<string, GeneratorState>;
    if (!rng || typeof rng !== 'object' || !Object.values(rng).every((s) => s && Number.isInteger(s.seed) && Number.isInteger(s.offset))) {
      bad('rng is not a map of generator states { seed, offset }');
    }
    out.rng = rng;
  }
  if (meta.scheduler !== undefined) out.scheduler = meta.scheduler as SchedulerState;
  if (meta.extra !== undefined) out.extra = meta.extra;
  return out;
}
