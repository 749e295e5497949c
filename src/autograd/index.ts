// autograd: reverse-mode differentiation for every differentiable op of src/tensor.
//
// engine.ts holds the graph and backward(); rules/*.ts hold one backward rule per op, grouped
// as the ops are in src/tensor/ops; gradcheck.ts checks any rule against finite differences.
// Importing this module installs the engine into the tensor layer.
import './engine.ts';
import './rules/elementwise.ts';
import './rules/reduce.ts';
import './rules/views.ts';
import './rules/linalg.ts';
import './rules/image.ts';
import './rules/attention.ts';
import './rules/norm.ts';

export { noGrad, enableGrad, isGradEnabled, setGradEnabled } from './grad_mode.ts';
export { defineBackward, hasBackward, type Rule, type Ctx } from './engine.ts';
export { gradcheck, type GradcheckOptions } from './gradcheck.ts';
