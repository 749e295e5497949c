// storage.ts: reference-counted device memory shared by a tensor and its views.
//
// A Storage owns one native allocation (from the device's caching allocator). Every Tensor
// viewing it holds one reference; dispose() of the last view frees it back to the cache at
// once. Tensors that are never disposed are caught by a FinalizationRegistry in tensor.ts. On
// `meta` there is no memory; on `sim` and `cuda` it is device memory of that device's runtime
// (native/cuda/runtime.h), read and written through copies.
import { InternalError } from './errors.ts';
import type { Device } from './device.ts';
import { native, type Handle } from './native.ts';

/** The addon's device codes (DeviceKind in native/core/view.h). */
export const DEVICE_CODE: Record<Exclude<Device, 'meta'>, number> = { cpu: 0, sim: 1, cuda: 2 };

export class Storage {
  readonly handle: Handle;
  readonly bytes: number;
  readonly device: Device;
  private refs = 0;

  constructor(device: Device, bytes: number) {
    if (device === 'meta') throw new InternalError('storage: a meta tensor has no memory');
    this.device = device;
    this.bytes = bytes;
    this.handle = native.alloc(bytes, DEVICE_CODE[device]);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0) native.free(this.handle);
  }
}
