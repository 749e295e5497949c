// conv_unfold.test.ts: conv2d in f32, forward and both gradients, on the shapes that steer the
// AVX-512 unfold packers (native/cpu/kernels/image_unfold.h) through each of their branches:
// grid rows narrower than a 16-pixel chunk (chunks cut into segments), chunks that run across
// images (the weight gradient's depth is batch x pixels), padding that clips a masked load on
// either side, strides and dilation (gathers where columns are not neighbours), groups, 1x1
// kernels with and without the pointwise shortcut, and inputs read through strides (H and W
// transposed, channels last). Each result is checked element by element against the same
// convolution in f64 (whose packers are the one-element-at-a-time ones), and the f32 results
// are bit-identical on 1 and 2 threads. On a machine without AVX-512 the same checks cover the
// other packers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv2d, numThreads, randn, setNumThreads, tidy, type Conv2dOptions, type Tensor } from '../src/index.ts';

// [input shape, weight shape, options, layout of the input in memory]
type Layout = 'contiguous' | 'hw transposed' | 'channels last';
const CASES: [number[], number[], Conv2dOptions, Layout][] = [
  [[2, 5, 9, 7], [6, 5, 3, 3], { padding: 1 }, 'contiguous'],                   // grid rows of 7: 3 segments per chunk
  [[3, 4, 6, 5], [5, 4, 3, 3], {}, 'contiguous'],                               // 12 pixels per image: chunks across images
  [[1, 3, 37, 35], [33, 3, 3, 3], { padding: [2, 1] }, 'contiguous'],            // wide rows, clipped both sides, 33 channels
  [[2, 6, 15, 17], [7, 6, 3, 3], { stride: 2, padding: 1 }, 'contiguous'],       // stride 2: gathers
  [[1, 4, 13, 12], [5, 4, 3, 2], { stride: [1, 3], dilation: [2, 2], padding: [2, 3] }, 'contiguous'],
  [[2, 6, 11, 10], [8, 3, 3, 3], { groups: 2, padding: 1 }, 'contiguous'],
  [[2, 4, 9, 9], [4, 1, 3, 3], { groups: 4, padding: 1, dilation: 2 }, 'contiguous'],  // depthwise
  [[2, 20, 7, 9], [30, 20, 1, 1], {}, 'contiguous'],                            // 1x1: the pointwise shortcut
  [[2, 8, 9, 9], [5, 8, 1, 1], { stride: 2, padding: 1 }, 'contiguous'],         // 1x1 with stride and padding: unfolded
  [[2, 5, 8, 11], [6, 5, 3, 3], { padding: 1 }, 'hw transposed'],               // columns a row apart: gathers
  [[2, 5, 8, 11], [6, 5, 3, 3], { padding: 1, stride: [2, 1] }, 'channels last'], // columns C apart
  [[1, 120, 6, 7], [17, 120, 3, 3], { padding: 1 }, 'contiguous'],              // depth 1080 past the GEMM's KC (1024 or 512)
];

function input(shape: number[], layout: Layout, dtype: 'f32' | 'f64' = 'f32'): Tensor {
  const [n, c, h, w] = shape;
  if (layout === 'hw transposed') return randn([n, c, w, h], { dtype }).transpose(2, 3);
  if (layout === 'channels last') return randn([n, h, w, c], { dtype }).permute([0, 3, 1, 2]);
  return randn(shape, { dtype });
}

/** Forward output and the three gradients of conv2d(x, w, b) with output gradient g. */
function run(x: Tensor, w: Tensor, b: Tensor, g: Tensor | null, o: Conv2dOptions): { y: Tensor; g: Tensor; grads: Tensor[] } {
  const [xl, wl, bl] = [x, w, b].map((t) => t.detach().requiresGrad_());
  const y = conv2d(xl, wl, bl, o);
  const gy = g ?? randn([...y.shape], { dtype: y.dtype });
  y.backward(gy);
  return { y: y.detach(), g: gy, grads: [xl.grad!, wl.grad!, bl.grad!] };
}

test('f32 conv2d and its gradients on the unfold packers match f64, element by element', () => tidy(() => {
  for (const [xs, ws, o, layout] of CASES) {
    const x = input(xs, layout), w = randn(ws), b = randn([ws[0]]);
    const f32 = run(x, w, b, null, o);
    const to64 = (t: Tensor) => t.to('f64');
    const f64 = run(to64(x), to64(w), to64(b), to64(f32.g), o);
    // Every result is a sum of products, and the same sum of |products| scales its rounding error;
    // a misplaced or missing element would be off by about 1 / depth of that scale, > 1e-3 here.
    const mag = run(to64(x).abs(), to64(w).abs(), to64(b).abs(), to64(f32.g).abs(), o);
    const what = ['output', 'input gradient', 'weight gradient', 'bias gradient'];
    const got = [f32.y, ...f32.grads], want = [f64.y, ...f64.grads], bound = [mag.y, ...mag.grads];
    for (let r = 0; r < got.length; r++) {
      const a = got[r].data() as Float32Array, e = want[r].data() as Float64Array, m = bound[r].data() as Float64Array;
      assert.is(a.length, e.length);
      for (let i = 0; i < e.length; i++) {
        if (!(Math.abs(a[i] - e[i]) <= 1e-5 * m[i] + 1e-30))
          assert.unreachable(`${what[r]} of conv2d x ${xs} (${layout}) w ${ws} ${JSON.stringify(o)}: element ${i} is ${a[i]}, expected ${e[i]} (scale ${m[i]})`);
      }
    }
  }
}));

test('f32 conv2d and its gradients are bit-identical on 1 and 2 threads', () => {
  const before = numThreads();
  try {
    tidy(() => {
      // Batch 1 and few images: the GEMMs themselves are split over the threads.
      for (const [xs, ws, o, layout] of [CASES[2], CASES[3], CASES[10], [[1, 16, 20, 24], [40, 16, 3, 3], { padding: 1 }, 'contiguous']] as typeof CASES) {
        const x = input(xs, layout), w = randn(ws), b = randn([ws[0]]);
        setNumThreads(1);
        const one = run(x, w, b, null, o);
        setNumThreads(2);
        const two = run(x, w, b, one.g, o);
        [one.y, ...one.grads].forEach((t, r) =>
          assert.equal(t.data(), [two.y, ...two.grads][r].data(), `result ${r} of conv2d x ${xs} w ${ws} ${JSON.stringify(o)}`));
      }
    });
  } finally {
    setNumThreads(before);
  }
});

test.run();
