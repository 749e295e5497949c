// gemm.test.ts: the CPU GEMM (native/cpu/kernels/gemm/) and what runs on it. The matmul kernel
// versions (matmul.cpp): each against an f64 product on shapes that cut through every block and
// register tile, with transposed and broadcast operands read through their strides; the default
// version's result bit-identical for any thread count; version 5 (bf16 on avx512_bf16) where the
// CPU has it; the version entry point's errors. conv2d's
// gradients (image_backward.cpp) in f32 at sizes past the GEMM's blocks, checked exactly against
// the f64 reference through the adjoint identities. The backend-parity table (parity.test.ts)
// covers matmul, bmm and conv2d forward through the public API, gradcheck.test.ts the conv2d
// gradients in f64 on small shapes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  bmm, conv2d, numThreads, randn, runtimeInfo, setNumThreads, tensor, Tensor, tidy, ValueError, type DType,
} from '../src/index.ts';
import { native } from '../src/tensor/native.ts';
import * as R from './reference.ts';

/** out = a @ b through kernel version v; a [B,M,K] and b [B,K,N] may be any views. */
function matmulVersion(v: number, a: Tensor, b: Tensor): Tensor {
  const out = Tensor.empty([a.shape[0], a.shape[1], b.shape[2]], a.dtype, 'cpu');
  native.matmulVersion(v, out.handle, out.desc, a.handle, a.desc, b.handle, b.desc);
  return out;
}

const f64 = (t: Tensor): Float64Array => t.to('f64').data() as Float64Array;

/** The f64 product of two 3-d tensors, from their values. */
function reference(a: Tensor, b: Tensor): { value: Float64Array; magnitude: Float64Array } {
  const [B, M, K] = a.shape, N = b.shape[2];
  const av = f64(a.contiguous()), bv = f64(b.contiguous());
  const value = new Float64Array(B * M * N), magnitude = new Float64Array(B * M * N);
  for (let s = 0; s < B; s++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let sum = 0, mag = 0;
        for (let k = 0; k < K; k++) {
          const t = av[(s * M + i) * K + k] * bv[(s * K + k) * N + j];
          sum += t;
          mag += Math.abs(t);
        }
        value[(s * M + i) * N + j] = sum;
        magnitude[(s * M + i) * N + j] = mag;
      }
  return { value, magnitude };
}

// [batch, M, N, K, a stored transposed, b stored transposed, b broadcast over the batch]
const SHAPES: [number, number, number, number, boolean, boolean, boolean][] = [
  [1, 1, 1, 1, false, false, false],
  [1, 13, 33, 1, false, false, false],         // k = 1
  [2, 15, 31, 17, true, false, false],         // one row past a 14-row tile, one column short of 32
  [1, 29, 65, 1030, false, true, false],       // depth past kKC (1024 with AVX-512, 512 otherwise)
  [3, 30, 40, 50, true, true, true],           // both transposed, b broadcast (stride-0 batch)
  [1, 350, 47, 20, false, false, false],       // rows past kMC (112 with AVX-512, 96 otherwise)
  [1, 3, 200, 9, false, false, false],         // few rows: the column panels are split instead
  [4, 16, 16, 16, false, true, false],         // a batch that runs one matrix per task
];

function operands(dtype: DType, [batch, M, N, K, ta, tb, bcast]: (typeof SHAPES)[number]): [Tensor, Tensor] {
  const a = ta ? randn([batch, K, M], { dtype }).transpose(1, 2) : randn([batch, M, K], { dtype });
  const bb = bcast ? 1 : batch;
  let b = tb ? randn([bb, N, K], { dtype }).transpose(1, 2) : randn([bb, K, N], { dtype });
  if (bcast) b = b.broadcastTo([batch, K, N]);
  return [a, b];
}

for (const version of [1, 2, 3, 4]) {
  for (const dtype of ['f32', 'f64', 'bf16'] as DType[]) {
    test(`matmul version ${version} matches the f64 product (${dtype}, strided operands, edge tiles)`, () => tidy(() => {
      const eps = dtype === 'f64' ? 2 ** -52 : dtype === 'f32' ? 2 ** -23 : 2 ** -8;
      for (const shape of SHAPES) {
        const [a, b] = operands(dtype, shape);
        const got = f64(matmulVersion(version, a, b));
        const { value, magnitude } = reference(a, b);
        for (let i = 0; i < value.length; i++) {
          // f32/f64 accumulate exactly in their type; bf16 accumulates in f32 and rounds once.
          const tol = dtype === 'bf16' ? eps * Math.abs(value[i]) + 2 ** -20 * shape[3] * magnitude[i]
            : 2 * eps * shape[3] * magnitude[i] + 1e-30;
          if (!(Math.abs(got[i] - value[i]) <= tol))
            assert.unreachable(`version ${version} ${dtype} shape ${shape}: element ${i} is ${got[i]}, expected ${value[i]} (tol ${tol})`);
        }
      }
    }));
  }
}

// Version 5, bf16 on avx512_bf16 dot products, packs k in pairs: odd depths leave a half pair,
// and its slices are 1024 pairs deep, so these cross one with an odd and an even remainder. It
// runs only where the CPU has the instructions; elsewhere the error test below checks it says so.
const BF16_DOT = runtimeInfo().cpuBf16Dot !== 'absent';
const PAIR_SHAPES: (typeof SHAPES)[number][] = [
  [1, 20, 40, 2051, false, false, false],      // past one 1024-pair slice, a last half pair
  [1, 45, 70, 2100, true, true, false],        // both transposed, whole pairs in both slices
  [2, 14, 32, 64, false, true, false],         // exactly one register tile
  [1, 28, 64, 63, false, false, false],        // odd depth through the vector packers (A rows, B rows)
  [1, 28, 64, 63, true, true, false],          // ... and A^T, B^T
];
if (BF16_DOT) {
  test('matmul version 5 (avx512_bf16 dot products) matches the f64 product (bf16, strided operands, half pairs)', () => tidy(() => {
    for (const shape of [...SHAPES, ...PAIR_SHAPES]) {
      const [a, b] = operands('bf16', shape);
      const got = f64(matmulVersion(5, a, b));
      const { value, magnitude } = reference(a, b);
      for (let i = 0; i < value.length; i++) {
        // f32 sums of K exact products err by at most about K 2^-24 of their magnitude; 4 times
        // that is tight enough that one missing or extra product fails.
        const tol = 2 ** -8 * Math.abs(value[i]) + 2 ** -22 * shape[3] * magnitude[i];
        if (!(Math.abs(got[i] - value[i]) <= tol))
          assert.unreachable(`version 5 shape ${shape}: element ${i} is ${got[i]}, expected ${value[i]} (tol ${tol})`);
      }
    }
  }));

  test('matmul version 5 zeroes both halves of a last, odd pair: an inf just past a row of A or a column of B stays out', () => tidy(() => {
    // A [1, 6, 7] row-major: row r's k = 7 would be row r + 1's k = 0. B^T likewise for columns.
    const K = 7, av = randn([1, 6, K]).data() as Float32Array, bv = randn([1, 5, K]).data() as Float32Array;
    av[3 * K] = Infinity;  // row 3, k = 0
    bv[2 * K] = Infinity;  // column 2, k = 0
    const a = tensor(av).reshape([1, 6, K]).to('bf16'), b = tensor(bv).reshape([1, 5, K]).to('bf16').transpose(1, 2);
    const got = f64(matmulVersion(5, a, b));
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 5; j++) assert.is(Number.isFinite(got[i * 5 + j]), i !== 3 && j !== 2, `element (${i}, ${j}) is ${got[i * 5 + j]}`);
    // The vector packers (a full 14-row A^T panel, a full 32-column B panel) stop before the
    // half pair too: here row K of A^T's and of B's storage is inf, outside the views.
    const K2 = 7;
    const withInfRow = (cols: number): Tensor => {
      const v = randn([K2 + 1, cols]).data() as Float32Array;
      v.fill(Infinity, K2 * cols);
      return tensor(v).reshape([1, K2 + 1, cols]).to('bf16').narrow(1, 0, K2);
    };
    const wide = f64(matmulVersion(5, withInfRow(14).transpose(1, 2), withInfRow(32)));
    assert.ok(wide.every(Number.isFinite), 'a value past K leaked into the product');
  }));

  test('matmul version 5 gives the same bits for 1, 2 and 3 threads, and bf16 matmul runs it only when asked to', () => {
    const before = numThreads();
    try {
      tidy(() => {
        for (const shape of [[1, 345, 97, 400, false, true, false], [3, 64, 90, 301, true, false, true]] as (typeof SHAPES)[number][]) {
          const [a, b] = operands('bf16', shape);
          const results = [1, 2, 3].map((n) => {
            setNumThreads(n);
            return matmulVersion(5, a, b).data();
          });
          for (let i = 1; i < results.length; i++) assert.equal(results[i], results[0], `${shape}: ${i + 1} threads differ`);
          const v4 = matmulVersion(4, a, b).data();
          const byDefault = runtimeInfo().cpuBf16Dot === 'default' ? results[0] : v4;
          assert.equal(bmm(a, b).data(), byDefault, `${shape}: bf16 matmul runs version ${byDefault === v4 ? 4 : 5}`);
        }
      });
    } finally {
      setNumThreads(before);
    }
  });
}

test('matmul version 5 takes bf16 only, and says so where the CPU has no avx512_bf16', () => tidy(() => {
  const a = randn([1, 3, 4], { dtype: 'bf16' }), b = randn([1, 4, 5], { dtype: 'bf16' });
  if (BF16_DOT) {
    assert.throws(() => matmulVersion(5, a.to('f32'), b.to('f32')), (e: unknown) => e instanceof ValueError && /version 5 \(avx512_bf16 dot products\) does not take f32/.test(e.message));
  } else {
    assert.throws(() => matmulVersion(5, a, b), (e: unknown) => e instanceof ValueError && /avx512_bf16/.test(e.message));
    assert.equal(bmm(a, b).data(), matmulVersion(4, a, b).data(), 'bf16 matmul runs version 4');
  }
}));

test('matmul versions 3 to 5 with k = 0 write zeros, and empty outputs are fine', () => tidy(() => {
  const cases: [number, DType][] = [[3, 'f32'], [4, 'f32'], ...(BF16_DOT ? [[5, 'bf16'] as [number, DType]] : [])];
  for (const [v, dtype] of cases) {
    const out = matmulVersion(v, randn([2, 5, 0], { dtype }), randn([2, 0, 7], { dtype }));
    assert.equal([...f64(out)], new Array(70).fill(0));
    assert.equal(matmulVersion(v, randn([2, 0, 4], { dtype }), randn([2, 4, 7], { dtype })).shape, [2, 0, 7]);
  }
}));

test('matmul versions 3 and 4 give the same bits for 1, 2 and 3 threads, and the same bits as each other', () => {
  const before = numThreads();
  try {
    tidy(() => {
      for (const dtype of ['f32', 'bf16'] as DType[]) {
        for (const shape of [[1, 345, 97, 400, false, true, false], [3, 64, 90, 300, true, false, true]] as (typeof SHAPES)[number][]) {
          const [a, b] = operands(dtype, shape);
          const results = [1, 2, 3].flatMap((n) => {
            setNumThreads(n);
            return [matmulVersion(3, a, b).data(), matmulVersion(4, a, b).data()];
          });
          for (let i = 1; i < results.length; i++)
            assert.equal(results[i], results[0], `${dtype} ${shape}: version ${3 + (i % 2)} on ${1 + (i >> 1)} thread(s) differs`);
        }
      }
    });
  } finally {
    setNumThreads(before);
  }
});

test('matmulVersion rejects an unknown version and mismatched shapes', () => tidy(() => {
  const a = randn([1, 3, 4]), b = randn([1, 4, 5]);
  assert.throws(() => matmulVersion(6, a, b), (e: unknown) => e instanceof ValueError && /no version 6/.test(e.message));
  assert.throws(() => matmulVersion(4, a, randn([1, 3, 5])), (e: unknown) => e instanceof Error && /matmul/.test(e.message));
}));

// ---- conv2d gradients ----------------------------------------------------------------------

const dot = (a: R.Ref, b: R.Ref): number => a.data.reduce((sum, v, i) => sum + v * b.data[i], 0);
const absRef = (a: R.Ref): R.Ref => R.makeRef(a.shape, a.data.map(Math.abs));

// x, w (stored transposed in H/W when `strided`), conv options
const CONV_GRAD_CASES: [number[], number[], R.ConvArgs, boolean][] = [
  [[2, 20, 9, 11], [30, 20, 3, 3], { padding: 1 }, false],                    // stride 1: grad_in in place
  [[1, 120, 7, 6], [17, 120, 3, 3], { stride: 2, padding: 1 }, false],        // phases; depth 1080 > kKC
  [[2, 8, 9, 7], [6, 4, 3, 2], { groups: 2, stride: [2, 1], dilation: [1, 2], padding: [1, 0] }, true],
  [[3, 20, 5, 6], [16, 20, 1, 1], {}, true],                                  // 1x1, strided input
];

test('conv2d gradients (f32, on the GEMM) satisfy the adjoint identities against the f64 reference', () => tidy(() => {
  for (const [xs, ws, o, strided] of CONV_GRAD_CASES) {
    const x = (strided ? randn([xs[0], xs[1], xs[3], xs[2]]).transpose(2, 3) : randn(xs)).requiresGrad_();
    const w = randn(ws).requiresGrad_(), b = randn([ws[0]]).requiresGrad_();
    const y = conv2d(x, w, b, o);
    const g = randn([...y.shape]);
    y.backward(g);
    const X = R.fromTensor(x), W = R.fromTensor(w), G = R.fromTensor(g);
    // <dL/dx, dx> = <g, conv(dx, w)> and <dL/dw, dw> = <g, conv(x, dw)>, exactly, for any dx, dw.
    for (let trial = 0; trial < 2; trial++) {
      const dx = R.fromTensor(randn(xs)), dw = R.fromTensor(randn(ws));
      const checks: [string, number, number, number][] = [
        ['input', dot(R.fromTensor(x.grad!), dx), dot(G, R.conv2d(dx, W, null, o)), dot(absRef(G), R.conv2d(absRef(dx), absRef(W), null, o))],
        ['weight', dot(R.fromTensor(w.grad!), dw), dot(G, R.conv2d(X, dw, null, o)), dot(absRef(G), R.conv2d(absRef(X), absRef(dw), null, o))],
      ];
      for (const [what, got, want, mag] of checks)
        assert.ok(Math.abs(got - want) <= 1e-5 * mag, `${what} gradient of conv2d x ${xs} w ${ws} ${JSON.stringify(o)}: ${got} vs ${want} (scale ${mag})`);
    }
    const gb = b.grad!.data() as Float32Array;
    for (let c = 0; c < ws[0]; c++) {
      let sum = 0;
      for (let n = 0; n < G.shape[0]; n++) for (let p = 0; p < G.shape[2] * G.shape[3]; p++) sum += G.data[(n * G.shape[1] + c) * G.shape[2] * G.shape[3] + p];
      assert.ok(Math.abs(gb[c] - sum) <= 1e-5 * G.data.length, `bias gradient ${c}: ${gb[c]} vs ${sum}`);
    }
  }
}));

test.run();
