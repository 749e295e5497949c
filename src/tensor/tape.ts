// tape.ts: the hook through which src/autograd watches ops, so src/tensor never imports it.
//
// Every differentiable op ends with record(name, inputs, output, attrs). With no autograd
// engine installed, or grad mode off, or no input requiring grad, that is a cheap no-op.
// src/autograd installs the engine at import (src/index.ts imports it), and the engine turns
// each recorded op into a node of the backward graph.
import { InternalError } from './errors.ts';
import type { Tensor } from './tensor.ts';

/** A node of the backward graph, as the tensor layer sees it. */
export interface GradFn {
  readonly name: string;
}

export interface BackwardOptions {
  /** Keep the graph (and what it saved) so backward can run through it again. */
  retainGraph?: boolean;
}

export interface AutogradEngine {
  record(op: string, inputs: readonly unknown[], output: Tensor, attrs?: Record<string, unknown>): void;
  backward(root: Tensor, grad: Tensor | undefined, opts: BackwardOptions): void;
}

let engine: AutogradEngine | null = null;

export function installAutograd(e: AutogradEngine): void {
  engine = e;
}

export function record(op: string, inputs: readonly unknown[], output: Tensor, attrs?: Record<string, unknown>): Tensor {
  engine?.record(op, inputs, output, attrs);
  return output;
}

export function runBackward(root: Tensor, grad: Tensor | undefined, opts: BackwardOptions): void {
  if (!engine) throw new InternalError('backward: the autograd engine is not loaded (import emu-engine, not its tensor layer)');
  engine.backward(root, grad, opts);
}
