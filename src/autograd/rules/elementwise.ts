// elementwise.ts: backward rules of the element-wise ops (tensor/ops/elementwise.ts).
//
// Each rule returns one gradient per recorded input; binary ops sum gradients back over
// broadcast dims (broadcast.ts). Piecewise-constant ops (sign, floor, ...) have zero gradient.
import { Tensor } from '../../tensor/tensor.ts';
import { tidy } from '../../tensor/memory.ts';
import { zerosLike } from '../../tensor/ops/creation.ts';
import * as E from '../../tensor/ops/elementwise.ts';
import { to } from '../../tensor/ops/views.ts';
import { defineBackward } from '../engine.ts';
import { gradFor } from './broadcast.ts';

const T = (x: unknown) => x as Tensor;
/** Runs a rule body in a tidy scope so its temporaries are freed; the returned grads survive. */
const rule = (name: string, f: (g: Tensor, x: Tensor, y: unknown, out: Tensor, attrs: Record<string, unknown>) => (Tensor | null)[]) =>
  defineBackward(name, (g, ctx) => tidy(() => f(g, T(ctx.inputs[0]), ctx.inputs[1], ctx.output, ctx.attrs)));

/**
 * g times the derivative of an activation at x: the backward of the element-wise op and of the
 * fused linear op's epilogue (linalg.ts), which saves x, its pre-activation.
 */
export const activationGrad = {
  relu: (g: Tensor, x: Tensor) => E.mul(g, to(E.gt(x, 0), g.dtype)),
  silu: (g: Tensor, x: Tensor) => E.siluGradMul(x, g),
  geluErf: (g: Tensor, x: Tensor) => {
    // d/dx x Phi(x) = Phi(x) + x phi(x)
    const cdf = E.mul(E.add(E.erf(E.mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = E.mul(E.exp(E.mul(E.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return E.mul(g, E.add(cdf, E.mul(x, pdf)));
  },
  geluTanh: (g: Tensor, x: Tensor) => {
    const k = Math.sqrt(2 / Math.PI);
    const inner = E.mul(E.add(x, E.mul(E.pow(x, 3), 0.044715)), k);
    const t = E.tanh(inner);
    const dinner = E.mul(E.add(E.mul(E.square(x), 3 * 0.044715), 1), k);
    const d = E.add(E.mul(E.add(t, 1), 0.5), E.mul(E.mul(E.mul(x, 0.5), E.sub(1, E.square(t))), dinner));
    return E.mul(g, d);
  },
};

rule('add', (g, x, y) => [gradFor(x, g), gradFor(y, g)]);
rule('sub', (g, x, y) => [gradFor(x, g), gradFor(y, E.neg(g))]);
rule('mul', (g, x, y) => [gradFor(x, E.mul(g, y as Tensor | number)), gradFor(y, E.mul(g, x))]);
rule('div', (g, x, y, out) => [gradFor(x, E.div(g, y as Tensor | number)), gradFor(y, E.neg(E.div(E.mul(g, out), y as Tensor | number)))]);
rule('pow', (g, x, y, out) => {
  // Either operand may be a JS number (x ** 2.5, 2 ** y): number-only arithmetic stays in JS.
  const xv = x as Tensor | number, yv = y as Tensor | number;
  const gx = x instanceof Tensor ? E.mul(g, E.mul(yv, E.pow(x, typeof yv === 'number' ? yv - 1 : E.sub(yv, 1)))) : null;
  // d/dy x^y = x^y log x, taken as 0 where x == 0 (the limit for y > 0), as PyTorch does.
  let gy: Tensor | null = null;
  if (y instanceof Tensor) {
    const dy = E.mul(g, E.mul(out, typeof xv === 'number' ? Math.log(xv) : E.log(xv)));
    gy = typeof xv === 'number' ? (xv === 0 ? zerosLike(dy) : dy) : E.where(E.eq(xv, 0), 0, dy);
  }
  return [gx ? gradFor(x, gx) : null, gy ? gradFor(y, gy) : null];
});
function minmax(g: Tensor, x: Tensor, y: unknown, pick: (a: Tensor, b: Tensor | number) => Tensor) {
  const yv = y as Tensor | number;
  // Ties split the gradient evenly between the two operands.
  const wx = E.add(to(pick(x, yv), g.dtype), E.mul(to(E.eq(x, yv), g.dtype), 0.5));
  const gx = E.mul(g, wx);
  return [gradFor(x, gx), gradFor(y, E.sub(g, gx))];
}
rule('maximum', (g, x, y) => minmax(g, x, y, E.gt));
rule('minimum', (g, x, y) => minmax(g, x, y, E.lt));
rule('remainder', (g, x, y) => [gradFor(x, g), gradFor(y, E.neg(E.mul(g, E.floor(E.div(x, y as Tensor | number)))))]);
rule('atan2', (g, x, y) => {
  const xv = x as Tensor | number, yv = y as Tensor | number;
  const sq = (v: Tensor | number) => (typeof v === 'number' ? v * v : E.square(v));
  const den = E.add(sq(xv), sq(yv));
  return [gradFor(x, E.div(E.mul(g, yv), den)), gradFor(y, E.neg(E.div(E.mul(g, xv), den)))];
});
defineBackward('rope', (g, ctx) => tidy(() => {
  const [, cos, sin] = ctx.inputs as [Tensor, Tensor, Tensor];
  return [E.ropeInverse(g, cos, sin), null, null];
}));
defineBackward('where', (g, ctx) => tidy(() => {
  const [cond, a, b] = ctx.inputs as [Tensor, unknown, unknown];
  return [null, gradFor(a, E.where(cond, g, 0)), gradFor(b, E.where(cond, 0, g))];
}));

rule('neg', (g) => [E.neg(g)]);
rule('abs', (g, x) => [E.mul(g, E.sign(x))]);
rule('exp', (g, _x, _y, out) => [E.mul(g, out)]);
rule('log', (g, x) => [E.div(g, x)]);
rule('log1p', (g, x) => [E.div(g, E.add(x, 1))]);
rule('sqrt', (g, _x, _y, out) => [E.div(g, E.mul(out, 2))]);
rule('rsqrt', (g, _x, _y, out) => [E.mul(g, E.mul(E.pow(out, 3), -0.5))]);
rule('sin', (g, x) => [E.mul(g, E.cos(x))]);
rule('cos', (g, x) => [E.neg(E.mul(g, E.sin(x)))]);
rule('tanh', (g, _x, _y, out) => [E.mul(g, E.sub(1, E.square(out)))]);
rule('sigmoid', (g, _x, _y, out) => [E.mul(g, E.mul(out, E.sub(1, out)))]);
rule('relu', (g, x) => [activationGrad.relu(g, x)]);
rule('silu', (g, x) => [activationGrad.silu(g, x)]);
rule('softplus', (g, x) => [E.where(E.gt(x, 20), g, E.mul(g, E.sigmoid(x)))]);
rule('geluErf', (g, x) => [activationGrad.geluErf(g, x)]);
rule('geluTanh', (g, x) => [activationGrad.geluTanh(g, x)]);
rule('square', (g, x) => [E.mul(g, E.mul(x, 2))]);
rule('reciprocal', (g, _x, _y, out) => [E.neg(E.mul(g, E.square(out)))]);
rule('erf', (g, x) => [E.mul(g, E.mul(E.exp(E.neg(E.square(x))), 2 / Math.sqrt(Math.PI)))]);
rule('clamp', (g, x, _y, _out, a) => {
  // Gradient passes where min <= x <= max (the bounds themselves included), as in PyTorch.
  let pass = E.logicalNot(E.isNaN(x));
  if (!Number.isNaN(a.min as number)) pass = E.logicalAnd(pass, E.ge(x, a.min as number));
  if (!Number.isNaN(a.max as number)) pass = E.logicalAnd(pass, E.le(x, a.max as number));
  return [E.where(pass, g, 0)];
});
rule('powScalar', (g, x, _y, _out, a) => {
  const p = a.p as number;
  return [p === 0 ? zerosLike(g) : E.mul(g, E.mul(E.powScalar(x, p - 1), p))];
});
for (const name of ['sign', 'floor', 'ceil', 'round']) rule(name, (g) => [zerosLike(g)]);
rule('to', (g, x) => [to(g, x.dtype)]);
