// tensor.ts: the Tensor class: a typed, strided view on reference-counted device memory.
//
// A Tensor is (storage, offset, shape, strides, dtype, device). Views (reshape, permute,
// slice, expand, ...) make a new Tensor on the same storage; nothing is copied until an op
// needs contiguous memory. The op functions live in ./ops/*.ts and are also exposed here as
// methods, PyTorch-style: `x.add(y)` is `add(x, y)`.
//
// Lifetime: dispose() (or `using`, or tidy) releases the tensor's hold on its storage at once;
// a FinalizationRegistry releases tensors that are garbage-collected without it.
import { type Device } from './device.ts';
import { DTYPE_CODE, DTYPE_SIZE, isFloat, type DType } from './dtype.ts';
import { DisposedError, DTypeError, ValueError } from './errors.ts';
import { runBackward, type BackwardOptions, type GradFn } from './tape.ts';
import { trackCreated, trackReleased, type Tracked } from './memory.ts';
import type { Desc, Handle } from './native.ts';
import { contiguousStrides, isContiguous, numelOf, type Shape } from './shape.ts';
import { Storage } from './storage.ts';
import * as E from './ops/elementwise.ts';
import * as R from './ops/reduce.ts';
import * as V from './ops/views.ts';
import * as L from './ops/linalg.ts';
import * as I from './ops/image.ts';
import * as F from './format.ts';

// Descriptors are carved out of shared 4 KiB buffers instead of each owning its own: V8 keeps a
// small typed array's bytes on its heap, and the addon's napi_get_typedarray_info then moves
// them to a new off-heap backing store, on every first use (malloc, and later a sweep: about a
// tenth of a small op's time). A chunk lives while any descriptor in it does, so a long-lived
// tensor pins at most 4 KiB.
const DESC_CHUNK = 512;  // doubles
let descChunk = new ArrayBuffer(DESC_CHUNK * 8);
let descUsed = 0;

/** [dtype, ndim, offset, shape..., strides...] in elements: the layout native/addon.cpp reads. */
function encodeDesc(dtype: DType, shape: Shape, strides: Shape, offset: number): Desc {
  const n = shape.length;
  const len = 3 + 2 * n;
  if (descUsed + len > DESC_CHUNK) {
    descChunk = new ArrayBuffer(DESC_CHUNK * 8);
    descUsed = 0;
  }
  const d = new Float64Array(descChunk, descUsed * 8, len);
  descUsed += len;
  d[0] = DTYPE_CODE[dtype];
  d[1] = n;
  d[2] = offset;
  for (let i = 0; i < n; i++) {
    d[3 + i] = shape[i];
    d[3 + n + i] = strides[i];
  }
  return d;
}

// The backstop for tensors that are never disposed. What it holds for a tensor is its storage,
// or on meta (no storage) its device. Registering and unregistering cost about a microsecond
// per tensor (more than a small op itself), and most tensors are disposed soon after they are
// made (tidy, dispose, using), so a new tensor first goes on a short list of recent tensors;
// only those still live when the list is flushed (at 128 entries, or when the current
// synchronous job ends) are registered.
const registry = new FinalizationRegistry<Storage | Device>((held) => {
  if (typeof held === 'string') {
    trackReleased(undefined, held);
  } else {
    held.release();
    trackReleased(undefined, held.device);
  }
});

/** A frozen copy of a shape or strides array; an array that is already frozen is shared as is. */
function frozen(a: Shape): readonly number[] {
  return Object.isFrozen(a) ? a : Object.freeze(a.slice());
}

export type Scalar = number | boolean;
export type TensorLike = Tensor | Scalar;

export class Tensor implements Tracked {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  readonly device: Device;
  /** The accumulated gradient of a leaf after backward() (null until then). */
  grad: Tensor | null = null;
  #requiresGrad = false;
  #gradFn: GradFn | null = null;
  #storage: Storage | null;
  #desc: Desc | undefined;
  #disposed = false;
  #registered = false;
  static #recent: Tensor[] = [];
  static #flushQueued = false;

  static #flushRecent(): void {
    Tensor.#flushQueued = false;
    for (const t of Tensor.#recent) {
      if (t.#disposed) continue;
      registry.register(t, t.#storage ?? t.device, t);
      t.#registered = true;
    }
    Tensor.#recent.length = 0;
  }

  /** Internal: use the creation functions. */
  constructor(storage: Storage | null, shape: Shape, strides: Shape, offset: number, dtype: DType, device: Device) {
    this.#storage = storage;
    this.shape = frozen(shape);
    this.strides = frozen(strides);
    this.offset = offset;
    this.dtype = dtype;
    this.device = device;
    storage?.retain();
    trackCreated(this, device);
    if (Tensor.#recent.push(this) >= 128) Tensor.#flushRecent();
    else if (!Tensor.#flushQueued) {
      Tensor.#flushQueued = true;
      queueMicrotask(() => Tensor.#flushRecent());
    }
  }

  /** A new contiguous tensor with uninitialised memory. */
  static empty(shape: Shape, dtype: DType, device: Device): Tensor {
    const n = numelOf(shape);
    const storage = device === 'meta' ? null : new Storage(device, n * DTYPE_SIZE[dtype]);
    return new Tensor(storage, shape, Object.freeze(contiguousStrides(shape)), 0, dtype, device);
  }

  /** A view of this tensor's storage with another shape/strides/offset (and optionally dtype). */
  viewAs(shape: Shape, strides: Shape, offset: number): Tensor {
    return new Tensor(this.live().#storage, shape, strides, offset, this.dtype, this.device);
  }

  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return numelOf(this.shape);
  }
  get isDisposed(): boolean {
    return this.#disposed;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  /** Internal: the storage (null on meta). Throws if disposed. */
  get storage(): Storage | null {
    return this.live().#storage;
  }
  /** Internal: the native handle; only for tensors with memory. */
  get handle(): Handle {
    return this.live().#storage!.handle;
  }
  /** Internal: the view descriptor passed to native kernels (see native/addon.cpp). */
  get desc(): Desc {
    this.live();
    return (this.#desc ??= encodeDesc(this.dtype, this.shape, this.strides, this.offset));
  }
  /**
   * Internal: the descriptor of this tensor's memory seen with another shape and strides (a
   * broadcast), for passing straight to a kernel without making a view Tensor.
   */
  descAs(shape: Shape, strides: Shape): Desc {
    this.live();
    return encodeDesc(this.dtype, shape, strides, this.offset);
  }

  /** Throws DisposedError if this tensor was disposed; returns it otherwise. */
  live(op?: string): this {
    if (this.#disposed) {
      throw new DisposedError(`${op ?? 'tensor'}: tensor of shape [${this.shape.join(',')}] was disposed`);
    }
    return this;
  }

  // ---- autograd (the engine lives in src/autograd; see tape.ts) ----
  /** Whether ops on this tensor are recorded for backward. Set it on leaves (parameters). */
  get requiresGrad(): boolean {
    return this.#requiresGrad || this.#gradFn !== null;
  }
  set requiresGrad(on: boolean) {
    if (typeof on !== 'boolean') throw new ValueError('requiresGrad: expected a boolean');
    if (on && !isFloat(this.dtype)) throw new DTypeError(`requiresGrad: only float tensors can require grad, got ${this.dtype}`);
    if (!on && this.#gradFn) throw new ValueError('requiresGrad: cannot turn off on a tensor computed from others; use detach()');
    this.#requiresGrad = on;
  }
  /** Sets requiresGrad and returns this tensor, for chaining. */
  requiresGrad_(on = true): this {
    this.requiresGrad = on;
    return this;
  }
  /** The backward-graph node that computed this tensor (null for leaves). */
  get gradFn(): GradFn | null {
    return this.#gradFn;
  }
  get isLeaf(): boolean {
    return this.#gradFn === null;
  }
  /** Internal: the autograd engine attaches the node that made this tensor. */
  setGradFn(fn: GradFn): void {
    this.#gradFn = fn;
  }
  /** A view of the same memory, cut from the graph. */
  detach(): Tensor {
    return this.viewAs(this.shape, this.strides, this.offset);
  }
  /** Gradients of this (scalar, or with `grad` given) with respect to every leaf that requires grad. */
  backward(grad?: Tensor, opts: BackwardOptions = {}): void {
    runBackward(this, grad, opts);
  }
  /** Disposes and clears `.grad`. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#registered) registry.unregister(this);
    this.#storage?.release();
    this.#storage = null;
    trackReleased(this, this.device);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- reading back ----
  toArray(): F.NestedArray {
    return F.toArray(this);
  }
  data(): F.HostArray {
    return F.data(this);
  }
  item(): number | boolean {
    return F.item(this);
  }
  toString(): string {
    return F.format(this);
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return F.format(this);
  }

  // ---- moving, casting, views ----
  to(target: DType | Device): Tensor {
    return V.to(this, target);
  }
  clone(): Tensor {
    return V.clone(this);
  }
  contiguous(): Tensor {
    return V.contiguous(this);
  }
  reshape(...shape: number[] | [number[]]): Tensor {
    return V.reshape(this, V.shapeArgs(shape));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return V.view(this, V.shapeArgs(shape));
  }
  permute(...dims: number[] | [number[]]): Tensor {
    return V.permute(this, V.shapeArgs(dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return V.transpose(this, dim0, dim1);
  }
  /** 2-d transpose. */
  t(): Tensor {
    return V.transpose(this, 0, -1);
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return V.expand(this, V.shapeArgs(shape));
  }
  broadcastTo(shape: number[]): Tensor {
    return V.broadcastTo(this, shape);
  }
  squeeze(dim?: number | number[]): Tensor {
    return V.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return V.unsqueeze(this, dim);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return V.flatten(this, startDim, endDim);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return V.narrow(this, dim, start, length);
  }
  slice(dim: number, start?: number, end?: number, step?: number): Tensor {
    return V.slice(this, dim, start, end, step);
  }
  select(dim: number, index: number): Tensor {
    return V.select(this, dim, index);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return V.chunk(this, chunks, dim);
  }
  split(sizes: number | number[], dim = 0): Tensor[] {
    return V.split(this, sizes, dim);
  }
  unbind(dim = 0): Tensor[] {
    return V.unbind(this, dim);
  }

  // ---- element-wise ----
  add(o: TensorLike): Tensor { return E.add(this, o); }
  sub(o: TensorLike): Tensor { return E.sub(this, o); }
  mul(o: TensorLike): Tensor { return E.mul(this, o); }
  div(o: TensorLike): Tensor { return E.div(this, o); }
  pow(o: TensorLike): Tensor { return E.pow(this, o); }
  maximum(o: TensorLike): Tensor { return E.maximum(this, o); }
  minimum(o: TensorLike): Tensor { return E.minimum(this, o); }
  remainder(o: TensorLike): Tensor { return E.remainder(this, o); }
  eq(o: TensorLike): Tensor { return E.eq(this, o); }
  ne(o: TensorLike): Tensor { return E.ne(this, o); }
  lt(o: TensorLike): Tensor { return E.lt(this, o); }
  le(o: TensorLike): Tensor { return E.le(this, o); }
  gt(o: TensorLike): Tensor { return E.gt(this, o); }
  ge(o: TensorLike): Tensor { return E.ge(this, o); }
  logicalAnd(o: TensorLike): Tensor { return E.logicalAnd(this, o); }
  logicalOr(o: TensorLike): Tensor { return E.logicalOr(this, o); }
  logicalXor(o: TensorLike): Tensor { return E.logicalXor(this, o); }
  logicalNot(): Tensor { return E.logicalNot(this); }
  neg(): Tensor { return E.neg(this); }
  abs(): Tensor { return E.abs(this); }
  exp(): Tensor { return E.exp(this); }
  log(): Tensor { return E.log(this); }
  log1p(): Tensor { return E.log1p(this); }
  sqrt(): Tensor { return E.sqrt(this); }
  rsqrt(): Tensor { return E.rsqrt(this); }
  sin(): Tensor { return E.sin(this); }
  cos(): Tensor { return E.cos(this); }
  tanh(): Tensor { return E.tanh(this); }
  sigmoid(): Tensor { return E.sigmoid(this); }
  relu(): Tensor { return E.relu(this); }
  gelu(opts?: E.GeluOptions): Tensor { return E.gelu(this, opts); }
  silu(): Tensor { return E.silu(this); }
  softplus(): Tensor { return E.softplus(this); }
  square(): Tensor { return E.square(this); }
  reciprocal(): Tensor { return E.reciprocal(this); }
  erf(): Tensor { return E.erf(this); }
  sign(): Tensor { return E.sign(this); }
  floor(): Tensor { return E.floor(this); }
  ceil(): Tensor { return E.ceil(this); }
  round(): Tensor { return E.round(this); }
  clamp(min?: number | null, max?: number | null): Tensor { return E.clamp(this, min, max); }
  isFinite(): Tensor { return E.isFinite(this); }
  isNaN(): Tensor { return E.isNaN(this); }
  where(cond: Tensor, other: TensorLike): Tensor { return E.where(cond, this, other); }
  maskedFill(mask: Tensor, value: number | boolean): Tensor { return L.maskedFill(this, mask, value); }

  // ---- reductions ----
  sum(dim?: R.Dims, keepdim = false): Tensor { return R.sum(this, dim, keepdim); }
  mean(dim?: R.Dims, keepdim = false): Tensor { return R.mean(this, dim, keepdim); }
  prod(dim?: R.Dims, keepdim = false): Tensor { return R.prod(this, dim, keepdim); }
  max(dim?: R.Dims, keepdim = false): Tensor { return R.max(this, dim, keepdim); }
  min(dim?: R.Dims, keepdim = false): Tensor { return R.min(this, dim, keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return R.argmax(this, dim, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return R.argmin(this, dim, keepdim); }
  var(dim?: R.Dims, opts?: R.VarOptions): Tensor { return R.variance(this, dim, opts); }
  std(dim?: R.Dims, opts?: R.VarOptions): Tensor { return R.std(this, dim, opts); }
  logsumexp(dim?: R.Dims, keepdim = false): Tensor { return R.logsumexp(this, dim, keepdim); }
  all(dim?: R.Dims, keepdim = false): Tensor { return R.all(this, dim, keepdim); }
  any(dim?: R.Dims, keepdim = false): Tensor { return R.any(this, dim, keepdim); }
  softmax(dim: number): Tensor { return R.softmax(this, dim); }
  logSoftmax(dim: number): Tensor { return R.logSoftmax(this, dim); }
  cumsum(dim: number): Tensor { return R.cumsum(this, dim); }

  // ---- linear algebra and indexing ----
  matmul(o: Tensor): Tensor { return L.matmul(this, o); }
  bmm(o: Tensor): Tensor { return L.bmm(this, o); }
  gather(dim: number, index: Tensor): Tensor { return L.gather(this, dim, index); }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return L.scatterAdd(this, dim, index, src); }
  indexSelect(dim: number, index: Tensor): Tensor { return L.indexSelect(this, dim, index); }
  tril(k = 0): Tensor { return L.tril(this, k); }
  triu(k = 0): Tensor { return L.triu(this, k); }

  // ---- images ----
  pad(padding: number[], value = 0): Tensor { return I.pad(this, padding, value); }
}
