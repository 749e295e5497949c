// native.ts: loads the addon (build/Release/emu_native.node) and types its functions.
//
// The addon is built by `npm install` (scripts/build-addon.mjs). Each kernel takes views as
// (storage handle, Float64Array descriptor) pairs; see native/addon.cpp for the layout.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as errors from './errors.ts';

/** An opaque native storage handle (a number naming a slot of the addon's storage table). */
export type Handle = number & { readonly __brand: 'emu-storage' };
export type Desc = Float64Array;

export interface RuntimeInfo {
  cpuIsa: string;
  /**
   * The CPU matmul on avx512_bf16 dot products (native/cpu/kernels/gemm/v5_bf16_dot.cpp): absent,
   * available as matmul version 5, or the bf16 default (EMU_CPU_BF16_DOT=1).
   */
  cpuBf16Dot: 'absent' | 'available' | 'default';
  threads: number;
  builtWithCuda: boolean;
  cudaDeviceCount: number;
  cudaUnavailableReason: string;
  cudaDeviceNames: string[];
  simAvailable: boolean;
}

/** One of the SIMT emulator's self-tests (native/sim/selftest.h says what the kinds mean). */
export interface SimSelfTestInfo {
  name: string;
  kind: 'feature' | 'broken-result' | 'broken-error';
  description: string;
}

export interface NativeStats {
  allocated: number;
  reserved: number;
  peak: number;
  blocks: number;
  freshAllocations: number;
}

type H = Handle;
type D = Desc;

export interface Native {
  init(classes: Record<string, unknown>): void;
  /** `device` is a DEVICE_CODE (storage.ts); cpu when left out. */
  alloc(bytes: number, device?: number): Handle;
  free(h: Handle): void;
  read(h: Handle, byteOffset: number, byteLength: number): ArrayBuffer;
  write(h: Handle, byteOffset: number, data: ArrayBufferView): void;
  /** Copies bytes between two storages on any devices. */
  transfer(dst: Handle, dstByteOffset: number, src: Handle, srcByteOffset: number, byteLength: number): void;
  memoryStats(device?: number): NativeStats;
  emptyCache(device?: number): void;
  resetPeak(device?: number): void;
  runtimeInfo(): RuntimeInfo;
  /** The fused kernels (attention, attentionBackward, normForward, ...) the device (a DEVICE_CODE) has. */
  fusedKernels(device: number): string[];
  setNumThreads(n: number): void;
  simSelfTests(): SimSelfTestInfo[];
  /**
   * '' when the self-test's result matches its reference, else the first mismatch; throws DeviceError for errors the
   * emulator reports. `order` (sequential | reverse | random:<seed>) applies to this call; without it, EMU_SIM_ORDER.
   */
  simSelfTest(name: string, order?: string): string;
  simBarrierResumeNs(threads: number, rounds: number, blocks: number): number;
  /** Sets the thread order of later sim launches (sequential | reverse | random:<seed>); ValueError otherwise. */
  simSetOrder(order: string): void;
  simOrder(): string;
  /** The self-tests compiled by nvcc (empty in a build without CUDA). */
  cudaSelfTests(): SimSelfTestInfo[];
  /** A self-test on the GPU: '' when it matches its reference; DeviceError where there is no CUDA device. */
  cudaSelfTest(name: string): string;
  copy(oh: H, od: D, ih: H, id: D): void;
  fill(oh: H, od: D, value: number): void;
  unary(op: number, oh: H, od: D, ih: H, id: D, a: number, b: number): void;
  binary(op: number, oh: H, od: D, ah: H, ad: D, bh: H, bd: D): void;
  where(oh: H, od: D, ch: H, cd: D, ah: H, ad: D, bh: H, bd: D): void;
  rope(oh: H, od: D, xh: H, xd: D, ch: H, cd: D, sh: H, sd: D, inverse: boolean): void;
  reduce(op: number, oh: H, od: D, ih: H, id: D, nkeep: number, correction: number): void;
  softmax(oh: H, od: D, ih: H, id: D, dim: number, log: boolean): void;
  cumsum(oh: H, od: D, ih: H, id: D, dim: number): void;
  matmul(oh: H, od: D, ah: H, ad: D, bh: H, bd: D): void;
  /** matmul through kernel version 1 to 4 (native/cpu/kernels/matmul.cpp); for bench/. */
  matmulVersion(version: number, oh: H, od: D, ah: H, ad: D, bh: H, bd: D): void;
  gather(oh: H, od: D, ih: H, id: D, dim: number, xh: H, xd: D): void;
  scatterAdd(oh: H, od: D, dim: number, xh: H, xd: D, sh: H, sd: D): void;
  indexSelect(oh: H, od: D, ih: H, id: D, dim: number, xh: H, xd: D): void;
  triangle(oh: H, od: D, ih: H, id: D, k: number, upper: boolean): void;
  randUniform(oh: H, od: D, seed: number, offset: number, low: number, high: number): void;
  randNormal(oh: H, od: D, seed: number, offset: number, mean: number, std: number): void;
  randInt(oh: H, od: D, seed: number, offset: number, low: number, high: number): void;
  randperm(oh: H, od: D, seed: number, offset: number): void;
  conv2d(oh: H, od: D, ih: H, id: D, wh: H, wd: D, bh: H | null, bd: D | null,
    sh: number, sw: number, ph: number, pw: number, dh: number, dw: number, groups: number): void;
  maxPool2d(oh: H, od: D, xh: H | null, xd: D | null, ih: H, id: D,
    kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number): void;
  avgPool2d(oh: H, od: D, ih: H, id: D, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number,
    countIncludePad: boolean): void;
  upsampleNearest2d(oh: H, od: D, ih: H, id: D): void;
  conv2dBackwardInput(gih: H, gid: D, goh: H, god: D, wh: H, wd: D,
    sh: number, sw: number, ph: number, pw: number, dh: number, dw: number, groups: number): void;
  conv2dBackwardWeight(gwh: H, gwd: D, gbh: H | null, gbd: D | null, goh: H, god: D, ih: H, id: D,
    sh: number, sw: number, ph: number, pw: number, dh: number, dw: number, groups: number): void;
  /** Forces the conv2d kernel version (native/cuda/conv.cu) of a device (a DEVICE_CODE): 0 = the dispatcher's choice. */
  conv2dSetVersion(device: number, version: number): void;
  /** The kernel that the device's last conv2d call (forward or gradient) launched. */
  conv2dLastKernel(device: number): string;
  avgPool2dBackward(gih: H, gid: D, goh: H, god: D, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number,
    countIncludePad: boolean): void;
  upsampleNearest2dBackward(gih: H, gid: D, goh: H, god: D): void;
  attention(oh: H, od: D, lh: H, ld: D, qh: H, qd: D, kh: H, kd: D, vh: H, vd: D, bh: H | null, bd: D | null,
    mh: H | null, md: D | null, scale: number, causal: boolean): void;
  attentionBackward(dqh: H, dqd: D, dkh: H, dkd: D, dvh: H, dvd: D, dbh: H | null, dbd: D | null, gh: H, gd: D,
    oh: H, od: D, lh: H, ld: D, qh: H, qd: D, kh: H, kd: D, vh: H, vd: D, bh: H | null, bd: D | null,
    mh: H | null, md: D | null, scale: number, causal: boolean): void;
  /** Forces attention kernel `version` on the device (a DEVICE_CODE); 0 restores the dispatcher's choice. */
  attentionVersion(device: number, version: number): void;
  normVersion(device: number, version: number): void;
  normForward(yh: H, yd: D, mh: H | null, md: D | null, rh: H, rd: D, xh: H, xd: D, wh: H | null, wd: D | null,
    bh: H | null, bd: D | null, eps: number): void;
  normBackward(dxh: H, dxd: D, dwh: H | null, dwd: D | null, dbh: H | null, dbd: D | null, gh: H, gd: D, xh: H, xd: D,
    wh: H | null, wd: D | null, mh: H | null, md: D | null, rh: H, rd: D): void;
  /** GroupNorm's rows x [R, D] with its per-channel affine: `inner` contiguous elements per channel (native/cpu/fused.h). */
  groupNormForward(yh: H, yd: D, mh: H, md: D, rh: H, rd: D, xh: H, xd: D, wh: H | null, wd: D | null,
    bh: H | null, bd: D | null, eps: number, inner: number): void;
  groupNormBackward(dxh: H, dxd: D, dwh: H | null, dwd: D | null, dbh: H | null, dbd: D | null, gh: H, gd: D, xh: H, xd: D,
    wh: H | null, wd: D | null, mh: H, md: D, rh: H, rd: D, inner: number): void;
  crossEntropy(lh: H, ld: D, sh: H, sd: D, xh: H, xd: D, th: H, td: D, ignoreIndex: number, smoothing: number): void;
  crossEntropyBackward(dxh: H, dxd: D, gh: H, gd: D, xh: H, xd: D, sh: H, sd: D, th: H, td: D, ignoreIndex: number,
    smoothing: number): void;
  adamw(ph: H, pd: D, gh: H, gd: D, mh: H, md: D, vh: H, vd: D, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, bias2: number, stepSize: number): void;
  swiglu(oh: H, od: D, ah: H, ad: D, bh: H, bd: D): void;
  swigluBackward(dah: H, dad: D, dbh: H, dbd: D, gh: H, gd: D, ah: H, ad: D, bh: H, bd: D): void;
  /** AdamW for a bf16/f16 parameter through its f32 master copy, one pass (native/cpu/fused.h). */
  adamwMixed(ph: H, pd: D, mah: H, mad: D, gh: H, gd: D, mh: H, md: D, vh: H, vd: D, lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, bias2: number, stepSize: number): void;
  /** act(x w^T + bias) + residual in one GEMM with a fused epilogue; pre gets x w^T + bias (native/cpu/fused.h). */
  linear(oh: H, od: D, ph: H | null, pd: D | null, xh: H, xd: D, wh: H, wd: D, bh: H | null, bd: D | null, rh: H | null,
    rd: D | null, act: number, version: number): void;
  peakGflops(iters: number): number;
  triadGbps(n: number, reps: number): number;
}

function load(): Native {
  const require = createRequire(import.meta.url);
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const path = join(root, 'build', 'Release', 'emu_native.node');
  let mod: Native;
  try {
    mod = require(path) as Native;
  } catch (e) {
    throw new errors.InternalError(
      `emu-engine: cannot load the native addon at ${path} (${(e as Error).message}). Run \`npm install\` to build it.`,
    );
  }
  mod.init({
    ShapeError: errors.ShapeError,
    DTypeError: errors.DTypeError,
    DeviceError: errors.DeviceError,
    IndexError: errors.IndexError,
    ValueError: errors.ValueError,
    MemoryError: errors.MemoryError,
    InternalError: errors.InternalError,
  });
  return mod;
}

export const native: Native = load();
