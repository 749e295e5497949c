// demo.ts: what `npm start` runs until the Emu demo lands: a short tour of the engine.
//
// It shows the machine the kernels were picked for, fits a small linear model with autograd
// and AdamW, then builds the full-size Emu-14B on the `meta` device (shapes only, no memory)
// and counts its parameters.
import { AdamW, F, Linear, manualSeed, memoryStats, randn, runtimeInfo, tensor, tidy } from '../src/index.ts';
import { Emu, preset } from '../src/emu/index.ts';

const info = runtimeInfo();
console.log(`emu-engine on ${info.threads} CPU thread(s), kernels for ${info.cpuIsa}; ` +
  `CUDA: ${info.cudaDeviceCount > 0 ? info.cudaDeviceNames.join(', ') : info.cudaUnavailableReason}`);

manualSeed(0);
const trueW = tensor([[2.0, -3.0, 0.5]]);
const x = randn([256, 3]);
const y = tidy(() => x.matmul(trueW.t()).add(1.25).add(randn([256, 1], { std: 0.01 })));
console.log('inputs x:', x.toString());

const model = new Linear(3, 1);
const opt = new AdamW(model.parameters(), { lr: 0.05, weightDecay: 0 });
for (let step = 0; step <= 300; step++) {
  const loss = tidy(() => {
    const l = F.mseLoss(model.forward(x), y);
    opt.zeroGrad();
    l.backward();
    opt.step();
    return l.item() as number;
  });
  if (step % 75 === 0) console.log(`step ${String(step).padStart(3)}  mse ${loss.toExponential(3)}`);
}
console.log('learned W:', model.weight.toString(), '(true [2, -3, 0.5])');
console.log('learned b:', model.bias!.toString(), '(true 1.25)');

const emu = new Emu(preset('emu-14b'), { device: 'meta' });
console.log(`Emu-14B on meta: ${(emu.numParameters() / 1e9).toFixed(2)}B parameters, ` +
  `${memoryStats('cpu').allocated} bytes of CPU memory in use`);
