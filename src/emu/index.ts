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
export * from './io/index.ts';
export * from './eval/index.ts';
// The inference tasks; caption, vqa and videoQA are renamed here because the data module's
// functions of those names (a scene's true captions and questions) are exported too.
export {
  caption as captionImage, vqa as answerQuestion, videoQA as answerVideoQuestion, loadForInference, sampleFrameIndices, Chat, fewShot,
  generate, textToImage, blend, inContextGenerate, DECODING, VIDEO_FRAMES, type Pixels, type Decoding, type TextAnswer, type TextTaskOptions,
  type VideoAnswer, type VideoQAOptions, type Message, type PixelExample, type ImageGenOptions, type GeneratedImage,
} from './infer/tasks.ts';
export * from './infer/prompts.ts';
export * from './train/index.ts';
