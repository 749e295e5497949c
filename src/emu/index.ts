// emu-engine/emu: the Emu multimodal model (BAAI, "Emu: Generative Pretraining in
// Multimodality", 2023) built on the engine: configs and presets, the tokenizer, the vision
// encoder and CLIP tower, the Causal Transformer, LLaMA with the regression head, text and
// visual-embedding generation, and the Emu wrapper with its unified loss.
// `import { Emu, preset, trainBPE } from 'emu-engine/emu'`.
export * from './config.ts';
export * from './tokenizer.ts';
export * from './vision.ts';
export * from './clip.ts';
export * from './cformer.ts';
export * from './llama.ts';
export * from './generate.ts';
export * from './emu.ts';
export * from './vae.ts';
export * from './unet.ts';
export * from './diffusion.ts';
export * from './pipeline.ts';
export * from './data/index.ts';
