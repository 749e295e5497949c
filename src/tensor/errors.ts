// errors.ts: the typed errors of the engine.
//
// Every public function checks its arguments and throws one of these, with a message that names
// the op, the argument and what was wrong, e.g.
//   matmul: shapes [2,3] and [4,5] cannot be multiplied (3 != 4)
// The native addon raises the same classes (they are registered with it at load), so a bad
// index found inside a kernel reaches the caller as an IndexError, never as a crash.

export class EmuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that do not broadcast, multiply, or reshape; bad or non-integer sizes. */
export class ShapeError extends EmuError {}
/** An op given a dtype it does not support (a float op on bool, a float index tensor, ...). */
export class DTypeError extends EmuError {}
/** Tensors on different devices in one op, or a device that is not available. */
export class DeviceError extends EmuError {}
/** An index out of range (select, gather, embedding, a dim argument). */
export class IndexError extends EmuError {}
/** An argument of the wrong type or value (a string where a shape belongs, NaN, ...). */
export class ValueError extends EmuError {}
/** A tensor used after dispose(). */
export class DisposedError extends EmuError {}
/** An allocation the device could not satisfy. */
export class MemoryError extends EmuError {}
/** A failure inside the engine that is not the caller's fault. */
export class InternalError extends EmuError {}
/** A checkpoint file that is missing, truncated or corrupt. */
export class CheckpointError extends EmuError {}
