// demo.ts: what `npm start` runs until the Emu demo lands: a short tour of the engine.
//
// It fits a tiny linear model y = x W + b to noisy data by hand-written gradient descent (the
// autograd layer comes next), prints the tensors it makes along the way, and shows the
// machine the kernels were picked for.
import {
  manualSeed, matmul, memoryStats, randn, runtimeInfo, tensor, tidy, type Tensor,
} from '../src/index.ts';

const info = runtimeInfo();
console.log(`emu-engine on ${info.threads} CPU thread(s), kernels for ${info.cpuIsa}; ` +
  `CUDA: ${info.cudaDeviceCount > 0 ? info.cudaDeviceNames.join(', ') : info.cudaUnavailableReason}`);

manualSeed(0);
const trueW = tensor([[2.0], [-3.0], [0.5]]);
const x = randn([256, 3]);
const noise = randn([256, 1], { std: 0.01 });
const y = tidy(() => matmul(x, trueW).add(1.25).add(noise));
console.log('inputs x:', x.toString());

let w: Tensor = tensor([[0], [0], [0]]);
let b: Tensor = tensor(0);
const lr = 0.1;
for (let step = 0; step <= 200; step++) {
  const [nw, nb, loss] = tidy(() => {
    const err = matmul(x, w).add(b).sub(y);                       // [256, 1]
    const gradW = matmul(x.t(), err).mul(2 / x.shape[0]);          // d mean(err^2) / dW
    const gradB = err.mean().mul(2);
    return [w.sub(gradW.mul(lr)), b.sub(gradB.mul(lr)), err.square().mean()];
  });
  w.dispose();
  b.dispose();
  w = nw;
  b = nb;
  if (step % 50 === 0) console.log(`step ${String(step).padStart(3)}  mse ${(loss.item() as number).toExponential(3)}`);
  loss.dispose();
}
console.log('learned W:', w.toString());
console.log('learned b:', b.toString(), '(true W = [2, -3, 0.5], b = 1.25)');
const m = memoryStats();
console.log(`memory: ${m.liveTensors} live tensors, ${m.allocated} bytes allocated, ${m.reserved} reserved`);
