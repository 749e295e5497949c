// gradcheck.ts: checks analytic gradients against central finite differences, in f64.
//
// The output is reduced to a scalar with fixed random weights (so every output element and
// every path counts), the analytic gradient of each input that requires grad comes from
// backward(), and the numeric one from (f(x + eps e_i) - f(x - eps e_i)) / 2 eps for every
// element i. Inputs may be non-contiguous views (detached leaves): the analytic pass uses them
// as given, the numeric pass contiguous copies with the same values.
import { ValueError } from '../tensor/errors.ts';
import { tidy } from '../tensor/memory.ts';
import { Generator, randn } from '../tensor/random.ts';
import { Tensor } from '../tensor/tensor.ts';
import { fromValues } from '../tensor/ops/creation.ts';
import { mul } from '../tensor/ops/elementwise.ts';
import { sum } from '../tensor/ops/reduce.ts';
import { noGrad } from './grad_mode.ts';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

/** Throws a ValueError describing the first mismatch; returns true when all gradients agree. */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): true {
  const eps = opts.eps ?? 1e-6, atol = opts.atol ?? 1e-5, rtol = opts.rtol ?? 1e-3;
  for (const [i, x] of inputs.entries()) {
    if (!(x instanceof Tensor)) throw new ValueError(`gradcheck: inputs[${i}] is not a Tensor`);
    if (x.requiresGrad && x.dtype !== 'f64') throw new ValueError(`gradcheck: inputs[${i}] must be f64 to be checked, got ${x.dtype}`);
  }
  const weightsFor = (out: Tensor) => randn(out.shape as number[], { dtype: 'f64', device: out.device, generator: new Generator(1234) });
  const scalar = (xs: Tensor[]): number => tidy(() => {
    const out = fn(...xs);
    return sum(mul(out.to('f64'), weightsFor(out))).item() as number;
  });

  // Analytic.
  for (const x of inputs) x.zeroGrad();
  tidy(() => {
    const out = fn(...inputs);
    sum(mul(out.to('f64'), weightsFor(out))).backward();
  });

  // Numeric, one element at a time.
  noGrad(() => {
    const base = inputs.map((x) => x.data());
    inputs.forEach((x, k) => {
      if (!x.requiresGrad) return;
      const analytic = x.grad ? x.grad.data() : new Float64Array(x.numel);
      const values = Float64Array.from(base[k] as Float64Array);
      for (let i = 0; i < values.length; i++) {
        const orig = values[i];
        const at = (v: number) => {
          values[i] = v;
          const xs = inputs.map((y, j) => (j === k ? fromValues(values, y.shape as number[], 'f64', y.device) : y));
          try {
            return scalar(xs);
          } finally {
            xs[k].dispose();
          }
        };
        const numeric = (at(orig + eps) - at(orig - eps)) / (2 * eps);
        values[i] = orig;
        const a = analytic[i];
        if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric))) {
          throw new ValueError(`gradcheck: input ${k} element ${i}: analytic ${a} vs numeric ${numeric} (shape [${x.shape.join(',')}])`);
        }
      }
    });
  });
  for (const x of inputs) x.zeroGrad();
  return true;
}
