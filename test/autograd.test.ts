// autograd.test.ts: the engine's semantics (src/autograd/engine.ts), as opposed to the per-op
// rules that gradcheck.test.ts checks: accumulation into .grad, seeds (implicit for scalars,
// explicit otherwise), retainGraph, grad mode, detach, dtypes of leaf gradients, shared inputs,
// deep graphs, flat memory over a training loop, and micrograd's test_engine expression with
// the values PyTorch gives.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  add, DTypeError, enableGrad, gradcheck, isGradEnabled, matmul, mean, memoryStats, mul, noGrad, ones, pow, randn, relu,
  setGradEnabled, ShapeError, square, sub, sum, tensor, Tensor, tidy, ValueError, div, Generator, zeros,
} from '../src/index.ts';

const f64 = { dtype: 'f64' as const };

function close(got: ArrayLike<number | boolean>, want: ArrayLike<number>, tol = 1e-12, what = 'values'): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = Number(got[i]), w = want[i];
    if (!(Math.abs(g - w) <= tol * (1 + Math.abs(w)))) assert.unreachable(`${what}[${i}]: got ${g}, want ${w}`);
  }
}

/** uvu's throws takes a predicate, not an error class. */
const isA = (cls: abstract new (...args: never[]) => Error) => (e: Error) => e instanceof cls;

const values = (t: Tensor) => Array.from(t.data() as ArrayLike<number>);

test('grad accumulates across two backward calls', () => {
  tidy(() => {
    const x = tensor([1, -2, 3], f64).requiresGrad_();
    sum(mul(x, x)).backward();
    close(values(x.grad!), [2, -4, 6]);
    sum(mul(x, 3)).backward();
    close(values(x.grad!), [5, -1, 9]);
    x.zeroGrad();
    assert.is(x.grad, null);
    sum(x).backward();
    close(values(x.grad!), [1, 1, 1]);
    x.zeroGrad();
  });
});

test('backward with an explicit gradient for a non-scalar output', () => {
  tidy(() => {
    const x = tensor([[1, 2, 3], [4, 5, 6]], f64).requiresGrad_();
    const y = mul(square(x), 0.5);
    y.backward(tensor([[1, 0, -1], [2, 0.5, 0]], f64));
    close(values(x.grad!), [1, 0, -3, 8, 2.5, 0]);
    x.zeroGrad();
    // The gradient is cast to the output's dtype.
    const z = mul(x, 2);
    z.backward(ones([2, 3]));
    assert.is(x.grad!.dtype, 'f64');
    close(values(x.grad!), [2, 2, 2, 2, 2, 2]);
    x.zeroGrad();
  });
});

test('backward on a non-scalar without a gradient is a ShapeError; a mis-shaped gradient too', () => {
  tidy(() => {
    const x = tensor([1, 2, 3], f64).requiresGrad_();
    const y = mul(x, 2);
    assert.throws(() => y.backward(), (e: Error) => e instanceof ShapeError && /scalar/.test(e.message));
    assert.throws(() => y.backward(ones([3, 1], f64)), (e: Error) => e instanceof ShapeError);
    assert.is(x.grad, null);
  });
});

test('backward on a tensor that does not require grad is a ValueError', () => {
  tidy(() => {
    const x = tensor([1, 2, 3], f64);
    const y = sum(mul(x, 2));
    assert.throws(() => y.backward(), (e: Error) => e instanceof ValueError && /require grad/.test(e.message));
  });
});

test('retainGraph allows a second backward; without it the second backward throws a clear error', () => {
  tidy(() => {
    const x = tensor([1, 2], f64).requiresGrad_();
    const y = sum(mul(mul(x, x), x));  // d/dx = 3x^2
    y.backward(undefined, { retainGraph: true });
    close(values(x.grad!), [3, 12]);
    y.backward();
    close(values(x.grad!), [6, 24]);
    assert.throws(() => y.backward(), (e: Error) => e instanceof ValueError && /retainGraph/.test(e.message));
    // The failed call left the grad alone.
    close(values(x.grad!), [6, 24]);
    x.zeroGrad();

    const z = sum(square(x));
    z.backward();
    assert.throws(() => z.backward(), /retainGraph/);
    x.zeroGrad();
  });
});

test('backward on a scalar leaf seeds its own grad', () => {
  tidy(() => {
    const x = tensor(2.5, f64).requiresGrad_();
    x.backward();
    close(values(x.grad!), [1]);
    x.zeroGrad();
  });
});

test('noGrad and enableGrad nest and restore the mode, also when fn throws', () => {
  tidy(() => {
    const x = tensor([1, 2], f64).requiresGrad_();
    assert.ok(isGradEnabled());
    noGrad(() => {
      assert.not.ok(isGradEnabled());
      const y = mul(x, 2);
      assert.not.ok(y.requiresGrad);
      assert.is(y.gradFn, null);
      enableGrad(() => {
        assert.ok(isGradEnabled());
        const z = mul(x, 2);
        assert.ok(z.requiresGrad);
        assert.ok(z.gradFn !== null);
        noGrad(() => assert.not.ok(isGradEnabled()));
        assert.ok(isGradEnabled());
      });
      assert.not.ok(isGradEnabled());
      assert.throws(() => enableGrad(() => {
        throw new Error('boom');
      }), /boom/);
      assert.not.ok(isGradEnabled());
    });
    assert.ok(isGradEnabled());
    assert.throws(() => noGrad(() => {
      throw new Error('boom');
    }), /boom/);
    assert.ok(isGradEnabled());
    assert.is(noGrad(() => 42), 42);
    setGradEnabled(false);
    assert.not.ok(isGradEnabled());
    assert.not.ok(mul(x, 2).requiresGrad);
    setGradEnabled(true);
    assert.ok(mul(x, 2).requiresGrad);
    assert.throws(() => setGradEnabled(1 as unknown as boolean), isA(ValueError));
  });
});

test('detach cuts the graph and shares memory', () => {
  tidy(() => {
    const x = tensor([1, 2, 3], f64).requiresGrad_();
    const y = mul(x, 2);
    const d = y.detach();
    assert.not.ok(d.requiresGrad);
    assert.is(d.gradFn, null);
    assert.ok(d.isLeaf);
    assert.is(d.storage, y.storage);
    sum(mul(d, x)).backward();  // d is a constant: the gradient is d, not 4x
    close(values(x.grad!), [2, 4, 6]);
    x.zeroGrad();
    // A detached tensor can be made a leaf of its own.
    const leaf = y.detach().requiresGrad_();
    sum(square(leaf)).backward();
    close(values(leaf.grad!), [4, 8, 12]);
    assert.is(x.grad, null);
    leaf.zeroGrad();
  });
});

test('only float tensors can require grad; computed tensors cannot turn it off', () => {
  tidy(() => {
    assert.throws(() => tensor([1, 2], { dtype: 'i32' }).requiresGrad_(), isA(DTypeError));
    assert.throws(() => tensor([true, false]).requiresGrad_(), isA(DTypeError));
    const x = tensor([1, 2], f64).requiresGrad_();
    const y = mul(x, 2);
    assert.throws(() => (y.requiresGrad = false), isA(ValueError));
    assert.not.ok(y.isLeaf);
    assert.ok(x.isLeaf);
    assert.is(x.grad, null);
  });
});

test('gradients reach leaves in their own dtype', () => {
  tidy(() => {
    const x = tensor([1.5, -2, 0.25]).requiresGrad_();  // f32
    const w = tensor([2, 3, 4], f64).requiresGrad_();
    // f32 -> f64 by to(), and by promotion in mul with an f64 operand.
    sum(add(square(x.to('f64')), mul(x, w))).backward();
    assert.is(x.grad!.dtype, 'f32');
    assert.is(w.grad!.dtype, 'f64');
    close(values(x.grad!), [3 + 2, -4 + 3, 0.5 + 4], 1e-6);
    close(values(w.grad!), [1.5, -2, 0.25], 1e-6);
    x.zeroGrad();
    w.zeroGrad();
  });
});

test('casting to an integer dtype cuts the graph', () => {
  tidy(() => {
    const x = tensor([1.5, -2.5], f64).requiresGrad_();
    const i = x.to('i32');
    assert.not.ok(i.requiresGrad);
    assert.is(i.gradFn, null);
    assert.not.ok(x.gt(0).requiresGrad);
    assert.throws(() => sum(i).backward(), isA(ValueError));
  });
});

test("no two leaves' grads, nor a leaf's grad and the caller's gradient, share memory", () => {
  tidy(() => {
    // add hands one tensor to both operands; optimizers write .grad in place.
    const a = tensor([1, 2], f64).requiresGrad_(), b = tensor([3, 4], f64).requiresGrad_();
    sum(add(a, b)).backward();
    assert.ok(a.grad!.storage !== b.grad!.storage);
    close(values(a.grad!), [1, 1]);
    close(values(b.grad!), [1, 1]);
    // An explicit gradient flowing through views (or seeding a leaf) is copied, not aliased.
    const g = tensor([[5], [6]], f64);
    a.zeroGrad();
    a.reshape([2, 1]).backward(g);
    assert.ok(a.grad!.storage !== g.storage);
    const c = tensor([[1], [2]], f64).requiresGrad_();
    c.backward(g);
    assert.ok(c.grad!.storage !== g.storage);
    close(values(c.grad!), [5, 6]);
    for (const t of [a, b, c]) t.zeroGrad();
  });
});

test('an input used twice (x*x, x+x, a diamond) gets the sum of both paths', () => {
  tidy(() => {
    const x = tensor([1, -2, 0.5], f64).requiresGrad_();
    sum(add(mul(x, x), add(x, x))).backward();  // 2x + 2
    close(values(x.grad!), [4, -2, 3]);
    x.zeroGrad();
    const a = mul(x, 2), b = mul(x, 3);
    sum(mul(a, b)).backward();  // 6x^2 -> 12x
    close(values(x.grad!), [12, -24, 6]);
    x.zeroGrad();
    // A node whose output feeds two later nodes.
    const s = square(x);
    sum(add(mul(s, s), s)).backward();  // x^4 + x^2 -> 4x^3 + 2x
    close(values(x.grad!), [6, -36, 1.5]);
    x.zeroGrad();
  });
});

test('a deep chain of 10,000 ops does not overflow the stack', () => {
  tidy(() => {
    const x = tensor([1, 2], f64).requiresGrad_();
    let y: Tensor = x;
    for (let i = 0; i < 10_000; i++) {
      const next = i % 2 ? add(y, 0.001) : mul(y, 1);
      if (y !== x) y.dispose();  // the graph keeps its own aliases
      y = next;
    }
    sum(y).backward();
    close(values(x.grad!), [1, 1]);
    x.zeroGrad();
  });
});

test('gradcheck rejects a wrong gradient', () => {
  tidy(() => {
    const x = randn([3, 2], { dtype: 'f64', generator: new Generator(7) }).requiresGrad_();
    // x.detach() * x has gradient x, not 2x: gradcheck sees the numeric 2x.
    assert.throws(() => gradcheck((t) => mul(t.detach(), t), [x]), (e: Error) => e instanceof ValueError && /analytic/.test(e.message));
    assert.ok(gradcheck((t) => mul(t, t), [x]));
    assert.throws(() => gradcheck((t) => t, [tensor([1, 2]).requiresGrad_()]), /f64/);
  });
});

// ---- memory over a training loop -------------------------------------------------------------

function mlp(seed: number) {
  const g = new Generator(seed);
  return {
    w1: randn([4, 8], { generator: g, std: 0.5 }).requiresGrad_(),
    b1: zeros([8]).requiresGrad_(),
    w2: randn([8, 3], { generator: g, std: 0.5 }).requiresGrad_(),
    b2: zeros([3]).requiresGrad_(),
  };
}
type Mlp = ReturnType<typeof mlp>;

/** One step: forward, dispose the intermediates, backward; returns the loss value. */
function step(p: Mlp, x: Tensor, target: Tensor): number {
  return tidy(() => {
    const h = relu(add(matmul(x, p.w1), p.b1));
    const out = add(matmul(h, p.w2), p.b2);
    const loss = mean(square(sub(out, target)));
    h.dispose();
    out.dispose();
    loss.backward();
    return loss.item() as number;
  });
}

test('2,000 training steps keep liveTensors and allocated memory flat', () => {
  const p = mlp(1);
  const params = Object.values(p);
  const g = new Generator(2);
  const x = randn([5, 4], { generator: g }), target = randn([5, 3], { generator: g });
  const sgd = () => noGrad(() => {
    // Plain SGD without in-place ops: swap each parameter for an updated leaf.
    for (const k of Object.keys(p) as (keyof Mlp)[]) {
      const next = tidy(() => sub(p[k], mul(p[k].grad!, 0.05))).requiresGrad_();
      p[k].zeroGrad();
      p[k].dispose();
      p[k] = next;
    }
  });
  const losses: number[] = [];
  let warm: { liveTensors: number; allocated: number } | null = null;
  for (let i = 0; i < 2000; i++) {
    losses.push(step(p, x, target));
    sgd();
    if (i === 20) warm = { liveTensors: memoryStats().liveTensors, allocated: memoryStats().allocated };
    if (i > 20 && i % 250 === 0) {
      const s = memoryStats();
      assert.equal({ liveTensors: s.liveTensors, allocated: s.allocated }, warm, `step ${i}`);
    }
  }
  const s = memoryStats();
  assert.equal({ liveTensors: s.liveTensors, allocated: s.allocated }, warm);
  assert.ok(losses[1999] < losses[0] * 0.5, `loss went from ${losses[0]} to ${losses[1999]}`);
  for (const t of [...params, ...Object.values(p), x, target]) t.dispose();
});

test('2,000 steps of backward + zeroGrad on fixed parameters keep memory flat', () => {
  const p = mlp(3);
  const x = randn([5, 4], { generator: new Generator(4) }), target = zeros([5, 3]);
  let warm: { liveTensors: number; allocated: number } | null = null;
  for (let i = 0; i < 2000; i++) {
    step(p, x, target);
    for (const t of Object.values(p)) t.zeroGrad();
    if (i === 10) warm = { liveTensors: memoryStats().liveTensors, allocated: memoryStats().allocated };
  }
  const s = memoryStats();
  assert.equal({ liveTensors: s.liveTensors, allocated: s.allocated }, warm);
  for (const t of [...Object.values(p), x, target]) t.dispose();
});

test('the grads of a tidy-ed step survive the tidy and match an untidied step', () => {
  const p = mlp(5);
  const x = randn([5, 4], { generator: new Generator(6) }), target = zeros([5, 3]);
  step(p, x, target);
  const tidied = Object.values(p).map((t) => {
    assert.ok(t.grad && !t.grad.isDisposed);
    return values(t.grad);
  });
  for (const t of Object.values(p)) t.zeroGrad();
  const h = relu(add(matmul(x, p.w1), p.b1));
  const out = add(matmul(h, p.w2), p.b2);
  const loss = mean(square(sub(out, target)));
  loss.backward();
  Object.values(p).forEach((t, i) => close(values(t.grad!), tidied[i], 0, `grad ${i}`));
  for (const t of [h, out, loss, ...Object.values(p), x, target]) {
    t.zeroGrad();
    t.dispose();
  }
});

// ---- micrograd ---------------------------------------------------------------------------------

test("micrograd's test_engine expression gives PyTorch's values", () => {
  tidy(() => {
    const a = tensor(-4, f64).requiresGrad_();
    const b = tensor(2, f64).requiresGrad_();
    let c = add(a, b);
    let d = add(mul(a, b), pow(b, 3));
    c = add(c, add(c, 1));
    c = add(c, add(add(1, c), mul(a, -1)));
    d = add(d, add(mul(d, 2), relu(add(b, a))));
    d = add(d, add(mul(3, d), relu(sub(b, a))));
    const e = sub(c, d);
    const f = pow(e, 2);
    let g = div(f, 2);
    g = add(g, div(10, f));
    g.backward();
    close([g.item() as number], [24.70408163265306], 1e-14, 'g');
    close([a.grad!.item() as number], [138.83381924198252], 1e-12, 'dg/da');
    close([b.grad!.item() as number], [645.5772594752186], 1e-12, 'dg/db');
    a.zeroGrad();
    b.zeroGrad();
  });
});

test.run();
