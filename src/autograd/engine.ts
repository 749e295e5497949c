// engine.ts: reverse-mode automatic differentiation, the whole idea on one page.
//
// How it works (micrograd's idea, over tensors):
//  1. Recording. Every differentiable op calls record() (src/tensor/tape.ts) after computing
//     its output. If grad mode is on and some input requires grad, we make a Node: the op's
//     name, the backward rule registered for it (rules/*.ts), the attributes the rule needs, and
//     for each input where its gradient goes next: the input's own Node (an intermediate), the
//     input tensor itself (a leaf with requiresGrad), or nowhere. The Node keeps private aliases
//     of the tensors its rule reads (inputs, output, tensor attributes such as max-pool
//     indices), so the caller may dispose its intermediates freely.
//  2. backward(root). Walk the graph from root's Node to list the Nodes in topological order,
//     seed root's gradient (1 for a scalar), then visit Nodes from the root down: each Node's
//     rule maps the gradient of its output to gradients of its inputs, which are summed into the
//     next Nodes' pending gradients or, at leaves, into `.grad`. Rules run with grad mode off.
//  3. Cleanup. Without retainGraph each visited Node disposes its saved aliases and forgets its
//     rule, so a training loop keeps no memory from one step to the next.
import { isFloat } from '../tensor/dtype.ts';
import { ShapeError, ValueError } from '../tensor/errors.ts';
import { keep } from '../tensor/memory.ts';
import { installAutograd, type BackwardOptions, type GradFn } from '../tensor/tape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { onesLike } from '../tensor/ops/creation.ts';
import { add } from '../tensor/ops/elementwise.ts';
import { isGradEnabled, noGrad } from './grad_mode.ts';
import { autocast } from '../tensor/autocast.ts';

/** What a backward rule sees: the op's inputs and output (aliases), and its attributes. */
export interface Ctx {
  readonly inputs: readonly (Tensor | unknown)[];
  /** needs[i]: whether input i wants a gradient (rules may skip the others' work). */
  readonly needs: readonly boolean[];
  readonly output: Tensor;
  readonly attrs: Record<string, unknown>;
}

/** Maps the output gradient to one gradient per input (null where an input gets none). */
export type Rule = (grad: Tensor, ctx: Ctx) => (Tensor | null)[];

const rules = new Map<string, Rule>();

/** Registers the backward rule of op `name` (see rules/*.ts). */
export function defineBackward(name: string, rule: Rule): void {
  rules.set(name, rule);
}

export function hasBackward(name: string): boolean {
  return rules.has(name);
}

type Edge = { node: Node } | { leaf: Tensor } | null;

class Node implements GradFn {
  rule: Rule | null;
  ctx: Ctx | null;
  readonly next: Edge[];
  pending: Tensor | null = null;
  constructor(readonly name: string, rule: Rule, ctx: Ctx, next: Edge[], private readonly saved: Tensor[]) {
    this.rule = rule;
    this.ctx = ctx;
    this.next = next;
  }
  release(): void {
    for (const t of this.saved) t.dispose();
    this.saved.length = 0;
    this.rule = null;
    this.ctx = null;
  }
}

function alias(t: Tensor): Tensor {
  return keep(t.viewAs(t.shape, t.strides, t.offset));
}

function record(op: string, inputs: readonly unknown[], output: Tensor, attrs: Record<string, unknown> = {}): void {
  // Integer and bool results (to('i32'), ...) are not differentiable: they never require grad.
  if (!isGradEnabled() || !isFloat(output.dtype)) return;
  let needed = false;
  for (const x of inputs) if (x instanceof Tensor && x.requiresGrad) needed = true;
  if (!needed) return;
  const rule = rules.get(op);
  if (!rule) throw new ValueError(`${op}: this op has no backward rule; call it under noGrad() or detach its inputs`);
  const saved: Tensor[] = [];
  const next: Edge[] = [];
  const ins = inputs.map((x) => {
    if (!(x instanceof Tensor)) {
      next.push(null);
      return x;
    }
    const gf = x.gradFn as Node | null;
    next.push(gf ? { node: gf } : x.requiresGrad ? { leaf: x } : null);
    const a = alias(x);
    saved.push(a);
    return a;
  });
  const out = alias(output);
  saved.push(out);
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (v instanceof Tensor) {
      const a = alias(v);
      saved.push(a);
      kept[k] = a;
    } else kept[k] = v;
  }
  const needs = next.map((e) => e !== null);
  output.setGradFn(new Node(op, rule, { inputs: ins, needs, output: out, attrs: kept }, next, saved));
}

/** Sums `g` into the pending gradient slot (disposing what it replaces). */
function accumulate(prev: Tensor | null, g: Tensor): Tensor {
  if (!prev) return keep(g);
  const s = keep(add(prev, g));
  prev.dispose();
  g.dispose();
  return s;
}

function backward(root: Tensor, grad: Tensor | undefined, opts: BackwardOptions): void {
  root.live('backward');
  const retain = opts.retainGraph ?? false;
  if (!root.requiresGrad) throw new ValueError('backward: this tensor does not require grad and has no grad_fn');
  if (grad === undefined && root.numel !== 1) {
    throw new ShapeError(`backward: grad can be implicitly created only for scalar outputs, got shape [${root.shape.join(',')}]; pass a gradient`);
  }
  if (grad !== undefined) {
    if (!(grad instanceof Tensor)) throw new ValueError('backward: gradient must be a Tensor');
    grad.live('backward');
    if (grad.shape.length !== root.shape.length || grad.shape.some((d, i) => d !== root.shape[i])) {
      throw new ShapeError(`backward: gradient shape [${grad.shape.join(',')}] does not match output shape [${root.shape.join(',')}]`);
    }
  }
  // Backward rules run unrecorded and without autocast: gradients keep the dtypes the forward recorded.
  autocast(() => noGrad(() => {
    const seed = grad ? grad.to(root.dtype) : onesLike(root);
    // Storages that a leaf's .grad already holds (and the caller's gradient): see ownGrad.
    const taken = new Set<unknown>(grad ? [grad.storage] : []);
    const toLeaf = (leaf: Tensor, g: Tensor) => {
      leaf.grad = leaf.grad ? accumulate(leaf.grad, g) : keep(ownGrad(g, taken));
    };
    const rootNode = root.gradFn as Node | null;
    if (!rootNode) {  // backward on a leaf: its gradient is the seed
      toLeaf(root, seed);
      return;
    }
    // Topological order by depth-first search (iterative: graphs can be deep).
    const order: Node[] = [];
    const seen = new Set<Node>();
    const stack: [Node, number][] = [[rootNode, 0]];
    seen.add(rootNode);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.next.length) {
        top[1]++;
        const e = node.next[i];
        if (e && 'node' in e && !seen.has(e.node)) {
          seen.add(e.node);
          stack.push([e.node, 0]);
        }
      } else {
        order.push(node);
        stack.pop();
      }
    }
    rootNode.pending = keep(seed);
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
      const g = node.pending;
      node.pending = null;
      if (!g) continue;
      if (!node.rule || !node.ctx) {
        g.dispose();
        throw new ValueError(`backward: the graph through ${node.name} was already freed; pass { retainGraph: true } to the first backward`);
      }
      const grads = node.rule(g, node.ctx);
      // A rule may return g itself, or one tensor for two inputs (x * x): each destination
      // gets a tensor of its own to keep or dispose.
      const handed = new Set<Tensor>();
      node.next.forEach((e, i) => {
        let gi = grads[i];
        if (!gi || !e) return;
        if (handed.has(gi) || gi === g) gi = alias(gi);
        handed.add(gi);
        // Every gradient takes the dtype of the tensor it is for, as in PyTorch: under autocast a
        // bf16 matmul output feeding an f32 add gets its gradient back in bf16.
        if ('node' in e) e.node.pending = accumulate(e.node.pending, e.node.ctx ? castTo(gi, e.node.ctx.output) : gi);
        else toLeaf(e.leaf, castTo(gi, e.leaf));
      });
      g.dispose();
      for (const gi of grads) if (gi && !handed.has(gi)) gi.dispose();
      if (!retain) node.release();
    }
  }), { enabled: false });
}

/**
 * A leaf's first gradient must not share memory with another leaf's .grad or the caller's
 * gradient (rules may hand one tensor to two inputs, as add does, or return a view of g), since
 * optimizers and clipGradNorm update .grad in place: a shared storage is copied.
 */
function ownGrad(g: Tensor, taken: Set<unknown>): Tensor {
  const s = g.storage;
  if (s === null) return g;
  if (!taken.has(s)) {
    taken.add(s);
    return g;
  }
  const c = g.clone();
  g.dispose();
  taken.add(c.storage);
  return c;
}

/** Gradients reach a tensor (a leaf, or an op's output) in its own dtype and shape. */
function castTo(g: Tensor, target: Tensor): Tensor {
  if (g.shape.length !== target.shape.length || g.shape.some((d, i) => d !== target.shape[i])) {
    throw new ShapeError(`backward: gradient of shape [${g.shape.join(',')}] for a tensor of shape [${target.shape.join(',')}]`);
  }
  if (g.dtype === target.dtype) return g;
  const c = g.to(target.dtype);
  g.dispose();
  return c;
}


installAutograd({ record, backward });
