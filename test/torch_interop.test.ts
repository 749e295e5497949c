// torch_interop.test.ts: a safetensors file written by PyTorch loads here and gives PyTorch's
// outputs and gradients. test/fixtures/make_torch_fixture.py (run once with Debian's
// python3-torch; CI only reads its output) builds a small network with Embedding, Linear,
// LayerNorm, RMSNorm and Conv2d plus a micrograd-style MLP, and stores the weights, the input,
// every intermediate output, the loss and every parameter gradient.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Conv2d, Embedding, F, LayerNorm, Linear, Module, RMSNorm, linspace, loadSafetensors, matmul, tidy, type Tensor,
} from '../src/index.ts';

const fixture = loadSafetensors(join(import.meta.dirname, 'fixtures', 'torch_small.safetensors'));
const T = (name: string): Tensor => {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture has no ${name}`);
  return t;
};

function assertClose(actual: Tensor, expected: Tensor, what: string, tol = 1e-5): void {
  assert.equal(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.data(), e = expected.data();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - e[i]) / (1 + Math.abs(e[i])));
  assert.ok(worst <= tol, `${what}: max relative error ${worst} > ${tol}`);
}

class Small extends Module {
  emb = this.module('emb', new Embedding(11, 8));
  fc = this.module('fc', new Linear(8, 12));
  ln = this.module('ln', new LayerNorm(12));
  rms = this.module('rms', new RMSNorm(12));
  conv = this.module('conv', new Conv2d(6, 4, 3, { padding: 1 }));
}

test('the PyTorch fixture was written by PyTorch and reads back with its metadata', () => {
  assert.match(fixture.metadata.torch, /^\d+\.\d+/);
  assert.is(T('input.ids').dtype, 'i32');  // stored as I64 by PyTorch
});

test('a network of Embedding, Linear, LayerNorm, RMSNorm and Conv2d matches PyTorch (outputs and gradients, 1e-5)', () => {
  const net = new Small();
  const sd: Record<string, Tensor> = {};
  for (const [k, v] of fixture.tensors) if (k.startsWith('param.') && !k.startsWith('param.mlp.')) sd[k.slice('param.'.length)] = v;
  net.loadStateDict(sd);
  tidy(() => {
    const emb = net.emb.forward(T('input.ids'));
    const fc = net.fc.forward(emb);
    const ln = net.ln.forward(fc);
    const rms = net.rms.forward(ln);
    const conv = net.conv.forward(rms.reshape([2, 6, 3, 4]));
    const act = F.gelu(conv);
    const loss = act.mul(linspace(-1, 1, act.numel).reshape(act.shape as number[])).sum();
    for (const [name, t] of Object.entries({ emb, fc, ln, rms, conv, act, loss })) assertClose(t, T(`out.${name}`), name);
    loss.backward();
  });
  for (const [name, p] of net.namedParameters()) assertClose(p.grad!, T(`grad.${name}`), `grad ${name}`);
  net.zeroGrad();
});

test('a micrograd-style MLP matches PyTorch', () => {
  const w1 = T('param.mlp.w1').clone().requiresGrad_(), b1 = T('param.mlp.b1').clone().requiresGrad_();
  const w2 = T('param.mlp.w2').clone().requiresGrad_(), b2 = T('param.mlp.b2').clone().requiresGrad_();
  tidy(() => {
    const y = matmul(matmul(T('mlp.x'), w1).add(b1).tanh(), w2).add(b2);
    const loss = y.sub(0.5).pow(2).mean();
    assertClose(y, T('mlp.out'), 'mlp out');
    assertClose(loss, T('mlp.loss'), 'mlp loss');
    loss.backward();
  });
  for (const [name, p] of Object.entries({ w1, b1, w2, b2 })) assertClose(p.grad!, T(`grad.mlp.${name}`), `grad mlp.${name}`);
});

test.run();
