// models.ts: the end-to-end cases of issue 4, through our public API: a LLaMA-style training step
// (forward, cross-entropy, backward, AdamW) and a ViT forward+backward, at the sizes the issue
// gives, so that their ratios against PyTorch (bench/ref/torch_ref.py builds the same shapes)
// appear in the bench table.
//
// Both report GFLOP/s of model flops: 2 per multiply-add of every matrix product (linear layers,
// the patch convolution, q k^T and p v with causal attention counted dense), times 3 for
// forward+backward. Elementwise work, norms and the optimizer are not counted, so % of the FMA
// peak says how much of the step the products fill.
import { LlamaForReg, VisionEncoder } from '../src/emu/index.ts';
import { AdamW, F, randint, randn, tidy } from '../src/index.ts';
import type { Case } from './harness.ts';

/** The LLaMA-style decoder of issue 4: 4 layers, d_model 256, 4 heads, SwiGLU 688, vocab 4096. */
const LLAMA = { vocab: 4096, d_model: 256, layers: 4, heads: 4, ffn: 688, seq: 128, batch: 8 };
const LLAMA_QUICK = { ...LLAMA, layers: 2, seq: 64, batch: 2 };
/** The ViT of issue 4: 64x64 images, patch 8, width 192, 4 layers, 3 heads, batch 16. */
const VIT = { image: 64, patch: 8, width: 192, layers: 4, heads: 3, mlp: 768, batch: 16 };
const VIT_QUICK = { ...VIT, layers: 2, batch: 4 };

function llamaFlops(p: typeof LLAMA): number {
  const tokens = p.batch * p.seq;
  const perLayer = 4 * p.d_model * p.d_model + 3 * p.d_model * p.ffn;
  const products = 2 * tokens * (p.layers * perLayer + p.d_model * p.vocab);
  const attention = p.layers * 4 * p.batch * p.seq * p.seq * p.d_model;  // q k^T and p v over all heads
  return 3 * (products + attention);
}

function vitFlops(p: typeof VIT): number {
  const patches = (p.image / p.patch) ** 2, tokens = p.batch * (patches + 1);
  const perLayer = 4 * p.width * p.width + 2 * p.width * p.mlp;
  const embed = 2 * p.batch * patches * 3 * p.patch * p.patch * p.width;
  const attention = p.layers * 4 * p.batch * (patches + 1) ** 2 * p.width;
  return 3 * (2 * tokens * p.layers * perLayer + embed + attention);
}

export function modelCases(quick: boolean): Case[] {
  const L = quick ? LLAMA_QUICK : LLAMA, V = quick ? VIT_QUICK : VIT;
  return [
    {
      suite: 'model', op: 'llama train step', size: `${L.layers}L d${L.d_model} b${L.batch}x${L.seq}`, metric: 'GFLOP/s',
      work: llamaFlops(L),
      spec: { op: 'llama_step', inputs: [], params: { ...L } },
      setup: () => {
        const model = new LlamaForReg(
          { baseVocab: L.vocab - 4, hidden: L.d_model, layers: L.layers, heads: L.heads, intermediate: L.ffn, maxPositions: L.seq, ropeBase: 10000, eps: 1e-6 },
          { vocabSize: L.vocab, padId: null });
        const opt = new AdamW(model.parameters(), { lr: 1e-4 });
        const ids = randint(0, L.vocab, [L.batch, L.seq], { dtype: 'i32' });
        const targets = randint(0, L.vocab, [L.batch * L.seq], { dtype: 'i32' });
        return {
          fn: () => tidy(() => {
            opt.zeroGrad();
            const logits = model.forward(model.embed(ids)).logits!;
            F.crossEntropy(logits.reshape([L.batch * L.seq, L.vocab]), targets).backward();
            opt.step();
          }),
          dispose: () => {
            ids.dispose();
            targets.dispose();
            for (const p of model.parameters()) p.dispose();
          },
        };
      },
    },
    {
      suite: 'model', op: 'vit fwd+bwd', size: `${V.layers}L d${V.width} b${V.batch} ${V.image}px/${V.patch}`, metric: 'GFLOP/s',
      work: vitFlops(V),
      spec: { op: 'vit_fwd_bwd', inputs: [], params: { ...V } },
      setup: () => {
        const model = new VisionEncoder({ imageSize: V.image, patchSize: V.patch, width: V.width, layers: V.layers, heads: V.heads, mlpDim: V.mlp, eps: 1e-6 });
        const pixels = randn([V.batch, 3, V.image, V.image]);
        return {
          fn: () => tidy(() => {
            model.zeroGrad();
            model.forward(pixels).mean().backward();
          }),
          dispose: () => {
            pixels.dispose();
            for (const p of model.parameters()) p.dispose();
          },
        };
      },
    },
  ];
}
