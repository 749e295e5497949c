// emu-engine/emu data: everything the Emu stages train and evaluate on, as plain JS data
// (Float32Array pixels, strings), each item a pure function of a seed: the shapes world, moving
// clips, interleaved documents and storyboards, Emu-I dialogues, captioned MNIST digits, the four
// sequence layouts, seed splits, sources and the resumable data loader.
export * from './shapes.ts';
export * from './video.ts';
export * from './documents.ts';
export * from './storyboard.ts';
export * from './dialogue.ts';
export * from './mnist.ts';
export * from './sample.ts';
export * from './splits.ts';
export * from './layouts.ts';
export * from './shuffle.ts';
export * from './sources.ts';
export * from './loader.ts';
