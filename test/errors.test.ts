// errors.test.ts: bad input gives a typed error that names the op and the problem, never a
// crash or a hang: shapes, dtypes, indices (also those only a kernel sees), sizes, devices,
// disposed tensors, wrong JavaScript types, and malformed calls straight into the native addon.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  add, arange, avgPool2d, bernoulli, bmm, cat, clamp, conv2d, cudaAvailable, cudaDeviceName, DeviceError, DisposedError,
  DTypeError, embedding, EmuError, empty, exp, expand, eye, full, gather, gelu, IndexError, indexSelect, linspace,
  manualSeed, maskedFill, matmul, maxPool2d, mean, memoryStats, mul, narrow, oneHot, ones, pad, rand, randint, randn,
  randperm, reshape, runtimeInfo, scatterAdd, select, setNumThreads, ShapeError, softmax, sqrt, stack, sub, sum, tensor,
  Tensor, tidy, upsampleNearest2d, ValueError, where, zeros,
} from '../src/index.ts';
import { native } from '../src/tensor/native.ts';

type ErrorClass = new (message: string) => Error;

/** Runs fn (disposing whatever it creates) and checks it throws `cls` with every pattern in its message. */
function throws(fn: () => unknown, cls: ErrorClass, ...patterns: RegExp[]): void {
  let err: unknown;
  try {
    tidy(() => {
      fn();
    });
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected ${cls.name}, but nothing was thrown`);
  if (!(err instanceof cls)) {
    assert.unreachable(`expected ${cls.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  }
  const e = err as Error;
  assert.is(e.name, cls.name);
  for (const p of patterns) assert.match(e.message, p, `message "${e.message}" should match ${p}`);
}

const i32 = (data: number[] | number[][]) => tensor(data, { dtype: 'i32' });
const any = (v: unknown) => v as any;  // a plain-JavaScript caller's argument

test('shapes that do not broadcast or multiply', () => tidy(() => {
  const a = ones([2, 3]), b = ones([4, 5]);
  throws(() => add(a, b), ShapeError, /^add:/, /\[2,3\] and \[4,5\] do not broadcast/);
  throws(() => mul(a, ones([3, 2])), ShapeError, /^mul:/, /do not broadcast/);
  throws(() => a.sub(ones([2, 2])), ShapeError, /^sub:/, /do not broadcast/);
  throws(() => where(tensor([true, false]), a, 0), ShapeError, /^where:/, /do not broadcast/);
  throws(() => maskedFill(a, tensor([true, false]), 0), ShapeError, /^maskedFill:/, /broadcast/);
  throws(() => maskedFill(ones([3]), ones([2, 3], { dtype: 'bool' }), 0), ShapeError, /^maskedFill:/, /does not broadcast to the input's shape/);
  throws(() => matmul(a, b), ShapeError, /^matmul:/, /\[2,3\] and \[4,5\] cannot be multiplied \(3 != 4\)/);
  throws(() => a.matmul(ones([2])), ShapeError, /^matmul:/, /cannot be multiplied \(3 != 2\)/);
  throws(() => matmul(ones([2, 2, 3]), ones([5, 3, 4])), ShapeError, /^matmul:/, /do not broadcast/);
  throws(() => matmul(ones([]), ones([3])), ShapeError, /^matmul:/, /at least 1 dim/);
  throws(() => bmm(ones([2, 3, 4]), ones([3, 4, 5])), ShapeError, /^bmm:/, /expected \[B,M,K\] and \[B,K,N\]/);
  throws(() => bmm(ones([3, 4]), ones([4, 5])), ShapeError, /^bmm:/);
  throws(() => cat([a, ones([2, 4])], 0), ShapeError, /^cat:/, /tensors\[1\] has shape \[2,4\]/);
  throws(() => stack([a, ones([3, 2])]), ShapeError, /^stack:/, /tensors\[1\]/);
  throws(() => expand(a, [4, 3]), ShapeError, /^expand:/, /cannot expand \[2,3\] to \[4,3\]/);
  throws(() => a.permute(0), ShapeError, /^permute:/, /expected 2 dims/);
  throws(() => a.split([1, 1, 2], 1), ShapeError, /^split:/, /sum to 4/);
  throws(() => gather(a, 0, i32([0, 1])), ShapeError, /^gather:/, /index has 1 dims, input has 2/);
  throws(() => gather(a, 0, i32([[0, 0, 0, 0]])), ShapeError, /^gather:/, /exceeds input shape/);
  throws(() => indexSelect(a, 0, i32([[0]])), ShapeError, /^indexSelect:/, /index must be 1-d/);
  throws(() => embedding(i32([0]), ones([4])), ShapeError, /^embedding:/, /weight must be 2-d/);
  throws(() => conv2d(ones([1, 3, 8, 8]), ones([4, 2, 3, 3])), ShapeError, /^conv2d:/, /expects 2 input channels, input has 3/);
  throws(() => conv2d(ones([1, 3, 2, 2]), ones([4, 3, 3, 3])), ShapeError, /^conv2d:/, /too small/);
  throws(() => conv2d(ones([3, 8]), ones([4, 3, 3, 3])), ShapeError, /^conv2d:/, /4-d NCHW/);
  throws(() => conv2d(ones([1, 4, 8, 8]), ones([4, 2, 3, 3]), ones([3]), { groups: 2 }), ShapeError, /^conv2d:/, /bias must have shape \[4\]/);
  throws(() => maxPool2d(ones([1, 1, 2, 2]), 3), ShapeError, /^maxPool2d:/, /too small/);
  throws(() => ones([3]).tril(), ShapeError, /^tril:/, /at least 2 dims/);
}));

test('reshape and view to an incompatible size', () => tidy(() => {
  const a = ones([2, 3]);
  throws(() => a.reshape(4), ShapeError, /^reshape:/, /cannot reshape a tensor of 6 elements \[2,3\] to \[4\]/);
  throws(() => reshape(a, [4, -1]), ShapeError, /^reshape:/, /cannot reshape/);
  throws(() => a.reshape(-1, -1), ShapeError, /^reshape:/, /only one dim may be -1/);
  throws(() => a.reshape(0, -1), ShapeError, /^reshape:/, /cannot reshape/);
  throws(() => a.view(7), ShapeError, /^view:/, /cannot reshape a tensor of 6 elements/);
  throws(() => a.t().view(6), ShapeError, /^view:/, /not compatible with the strides/, /use reshape/);
  throws(() => a.flatten(1, 0), IndexError, /^flatten:/, /startDim 1 comes after endDim 0/);
}));

test('wrong dtype for an op: float ops on bool, integer-only index tensors', () => tidy(() => {
  const b = tensor([true, false]), f = ones([2, 3]);
  throws(() => exp(b), DTypeError, /^exp:/, /not defined for dtype bool/);
  throws(() => sqrt(b), DTypeError, /^sqrt:/, /bool/);
  throws(() => b.sigmoid(), DTypeError, /^sigmoid:/, /bool/);
  throws(() => gelu(b), DTypeError, /^geluErf:|^gelu:/, /bool/);
  throws(() => mean(b), DTypeError, /^mean:/, /bool/);
  throws(() => softmax(b, 0), DTypeError, /^softmax:/, /bool/);
  throws(() => b.logsumexp(), DTypeError, /^logsumexp:/, /bool/);
  throws(() => b.argmax(), DTypeError, /^argmax:/, /bool/);
  throws(() => sub(b, b), DTypeError, /^sub:/, /two bool operands/);
  throws(() => b.pow(b), DTypeError, /^pow:/, /bool/);
  throws(() => gather(f, 1, tensor([[0.0]])), DTypeError, /^gather:/, /index must be an i32 tensor, got f32/);
  throws(() => gather(f, 1, tensor([[true]])), DTypeError, /^gather:/, /index must be an i32 tensor, got bool/);
  throws(() => indexSelect(f, 0, tensor([0.0])), DTypeError, /^indexSelect:/, /i32/);
  throws(() => embedding(tensor([1.0]), f), DTypeError, /^embedding:/, /index must be an i32 tensor, got f32/);
  throws(() => scatterAdd(f, 0, tensor([[0.0]]), f), DTypeError, /^scatterAdd:/, /i32/);
  throws(() => scatterAdd(f, 0, i32([[0]]), ones([2, 3], { dtype: 'f64' })), DTypeError, /^scatterAdd:/, /src dtype f64 differs/);
  throws(() => scatterAdd(ones([2], { dtype: 'bool' }), 0, i32([0]), ones([1], { dtype: 'bool' })), DTypeError, /^scatterAdd:/, /bool/);
  throws(() => oneHot(tensor([1.0])), DTypeError, /^oneHot:/, /i32/);
  throws(() => where(ones([2]), f, f), DTypeError, /^where:/, /condition must be bool, got f32/);
  throws(() => maskedFill(f, ones([2, 3]), 0), DTypeError, /^maskedFill:/, /mask must be bool/);
  throws(() => matmul(i32([[1]]), i32([[1]])), DTypeError, /^matmul:/, /expected float tensors, got i32/);
  throws(() => matmul(f, ones([3, 2], { dtype: 'f64' })), DTypeError, /^matmul:/, /dtypes differ \(f32 and f64\)/);
  throws(() => conv2d(ones([1, 1, 4, 4], { dtype: 'i32' }), ones([1, 1, 3, 3], { dtype: 'i32' })), DTypeError, /^conv2d:/, /float/);
  throws(() => conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3], { dtype: 'f64' })), DTypeError, /^conv2d:/, /share a dtype/);
  throws(() => avgPool2d(ones([1, 1, 4, 4], { dtype: 'bool' }), 2), DTypeError, /^avgPool2d:/, /float/);
  throws(() => upsampleNearest2d(ones([1, 1, 2, 2], { dtype: 'i32' }), { scaleFactor: 2 }), DTypeError, /^upsampleNearest2d:/);
  throws(() => rand([2], { dtype: 'i32' }), DTypeError, /^rand:/, /float dtype, got i32/);
  throws(() => randn([2], { dtype: 'bool' }), DTypeError, /^randn:/, /float dtype, got bool/);
}));

test('index out of range: select, narrow, dims, oneHot (checked in TypeScript)', () => tidy(() => {
  const a = ones([2, 3]);
  throws(() => a.select(0, 2), IndexError, /^select:/, /index 2 is out of range for dim 0 of size 2/);
  throws(() => select(a, 1, -4), IndexError, /^select:/, /index -4 is out of range for dim 1 of size 3/);
  throws(() => select(ones([]), 0, 0), IndexError, /^select:/, /0-d/);
  throws(() => a.narrow(1, 2, 2), IndexError, /^narrow:/, /out of range for dim 1 of size 3/);
  throws(() => narrow(a, 0, -3, 1), IndexError, /^narrow:/);
  throws(() => a.sum(2), IndexError, /^sum:/, /dim 2 is out of range for a tensor with 2 dims/);
  throws(() => a.sum([0, -3]), IndexError, /^sum:/, /dim -3/);
  throws(() => a.sum([0, 0]), IndexError, /^sum:/, /repeats a dim/);
  throws(() => a.softmax(5), IndexError, /^softmax:/, /dim 5/);
  throws(() => a.unsqueeze(4), IndexError, /^unsqueeze:/);
  throws(() => a.transpose(0, 2), IndexError, /^transpose:/, /dim1 2/);
  throws(() => a.permute(0, 0), IndexError, /^permute:/, /repeat a dim/);
  throws(() => gather(a, 2, i32([[0]])), IndexError, /^gather:/, /dim 2/);
  throws(() => cat([a, a], 3), IndexError, /^cat:/, /dim 3/);
  throws(() => oneHot(i32([0, -1])), IndexError, /^oneHot:/, /index -1 is negative/);
  throws(() => oneHot(i32([0, 5]), 3), IndexError, /^oneHot:/, /index 5 is out of range for 3 classes/);
}));

test('index out of range found inside the native kernels: gather, scatterAdd, indexSelect, embedding', () => {
  const live0 = memoryStats().liveTensors, alloc0 = memoryStats().allocated;
  tidy(() => {
  const x = arange(12, { dtype: 'f32' }).reshape(3, 4);
  throws(() => gather(x, 1, i32([[0, 4]])), IndexError, /^gather:/, /index 4 is out of range for dim 1 of size 4/);
  throws(() => gather(x, 0, i32([[-1]])), IndexError, /^gather:/, /index -1 is out of range for dim 0 of size 3/);
  throws(() => x.gather(1, i32([[0], [1], [2147483647]])), IndexError, /^gather:/, /index 2147483647/);
  throws(() => scatterAdd(zeros([3]), 0, i32([0, 3]), ones([2])), IndexError, /^scatterAdd:/, /index 3 is out of range for dim 0 of size 3/);
  throws(() => x.scatterAdd(1, i32([[-2]]), ones([1, 1])), IndexError, /^scatterAdd:/, /index -2/);
  throws(() => indexSelect(x, 0, i32([0, 3])), IndexError, /^indexSelect:/, /index 3 is out of range for dim 0 of size 3/);
  throws(() => x.indexSelect(1, i32([-1])), IndexError, /^indexSelect:/, /index -1/);
  throws(() => embedding(i32([0, 7]), x), IndexError, /^embedding:/, /index 7 is out of range/);
  throws(() => embedding(i32([[1], [-1]]), x), IndexError, /^embedding:/, /index -1/);
  // A bad index deep inside a large parallel kernel: the worker's error reaches the caller.
  const big = zeros([4096, 64]);
  const idx = zeros([4096, 64], { dtype: 'i32' });
  const bad = scatterAdd(idx, 0, i32([[3000]]), i32([[99]]));  // idx[3000][0] = 99
  throws(() => gather(big, 1, bad), IndexError, /^gather:/, /index 99 is out of range for dim 1 of size 64/);
  throws(() => indexSelect(big, 0, arange(-1, 5000)), IndexError, /^indexSelect:/);
  });
  // The failed ops' outputs were freed: nothing is left behind once the fixtures go.
  assert.is(memoryStats().liveTensors, live0);
  assert.is(memoryStats().allocated, alloc0);
});

test('negative, non-integer, NaN and infinite sizes', () => {
  throws(() => zeros([-1, 2]), ShapeError, /^zeros:/, /shape\[0\] must be a non-negative integer, got -1/);
  throws(() => ones([2, 1.5]), ShapeError, /^ones:/, /shape\[1\] must be a non-negative integer, got 1.5/);
  throws(() => full([NaN], 1), ShapeError, /^full:/, /shape\[0\] must be a finite number, got NaN/);
  throws(() => empty([Infinity]), ShapeError, /^empty:/, /got Infinity/);
  throws(() => zeros(-3), ShapeError, /^zeros:/, /non-negative integer/);
  throws(() => rand([2, -Infinity]), ShapeError, /^rand:/, /shape\[1\] must be a finite number/);
  throws(() => randn([NaN]), ShapeError, /^randn:/, /NaN/);
  throws(() => randint(0, 5, [3.5]), ShapeError, /^randint:/, /3.5/);
  throws(() => randperm(-1), ShapeError, /^randperm:/, /n must be a non-negative integer/);
  throws(() => randperm(NaN), ShapeError, /^randperm:/, /finite/);
  throws(() => eye(2.5), ShapeError, /^eye:/, /n must be a non-negative integer/);
  throws(() => eye(2, -1), ShapeError, /^eye:/, /m must be/);
  throws(() => linspace(0, 1, NaN), ShapeError, /^linspace:/, /steps must be a finite number/);
  throws(() => linspace(0, 1, -2), ShapeError, /^linspace:/, /steps/);
  throws(() => arange(0, Infinity), ValueError, /^arange:/, /finite/);
  throws(() => arange(0, NaN), ValueError, /^arange:/, /finite/);
  throws(() => arange(0, 5, 0), ValueError, /^arange:/, /step must be non-zero/);
  throws(() => zeros([1, 1, 1, 1, 1, 1, 1, 1, 1]), ShapeError, /^zeros:/, /9 dims; at most 8/);
  throws(() => zeros([2 ** 30, 2 ** 30, 2 ** 30]), ShapeError, /^zeros:/, /too many elements/);
  tidy(() => {
    const a = ones([2, 3]);
    throws(() => a.reshape(NaN, 6), ShapeError, /^reshape:/, /shape\[0\] must be a finite number, got NaN/);
    throws(() => a.reshape([Infinity]), ShapeError, /^reshape:/, /Infinity/);
    throws(() => a.view(-2, -3), ShapeError, /^view:/, /non-negative integer/);
    throws(() => a.expand(NaN, 3), ShapeError, /^expand:/, /NaN/);
    throws(() => a.narrow(0, 0, -1), ShapeError, /^narrow:/, /length must be a non-negative integer/);
    throws(() => a.narrow(0, 0, NaN), ShapeError, /^narrow:/, /length/);
    throws(() => a.split(NaN), ShapeError, /^split:/);
    throws(() => a.chunk(-1), ShapeError, /^chunk:/);
    throws(() => pad(a, [-4, 0]), ShapeError, /^pad:/, /leaves dim 1 with negative size/);
    throws(() => oneHot(i32([0]), 1.5), ShapeError, /^oneHot:/, /numClasses/);
    throws(() => conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { groups: NaN }), ShapeError, /^conv2d:/, /groups/);
  });
});

test('tensors on different devices in one op; devices that are not there', () => tidy(() => {
  const m = ones([2, 3], { device: 'meta' }), c = ones([2, 3]);
  throws(() => add(m, c), DeviceError, /^add:/, /different devices \(meta and cpu\)/);
  throws(() => c.mul(m), DeviceError, /^mul:/, /different devices \(cpu and meta\)/);
  throws(() => matmul(c, ones([3, 2], { device: 'meta' })), DeviceError, /^matmul:/, /different devices/);
  throws(() => cat([c, m]), DeviceError, /^cat:/, /different devices/);
  throws(() => where(ones([2, 3], { dtype: 'bool', device: 'meta' }), c, c), DeviceError, /^where:/, /different devices/);
  throws(() => gather(c, 0, zeros([1, 1], { dtype: 'i32', device: 'meta' })), DeviceError, /^gather:/, /different devices/);
  throws(() => indexSelect(m, 0, i32([0])), DeviceError, /^indexSelect:/, /different devices/);
  throws(() => scatterAdd(c, 0, i32([[0]]), ones([1, 1], { device: 'meta' })), DeviceError, /^scatterAdd:/, /different devices/);
  throws(() => maskedFill(c, ones([3], { dtype: 'bool', device: 'meta' }), 0), DeviceError, /^maskedFill:/, /different devices/);
  throws(() => conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3], { device: 'meta' })), DeviceError, /^conv2d:/, /different devices/);
  throws(() => m.data(), DeviceError, /^data:/, /meta tensor has no values/);
  throws(() => ones([], { device: 'meta' }).item(), DeviceError, /meta tensor has no values/);
  throws(() => m.to('cpu'), ValueError, /^to:/, /cannot move a meta tensor to cpu/);
  if (!cudaAvailable()) {
    throws(() => ones([2], { device: 'cuda' }), DeviceError, /^ones:/, /device cuda is not available/, /no CUDA device/);
    throws(() => rand([2], { device: 'cuda' }), DeviceError, /^rand:/, /no CUDA device/);
    throws(() => c.to('cuda'), DeviceError, /^to:/, /no CUDA device/);
    throws(() => cudaDeviceName(0), DeviceError, /^cudaDeviceName:/, /no CUDA device 0 \(0 present\)/);
  }
  if (!runtimeInfo().simAvailable) {
    throws(() => zeros([2], { device: 'sim' }), DeviceError, /^zeros:/, /device sim is not available/);
    throws(() => c.to('sim'), DeviceError, /^to:/, /sim/);
  }
  throws(() => ones([2], { device: any('tpu') }), ValueError, /^ones:/, /device must be one of cpu, meta, sim, cuda, got tpu/);
  throws(() => memoryStats(any('gpu')), ValueError, /^memoryStats:/, /unknown device gpu/);
}));

test('a disposed tensor', () => {
  const base = arange(6);
  const d = base.reshape(2, 3);
  base.dispose();
  d.dispose();
  assert.ok(d.isDisposed);
  throws(() => add(d, 1), DisposedError, /^add:/, /tensor of shape \[2,3\] was disposed/);
  throws(() => d.exp(), DisposedError, /^exp:/, /was disposed/);
  throws(() => d.data(), DisposedError, /^data:/, /was disposed/);
  throws(() => d.toArray(), DisposedError, /^data:/, /was disposed/);
  throws(() => d.item(), DisposedError, /^item:/, /was disposed/);
  throws(() => d.reshape(6), DisposedError, /^reshape:/, /was disposed/);
  throws(() => d.select(0, 0), DisposedError, /^select:/, /was disposed/);
  throws(() => d.sum(), DisposedError, /^sum:/, /was disposed/);
  throws(() => tidy(() => matmul(ones([3, 2]), d)), DisposedError, /^matmul:/, /was disposed/);
  throws(() => cat([d]), DisposedError, /^cat:/, /was disposed/);
  throws(() => embedding(i32([0]), d), DisposedError, /^embedding:/, /was disposed/);
  throws(() => d.to('f64'), DisposedError, /^to:/, /was disposed/);
  throws(() => d.handle, DisposedError, /was disposed/);
  d.dispose();  // a second dispose is harmless
  assert.match(d.toString(), /<disposed>/);
});

test('wrong argument types from plain JavaScript', () => tidy(() => {
  const t = ones([2, 3]);
  throws(() => add(any('x'), t), ValueError, /^add:/, /input must be a Tensor, got string/);
  throws(() => t.add(any({})), ValueError, /^add:/, /other must be a Tensor, got object/);
  throws(() => add(any(1), any(2)), ValueError, /^add:/, /at least one argument must be a Tensor/);
  throws(() => exp(any(null)), ValueError, /^exp:/, /got null/);
  throws(() => sum(any(undefined)), ValueError, /^sum:/, /got undefined/);
  throws(() => matmul(any(undefined), t), ValueError, /^matmul:/, /input must be a Tensor, got undefined/);
  throws(() => matmul(t, any([[1], [2], [3]])), ValueError, /^matmul:/, /other must be a Tensor, got an array/);
  throws(() => gather(t, 0, any([[0]])), ValueError, /^gather:/, /index must be a Tensor/);
  throws(() => embedding(any(3), t), ValueError, /^embedding:/, /index must be a Tensor, got number/);
  throws(() => cat(any('ab')), ValueError, /^cat:/, /non-empty array of tensors/);
  throws(() => cat([t, any(null)]), ValueError, /^cat:/, /tensors\[1\] must be a Tensor, got null/);
  throws(() => stack([]), ValueError, /^stack:/);
  throws(() => zeros(any({})), ValueError, /^zeros:/, /shape must be an array of sizes, got object/);
  throws(() => ones(any('3')), ValueError, /^ones:/, /shape must be an array of sizes, got string/);
  throws(() => full(any(null), 1), ValueError, /^full:/, /shape must be an array/);
  throws(() => zeros(any(['2', 3])), ShapeError, /^zeros:/, /shape\[0\] must be a finite number/);
  throws(() => full([2], any('a')), ValueError, /^full:/, /value must be a number or boolean, got string/);
  throws(() => zeros([2], any('f32')), ValueError, /^zeros:/, /options must be an object/);
  throws(() => zeros([2], { dtype: any('float16') }), ValueError, /^zeros:/, /dtype must be one of f32, f64, bf16, f16, i32, bool, got float16/);
  throws(() => t.to(any('float32')), ValueError, /^to:/, /got float32/);
  throws(() => tensor(any([1, 'a'])), ValueError, /^tensor:/, /element at \[1\] is string/);
  throws(() => tensor(any([[1, 2], [3, null]])), ValueError, /^tensor:/, /element at \[1\]\[1\] is null/);
  throws(() => tensor(any(undefined)), ValueError, /^tensor:/, /undefined/);
  throws(() => tensor(any({ a: 1 })), ValueError, /^tensor:/, /object/);
  throws(() => tensor([[1, 2], [3]]), ShapeError, /^tensor:/, /ragged nested array at \[1\]/);
  throws(() => tensor(any(new Int16Array(2))), ValueError, /^tensor:/, /typed arrays must be/);
  throws(() => t.sum(any('0')), ValueError, /^sum:/, /dim must be a number or an array/);
  throws(() => t.sum(0.5), ValueError, /^sum:/, /dim must be an integer, got 0.5/);
  throws(() => t.sum(0, any('yes')), ValueError, /^sum:/, /keepdim must be a boolean/);
  throws(() => t.select(any('a'), 0), ValueError, /^select:/, /dim must be an integer, got a/);
  throws(() => t.select(0, any(null)), ValueError, /^select:/, /index must be an integer/);
  throws(() => t.transpose(any(undefined), 1), ValueError, /^transpose:/, /dim0 must be an integer/);
  throws(() => t.softmax(any(undefined)), ValueError, /^softmax:/, /dim is required/);
  throws(() => t.slice(0, 0, 2, 0), ValueError, /^slice:/, /step must be positive/);
  throws(() => t.narrow(0, any('1'), 1), ValueError, /^narrow:/, /start must be an integer/);
  throws(() => clamp(t, any('0')), ValueError, /^clamp:/, /numbers or null/);
  throws(() => clamp(t), ValueError, /^clamp:/, /at least one of min and max/);
  throws(() => gelu(t, { approximate: any('fast') }), ValueError, /^gelu:/, /approximate must be 'none' or 'tanh', got fast/);
  throws(() => maskedFill(t, ones([2, 3], { dtype: 'bool' }), any('x')), ValueError, /^maskedFill:/, /value must be a number/);
  throws(() => t.pad([1, 2, 3]), ValueError, /^pad:/, /even length/);
  throws(() => t.pad([1, any('2')]), ValueError, /^pad:/, /padding\[1\] must be an integer/);
  throws(() => t.var(0, { correction: any('1') }), ValueError, /^var:/, /correction must be a non-negative number/);
  throws(() => conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { stride: any('2') }), ValueError, /^conv2d:/, /stride must be a number or a pair/);
  throws(() => conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { padding: [1, -1] }), ValueError, /^conv2d:/, /padding must be >= 0/);
  throws(() => maxPool2d(ones([1, 1, 4, 4]), any([2, 2, 2])), ValueError, /^maxPool2d:/, /kernelSize must be a number or a pair/);
  throws(() => upsampleNearest2d(ones([1, 1, 2, 2]), {}), ValueError, /^upsampleNearest2d:/, /give scaleFactor or size/);
  throws(() => arange(any('5')), ValueError, /^arange:/, /end must be a number, got string/);
  throws(() => arange(), ValueError, /^arange:/, /expected \(end\)/);
  throws(() => linspace(any('0'), 1, 3), ValueError, /^linspace:/, /start must be a number/);
  throws(() => manualSeed(-1), ValueError, /^manualSeed:/, /seed must be an integer/);
  throws(() => manualSeed(any('7')), ValueError, /^manualSeed:/, /got 7/);
  throws(() => rand([2], { generator: any({ seed: 1 }) }), ValueError, /generator must be a Generator/);
  throws(() => randint(0, any('a'), [2]), ValueError, /^randint:/, /must be integers/);
  throws(() => randint(5, 5, [2]), ValueError, /^randint:/, /high \(5\) must be greater than low \(5\)/);
  throws(() => bernoulli(1.5), ValueError, /^bernoulli:/, /p must be in \[0, 1\], got 1.5/);
  throws(() => bernoulli(any('p')), ValueError, /^bernoulli:/, /p must be a Tensor/);
  throws(() => tidy(any(5)), ValueError, /^tidy:/, /expected a function/);
  throws(() => setNumThreads(0), ValueError, /^setNumThreads:/, /expected 1..1024, got 0/);
  throws(() => setNumThreads(any('4')), ValueError, /^setNumThreads:/);
}));

test('every error is an EmuError carrying its class name', () => {
  for (const cls of [ShapeError, DTypeError, DeviceError, IndexError, ValueError, DisposedError]) {
    const e = new cls('op: problem');
    assert.instance(e, EmuError);
    assert.instance(e, Error);
    assert.is(e.name, cls.name);
  }
});

// ---- the native layer re-checks what it relies on ----------------------------------------------

/** A descriptor [dtype code, ndim, offset, shape..., strides...] (see native/addon.cpp). */
function desc(dtype: number, shape: number[], strides: number[], offset = 0): Float64Array {
  return new Float64Array([dtype, shape.length, offset, ...shape, ...strides]);
}
const F32 = 0, F64 = 1, I32 = 3, BOOL = 4;

/** Calls a native function directly and checks it throws `cls` (any EmuError subclass) instead of crashing. */
function nativeThrows(fn: () => unknown, cls: ErrorClass, pattern: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected ${cls.name} from the native call, nothing was thrown`);
  if (!(err instanceof cls)) assert.unreachable(`expected ${cls.name}, got ${(err as Error)?.name}: ${(err as Error)?.message}`);
  assert.match((err as Error).message, pattern);
}

test('native: malformed view descriptors are rejected, not trusted', () => {
  const h = native.alloc(64);  // 16 f32
  const ok = desc(F32, [16], [1]);
  try {
    native.fill(h, ok, 1);
    // dtype codes
    nativeThrows(() => native.fill(h, desc(7, [4], [1]), 0), DTypeError, /bad dtype code/);
    nativeThrows(() => native.fill(h, desc(-1, [4], [1]), 0), DTypeError, /bad dtype code/);
    nativeThrows(() => native.fill(h, desc(0.5, [4], [1]), 0), DTypeError, /bad dtype code/);
    nativeThrows(() => native.fill(h, desc(NaN, [4], [1]), 0), DTypeError, /bad dtype code/);
    // dims
    nativeThrows(() => native.fill(h, desc(F32, Array(9).fill(1), Array(9).fill(1)), 0), ShapeError, /at most 8 dims/);
    nativeThrows(() => native.fill(h, new Float64Array([F32, 3, 0, 4, 1]), 0), ShapeError, /at most 8 dims/);
    nativeThrows(() => native.fill(h, new Float64Array([F32, -1, 0]), 0), ShapeError, /at most 8 dims/);
    nativeThrows(() => native.fill(h, new Float64Array([F32, NaN, 0]), 0), ShapeError, /at most 8 dims/);
    nativeThrows(() => native.fill(h, new Float64Array([F32, 1]), 0), ValueError, /descriptor too short/);
    nativeThrows(() => native.fill(h, desc(F32, [-4], [1]), 0), ShapeError, /bad shape or stride/);
    nativeThrows(() => native.fill(h, desc(F32, [2.5], [1]), 0), ShapeError, /bad shape or stride/);
    nativeThrows(() => native.fill(h, desc(F32, [NaN], [1]), 0), ShapeError, /bad shape or stride/);
    nativeThrows(() => native.fill(h, desc(F32, [Infinity], [1]), 0), ShapeError, /bad shape or stride/);
    nativeThrows(() => native.fill(h, desc(F32, [4], [NaN]), 0), ShapeError, /bad shape or stride/);
    nativeThrows(() => native.fill(h, desc(F32, [4], [1e300]), 0), ShapeError, /bad shape or stride/);
    nativeThrows(() => native.fill(h, desc(F32, [4], [0.5]), 0), ShapeError, /bad shape or stride/);
    // views that lie outside their storage
    nativeThrows(() => native.fill(h, desc(F32, [17], [1]), 0), IndexError, /view lies outside its storage/);
    nativeThrows(() => native.fill(h, desc(F32, [4], [1], 13), 0), IndexError, /outside its storage/);
    nativeThrows(() => native.fill(h, desc(F32, [2], [-1], 0), 0), IndexError, /outside its storage/);
    nativeThrows(() => native.fill(h, desc(F32, [4, 4], [4, 2]), 0), IndexError, /outside its storage/);
    nativeThrows(() => native.fill(h, desc(F64, [16], [1]), 0), IndexError, /outside its storage/);
    nativeThrows(() => native.fill(h, desc(F32, [2], [2 ** 52]), 0), IndexError, /outside its storage/);
    nativeThrows(() => native.fill(h, desc(F32, [1], [1], -1), 0), IndexError, /outside its storage|bad offset/);
    nativeThrows(() => native.fill(h, desc(F32, [1], [1], NaN), 0), IndexError, /bad offset/);
    nativeThrows(() => native.fill(h, desc(F32, [1], [1], Infinity), 0), IndexError, /bad offset|outside/);
    nativeThrows(() => native.fill(h, desc(F32, [1], [1], 0.5), 0), IndexError, /bad offset/);
    // the descriptor itself of the wrong type
    nativeThrows(() => native.fill(h, any([F32, 1, 0, 4, 1]), 0), ValueError, /Float64Array view descriptor/);
    nativeThrows(() => native.fill(h, any(new Float32Array([F32, 1, 0, 4, 1])), 0), ValueError, /Float64Array/);
    nativeThrows(() => native.fill(h, any(undefined), 0), ValueError, /Float64Array/);
    // an edge-exact view is fine, and the storage is unharmed by everything above
    native.fill(h, desc(F32, [4], [1], 12), 3);
    native.fill(h, desc(F32, [2, 2], [-2, -1], 15), 5);  // negative strides ending at element 12
    const back = new Float32Array(native.read(h, 0, 64));
    assert.equal(Array.from(back.subarray(10, 16)), [1, 1, 5, 5, 5, 5]);
  } finally {
    native.free(h);
  }
});

test('native: freed handles, wrong handles, non-numbers and bad op codes throw', () => {
  const h = native.alloc(64), freed = native.alloc(64);
  native.free(freed);
  native.free(freed);  // freeing twice is harmless
  native.free(any({}));
  const v = desc(F32, [16], [1]), b = desc(BOOL, [16], [1]);
  try {
    nativeThrows(() => native.fill(freed, v, 0), ValueError, /storage was disposed/);
    nativeThrows(() => native.read(freed, 0, 4), ValueError, /storage was disposed/);
    nativeThrows(() => native.write(freed, 0, new Float32Array(1)), ValueError, /storage was disposed/);
    nativeThrows(() => native.copy(h, v, freed, v), ValueError, /storage was disposed/);
    nativeThrows(() => native.fill(any({}), v, 0), ValueError, /expected a storage handle/);
    nativeThrows(() => native.fill(any(null), v, 0), ValueError, /expected a storage handle/);
    nativeThrows(() => native.fill(any(-1), v, 0), ValueError, /expected a storage handle/);
    nativeThrows(() => native.fill(any(0.5), v, 0), ValueError, /expected a storage handle/);
    nativeThrows(() => native.fill(any(2 ** 60), v, 0), ValueError, /expected a storage handle/);
    nativeThrows(() => native.fill(any('0'), v, 0), ValueError, /expected a storage handle/);
    nativeThrows(() => (native.fill as any)(), ValueError, /expected a (storage handle|number)/);
    nativeThrows(() => native.fill(h, v, any('1')), ValueError, /expected a number/);
    nativeThrows(() => native.fill(h, v, any(undefined)), ValueError, /expected a number/);
    nativeThrows(() => native.unary(any('exp'), h, v, h, v, 0, 0), ValueError, /expected a number/);
    nativeThrows(() => native.unary(99, h, v, h, v, 0, 0), ValueError, /bad op/);
    nativeThrows(() => native.unary(-1, h, v, h, v, 0, 0), ValueError, /bad op/);
    nativeThrows(() => native.binary(1e10, h, v, h, v, h, v), ValueError, /bad op/);
    nativeThrows(() => native.binary(NaN, h, v, h, v, h, v), ValueError, /bad op/);
    nativeThrows(() => native.reduce(42, h, desc(F32, [], []), h, v, 0, 0), ValueError, /bad op/);
    nativeThrows(() => native.reduce(0, h, desc(F32, [], []), h, v, 2, 0), ShapeError, /kept-dim count/);
    nativeThrows(() => native.softmax(h, v, h, v, 1, false), ShapeError, /dim out of range/);
    nativeThrows(() => native.cumsum(h, v, h, v, -1), ShapeError, /dim out of range/);
    nativeThrows(() => native.alloc(-1), ValueError, /bad byte count/);
    nativeThrows(() => native.alloc(NaN), ValueError, /bad byte count/);
    nativeThrows(() => native.alloc(1e300), ValueError, /bad byte count/);
    nativeThrows(() => native.alloc(any('64')), ValueError, /expected a number/);
    nativeThrows(() => native.read(h, 0, 65), IndexError, /read: out of range/);
    nativeThrows(() => native.read(h, -1, 4), IndexError, /read: out of range/);
    nativeThrows(() => native.read(h, any('0'), 4), ValueError, /expected a number/);
    nativeThrows(() => native.read(h, NaN, 4), IndexError, /read: out of range/);
    nativeThrows(() => native.write(h, NaN, new Float32Array(1)), IndexError, /write: out of range/);
    nativeThrows(() => native.write(h, 60, new Float32Array(2)), IndexError, /write: out of range/);
    nativeThrows(() => native.write(h, 0, any([1, 2])), ValueError, /expected a typed array/);
    nativeThrows(() => native.randperm(h, v, 0, 0), DTypeError, /randperm: output must be/);
    nativeThrows(() => native.randInt(h, desc(I32, [16], [1]), 0, 0, 5, 5), ValueError, /bad range/);
    nativeThrows(() => native.randUniform(h, desc(F32, [8], [2]), 0, 0, 0, 1), EmuError as ErrorClass, /contiguous/);
    nativeThrows(() => native.randUniform(h, b, 0, 0, 0, 1), DTypeError, /float dtype/);
    nativeThrows(() => native.randperm(h, desc(I32, [4, 4], [4, 1]), 0, 0), EmuError as ErrorClass, /randperm/);
    nativeThrows(() => native.setNumThreads(any('x')), ValueError, /expected a number/);
    // a slot reused after free gets a new generation: the old handle stays dead
    const old = native.alloc(16);
    native.free(old);
    const reused = native.alloc(16);
    nativeThrows(() => native.read(old, 0, 4), ValueError, /storage was disposed/);
    native.free(old);  // ignored: it must not free `reused`
    assert.is(native.read(reused, 0, 16).byteLength, 16);
    native.free(reused);
    native.fill(h, v, 2);  // h still works
    assert.is(new Float32Array(native.read(h, 0, 64))[15], 2);
  } finally {
    native.free(h);
  }
});

test('native: operands that disagree in shape or dtype with the kernel are rejected', () => {
  const h = native.alloc(256), small = native.alloc(4);
  const out = desc(F32, [16], [1]), one = desc(F32, [1], [1]);
  const ADD = 0, EQ = 7, EXP = 2, ISNAN = 20;
  try {
    // element-wise: every operand must have the output's shape (broadcasting is done with strides)
    nativeThrows(() => native.binary(ADD, h, out, small, one, h, out), ShapeError, /binary: operand views do not match/);
    nativeThrows(() => native.binary(ADD, h, out, h, out, h, desc(F32, [4, 4], [4, 1])), ShapeError, /binary/);
    nativeThrows(() => native.binary(ADD, h, out, h, out, h, desc(F64, [16], [1])), ShapeError, /binary/);
    nativeThrows(() => native.binary(ADD, h, desc(F64, [16], [1]), h, out, h, out), ShapeError, /binary/);
    nativeThrows(() => native.binary(EQ, h, out, h, out, h, out), ShapeError, /binary/);  // a predicate writes bool
    nativeThrows(() => native.unary(EXP, h, desc(F64, [16], [1]), h, out, NaN, NaN), ShapeError, /unary/);
    nativeThrows(() => native.unary(EXP, h, out, small, one, NaN, NaN), ShapeError, /unary/);
    nativeThrows(() => native.unary(ISNAN, h, out, h, out, NaN, NaN), ShapeError, /unary/);
    nativeThrows(() => native.copy(h, out, small, one), ShapeError, /copy/);
    nativeThrows(() => native.where(h, out, h, desc(F32, [16], [1]), h, out, h, out), ShapeError, /where/);
    nativeThrows(() => native.where(h, out, small, desc(BOOL, [1], [1]), h, out, h, out), ShapeError, /where/);
    nativeThrows(() => native.reduce(0, h, desc(F32, [4], [0]), h, desc(F32, [4, 4], [4, 1]), 1, 0), ShapeError, /contiguous/);
    nativeThrows(() => native.reduce(0, h, desc(F32, [3], [1]), h, desc(F32, [4, 4], [4, 1]), 1, 0), ShapeError, /wrong size/);
    nativeThrows(() => native.reduce(0, h, desc(BOOL, [4], [1]), h, desc(F32, [4, 4], [4, 1]), 1, 0), DTypeError, /output must be f32/);
    nativeThrows(() => native.softmax(h, desc(F32, [8], [1]), h, out, 0, false), ShapeError, /output must have the input's shape/);
    // matmul, indexing and images check their operands' shapes and dtypes themselves
    const m = desc(F32, [1, 4, 4], [16, 4, 1]);
    nativeThrows(() => native.matmul(h, m, h, m, h, desc(F32, [1, 3, 4], [12, 4, 1])), ShapeError, /matmul/);
    nativeThrows(() => native.matmul(h, m, h, m, h, desc(F64, [1, 4, 4], [16, 4, 1])), DTypeError, /matmul/);
    nativeThrows(() => native.matmul(h, desc(F32, [4, 4], [4, 1]), h, m, h, m), ShapeError, /matmul/);
    nativeThrows(() => native.gather(h, out, h, out, 0, h, out), EmuError as ErrorClass, /gather: index must be i32/);
    nativeThrows(() => native.gather(h, out, h, out, 0, small, desc(I32, [1], [1])), ShapeError, /gather/);
    nativeThrows(() => native.indexSelect(h, out, h, out, 0, h, desc(I32, [4], [1])), ShapeError, /indexSelect/);
    nativeThrows(() => native.scatterAdd(h, desc(BOOL, [16], [1]), 0, h, desc(I32, [1], [1]), h, desc(BOOL, [1], [1])), DTypeError, /scatterAdd/);
    nativeThrows(() => native.triangle(h, out, h, out, 0, true), ShapeError, /triu/);
    const img = desc(F32, [1, 1, 4, 4], [16, 16, 4, 1]);
    nativeThrows(() => native.conv2d(h, img, h, img, h, img, null, null, 1, 1, 0, 0, 1, 1, 0), ShapeError, /conv2d/);
    nativeThrows(() => native.conv2d(h, img, h, img, h, desc(F32, [1, 1, 3, 3], [9, 9, 3, 1]), null, null, 1, 1, 0, 0, 1, 1, 1), ShapeError, /conv2d/);
    nativeThrows(() => native.maxPool2d(h, img, h, img, h, img, 2, 2, 2, 2, 0, 0, 1, 1), ShapeError, /max_?pool2d/i);
    nativeThrows(() => native.avgPool2d(h, img, h, desc(F32, [1, 1, 8, 8], [64, 64, 8, 1]), 2, 2, 0, 2, 0, 0, true), EmuError as ErrorClass, /avg_?pool2d/i);
    nativeThrows(() => native.upsampleNearest2d(h, img, h, desc(F32, [2, 1, 2, 2], [4, 4, 2, 1])), ShapeError, /upsample/);
  } finally {
    native.free(h);
    native.free(small);
  }
});

test('the engine still works after all of the above', () => tidy(() => {
  const x = arange(6, { dtype: 'f32' }).reshape(2, 3);
  assert.equal(x.sum(1).toArray(), [3, 12]);
  assert.equal(gather(x, 1, i32([[2], [0]])).toArray(), [[2], [3]]);
  assert.ok(x instanceof Tensor);
}));

test.run();
