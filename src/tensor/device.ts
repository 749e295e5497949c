// device.ts: the devices a tensor can live on and what is available on this machine.
//
//   cpu   native/cpu kernels; always there.
//   meta  shapes and dtypes only, no memory: every op's shape and dtype inference runs, no kernel
//         does, so a full-size model can be built and counted on a laptop.
//   sim   the SIMT emulator running native/cuda's kernels on the CPU; its memory is the sim
//         runtime's device memory. Ops without a sim kernel yet raise a DeviceError saying so.
//   cuda  native/cuda kernels on an NVIDIA GPU (CUDA backend issue).
import { isHalf, type DType } from './dtype.ts';
import { DeviceError, ValueError } from './errors.ts';
import { native, type RuntimeInfo } from './native.ts';
import { DEVICE_CODE } from './storage.ts';

export type Device = 'cpu' | 'meta' | 'sim' | 'cuda';
export const DEVICES: readonly Device[] = ['cpu', 'meta', 'sim', 'cuda'];

let info: RuntimeInfo | undefined;
export function runtimeInfo(): RuntimeInfo {
  return (info ??= native.runtimeInfo());
}

export function cudaAvailable(): boolean {
  return runtimeInfo().cudaDeviceCount > 0;
}

export function cudaDeviceCount(): number {
  return runtimeInfo().cudaDeviceCount;
}

export function cudaDeviceName(index = 0): string {
  const n = cudaDeviceCount();
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new DeviceError(`cudaDeviceName: no CUDA device ${index} (${n} present)`);
  }
  return runtimeInfo().cudaDeviceNames[index];
}

/** Whether the `sim` device (the SIMT emulator) can hold tensors in this build. */
export function simAvailable(): boolean {
  return runtimeInfo().simAvailable;
}

/**
 * The order in which the emulator runs a block's threads between barriers, for every later sim
 * launch: 'sequential', 'reverse' or 'random:<seed>' (overrides EMU_SIM_ORDER). Kernels must give
 * the same results in every order; tests run in all three to catch a missing barrier.
 */
export function setSimOrder(order: string): void {
  if (typeof order !== 'string') throw new ValueError(`setSimOrder: expected a string, got ${typeof order}`);
  native.simSetOrder(order);
}

export function simOrder(): string {
  return native.simOrder();
}

/** The fused kernels of native/cpu/fused.h and their device versions (native/cuda/kernel_table.cu). */
export type FusedKernel = 'attention' | 'attentionBackward' | 'normForward' | 'normBackward' | 'crossEntropy' |
  'crossEntropyBackward' | 'adamw' | 'swiglu' | 'swigluBackward' | 'groupNormForward' | 'groupNormBackward' | 'linear' | 'adamwMixed';

const fusedByDevice = new Map<Device, ReadonlySet<string>>();

/**
 * Whether `device` has the fused kernel `name`: the functional layer takes the fused path where
 * it does and the composed one (ops that every device has) elsewhere, so a device gains speed
 * kernel by kernel without ever losing an op. Never on meta, which runs no kernels.
 */
export function hasFusedKernel(device: Device, name: FusedKernel): boolean {
  if (device === 'meta') return false;
  let names = fusedByDevice.get(device);
  if (!names) fusedByDevice.set(device, (names = new Set(native.fusedKernels(DEVICE_CODE[device]))));
  return names.has(name);
}

/**
 * Whether the device's fused kernels (attention, the norms, cross-entropy, SwiGLU) take bf16 and
 * f16 operands as they are, computing in f32 and saving row statistics in f32: sim and cuda do
 * (native/cuda/). The CPU's take f32 and f64 only, so the functional layer casts bf16 and f16 to
 * f32 around them there.
 */
export function fusedTakesHalf(device: Device): boolean {
  return device === 'sim' || device === 'cuda';
}

/** Whether the device's fused kernels take operands of `dtype`: f32 and f64 everywhere, bf16 and f16 where fusedTakesHalf. */
export function fusedTakes(device: Device, dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'f64' || (isHalf(dtype) && fusedTakesHalf(device));
}

/** Threads in the CPU pool (EMU_NUM_THREADS, default: the cores available). */
export function numThreads(): number {
  return runtimeInfo().threads;
}

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new ValueError(`setNumThreads: expected 1..1024, got ${n}`);
  native.setNumThreads(n);
  info = undefined;
}

/** Checks a device name and that it can hold tensors in this build on this machine. */
export function checkDevice(d: unknown, op: string): Device {
  if (typeof d !== 'string' || !(DEVICES as readonly string[]).includes(d)) {
    throw new ValueError(`${op}: device must be one of ${DEVICES.join(', ')}, got ${String(d)}`);
  }
  if (d === 'cuda' && !cudaAvailable()) {
    throw new DeviceError(`${op}: device cuda is not available: ${runtimeInfo().cudaUnavailableReason}`);
  }
  if (d === 'sim' && !runtimeInfo().simAvailable) {
    throw new DeviceError(`${op}: device sim is not available in this build`);
  }
  return d as Device;
}
