// emu-engine: the public API. `import { tensor, randn, tidy } from 'emu-engine'`.
//
// Layers (each imports only from those below it): src/emu -> src/nn -> src/autograd ->
// src/tensor -> native/. See the README for a tour.
import './autograd/index.ts';
export { Tensor, type Scalar, type TensorLike } from './tensor/tensor.ts';
export { type DType, DTYPES, isFloat, promoteTypes } from './tensor/dtype.ts';
export {
  type Device, DEVICES, cudaAvailable, cudaDeviceCount, cudaDeviceName, numThreads, setNumThreads, runtimeInfo,
  simAvailable, setSimOrder, simOrder,
} from './tensor/device.ts';
export * from './tensor/errors.ts';
export { tidy, keep, memoryStats, emptyCache, resetPeakMemory, type MemoryStats } from './tensor/memory.ts';
export { autocast, autocastDType, type AutocastDType } from './tensor/autocast.ts';
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
  logicalOr, logicalXor, logicalNot, neg, abs, exp, log, log1p, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, gelu, silu, rope,
  softplus, square, reciprocal, erf, sign, floor, ceil, round, clamp, isFinite, isNaN, where, type GeluOptions,
} from './tensor/ops/elementwise.ts';
export {
  sum, mean, prod, max, min, argmax, argmin, all, any, variance as var, variance, std, logsumexp, softmax, logSoftmax, cumsum,
  type Dims, type VarOptions,
} from './tensor/ops/reduce.ts';
export { matmul, bmm, gather, scatterAdd, indexSelect, embedding, maskedFill, tril, triu, oneHot } from './tensor/ops/linalg.ts';
export { conv2d, maxPool2d, avgPool2d, upsampleNearest2d, pad, type Conv2dOptions, type PoolOptions } from './tensor/ops/image.ts';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled, gradcheck, defineBackward, type GradcheckOptions } from './autograd/index.ts';
export { saveSafetensors, loadSafetensors, type Metadata, type Loaded } from './nn/safetensors.ts';
export {
  Optimizer, flattenStateDict, unflattenStateDict, type OptimizerStateDict, type ParamGroup, type ParamGroupSpec, type ParamState,
  type Hyper, type HyperValue,
} from './nn/optim/optimizer.ts';
export { SGD, type SGDOptions } from './nn/optim/sgd.ts';
export { AdamW, type AdamWOptions } from './nn/optim/adamw.ts';
export { clipGradNorm, type ClipOptions } from './nn/optim/clip.ts';
export { GradScaler, type GradScalerOptions, type GradScalerState, type ScaledOptimizer } from './nn/optim/grad_scaler.ts';
export {
  warmupCosine, stepDecay, constant, LRScheduler, type Schedule, type WarmupCosineOptions, type StepDecayOptions, type SchedulerState,
  type HasParamGroups,
} from './nn/schedule.ts';
export { saveCheckpoint, loadCheckpoint, type Checkpoint, type LoadedCheckpoint, type Json } from './nn/checkpoint.ts';
export * as F from './nn/functional.ts';
export { type Reduction, type EmbeddingOptions, type DropoutOptions, type CrossEntropyOptions, type LossOptions, type AttentionOptions } from './nn/functional.ts';
export { Module, ModuleList, ModuleDict, Sequential, parameter, type Parameter, type Layer, type StateDict, type LoadResult } from './nn/module.ts';
export {
  Linear, Embedding, LayerNorm, RMSNorm, GroupNorm, Conv2d, Dropout, ReLU, GELU, SiLU, Tanh, Sigmoid, type LayerOptions, type NormOptions,
  type Conv2dLayerOptions,
} from './nn/layers.ts';
export * as init from './nn/init.ts';
export { LoRALinear, applyLoRA, type LoRAOptions, type ApplyLoRAOptions } from './nn/lora.ts';
export {
  uniform_, normal_, zeros_, ones_, truncNormal_, xavierUniform_, xavierNormal_, kaimingUniform_, kaimingNormal_, calculateGain, fans,
  type InitOptions, type TruncNormalOptions, type KaimingOptions, type Nonlinearity, type FanMode,
} from './nn/init.ts';
