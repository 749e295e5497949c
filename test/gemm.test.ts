// gemm.test.ts: the CPU matmul kernel versions (native/cpu/kernels/matmul.cpp, gemm/): each
// version against an f64 product on shapes that cut through every block and register tile,
// with transposed and broadcast operands read through their strides; the default version's
// result bit-identical for any thread count; and the version entry point's errors. The
// backend-parity table (parity.test.ts) covers matmul and bmm through the public API.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { numThreads, randn, setNumThreads, Tensor, tidy, ValueError, type DType } from '../src/index.ts';
import { native } from '../src/tensor/native.ts';

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
  [1, 29, 65, 390, false, true, false],        // depth past kKC = 384
  [3, 30, 40, 50, true, true, true],           // both transposed, b broadcast (stride-0 batch)
  [1, 350, 47, 20, false, false, false],       // rows past kMC = 336
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

for (const version of [1, 2, 3]) {
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

test('matmul version 3 with k = 0 writes zeros, and empty outputs are fine', () => tidy(() => {
  const a = randn([2, 5, 0]), b = randn([2, 0, 7]);
  const out = matmulVersion(3, a, b);
  assert.equal([...f64(out)], new Array(70).fill(0));
  assert.equal(matmulVersion(3, randn([2, 0, 4]), randn([2, 4, 7])).shape, [2, 0, 7]);
}));

test('matmul gives the same bits for 1, 2 and 3 threads', () => {
  const before = numThreads();
  try {
    tidy(() => {
      for (const dtype of ['f32', 'bf16'] as DType[]) {
        for (const shape of [[1, 345, 97, 400, false, true, false], [3, 40, 70, 390, true, false, true]] as (typeof SHAPES)[number][]) {
          const [a, b] = operands(dtype, shape);
          const results = [1, 2, 3].map((n) => {
            setNumThreads(n);
            return matmulVersion(3, a, b).data();
          });
          assert.equal(results[1], results[0], `${dtype} ${shape}: 2 threads differ from 1`);
          assert.equal(results[2], results[0], `${dtype} ${shape}: 3 threads differ from 1`);
        }
      }
    });
  } finally {
    setNumThreads(before);
  }
});

test('matmulVersion rejects an unknown version and mismatched shapes', () => tidy(() => {
  const a = randn([1, 3, 4]), b = randn([1, 4, 5]);
  assert.throws(() => matmulVersion(4, a, b), (e: unknown) => e instanceof ValueError && /no version 4/.test(e.message));
  assert.throws(() => matmulVersion(3, a, randn([1, 3, 5])), (e: unknown) => e instanceof Error && /matmul/.test(e.message));
}));

test.run();
