// emu-engine: the public API. `import { tensor, randn, tidy } from 'emu-engine'`.
//
// Layers (each imports only from those below it): src/emu -> src/nn -> src/autograd ->
// src/tensor -> native/. See the README for a tour.
export { Tensor, type Scalar, type TensorLike } from './tensor/tensor.ts';
export { type DType, DTYPES, isFloat, promoteTypes } from './tensor/dtype.ts';
export {
  type Device, DEVICES, cudaAvailable, cudaDeviceCount, cudaDeviceName, numThreads, setNumThreads, runtimeInfo,
} from './tensor/device.ts';
export * from './tensor/errors.ts';
export { tidy, keep, memoryStats, emptyCache, resetPeakMemory, type MemoryStats } from './tensor/memory.ts';
export { Generator, defaultGenerator, manualSeed, rand, randUniform, randn, randint, randperm, bernoulli, randLike, randnLike, type GeneratorState, type RandomOptions } from './tensor/random.ts';
export {
  tensor, zeros, ones, full, empty, arange, linspace, eye, zerosLike, onesLike, fullLike, emptyLike, type TensorOptions,
} from './tensor/ops/creation.ts';
export {
  to, clone, contiguous, reshape, view, permute, transpose, expand, broadcastTo, squeeze, unsqueeze, flatten, narrow, slice,
  select, chunk, split, unbind, cat, stack,
} from './tensor/ops/views.ts';
export {
  add, sub, mul, div, pow, powScalar, maximum, minimum, remainder, floorDivide, atan2, eq, ne, lt, le, gt, ge, logicalAnd,
  logicalOr, logicalXor, logicalNot, neg, abs, exp, log, log1p, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, gelu, silu,
  softplus, square, reciprocal, sign, floor, ceil, round, clamp, isFinite, isNaN, where, type GeluOptions,
} from './tensor/ops/elementwise.ts';
export {
  sum, mean, prod, max, min, argmax, argmin, all, any, variance as var, variance, std, logsumexp, softmax, logSoftmax, cumsum,
  type Dims, type VarOptions,
} from './tensor/ops/reduce.ts';
export { matmul, bmm, gather, scatterAdd, indexSelect, embedding, maskedFill, tril, triu, oneHot } from './tensor/ops/linalg.ts';
export { conv2d, maxPool2d, avgPool2d, upsampleNearest2d, pad, type Conv2dOptions, type PoolOptions } from './tensor/ops/image.ts';
